//! Secrets in 0600 files, never on a command line or in a world-readable config: the database
//! password and one `service.secret` shared by both colours. The secret is made once and kept,
//! because Vikunja invalidates every login token when it changes.

use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use manifests::atomic::write_atomic;

use crate::instance::config::Deployment;
use crate::instance::layout::Layout;

pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut b = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(manifests::hash::hex(&b))
}

fn write_secret(path: &Path, value: &str) -> io::Result<()> {
    write_atomic(path, value.as_bytes(), 0o600)?;
    // write_atomic's mode applies to a new file only; make sure an old one is tightened too.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Creates the service secret if missing; returns whether it was created.
pub fn ensure_service_secret(l: &Layout) -> io::Result<bool> {
    let path = l.service_secret_file();
    if path.is_file() {
        return Ok(false);
    }
    write_secret(&path, &random_hex(32)?)?;
    Ok(true)
}

/// Copies the database password from the file the config names; returns whether it changed.
pub fn ensure_db_password(l: &Layout, d: &Deployment) -> io::Result<bool> {
    let Some(src) = &d.database.password_file else { return Ok(false) };
    let pw = std::fs::read_to_string(src)?;
    let pw = pw.trim_end_matches(['\r', '\n']);
    let dest = l.db_password_file();
    if std::fs::read_to_string(&dest).is_ok_and(|old| old == pw) {
        return Ok(false);
    }
    write_secret(&dest, pw)?;
    Ok(true)
}

pub fn db_password(l: &Layout) -> Option<String> {
    std::fs::read_to_string(l.db_password_file()).ok()
}
