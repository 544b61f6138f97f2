//! `update`: argv → `engine::update`; `--all` walks the host's instances
//! (`host::fleet`); `--dry-run` belongs to the host's routing.

use std::process::ExitCode;

use anyhow::Result;

use super::{usage, DRY_RUN_ON_HOST};
use crate::cli;
use crate::engine::update;

pub fn command(u: cli::Update, args: &[String]) -> Result<ExitCode> {
    if u.auto || u.clear_skip || u.schedule.is_some() {
        return super::autoupdate::update(&u);
    }
    if u.all {
        return crate::host::fleet::update_all(&u, args);
    }
    if u.dry_run {
        return Err(usage(DRY_RUN_ON_HOST));
    }
    let inst = crate::instance::open(&u.root, u.instance.as_deref())?;
    update::update(&inst, u.version.as_deref(), u.artifact.as_deref(), u.sha256.as_deref())?;
    // A person updated by hand: the versions an automatic update skipped may be tried again.
    super::autoupdate::manual_update_done(&inst)?;
    Ok(ExitCode::SUCCESS)
}
