//! `migrate --instance NAME --to NODE`: the adapter for host::migrate.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli;

pub fn run(m: &cli::Migrate) -> Result<ExitCode> {
    crate::host::migrate::run(&crate::host::migrate::Options {
        instance: m.instance.clone(),
        to: m.to.clone(),
        dry_run: m.dry_run,
        root: m.root.clone(),
    })
}
