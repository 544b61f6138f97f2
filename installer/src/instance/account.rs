//! The `vikunja` system user (no login shell, no home): created with useradd inside `--root`, and
//! looked up in that root's /etc/passwd. A sandbox root without /etc/passwd (tests, the demo) has no
//! such user: files keep their owner and services run as the invoking user.

use std::path::Path;
use std::process::Command;

/// The system user could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("run useradd: {0}; install the passwd package")]
    Run(std::io::Error),
    #[error("useradd {user} failed: {stderr}")]
    Failed { user: String, stderr: String },
    #[error("useradd created no {0} entry")]
    Missing(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

pub fn lookup(root: &Path, user: &str) -> Option<Ids> {
    let text = std::fs::read_to_string(root.join("etc/passwd")).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == user).then(|| Some(Ids { uid: f[2].parse().ok()?, gid: f[3].parse().ok()? })).flatten()
    })
}

/// Returns the user's ids, creating the user first when the root has a passwd file.
pub fn ensure(root: &Path, user: &str) -> Result<Option<Ids>, AccountError> {
    if let Some(ids) = lookup(root, user) {
        return Ok(Some(ids));
    }
    if !root.join("etc/passwd").is_file() {
        return Ok(None);
    }
    let mut cmd = Command::new("useradd");
    if root != Path::new("/") {
        cmd.arg("--root").arg(root);
    }
    cmd.args([
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
    ]);
    cmd.arg(user);
    let out = cmd.output().map_err(AccountError::Run)?;
    if !out.status.success() {
        return Err(AccountError::Failed {
            user: user.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    lookup(root, user).map(Some).ok_or_else(|| AccountError::Missing(user.to_string()))
}

pub fn chown(path: &Path, ids: Option<Ids>) -> std::io::Result<()> {
    match ids {
        Some(i) => std::os::unix::fs::chown(path, Some(i.uid), Some(i.gid)),
        None => Ok(()),
    }
}
