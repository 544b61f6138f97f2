//! The exit codes of both binaries, in one table so that scripts can rely on them.
//!
//! | code | meaning |
//! |-----:|---------|
//! | 0  | success |
//! | 1  | any other error |
//! | 2  | usage error (bad flag, bad value) |
//! | 3  | verification failed (signature, key, hash, size, expiry, serial, unsafe archive, plain http) |
//! | 4  | a prerequisite is missing (tool, permission, bootstrap too old) |
//! | 5  | another operation holds the lock (installer) |
//! | 6  | download failed (network, HTTP status, timeout) |
//! | 10 | deployment unhealthy (installer) |
//! | 11 | update failed and was rolled back (installer) |
//! | 12 | rollback failed: manual action needed (installer) |
//! | 13 | ACME: no certificate obtained or renewed; the previous one still serves (installer `cert renew`, `install` with `[ssl] acme`) |
//! | 20 | `upgrade --check`: a newer installer release is available (installer) |
//! | 130 | interrupted by SIGINT/SIGTERM |
//!
//! `update --all` (installer, on the Proxmox host) exits with the code of the instance it stopped
//! at: that instance's `update`, or its `health` afterwards.

/// A documented process exit code; see the module table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    Ok = 0,
    Error = 1,
    Usage = 2,
    Verification = 3,
    Prerequisite = 4,
    Locked = 5,
    Download = 6,
    Unhealthy = 10,
    RolledBack = 11,
    RollbackFailed = 12,
    Certificate = 13,
    UpdateAvailable = 20,
    Interrupted = 130,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}
