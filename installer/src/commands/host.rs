//! The Proxmox host's commands: `create` (also the one-liner with no command on a host), `list`,
//! `destroy`, and `--instance NAME` routed into its container.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli;
use crate::host;

pub fn create(c: cli::Create) -> Result<ExitCode> {
    host::create::run(&host::create::Options { config: c.config, yes: c.yes, dry_run: c.dry_run, root: c.root })
}

/// The one-liner with no command on a Proxmox host: the `create` flow with the wizard.
pub fn create_default() -> Result<ExitCode> {
    host::create::run(&host::create::Options { config: None, yes: false, dry_run: false, root: "/".into() })
}

pub fn list(l: cli::List) -> Result<ExitCode> {
    host::manage::list(&l)
}

pub fn destroy(d: cli::Destroy) -> Result<ExitCode> {
    host::manage::destroy(&d)
}

/// On a Proxmox host, `--instance NAME` of a container made by `create` runs inside it: the
/// command's result, or None when it runs here.
pub fn route(cmd: &cli::Command, args: &[String]) -> Option<Result<ExitCode>> {
    host::manage::route(cmd, args)
}
