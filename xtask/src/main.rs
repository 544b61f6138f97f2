//! `cargo xtask`: the project's own tasks. dist builds and signs a release, ci runs every check
//! the README promises, demo shows the one-liner end to end, bench writes BENCHMARKS.md.

mod bench;
mod ci;
mod demo;
mod dist;
mod prereq;
mod serve;
mod soak;
mod standin;

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;

/// vikunja-pve project tasks.
#[derive(FromArgs)]
struct Xtask {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Dist(Box<dist::Dist>),
    Ci(CiCmd),
    Demo(DemoCmd),
    StandinZip(standin::StandinZip),
    Bench(bench::Bench),
    Soak(soak::Soak),
}

/// Run every check: formatting, clippy, all tests (installs missing test tools when root).
#[derive(FromArgs)]
#[argh(subcommand, name = "ci")]
struct CiCmd {}

/// Build a release, serve it over local HTTPS and run the curl | sh one-liner against it.
#[derive(FromArgs)]
#[argh(subcommand, name = "demo")]
struct DemoCmd {
    /// the Proxmox host story in LXC containers behind the pct/pveam test doubles (needs root and LXC)
    #[argh(switch)]
    containers: bool,
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let x = match Xtask::from_args(&["cargo xtask"], &argv) {
        Ok(x) => x,
        Err(e) if e.status.is_ok() => {
            println!("{}", e.output);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", e.output);
            return ExitCode::from(2);
        }
    };
    let root = workspace_root();
    let result = match x.cmd {
        Cmd::Dist(d) => dist::run(&root, &d).map(|_| ()),
        Cmd::Ci(_) => ci::run(&root),
        Cmd::Demo(d) => {
            if d.containers {
                demo::run_containers(&root)
            } else {
                demo::run(&root)
            }
        }
        Cmd::StandinZip(z) => standin::package(&root, &z.version, &z.out).map(|p| println!("{}", p.display())),
        Cmd::Bench(b) => bench::run(&root, &b),
        Cmd::Soak(s) => soak::run(&root, &s),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
