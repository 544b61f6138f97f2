//! Every kill point the installer honours (`fault::kill_point` and `fault::armed` call sites in
//! `installer/src`) is exercised by a SIGKILL test: a test file that sets
//! `VIKUNJA_INSTALLER_TEST_KILL_AT` names it as a string. So a new point cannot be added without a
//! test that kills there, and the tests' lists need no hand-kept copy of the code's.
//!
//! A call site's point is a literal, `step.name()` (the names in that file's `Step` table), or a
//! `format!` of one of those or of `colour.name()` (blue, green); any other form fails the test
//! until this reader learns it.

mod source_scan;

use std::collections::BTreeSet;
use std::path::Path;

use source_scan::{scan, sources, string_literals};

const COLOURS: &[&str] = &["blue", "green"];

/// The names of a file's step table: `Step::X => "name"` arms or `(Step::X, "name")` entries.
fn step_names(code: &str, literals: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in code.match_indices("Step::") {
        let rest = &code[at + "Step::".len()..];
        let after_ident = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
        let after = after_ident.trim_start();
        let after = after.strip_prefix("=>").or_else(|| after.strip_prefix("),").or(after.strip_prefix(',')));
        if let Some(lit) = after.and_then(|a| literal_at(a.trim_start(), literals)) {
            names.push(lit);
        }
    }
    names
}

/// The literal `"#N"` at the start of `s`, if there is one.
fn literal_at(s: &str, literals: &[String]) -> Option<String> {
    let n: usize = s.strip_prefix("\"#")?.split('"').next()?.parse().ok()?;
    literals.get(n).cloned()
}

/// The points named at the call sites of one file, or what could not be read (file:form).
fn points_in(file: &str, src: &str) -> Result<BTreeSet<String>, String> {
    let (code, literals) = scan(src);
    let steps = step_names(&code, &literals);
    let mut points = BTreeSet::new();
    for call in ["kill_point(", "armed("] {
        for (at, _) in code.match_indices(call) {
            let before = code[..at].chars().last();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let arg = code[at + call.len()..].trim_start();
            let unreadable = || Err(format!("{file}: {call}{}", arg.lines().next().unwrap_or("")));
            let arg = arg.strip_prefix('&').unwrap_or(arg);
            if let Some(lit) = literal_at(arg, &literals) {
                points.insert(lit);
            } else if arg.starts_with("step.name()") {
                if steps.is_empty() {
                    return unreadable();
                }
                points.extend(steps.iter().cloned());
            } else if let Some(f) = arg.strip_prefix("format!(") {
                let Some(pattern) = literal_at(f, &literals) else { return unreadable() };
                let value = f.split_once(',').map(|(_, v)| v.trim_start()).unwrap_or("");
                let values: Vec<String> = if value.starts_with("colour.name()") {
                    COLOURS.iter().map(|c| c.to_string()).collect()
                } else if value.starts_with("step.name()") && !steps.is_empty() {
                    steps.clone()
                } else {
                    return unreadable();
                };
                if pattern.matches("{}").count() != 1 {
                    return unreadable();
                }
                points.extend(values.iter().map(|v| pattern.replace("{}", v)));
            } else {
                return unreadable();
            }
        }
    }
    Ok(points)
}

/// The points a set of source files names, and those a set of test files exercises: the points
/// no test kills at, or the call sites that could not be read.
fn unexercised(src: &[(String, String)], tests: &[String]) -> Result<Vec<String>, Vec<String>> {
    let mut points = BTreeSet::new();
    let mut errors = Vec::new();
    for (file, text) in src {
        match points_in(file, text) {
            Ok(p) => points.extend(p),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let named: BTreeSet<String> = tests
        .iter()
        .filter(|t| t.contains("VIKUNJA_INSTALLER_TEST_KILL_AT"))
        .flat_map(|t| string_literals(t))
        .collect();
    Ok(points.into_iter().filter(|p| !named.contains(p)).collect())
}

#[test]
fn every_kill_point_is_exercised_by_a_sigkill_test() {
    let installer = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src: Vec<(String, String)> = sources(&installer.join("src"))
        .into_iter()
        // fault.rs defines the hook; its own `armed(point)` is no call site.
        .filter(|(p, _)| p != Path::new("fault.rs"))
        .map(|(p, t)| (p.display().to_string(), t))
        .collect();
    // This file names points too (as the reader's self-check), so it does not count as a test.
    let mut tests: Vec<String> = sources(&installer.join("tests"))
        .into_iter()
        .filter(|(p, _)| p != Path::new("fault_points.rs"))
        .map(|(_, t)| t)
        .collect();
    tests.extend(sources(&installer.join("../tests/tests")).into_iter().map(|(_, t)| t));
    let mut all = BTreeSet::new();
    for (file, text) in &src {
        all.extend(points_in(file, text).unwrap_or_default());
    }
    // Fail closed: the reader must see the points it is meant to check.
    for known in ["started", "switched", "upstream-written-green", "restore-committed", "backup-dumped", "placed"] {
        assert!(all.contains(known), "kill point {known} not found in installer/src: {all:?}");
    }
    match unexercised(&src, &tests) {
        Ok(missing) => assert!(
            missing.is_empty(),
            "kill points no SIGKILL test exercises: {missing:?}; add them to a test that sets \
             VIKUNJA_INSTALLER_TEST_KILL_AT (e.g. sequence_e2e's KILL_* lists)"
        ),
        Err(errors) => panic!("kill point call sites this test cannot read:\n  {}", errors.join("\n  ")),
    }
}

#[test]
fn the_reader_expands_each_form_and_reports_what_no_test_kills_at() {
    let src = r#"
        enum Step { A, B }
        const STEPS: [(Step, &str); 2] = [(Step::A, "a-step"), (Step::B, "b-step")];
        fn advance(step: Step) { kill_point(&format!("restore-{}", step.name())); }
        fn f() { crate::fault::kill_point("literal"); let _ = crate::fault::armed("armed-one"); }
        fn g(colour: Colour) { kill_point(&format!("written-{}", colour.name())); }
        // kill_point("in-a-comment")
    "#;
    let points = points_in("x.rs", src).unwrap();
    let want = ["armed-one", "literal", "restore-a-step", "restore-b-step", "written-blue", "written-green"];
    assert_eq!(points.iter().map(String::as_str).collect::<Vec<_>>(), want);
    let arms = "fn name(s: Step) -> &str { match s { Step::A => \"one\", Step::B => \"two\" } }\n\
                fn advance(step: Step) { kill_point(step.name()); }";
    assert_eq!(points_in("y.rs", arms).unwrap().into_iter().collect::<Vec<_>>(), ["one", "two"]);
    assert!(points_in("z.rs", "fn h(p: &str) { kill_point(p); }").is_err(), "an unreadable form must fail");

    let files = [("x.rs".to_string(), src.to_string())];
    // Control: a test file naming every point, with the variable, leaves none.
    let all = format!(
        "env(\"VIKUNJA_INSTALLER_TEST_KILL_AT\", p); for p in [{}] {{}}",
        want.map(|w| format!("{w:?}")).join(", ")
    );
    assert_eq!(unexercised(&files, std::slice::from_ref(&all)).unwrap(), Vec::<String>::new());
    // One point fewer: that one is reported.
    let fewer = all.replace("\"written-green\"", "\"something-else\"");
    assert_eq!(unexercised(&files, &[fewer]).unwrap(), ["written-green"]);
    // Names in a file that never sets the variable do not count.
    let unrelated = all.replace("VIKUNJA_INSTALLER_TEST_KILL_AT", "SOMETHING_ELSE");
    assert_eq!(unexercised(&files, &[unrelated]).unwrap().len(), want.len());
}
