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
mod service;
mod ui;

use commands::{backup, logs, restore, uninstall};
use engine::{bluegreen, install, recovery, stopstart, upgrade};
use instance::{config, layout, state};
use service::{health, init, status, supervisor};

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Result};
use manifests::{build_info, Exit};

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so a closed stdout (`… | head`) would make println! panic (exit 134 with
    // a backtrace). The default action ends the process quietly, as for any Unix tool.
    // SAFETY: called first thing, before any thread exists; SIG_DFL is a valid disposition and no
    // Rust code relies on SIGPIPE being ignored (children get SIG_DFL from std anyway).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
        match upgrade::signing_key() {
            Some(k) => {
                println!("vikunja-installer {} ({}, signed by key {k})", build_info::version(), build_info::channel())
            }
            None => println!("vikunja-installer {} ({})", build_info::version(), build_info::channel()),
        }
        return ExitCode::SUCCESS;
    }
    // On a Proxmox host, `--instance NAME` of a container made by `create` runs inside it.
    let routed = cli.cmd.as_ref().and_then(|c| host::manage::route(c, &args));
    let result = match cli.cmd {
        _ if routed.is_some() => routed.unwrap_or_else(|| Ok(ExitCode::SUCCESS)),
        Some(cli::Command::Update(u)) if u.auto || u.clear_skip || u.schedule.is_some() => {
            commands::autoupdate::update(&u)
        }
        Some(cli::Command::Upgrade(u)) if u.auto || u.within.is_some() || u.schedule.is_some() => {
            commands::autoupdate::upgrade(&u)
        }
        Some(cli::Command::Update(u)) if u.all => host::fleet::update_all(&u, &args),
        Some(cli::Command::Update(u)) if u.dry_run => {
            Err(usage("--dry-run applies on the Proxmox host, to an instance made by `create` (--instance NAME)"))
        }
        Some(cli::Command::Restart(r)) if r.dry_run => {
            Err(usage("--dry-run applies on the Proxmox host, to an instance made by `create` (--instance NAME)"))
        }
        Some(cli::Command::Rollback(r)) if r.dry_run => {
            Err(usage("--dry-run applies on the Proxmox host, to an instance made by `create` (--instance NAME)"))
        }
        Some(cli::Command::Create(c)) => {
            host::create::run(&host::create::Options { config: c.config, yes: c.yes, dry_run: c.dry_run, root: c.root })
        }
        Some(cli::Command::List(l)) => host::manage::list(&l),
        Some(cli::Command::Destroy(d)) => host::manage::destroy(&d),
        Some(cli::Command::About(a)) => {
            let info = about::gather();
            if a.json {
                println!("{}", info.to_json());
            } else {
                print!("{}", info.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(cli::Command::Install(i)) => cmd_install(i),
        Some(cli::Command::Health(h)) => cmd_health(h),
        Some(cli::Command::Status(s)) => cmd_status(s),
        Some(cli::Command::Update(u)) => instance::open(&u.root, u.instance.as_deref())
            .and_then(|inst| {
                bluegreen::update(&inst, u.version.as_deref(), u.artifact.as_deref(), u.sha256.as_deref())?;
                commands::autoupdate::manual_update_done(&inst)
            })
            .map(|()| ExitCode::SUCCESS),
        Some(cli::Command::Upgrade(u)) => upgrade::run(&upgrade::Options {
            root: u.root,
            check: u.check,
            version: u.version,
            bundle: u.bundle,
            rollback: u.rollback,
            allow_downgrade: u.allow_downgrade,
            allow_expired: u.allow_expired,
            channel: u.channel,
            base_url: u.base_url,
        })
        .map(ExitCode::from),
        Some(cli::Command::Restart(r)) => instance::open(&r.root, r.instance.as_deref())
            .and_then(|inst| bluegreen::restart(&inst))
            .map(|()| ExitCode::SUCCESS),
        Some(cli::Command::Logs(x)) => instance::open(&x.root, x.instance.as_deref()).and_then(|inst| {
            logs::run(
                &inst,
                &logs::Options { component: x.component, colour: x.colour, follow: x.follow, lines: x.lines },
            )
        }),
        Some(cli::Command::Stop(x)) => instance::open(&x.root, x.instance.as_deref())
            .and_then(|inst| stopstart::stop(&inst))
            .map(|()| ExitCode::SUCCESS),
        Some(cli::Command::Start(x)) => instance::open(&x.root, x.instance.as_deref())
            .and_then(|inst| stopstart::start(&inst))
            .map(|()| ExitCode::SUCCESS),
        Some(cli::Command::Uninstall(u)) => uninstall::instance(&u).map(|()| ExitCode::SUCCESS),
        Some(cli::Command::SelfCmd(cli::SelfCmd { cmd: cli::SelfCommand::Uninstall(u) })) => {
            uninstall::itself(&u).map(|()| ExitCode::SUCCESS)
        }
        Some(cli::Command::Rollback(r)) => instance::open(&r.root, r.instance.as_deref())
            .and_then(|inst| {
                let confirm = commands::confirm(
                    r.yes,
                    "rollback needs to restore the database: confirm with --yes (no terminal to ask on); nothing was changed",
                );
                bluegreen::rollback(&inst, &confirm)
            })
            .map(|()| ExitCode::SUCCESS),
        Some(cli::Command::Backup(b)) => backup::command(*b),
        Some(cli::Command::Restore(r)) => restore::command(*r),
        Some(cli::Command::Supervise(s)) => Ok(supervisor::run(&s.unit_file, &s.pid_file, &s.root)),
        // The one-liner with no command: on a Proxmox host the `create` flow (wizard on the
        // terminal); elsewhere what this is and the two ways in, exit 0 (asking is no error).
        None if host::is_proxmox_host() => {
            host::create::run(&host::create::Options { config: None, yes: false, dry_run: false, root: "/".into() })
        }
        None => {
            print!("{}", cli::WELCOME);
            return ExitCode::SUCCESS;
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<error::Failed>().map(|f| f.code).unwrap_or(Exit::Error);
            eprintln!("vikunja-installer: error: {e:#}");
            code.into()
        }
    }
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    error::Failed { code: Exit::Usage, message: msg.into() }.into()
}

fn cmd_install(i: cli::Install) -> Result<ExitCode> {
    let init = init::Init::choose(&i.init, &i.root).map_err(|e| usage(e.to_string()))?;
    let d = match &i.config {
        Some(path) => config::Deployment::load(path).map_err(|e| usage(e.to_string()))?,
        None => {
            let existing = layout::installed_instances(&i.root);
            let base = match existing.as_slice() {
                [one] => config::Deployment::load(&layout::Layout::new(&i.root, one).deployment_file())?,
                _ => config::Deployment::default(),
            };
            if !i.yes && ui::interactive() {
                ui::run(base)?
            } else {
                base
            }
        }
    };
    install::run(&install::Options { root: i.root.clone(), init }, &d)?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_health(h: cli::Health) -> Result<ExitCode> {
    let inst = instance::open(&h.root, h.instance.as_deref())?;
    recovery::recover_if_interrupted(&inst)?;
    recovery::revive(&inst)?;
    let (l, d) = (&inst.layout, &inst.deployment);
    let deployed =
        state::deployed(l).ok_or_else(|| anyhow!("instance {} has no deployed version yet", d.instance.name))?;
    let colour = state::active_colour(l).unwrap_or(deployed.colour);
    let t = health::Target { l, d, init: inst.init, colour, version: &deployed.version };
    let deadline = std::time::Instant::now() + Duration::from_secs(d.health.timeout_s);
    let report = loop {
        let r = health::check_all(&t);
        if !h.wait || r.iter().all(|c| c.healthy) || std::time::Instant::now() >= deadline {
            break r;
        }
        std::thread::sleep(Duration::from_secs(d.health.interval_s));
    };
    let healthy = report.iter().all(|c| c.healthy);
    if h.json {
        let v = serde_json::json!({"schema": status::JSON_SCHEMA, "instance": d.instance.name, "version": deployed.version, "colour": colour.name(), "healthy": healthy, "url": d.public_url(), "components": report});
        println!("{v}");
    } else {
        health::print_report(&report);
    }
    Ok(if healthy { ExitCode::SUCCESS } else { Exit::Unhealthy.into() })
}

fn cmd_status(s: cli::Status) -> Result<ExitCode> {
    let inst = instance::open(&s.root, s.instance.as_deref())?;
    recovery::recover_if_interrupted(&inst)?;
    recovery::revive(&inst)?;
    let fancy = std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let st = status::gather(&inst.layout, &inst.deployment, inst.init);
        if s.json {
            println!("{}", serde_json::to_string(&st)?);
        } else {
            if s.watch && fancy {
                print!("\x1b[2J\x1b[H");
            }
            print!("{}", status::render(&st, fancy));
        }
        if !s.watch {
            return Ok(if st.healthy { ExitCode::SUCCESS } else { Exit::Unhealthy.into() });
        }
        std::thread::sleep(Duration::from_secs(10));
    }
}
