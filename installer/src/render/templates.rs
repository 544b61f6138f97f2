//! Where templates come from: the bundle the bootstrap unpacked (`$VIKUNJA_BUNDLE_DIR/templates`),
//! the installed layout (`<exe>/../templates`), or the copies compiled into the binary. The bundle
//! and the binary are built together, so they always agree; the compiled-in copies serve
//! `cargo run` and tests.

use std::path::PathBuf;

/// A template that cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("read template {}: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("template {0} not found")]
    Missing(String),
}

fn candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(b) = std::env::var_os("VIKUNJA_BUNDLE_DIR") {
        c.push(PathBuf::from(b).join("templates"));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(|p| p.join("../templates"))) {
        c.push(dir);
    }
    c
}

pub fn load(name: &str) -> Result<String, TemplateError> {
    for dir in candidates() {
        let p = dir.join(name);
        if p.is_file() {
            return std::fs::read_to_string(&p).map_err(|err| TemplateError::Read { path: p, err });
        }
    }
    let own = match name {
        "scripts/health-check.sh" => Some(include_str!("../../templates/scripts/health-check.sh")),
        _ => crate::render::builtin(name),
    };
    own.map(str::to_string).ok_or_else(|| TemplateError::Missing(name.to_string()))
}
