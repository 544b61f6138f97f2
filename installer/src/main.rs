//! vikunja-installer: installs and operates Vikunja on Proxmox VE. Started by vikunja-bootstrap
//! from a verified bundle (see `about` for the hand-off contract), or directly once installed.

mod about;
mod cli;

use std::process::ExitCode;

use manifests::{build_info, Exit};

fn main() -> ExitCode {
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
        println!("vikunja-installer {} ({})", build_info::version(), build_info::channel());
        return ExitCode::SUCCESS;
    }
    match cli.cmd {
        Some(cli::Command::About(a)) => {
            let info = about::gather();
            if a.json {
                println!("{}", info.to_json());
            } else {
                print!("{}", info.to_text());
            }
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("vikunja-installer: no command given. Run `vikunja-installer --help` for the commands.");
            Exit::Usage.into()
        }
    }
}
