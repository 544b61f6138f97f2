//! `upgrade` (the installer itself) and `--version`: argv → `engine::upgrade`.

use std::process::ExitCode;

use anyhow::Result;
use manifests::build_info;

use crate::cli;
use crate::engine::upgrade;
use crate::selfinstall;

pub fn command(u: cli::Upgrade) -> Result<ExitCode> {
    if u.auto || u.within.is_some() || u.schedule.is_some() {
        return super::autoupdate::upgrade(&u);
    }
    let code = upgrade::run(&upgrade::Options {
        root: u.root,
        check: u.check,
        version: u.version,
        bundle: u.bundle,
        rollback: u.rollback,
        allow_downgrade: u.allow_downgrade,
        allow_expired: u.allow_expired,
        channel: u.channel,
        base_url: u.base_url,
    })?;
    Ok(ExitCode::from(code))
}

/// `--version`: version, channel and the key that signed the running installer, when known.
pub fn version() -> ExitCode {
    match selfinstall::signing_key() {
        Some(k) => {
            println!("vikunja-installer {} ({}, signed by key {k})", build_info::version(), build_info::channel())
        }
        None => println!("vikunja-installer {} ({})", build_info::version(), build_info::channel()),
    }
    ExitCode::SUCCESS
}
