//! The one way a test that cannot run here (a missing tool, not root, the wrong machine) gives up:
//! it says why and reports ok, except under `CI=true`, where `.ci/run` installed every tool as root
//! and a skip would only hide a test that never ran: there it fails.

/// Skips (returns, after saying why on stderr) or, under `CI=true`, fails the calling test.
pub fn skip(why: &str) {
    skip_in(std::env::var("CI").ok().as_deref(), why)
}

fn skip_in(ci: Option<&str>, why: &str) {
    assert!(ci != Some("true"), "this test cannot run here, and CI=true allows no skip: {why}");
    eprintln!("SKIPPED: {why}");
}

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "CI=true allows no skip: no frobnicator")]
    fn under_ci_a_skip_fails() {
        super::skip_in(Some("true"), "no frobnicator");
    }

    #[test]
    fn elsewhere_a_skip_passes() {
        super::skip_in(None, "no frobnicator");
        super::skip_in(Some("false"), "no frobnicator");
    }
}
