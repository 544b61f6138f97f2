//! Fault switches, for tests only: the real Vikunja has none.
//!
//! A fault comes from env `VIKUNJA_STANDIN_FAULT` or from a file named
//! `STANDIN_FAULT` next to the executable. The file form lets a test break
//! one installed release directory while another release on the same host
//! (the other colour of a blue-green pair) stays healthy.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// `/health` always answers 500 and `healthcheck` exits 1.
    NeverHealthy,
    /// The first pending migration fails: logged fatally, exit 1.
    FailMigration,
    /// Sleep this long after migrations, before the port is bound.
    SlowStart(Duration),
}

pub const ENV: &str = "VIKUNJA_STANDIN_FAULT";
pub const FILE: &str = "STANDIN_FAULT";

/// The active fault; an unknown value is fatal so that a typo in a test
/// cannot silently turn a fault test into a no-fault test.
pub fn load() -> Fault {
    let from_env = std::env::var(ENV).ok().filter(|v| !v.trim().is_empty());
    let from_file = || {
        let dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
        std::fs::read_to_string(dir.join(FILE)).ok()
    };
    let Some(raw) = from_env.or_else(from_file) else {
        return Fault::None;
    };
    match parse(raw.trim()) {
        Some(f) => {
            if f != Fault::None {
                crate::logger::warn(&format!("vikunja-standin test double: fault {f:?} is active"));
            }
            f
        }
        None => crate::logger::fatal(&format!(
            "unknown stand-in fault {raw:?} (expected never-healthy, fail-migration or slow-start=<seconds>)"
        )),
    }
}

fn parse(s: &str) -> Option<Fault> {
    match s {
        "" | "none" => Some(Fault::None),
        "never-healthy" => Some(Fault::NeverHealthy),
        "fail-migration" => Some(Fault::FailMigration),
        _ => {
            let secs: f64 = s.strip_prefix("slow-start=")?.trim().parse().ok()?;
            (secs.is_finite() && secs >= 0.0).then(|| Fault::SlowStart(Duration::from_secs_f64(secs)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(parse("never-healthy"), Some(Fault::NeverHealthy));
        assert_eq!(parse("fail-migration"), Some(Fault::FailMigration));
        assert_eq!(parse("slow-start=1.5"), Some(Fault::SlowStart(Duration::from_millis(1500))));
        assert_eq!(parse("slow-start=-1"), None);
        assert_eq!(parse("port-taken"), None);
    }
}
