//! Reading Rust sources as text for the tests that check the code itself (`layering`,
//! `fault_points`): no parser crate, just what those checks need.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The code without comments and without the contents of string literals, so a path named in
/// prose or in a message is no import.
pub fn strip_comments(src: &str) -> String {
    scan(src).0
}

/// The string literals of the code (comments left out), escapes as written.
pub fn string_literals(src: &str) -> Vec<String> {
    scan(src).1
}

/// Splits a source into its code without comments, each string literal replaced by `"#N"`, and
/// the literals (`N` indexes them).
pub fn scan(src: &str) -> (String, Vec<String>) {
    let b = src.as_bytes();
    let mut literals = Vec::new();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 2;
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.extend_from_slice(format!("\"#{}\"", literals.len()).as_bytes());
                literals.push(String::from_utf8_lossy(&b[start..i.min(b.len())]).into_owned());
                i += 1;
            }
            // A char literal ('"', '\'') is no string; a lifetime ('a) has no closing quote.
            b'\'' if b.get(i + 2) == Some(&b'\'') => {
                i += 3;
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 3;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), literals)
}

/// Every `.rs` file under `dir`, recursively and sorted: (path relative to `dir`, contents).
pub fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(PathBuf, String)>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, base, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
                out.push((p.strip_prefix(base).unwrap().to_path_buf(), text));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}
