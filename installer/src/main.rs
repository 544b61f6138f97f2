//! vikunja-installer: installs and operates Vikunja on Proxmox VE. Started by vikunja-bootstrap
//! from a verified bundle (see `about` for the hand-off contract), or directly once installed.

mod about;
mod cli;
mod commands;
mod data;
mod engine;
mod error;
mod fault;
mod host;
mod instance;
mod render;
mod report;
mod selfinstall;
mod service;
mod ui;

use std::process::ExitCode;

use manifests::Exit;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so a closed stdout (`… | head`) would make println! panic (exit 134 with
    // a backtrace). The default action ends the process quietly, as for any Unix tool.
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a valid disposition and no
    // Rust code relies on SIGPIPE being ignored (children get SIG_DFL from std anyway).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Everything below commands/ tells the user things through `report`: here, the terminal.
    report::set(std::sync::Arc::new(ui::Console));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cli = match cli::parse(&args) {
        cli::Parsed::Run(c) => c,
        cli::Parsed::Help(h) => {
            println!("{h}");
            return ExitCode::SUCCESS;
        }
        cli::Parsed::Usage(u) => {
            eprintln!("{u}\nRun `vikunja-installer --help` for usage.");
            return Exit::Usage.into();
        }
    };
    if cli.version {
        return commands::upgrade::version();
    }
    let result = commands::run(cli.cmd, &args);
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<error::Failed>().map(|f| f.code).unwrap_or(Exit::Error);
            eprintln!("vikunja-installer: error: {e:#}");
            code.into()
        }
    }
}
