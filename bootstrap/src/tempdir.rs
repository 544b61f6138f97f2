//! The private directory the bundle is unpacked into: `$TMPDIR/vikunja-installer-<random>`, mode
//! 0700, created fresh (never reused), removed on exit, on error and on SIGINT/SIGTERM/SIGHUP.

use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The directory the signal thread must remove if we are killed before the normal cleanup.
pub static REGISTERED: Mutex<Option<PathBuf>> = Mutex::new(None);

pub struct PrivateDir {
    pub path: PathBuf,
    pub keep: bool,
}

fn random_suffix() -> io::Result<String> {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(manifests::hash::hex(&b))
}

impl PrivateDir {
    pub fn create(keep: bool) -> io::Result<PrivateDir> {
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let path = base.join(format!("vikunja-installer-{}", random_suffix()?));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    if !keep {
                        *REGISTERED.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.clone());
                    }
                    return Ok(PrivateDir { path, keep });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "cannot create a directory in {}: {e}; set TMPDIR to a writable directory",
                            base.display()
                        ),
                    ))
                }
            }
        }
        Err(io::Error::other("could not find a free temporary directory name"))
    }
}

pub fn remove(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("vikunja-bootstrap: kept {}", self.path.display());
            return;
        }
        // Removed while holding the registration: a signal arriving meanwhile waits for the
        // removal to finish instead of exiting halfway through it with nothing left to remove.
        let mut registered = REGISTERED.lock().unwrap_or_else(|e| e.into_inner());
        remove(&self.path);
        *registered = None;
    }
}
