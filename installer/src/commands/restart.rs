//! `restart`: a blue-green restart of the serving version.

use std::process::ExitCode;

use anyhow::Result;

use super::{usage, DRY_RUN_ON_HOST};
use crate::cli;
use crate::engine::restart;

pub fn command(r: cli::Restart) -> Result<ExitCode> {
    if r.dry_run {
        return Err(usage(DRY_RUN_ON_HOST));
    }
    let inst = crate::instance::open(&r.root, r.instance.as_deref())?;
    restart::restart(&inst)?;
    Ok(ExitCode::SUCCESS)
}
