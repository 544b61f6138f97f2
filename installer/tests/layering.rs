//! The installer's layers, enforced: reads every `crate::…` and `super::…` path in
//! `installer/src` (comments ignored) and checks the rules ARCHITECTURE.md states as absences:
//!
//! - `instance/`, `service/`, `data/`, `render/` never reach `engine/`, `commands/`, `host/`, `cli`
//!   or `ui`;
//! - `host/` never reaches `engine/`;
//! - an engine operation (`OPERATIONS`) reaches no other one: only `recovery` (which dispatches to
//!   them) and what they share (`SHARED`: `journal`, `lifecycle` and the blue-green steps of
//!   `switch`), which reaches no operation and not `recovery`;
//! - `engine/` never reaches `cli` or `ui` (the engine never parses argv or prompts);
//! - nothing outside `commands/`, `ui.rs` and `main.rs` writes to the terminal or asks on it
//!   (`println!` and its kin, `stdout()`/`stderr()`/`stdin()`, `ui`'s questions): the rest tells
//!   the user things through `report`, and is handed answers (tests excepted).
//!
//! What still breaks a rule is listed in `ALLOWED`, each with why; an entry that no longer occurs
//! fails the test, so the list can only shrink.

mod source_scan;

use std::collections::BTreeSet;
use std::path::Path;

use source_scan::{sources, strip_comments};

/// (from module, to module, why it is still there). Module paths as `crate::` spells them. Empty:
/// a new exception needs a reason written here.
const ALLOWED: &[(&str, &str, &str)] = &[];

const FOLDERS: &[&str] = &["commands", "host", "engine", "instance", "service", "data", "render"];
const LOWER: &[&str] = &["instance", "service", "data", "render"];
const OPERATIONS: &[&str] = &["install", "update", "restart", "rollback", "backup", "restore", "upgrade", "stopstart"];
/// What operations share: they name no operation and not `recovery`.
const SHARED: &[&str] = &["journal", "lifecycle", "switch"];

/// The module path of a source file: `engine/backup.rs` → `engine::backup`, `instance/mod.rs` →
/// `instance`, `main.rs` → `` (the crate root).
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "main" {
        parts.push(stem.to_string());
    }
    parts
}

fn ident(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    s.split_at(end)
}

/// Expands one path after `crate::` (or `super::`): `a::b`, `a::{b, c::d}`, `{a, b}`.
fn expand(prefix: &[String], s: &str, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix.to_vec();
    let mut i = 0;
    loop {
        let rest = &s[i..];
        if let Some(inner) = rest.strip_prefix('{') {
            // A group: each comma-separated entry at depth 0 is its own path.
            let mut j = 0;
            loop {
                let r = inner[j..].trim_start();
                j = inner.len() - r.len();
                if r.starts_with('}') {
                    return i + 1 + j + 1;
                }
                j += expand(&path, r, out);
                let r2 = inner[j..].trim_start();
                j = inner.len() - r2.len();
                if let Some(after) = r2.strip_prefix(',') {
                    j = inner.len() - after.len();
                }
                if j >= inner.len() {
                    return s.len();
                }
            }
        }
        let (id, _) = ident(rest);
        if id.is_empty() {
            break;
        }
        path.push(id.to_string());
        i += id.len();
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    out.push(path);
    i
}

/// Every module path a file refers to, resolved from the crate root and cut to its folder and
/// module (`engine::backup`, `cli`), `self` and `*` dropped.
fn references(module: &[String], src: &str) -> BTreeSet<String> {
    let text = strip_comments(src);
    let mut paths = Vec::new();
    for (start, _) in text.match_indices("crate::") {
        let before = text[..start].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        expand(&[], &text[start + "crate::".len()..], &mut paths);
    }
    for (start, _) in text.match_indices("super::") {
        let before = text[..start].chars().last();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let parent = &module[..module.len().saturating_sub(1)];
        expand(parent, &text[start + "super::".len()..], &mut paths);
    }
    paths
        .into_iter()
        .map(|p| {
            let p: Vec<String> = p.into_iter().filter(|s| s != "self" && s != "*").collect();
            let depth = if p.first().is_some_and(|f| FOLDERS.contains(&f.as_str())) { 2 } else { 1 };
            p.into_iter().take(depth).collect::<Vec<_>>().join("::")
        })
        .filter(|p| !p.is_empty())
        .collect()
}

/// The rule `from` → `to` breaks, if any.
fn broken_rule(from: &[String], to: &str) -> Option<&'static str> {
    let layer = from.first().map(String::as_str).unwrap_or("");
    let to_parts: Vec<&str> = to.split("::").collect();
    let to_layer = to_parts[0];
    if LOWER.contains(&layer) && ["engine", "commands", "host", "cli", "ui"].contains(&to_layer) {
        return Some("instance/, service/, data/ and render/ never reach engine/, commands/, host/, cli or ui");
    }
    if layer == "host" && to_layer == "engine" {
        return Some("host/ never reaches engine/");
    }
    if layer == "engine" {
        if ["cli", "ui"].contains(&to_layer) {
            return Some("the engine never parses argv or prompts");
        }
        let me = from.get(1).map(String::as_str).unwrap_or("");
        let other = to_parts.get(1).copied().unwrap_or("");
        if to_layer == "engine" && !other.is_empty() && other != me {
            if OPERATIONS.contains(&me) && !(other == "recovery" || SHARED.contains(&other)) {
                return Some("an engine operation reaches another only through recovery");
            }
            if SHARED.contains(&me) && (other == "recovery" || OPERATIONS.contains(&other)) {
                return Some(
                    "what operations share (journal, lifecycle, switch) reaches no operation and not recovery",
                );
            }
        }
    }
    None
}

/// Every broken rule in the given files (module path, source), and every `allowed` entry that no
/// longer occurs.
fn check(files: &[(Vec<String>, String)], allowed: &[(&str, &str, &str)]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (module, src) in files {
        let from = module.join("::");
        for to in references(module, src) {
            if let Some(rule) = broken_rule(module, &to) {
                if allowed.iter().any(|(f, t, _)| *f == from && *t == to) {
                    used.insert((from.clone(), to.clone()));
                } else {
                    problems.push(format!("crate::{from} uses crate::{to}: {rule}"));
                }
            }
        }
    }
    for (f, t, why) in allowed {
        if !used.contains(&(f.to_string(), t.to_string())) {
            problems.push(format!(
                "allowed exception {f} -> {t} ({why}) no longer occurs: remove it from ALLOWED in tests/layering.rs"
            ));
        }
    }
    problems
}

#[test]
fn the_installer_keeps_its_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files: Vec<(Vec<String>, String)> =
        sources(&src).into_iter().map(|(rel, text)| (module_of(&rel), text)).collect();
    assert!(files.len() > 40, "found only {} source files under {}", files.len(), src.display());
    let problems = check(&files, ALLOWED);
    assert!(problems.is_empty(), "layering broken:\n  {}", problems.join("\n  "));
}

/// What writes to the terminal or asks on it.
const TERMINAL: &[&str] = &[
    "println!",
    "eprintln!",
    "print!",
    "eprint!",
    "stdout()",
    "stderr()",
    "stdin()",
    "rpassword::",
    "ui::confirm",
    "ui::terminal",
    "ui::interactive",
    "ui::secret",
    "ui::run",
];

/// The code without its `#[cfg(test)]` items (a test may print what it checks).
fn without_tests(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else { return out };
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Each use of the terminal in a source file, as `file: what`; none for the files that may.
fn terminal_uses(rel: &Path, src: &str) -> Vec<String> {
    let may = rel.starts_with("commands") || rel == Path::new("ui.rs") || rel == Path::new("main.rs");
    if may {
        return Vec::new();
    }
    let code = without_tests(&strip_comments(src));
    let mut found = Vec::new();
    for what in TERMINAL {
        for (at, _) in code.match_indices(what) {
            let before = code[..at].chars().last();
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                found.push(format!("{}: {what}", rel.display()));
            }
        }
    }
    found
}

#[test]
fn only_commands_and_ui_use_the_terminal() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = sources(&src);
    assert!(files.len() > 40, "found only {} source files under {}", files.len(), src.display());
    let found: Vec<String> = files.iter().flat_map(|(rel, text)| terminal_uses(rel, text)).collect();
    assert!(
        found.is_empty(),
        "the terminal used outside commands/ and ui (tell the user through crate::report; take answers as \
         options):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn the_terminal_check_finds_a_planted_print_and_spares_tests_comments_and_strings() {
    let planted = "fn f() {\n    let x = 1;\n    println!(\"{x}\");\n}\n";
    assert_eq!(terminal_uses(Path::new("engine/install.rs"), planted), ["engine/install.rs: println!"]);
    for (code, what) in [
        ("std::io::stderr().write_all(b\"x\");", "stderr()"),
        ("if crate::ui::confirm(&q)? {}", "ui::confirm"),
        ("eprint!(\"x\");", "eprint!"),
        ("let t = rpassword::prompt_password(\"p\");", "rpassword::"),
    ] {
        assert_eq!(terminal_uses(Path::new("host/x.rs"), code), [format!("host/x.rs: {what}")], "{code}");
    }
    // Control: the same in the places that may, and in tests, comments and strings elsewhere.
    assert!(terminal_uses(Path::new("commands/x.rs"), planted).is_empty());
    assert!(terminal_uses(Path::new("ui.rs"), planted).is_empty());
    let spared = "// println!(\"no\")\nlet m = \"use println! here\";\nsay!(\"ok\");\n\
                  #[cfg(test)]\nmod tests {\n    fn t() { if true { println!(\"{}\", 1); } }\n}\nfn g() {}\n";
    assert!(terminal_uses(Path::new("engine/x.rs"), spared).is_empty());
    // What follows a test module is checked again.
    let after = format!("{spared}fn h() {{ eprintln!(\"x\"); }}\n");
    assert_eq!(terminal_uses(Path::new("engine/x.rs"), &after), ["engine/x.rs: eprintln!"]);
}

fn file(path: &str, src: &str) -> (Vec<String>, String) {
    (module_of(Path::new(path)), src.to_string())
}

#[test]
fn the_checker_finds_imports_in_every_form() {
    let m = module_of(Path::new("engine/restore.rs"));
    assert_eq!(m, ["engine", "restore"]);
    assert_eq!(module_of(Path::new("instance/mod.rs")), ["instance"]);
    assert_eq!(module_of(Path::new("main.rs")), Vec::<String>::new());
    let src = "use crate::{a, b::c};\nuse crate::engine::{self, backup::{x, y}, journal};\n\
               // use crate::commented;\n/// see crate::doc\nlet u = \"http://crate::instring\";\n\
               fn f() { crate::service::nginx::route(); super::sibling::g(); }\n";
    let r: Vec<String> = references(&m, src).into_iter().collect();
    assert_eq!(r, ["a", "b", "engine", "engine::backup", "engine::journal", "engine::sibling", "service::nginx"]);
}

#[test]
fn the_checker_rejects_each_broken_rule_and_accepts_the_allowed_ones() {
    // Control: what the rules allow.
    let ok = [
        file("service/x.rs", "use crate::instance::layout::Layout;\nuse crate::error::fail;\nuse crate::fault;"),
        file("engine/backup.rs", "use crate::engine::{journal, lifecycle, recovery};\nuse crate::service::nginx;"),
        file("engine/recovery.rs", "use crate::engine::{backup, update, restore, switch};"),
        file("engine/install.rs", "use crate::engine::switch::restart_locked;"),
        file("host/create.rs", "use crate::instance::config;\nuse crate::ui::confirm;"),
    ];
    assert_eq!(check(&ok, &[]), Vec::<String>::new());
    for (f, src) in [
        ("service/nginx.rs", "use crate::engine::journal::kill_point;"),
        ("data/archive.rs", "fn f() -> crate::engine::install::Failed { todo!() }"),
        ("instance/mod.rs", "use crate::host;"),
        ("render/mod.rs", "use crate::{cli, instance::layout};"),
        ("host/mod.rs", "use crate::engine::upgrade;"),
        ("engine/restore.rs", "use crate::engine::backup::resolve;"),
        ("engine/journal.rs", "use crate::engine::recovery;"),
        ("engine/rollback.rs", "crate::ui::confirm(\"?\");"),
        ("engine/switch.rs", "use crate::engine::update;"),
        ("engine/switch.rs", "crate::engine::recovery::begin(i, \"restart\")"),
        ("engine/update.rs", "use crate::engine::rollback::rollback;"),
    ] {
        let problems = check(&[file(f, src)], &[]);
        assert_eq!(problems.len(), 1, "{f}: {src}: {problems:?}");
    }
    // An allowed exception is accepted while it occurs, and reported once it no longer does.
    let allowed = [("engine::restore", "engine::backup", "test")];
    assert!(check(&[file("engine/restore.rs", "use crate::engine::backup::resolve;")], &allowed).is_empty());
    let stale = check(&[file("engine/restore.rs", "use crate::engine::recovery;")], &allowed);
    assert!(stale.len() == 1 && stale[0].contains("no longer occurs"), "{stale:?}");
}
