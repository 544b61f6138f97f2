//! `migrate --instance NAME --to NODE`: an instance's container moves to another node of the
//! cluster by a restart migration (`pct migrate ID NODE --restart` on the node that holds it: the
//! container is shut down, moved, started there; containers have no live migration). A backup is
//! taken first and copied out, through the instance's own `backup` (routed like `--instance`
//! commands); the instance's health is checked after. Address, domain and data go along unchanged.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use manifests::Exit;

use super::cluster;
use super::fail;
use super::pve::{self, strings, Runner};
use super::registry::Registry;
use crate::report::say;

pub struct Options {
    pub instance: String,
    pub to: String,
    pub dry_run: bool,
    pub root: PathBuf,
}

/// This installer run again with `args` and the same --root: a routed command (backup, health).
fn own(o: &Options, args: &[&str]) -> Result<Vec<String>> {
    let exe = std::env::current_exe().context("find this installer's own binary")?;
    let mut a = vec![exe.display().to_string()];
    a.extend(strings(args));
    a.extend(["--root".to_string(), o.root.display().to_string()]);
    Ok(a)
}

pub fn run(o: &Options) -> Result<ExitCode> {
    let reg = Registry::open(&o.root);
    let mut e = reg.get(&o.instance)?.ok_or_else(|| {
        fail(Exit::Usage, format!("no instance named {}; `vikunja-installer list` shows them", o.instance))
    })?;
    let q = Runner::new(true);
    super::create::check_host(&q)?;
    let (g, remote) = cluster::place(&q, e.ctid).ok_or_else(|| {
        fail(
            Exit::Error,
            format!(
                "CT {} of instance {} is not among the cluster's guests (pvesh get /cluster/resources --type vm): \
                 is it gone? Nothing was changed",
                e.ctid, e.name
            ),
        )
    })?;
    if g.node == o.to {
        return Err(fail(Exit::Usage, format!("instance {} (CT {}) is on node {} already", e.name, e.ctid, o.to)));
    }
    let nodes = cluster::resources(&q, "node").ok().and_then(|out| cluster::parse_nodes(&out)).unwrap_or_default();
    let names = nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ");
    match nodes.iter().find(|n| n.name == o.to) {
        None => {
            return Err(fail(Exit::Usage, format!("--to {}: no such node in this cluster; its nodes: {names}", o.to)))
        }
        Some(n) if !n.online => {
            return Err(fail(Exit::Prerequisite, format!("--to {}: the node is offline; nothing was changed", o.to)))
        }
        Some(_) => {}
    }
    if o.dry_run {
        say!("Dry run: these commands would run, in order:");
    }

    // A backup first, copied out to this node: the way back if the move goes wrong.
    let backup = own(o, &["backup", "--instance", &e.name])?;
    if o.dry_run {
        say!("  {}   (routed into CT {} on node {})", pve::shell_line(&backup), e.ctid, g.node);
    } else {
        say!("==> back up instance {} before moving it", e.name);
        let s = Command::new(&backup[0]).args(&backup[1..]).stdin(Stdio::null()).status()?;
        if !s.success() {
            return Err(fail(
                Exit::Error,
                format!(
                    "the backup before the migration failed (exit {}, see above); nothing was moved. Fix it and run migrate again",
                    s.code().unwrap_or(1)
                ),
            ));
        }
    }

    // The migration runs where the container is; an HA-managed one is handed to HA by pct.
    let mut r = Runner::on(o.dry_run, remote);
    let ids = e.ctid.to_string();
    let t0 = Instant::now();
    if !o.dry_run {
        say!(
            "==> move CT {} from node {} to node {} (restart migration: the instance is down meanwhile)",
            e.ctid,
            g.node,
            o.to
        );
    }
    r.change_streamed(&strings(&["pct", "migrate", &ids, &o.to, "--restart"])).map_err(|x| {
        fail(
            Exit::Error,
            format!(
                "{x}; CT {} stays on node {} (a failed restart migration starts it there again). \
                 Its backup is in {}",
                e.ctid,
                g.node,
                reg.backups_of(&e.name).display()
            ),
        )
    })?;
    let health = own(o, &["health", "--instance", &e.name])?;
    if o.dry_run {
        say!("  {}   (until healthy, at most 180 s)", pve::shell_line(&health));
        say!("Dry run: nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    // An HA migration is asynchronous: the cluster says when the container runs on the target.
    let want_running = g.status == "running";
    let end = Instant::now() + Duration::from_secs(300);
    loop {
        let now = cluster::locate(&q, e.ctid);
        match now {
            Some(now) if now.node == o.to && (!want_running || now.status == "running") => break,
            _ if Instant::now() > end => {
                // `pct migrate` itself succeeded; say where the container is now and what to run.
                let where_now = match &now {
                    Some(n) => {
                        if n.node != e.node {
                            e.node = n.node.clone();
                            let _ = reg.save_entry(&e);
                        }
                        format!("it is {} on node {} now", n.status, n.node)
                    }
                    None => "the cluster does not list it now".to_string(),
                };
                return Err(fail(
                    Exit::Error,
                    format!(
                        "pct migrate finished, but CT {} did not run on node {} within 300 s: {where_now} \
                         (pvesh get /cluster/resources --type vm). If HA still moves it, wait and run \
                         `vikunja-installer health --instance {}`; otherwise start it with `pct start {}` on \
                         that node, or move it again with `vikunja-installer migrate --instance {} --to {}`. \
                         Its backup from before the move is in {}",
                        e.ctid,
                        o.to,
                        e.name,
                        e.ctid,
                        e.name,
                        o.to,
                        reg.backups_of(&e.name).display()
                    ),
                ));
            }
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
    let moved = t0.elapsed();
    e.node = o.to.clone();
    reg.save_entry(&e)?;
    if !want_running {
        say!("Instance {} (CT {}) moved to node {}; it was stopped and stays stopped.", e.name, e.ctid, o.to);
        return Ok(ExitCode::SUCCESS);
    }
    // Services inside start with the container: healthy within a while, or not at all.
    let end = Instant::now() + Duration::from_secs(180);
    let last = loop {
        let out = Command::new(&health[0])
            .args(&health[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|x| anyhow!("run {}: {x}", pve::shell_line(&health)))?;
        if out.status.success() || Instant::now() > end {
            break out;
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    if !last.status.success() {
        crate::report::write(
            crate::report::Stream::Err,
            &format!("{}{}", String::from_utf8_lossy(&last.stdout), String::from_utf8_lossy(&last.stderr)),
        );
        return Err(fail(
            Exit::Unhealthy,
            format!(
                "instance {} runs on node {} now but is not healthy (see above); `vikunja-installer status --instance {}` \
                 shows more, and its backup from before the move is in {}",
                e.name,
                o.to,
                e.name,
                reg.backups_of(&e.name).display()
            ),
        ));
    }
    say!(
        "Instance {} (CT {}) moved from node {} to node {} and is healthy; its URL {} is unchanged. The move took \
         {:.1} s and the instance was healthy again {:.1} s after it began (it is down from the shutdown until its \
         services answer on the new node).",
        e.name,
        e.ctid,
        g.node,
        o.to,
        super::fleet::url(&e),
        moved.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
