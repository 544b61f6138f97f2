//! `stop` and `start`: argv → `engine::stopstart`.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli;
use crate::engine::stopstart;

pub fn stop(x: cli::Stop) -> Result<ExitCode> {
    let inst = crate::instance::open(&x.root, x.instance.as_deref())?;
    stopstart::stop(&inst)?;
    Ok(ExitCode::SUCCESS)
}

pub fn start(x: cli::Start) -> Result<ExitCode> {
    let inst = crate::instance::open(&x.root, x.instance.as_deref())?;
    stopstart::start(&inst)?;
    Ok(ExitCode::SUCCESS)
}
