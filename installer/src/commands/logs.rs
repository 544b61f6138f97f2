//! `logs`: what a unit of the instance wrote. Under systemd the journal of the unit (journalctl);
//! under `--init process` the log file the supervisor writes (`logs/<unit>.log`). nginx logs to
//! the instance's own files in both modes (`logs/nginx/{error,access}.log`), since the system nginx
//! under systemd serves other sites too. Both are shown by the standard tools (journalctl, tail),
//! run in place of this process so that `-f` ends with Ctrl-C like theirs.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use manifests::Exit;

use crate::error::fail;
use crate::instance::state::{self, Colour};
use crate::instance::Instance;
use crate::service::init::Init;

pub struct Options {
    pub component: String,
    pub colour: Option<String>,
    pub follow: bool,
    pub lines: u32,
}

/// What to show: a journal unit or files.
#[derive(Debug, PartialEq)]
pub enum Source {
    Journal(String),
    Files(Vec<PathBuf>),
}

pub fn source(inst: &Instance, o: &Options) -> Result<Source> {
    let (l, d) = (&inst.layout, &inst.deployment);
    let colour = match &o.colour {
        Some(c) => Colour::parse(c).ok_or_else(|| {
            fail(Exit::Usage, format!("--colour {c}: expected blue or green (default: the serving one)"))
        })?,
        None => state::active_colour(l).or(state::deployed(l).map(|x| x.colour)).ok_or_else(|| {
            fail(
                Exit::Error,
                format!("instance {} has no deployed version yet; run vikunja-installer install", l.instance),
            )
        })?,
    };
    let unit = match o.component.as_str() {
        "backend" => l.unit_name("backend", colour.name()),
        "mcp" if d.components.mcp => l.unit_name("mcp", colour.name()),
        "mcp" => {
            return Err(fail(
                Exit::Usage,
                format!("instance {} runs no MCP server (components.mcp is off in deployment.toml)", l.instance),
            ))
        }
        "nginx" => {
            let dir = l.logs_dir().join("nginx");
            let files: Vec<PathBuf> =
                ["error.log", "access.log"].iter().map(|f| dir.join(f)).filter(|p| p.is_file()).collect();
            if files.is_empty() {
                return Err(fail(Exit::Error, format!("nginx has written no log yet in {}", dir.display())));
            }
            return Ok(Source::Files(files));
        }
        other => {
            return Err(fail(Exit::Usage, format!("--component {other}: expected backend, nginx or mcp")));
        }
    };
    match inst.init {
        Init::Systemd => Ok(Source::Journal(format!("{unit}.service"))),
        Init::Process => {
            let f = crate::service::init::log_file(l, &unit);
            if !f.is_file() {
                return Err(fail(
                    Exit::Error,
                    format!(
                        "{unit} has no log yet ({} does not exist): it never ran on {}",
                        f.display(),
                        colour.name()
                    ),
                ));
            }
            Ok(Source::Files(vec![f]))
        }
    }
}

/// Replaces this process with journalctl or tail; returns only when that cannot be started.
pub fn run(inst: &Instance, o: &Options) -> Result<std::process::ExitCode> {
    let n = o.lines.to_string();
    let mut cmd = match source(inst, o)? {
        Source::Journal(unit) => {
            let mut c = Command::new("journalctl");
            c.args(["--no-pager", "-u", &unit, "-n", &n]);
            if o.follow {
                c.arg("-f");
            }
            c
        }
        Source::Files(files) => {
            let mut c = Command::new("tail");
            c.args(["-n", &n]);
            if o.follow {
                // -F: keeps following across the supervisor reopening or a logrotate.
                c.arg("-F");
            }
            c.args(files);
            c
        }
    };
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let e = cmd.exec();
    Err(fail(Exit::Prerequisite, format!("run {prog}: {e}; install it (journalctl: systemd, tail: coreutils)")))
}

/// `logs`: argv → `Options`, then runs journalctl or tail in place of this process.
pub fn command(x: crate::cli::Logs) -> Result<std::process::ExitCode> {
    let inst = crate::instance::open(&x.root, x.instance.as_deref())?;
    run(&inst, &Options { component: x.component, colour: x.colour, follow: x.follow, lines: x.lines })
}
