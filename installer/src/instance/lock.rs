//! The operation lock: an advisory `flock` on `state/locks/operation.lock` (the kernel releases it
//! if we die, so a dead holder never blocks anyone) plus the seed's lock contents (PID, operation,
//! start time, user) so a refused second operation can name the holder.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::instance::layout::Layout;
use crate::report::note;

pub struct OperationLock {
    file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another operation is running on instance {instance}: {holder} (lock {path}); wait for it to finish")]
    Held { instance: String, holder: String, path: PathBuf },
    #[error("cannot open the lock file {path}: {source}; check that {dir} exists and is writable (run as root)", dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot write the lock file {path}: {source}; free some space on that file system (df -h {dir}) and try again; nothing was changed", dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default())]
    Write { path: PathBuf, source: std::io::Error },
}

/// Takes the instance's operation lock for `op`; a held lock is exit 5 naming the holder.
pub fn take(l: &Layout, op: &str) -> anyhow::Result<OperationLock> {
    OperationLock::acquire(l, op).map_err(|e| match e {
        LockError::Held { .. } => crate::error::fail(manifests::Exit::Locked, e.to_string()),
        other => crate::error::fail(manifests::Exit::Error, other.to_string()),
    })
}

impl OperationLock {
    pub fn acquire(l: &Layout, operation: &str) -> Result<OperationLock, LockError> {
        let path = l.locks_dir().join("operation.lock");
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "root".into());
        let contents = format!(
            "PID: {}\nOperation: {operation}\nStarted: {}\nUser: {user}\n",
            std::process::id(),
            manifests::time::format_rfc3339(manifests::time::now_unix())
        );
        let (lock, previous) = OperationLock::flock(&path, &contents).map_err(|e| match e {
            FlockError::Busy { holder } => LockError::Held { instance: l.instance.clone(), holder, path: path.clone() },
            FlockError::Open(source) => LockError::Io { path: path.clone(), source },
            FlockError::Write(source) => LockError::Write { path: path.clone(), source },
        })?;
        if !previous.trim().is_empty() {
            note!(
                "note: the previous operation on instance {} ({}) ended without releasing its lock (killed or crashed); \
                 taking the lock over: whatever it left unfinished is finished or undone now",
                l.instance,
                previous.lines().collect::<Vec<_>>().join(", ")
            );
        }
        Ok(lock)
    }

    /// The installer's one advisory lock (the instance's operation lock, the installer's own
    /// upgrade lock): creates the file and its directory, takes the lock without waiting and writes
    /// `contents` (who holds it). Returns the guard, which empties and releases the file when
    /// dropped, and what the previous holder left there (empty unless it died holding the lock).
    pub fn flock(path: &Path, contents: &str) -> Result<(OperationLock, String), FlockError> {
        let io = FlockError::Open;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.lines().collect::<Vec<_>>().join(", ");
                return Err(FlockError::Busy { holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // A clean exit empties the file (Drop); contents here mean the last holder died with it.
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        let write = FlockError::Write;
        file.set_len(0).map_err(write)?;
        file.rewind().map_err(write)?;
        file.write_all(contents.as_bytes()).and_then(|()| file.sync_data()).map_err(write)?;
        Ok((OperationLock { file }, previous))
    }
}

/// What `OperationLock::flock` met instead of the lock.
#[derive(Debug)]
pub enum FlockError {
    /// Another process holds it; `holder` is what it wrote (lines joined by ", ").
    Busy { holder: String },
    /// The directory or the file cannot be created or opened, or flock(2) failed.
    Open(std::io::Error),
    /// The holder's contents cannot be written (a full disk).
    Write(std::io::Error),
}

impl Drop for OperationLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}
