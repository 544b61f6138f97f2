//! `about`: the hand-off contract, as text or JSON.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli;

pub fn command(a: cli::About) -> Result<ExitCode> {
    let info = crate::about::gather();
    if a.json {
        println!("{}", info.to_json());
    } else {
        print!("{}", info.to_text());
    }
    Ok(ExitCode::SUCCESS)
}
