//! Command adapters: parsed argv in, output and prompts out. They may use every layer; nothing
//! below them uses them (issue 14). The engine never prompts: a question it asks mid-way reaches it
//! as a callback (`confirm`). `main` only parses and hands the command to `run`.

pub mod about;
pub mod autoupdate;
pub mod backup;
pub mod cert;
pub mod health;
pub mod host;
pub mod install;
pub mod logs;
pub mod metrics;
pub mod migrate;
pub mod observe;
pub mod restart;
pub mod restore;
pub mod rollback;
pub mod schedule;
pub mod status;
pub mod stopstart;
pub mod supervise;
pub mod uninstall;
pub mod update;
pub mod upgrade;

use std::process::ExitCode;

use anyhow::Result;
use manifests::Exit;

use crate::cli::{self, Command};

const DRY_RUN_ON_HOST: &str =
    "--dry-run applies on the Proxmox host, to an instance made by `create` (--instance NAME)";

fn usage(msg: impl Into<String>) -> anyhow::Error {
    crate::error::fail(Exit::Usage, msg)
}

/// Runs one parsed command (`args`: the raw argv, which the host's routing passes on into the
/// container). With no command: on a Proxmox host the `create` flow, elsewhere the welcome text.
pub fn run(cmd: Option<Command>, args: &[String]) -> Result<ExitCode> {
    // On a Proxmox host, `--instance NAME` of a container made by `create` runs inside it.
    if let Some(routed) = cmd.as_ref().and_then(|c| host::route(c, args)) {
        return routed;
    }
    // Counted, announced and written to the metrics after it ran (issue 17); not when it ran elsewhere.
    let watched = cmd.as_ref().and_then(observe::watched);
    let result = match cmd {
        Some(Command::Create(c)) => host::create(c),
        Some(Command::List(l)) => host::list(l),
        Some(Command::Destroy(d)) => host::destroy(d),
        Some(Command::About(a)) => about::command(a),
        Some(Command::Install(i)) => install::command(i),
        Some(Command::Health(h)) => health::command(h),
        Some(Command::Status(s)) => status::command(s),
        Some(Command::Update(u)) => update::command(u, args),
        Some(Command::Upgrade(u)) => upgrade::command(u),
        Some(Command::Restart(r)) => restart::command(r),
        Some(Command::Rollback(r)) => rollback::command(r),
        Some(Command::Logs(x)) => logs::command(x),
        Some(Command::Stop(x)) => stopstart::stop(x),
        Some(Command::Start(x)) => stopstart::start(x),
        Some(Command::Uninstall(u)) => uninstall::instance(&u).map(|()| ExitCode::SUCCESS),
        Some(Command::SelfCmd(cli::SelfCmd { cmd: cli::SelfCommand::Uninstall(u) })) => {
            uninstall::itself(&u).map(|()| ExitCode::SUCCESS)
        }
        Some(Command::Backup(b)) => backup::command(*b),
        Some(Command::Restore(r)) => restore::command(*r),
        Some(Command::Supervise(s)) => Ok(supervise::command(s)),
        Some(Command::Metrics(m)) => metrics::command(m),
        Some(Command::Cert(c)) => cert::command(c),
        Some(Command::Migrate(m)) => migrate::run(&m),
        // The one-liner with no command: on a Proxmox host the `create` flow (wizard on the
        // terminal); elsewhere what this is and the two ways in, exit 0 (asking is no error).
        None if crate::host::is_proxmox_host() => host::create_default(),
        None => {
            print!("{}", cli::WELCOME);
            Ok(ExitCode::SUCCESS)
        }
    };
    observe::after(watched, &result);
    result
}

/// The answer to an operation's mid-way question (the `confirm` of `restore::Options` and `rollback`): yes with `--yes`, else asked
/// on the terminal; with no terminal to ask on, a usage error `no_terminal` (which names `--yes`).
pub fn confirm(yes: bool, no_terminal: &'static str) -> impl Fn(&str) -> Result<bool> {
    move |question| {
        if yes {
            return Ok(true);
        }
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(crate::error::fail(manifests::Exit::Usage, no_terminal));
        }
        Ok(crate::ui::confirm(question)?)
    }
}
