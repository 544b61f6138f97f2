//! The Proxmox host's commands: `create` (also the one-liner with no command on a host), `list`,
//! `destroy`, and `--instance NAME` routed into its container.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli;
use crate::host;
use crate::ui;

pub fn create(c: cli::Create) -> Result<ExitCode> {
    let (node, ha, ha_group) = (c.node, c.ha, c.ha_group);
    run_create(host::create::Options {
        config: c.config,
        yes: c.yes,
        dry_run: c.dry_run,
        root: c.root,
        node,
        ha,
        ha_group,
    })
}

/// The one-liner with no command on a Proxmox host: the `create` flow with the wizard.
pub fn create_default() -> Result<ExitCode> {
    run_create(host::create::Options { root: "/".into(), ..Default::default() })
}

fn run_create(mut o: host::create::Options) -> Result<ExitCode> {
    // VIKUNJA_YES=1 is `--yes` for the one-liner, whose arguments are awkward to pass through `sh -s`.
    o.yes = o.yes || std::env::var("VIKUNJA_YES").ok().and_then(|v| ui::yes_no(&v)).unwrap_or(false);
    let term = if o.yes { None } else { ui::terminal() };
    host::create::run(&o, term)
}

pub fn list(l: cli::List) -> Result<ExitCode> {
    host::manage::list(&l)
}

pub fn destroy(d: cli::Destroy) -> Result<ExitCode> {
    // Nobody to ask: None, and destroy refuses with what to add.
    let ask = |question: &str| -> Result<Option<bool>> {
        if !ui::interactive() {
            return Ok(None);
        }
        Ok(Some(ui::confirm(question)?))
    };
    host::manage::destroy(&d, &ask)
}

/// On a Proxmox host, `--instance NAME` of a container made by `create` runs inside it: the
/// command's result, or None when it runs here.
pub fn route(cmd: &cli::Command, args: &[String]) -> Option<Result<ExitCode>> {
    host::manage::route(cmd, args)
}
