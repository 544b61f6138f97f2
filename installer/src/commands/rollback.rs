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
    rollback::rollback(&inst, &confirm)?;
    Ok(ExitCode::SUCCESS)
}
