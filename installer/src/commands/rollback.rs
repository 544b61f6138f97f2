//! `rollback`: back to the rollback point; the question before the database is restored is asked
//! here (`super::confirm`), not by the engine.

use std::process::ExitCode;

use anyhow::Result;

use super::{usage, DRY_RUN_ON_HOST};
use crate::cli;
use crate::engine::rollback;

const NO_TERMINAL: &str =
    "rollback needs to restore the database: confirm with --yes (no terminal to ask on); nothing was changed";

pub fn command(r: cli::Rollback) -> Result<ExitCode> {
    if r.dry_run {
        return Err(usage(DRY_RUN_ON_HOST));
    }
    let inst = crate::instance::open(&r.root, r.instance.as_deref())?;
    let confirm = super::confirm(r.yes, NO_TERMINAL);
    let from = crate::instance::state::deployed(&inst.layout).map(|d| d.version);
    rollback::rollback(&inst, &confirm)?;
    // A person rolled this release back: an automatic update must not install it again in the
    // next window. `update --auto --clear-skip` or a manual update allows it again.
    let to = crate::instance::state::deployed(&inst.layout).map(|d| d.version);
    if let Some(from) = from.filter(|f| Some(f) != to.as_ref()) {
        let l = &inst.layout;
        let now = manifests::time::format_rfc3339(manifests::time::now_unix());
        crate::instance::update_state::add_skip(l, &from, &now, "rolled back by hand")?;
        if crate::instance::update_state::timer_path(l).exists()
            || crate::instance::update_state::state_file(l).exists()
        {
            println!(
                "Automatic updates will not install {from} again until `vikunja-installer update --auto --clear-skip` \
                 or a manual update."
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
