//! `supervise` (internal, `--init process`): runs one unit file with systemd's semantics.

use std::process::ExitCode;

use crate::cli;

pub fn command(s: cli::Supervise) -> ExitCode {
    crate::service::supervisor::run(&s.unit_file, &s.pid_file, &s.root)
}
