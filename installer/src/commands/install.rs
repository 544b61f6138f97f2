//! `install`: argv → `engine::install`'s options; the settings from `--config`, the one installed
//! instance's file, or the questions on the terminal.

use std::process::ExitCode;

use anyhow::Result;

use super::usage;
use crate::cli;
use crate::engine::install;
use crate::instance::{config, layout};
use crate::service::init;

pub fn command(i: cli::Install) -> Result<ExitCode> {
    let init = init::Init::choose(&i.init, &i.root).map_err(|e| usage(e.to_string()))?;
    let d = match &i.config {
        Some(path) => config::Deployment::load(path).map_err(|e| usage(e.to_string()))?,
        None => {
            let existing = layout::installed_instances(&i.root);
            let base = match existing.as_slice() {
                [one] => config::Deployment::load(&layout::Layout::new(&i.root, one).deployment_file())?,
                _ => config::Deployment::default(),
            };
            if !i.yes && crate::ui::interactive() {
                crate::ui::run(base)?
            } else {
                base
            }
        }
    };
    install::run(&install::Options { root: i.root.clone(), init }, &d)?;
    Ok(ExitCode::SUCCESS)
}
