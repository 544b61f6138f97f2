//! The installer's command line (argh). Usage errors exit 2, `--help` exits 0.

use argh::FromArgs;

/// Install and operate Vikunja in LXC containers on Proxmox VE.
#[derive(FromArgs, Debug)]
pub struct Cli {
    /// print version, channel and build facts
    #[argh(switch, short = 'V')]
    pub version: bool,
    #[argh(subcommand)]
    pub cmd: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    About(About),
}

/// Show this installer's version and where it runs from (the bundle the bootstrap unpacked).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "about")]
pub struct About {
    /// machine-readable output
    #[argh(switch)]
    pub json: bool,
}

pub enum Parsed {
    Run(Cli),
    /// Help text to print on stdout, exit 0.
    Help(String),
    /// A usage error to print on stderr, exit 2.
    Usage(String),
}

pub fn parse(args: &[String]) -> Parsed {
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    match Cli::from_args(&["vikunja-installer"], &argv) {
        Ok(cli) => Parsed::Run(cli),
        Err(e) if e.status.is_ok() => Parsed::Help(e.output),
        Err(e) => Parsed::Usage(e.output),
    }
}
