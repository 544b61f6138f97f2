//! What `status` reads of `backup schedule` (the command itself is `crate::commands::schedule`):
//! scheduled backups as a systemd timer and a oneshot service that runs this installer's `backup` (so retention, encryption and the operation lock are those of a manual
//! backup). The units are rendered like the instance's other units, kept in `config/units/` and
//! installed into /etc/systemd/system. Under `--init process` nothing would run a timer, so the
//! command refuses (exit 4) rather than leave a schedule that never fires.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{anyhow, Result};
use serde::Serialize;

use crate::instance::layout::Layout;
use crate::service::init::Init;

/// Base name of the service and timer of instance `l`.
pub fn unit(l: &Layout) -> String {
    format!("vikunja-{}-backup", l.instance)
}

/// The two unit files of the schedule: (name with suffix, where it is installed).
pub fn files(l: &Layout) -> [(String, PathBuf); 2] {
    timer_files(l, &unit(l))
}

/// The service and timer named `u` (this schedule's, or the ACME renewal's).
pub fn timer_files(l: &Layout, u: &str) -> [(String, PathBuf); 2] {
    ["service", "timer"].map(|s| {
        let name = format!("{u}.{s}");
        let path = l.system(&format!("/etc/systemd/system/{name}"));
        (name, path)
    })
}

/// What `status` shows about the schedule.
#[derive(Debug, Serialize, Default)]
pub struct Shown {
    /// "on", "off" or "needs systemd".
    pub state: &'static str,
    /// The timer's `OnCalendar=`.
    pub schedule: Option<String>,
    pub last_run: Option<String>,
    pub last_result: Option<String>,
    pub next_run: Option<String>,
}

pub fn shown(l: &Layout, init: Init) -> Shown {
    if init == Init::Process {
        return Shown { state: "needs systemd", ..Shown::default() };
    }
    let [(service, _), (timer, timer_path)] = files(l);
    if !timer_path.is_file() {
        return Shown { state: "off", ..Shown::default() };
    }
    let show = |unit: &str, props: &str| -> Vec<(String, String)> {
        Command::new("systemctl")
            .args(["show", unit, "-p", props])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|x| x.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let t = show(&timer, "NextElapseUSecRealtime");
    // The service's last start, not the timer's last trigger: a backup started by hand with
    // `systemctl start` counts as the last run too.
    let s = show(&service, "Result,ExecMainStartTimestamp");
    let get = |v: &[(String, String)], k: &str| {
        v.iter().find(|(key, _)| key == k).map(|(_, x)| x.clone()).filter(|x| !x.is_empty() && x != "n/a")
    };
    let calendar = std::fs::read_to_string(&timer_path)
        .ok()
        .and_then(|text| text.lines().find_map(|x| x.strip_prefix("OnCalendar=").map(str::to_string)));
    let last_run = get(&s, "ExecMainStartTimestamp");
    Shown {
        state: "on",
        schedule: calendar,
        last_result: last_run.as_ref().and(get(&s, "Result")),
        last_run,
        next_run: get(&t, "NextElapseUSecRealtime"),
    }
}

/// The status screen's lines about the schedule.
pub fn lines(s: &Shown) -> Vec<String> {
    match s.state {
        "on" => vec![
            format!("Backups:        scheduled ({})", s.schedule.as_deref().unwrap_or("?")),
            format!(
                "Last backup:    {}{}",
                s.last_run.as_deref().unwrap_or("not yet"),
                s.last_result.as_ref().map(|r| format!(" ({r})")).unwrap_or_default()
            ),
            format!("Next backup:    {}", s.next_run.as_deref().unwrap_or("-")),
        ],
        "needs systemd" => vec!["Backups:        not scheduled (timers need systemd)".into()],
        _ => vec!["Backups:        not scheduled (`backup schedule --daily`)".into()],
    }
}

pub fn systemctl(args: &[&str]) -> Result<()> {
    let out = Command::new("systemctl").args(args).output().map_err(|e| anyhow!("run systemctl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(anyhow!("systemctl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Removes the timer and its service (stopped, disabled, files deleted). Returns whether any existed.
pub fn remove(l: &Layout, init: Init) -> Result<bool> {
    remove_timer(l, init, &unit(l))
}

/// Removes the timer and service named `u` (stopped, disabled, files deleted).
pub fn remove_timer(l: &Layout, init: Init, u: &str) -> Result<bool> {
    let f = timer_files(l, u);
    let existed = f.iter().any(|(_, p)| p.exists());
    if existed && init == Init::Systemd {
        let _ = systemctl(&["disable", "--now", &f[1].0]);
        let _ = systemctl(&["stop", &f[0].0]);
    }
    for (name, path) in &f {
        for p in [path.clone(), l.units_dir().join(name)] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(anyhow!("remove {}: {e}", p.display()))
                }
                _ => {}
            }
        }
    }
    if existed && init == Init::Systemd {
        systemctl(&["daemon-reload"])?;
    }
    Ok(existed)
}

/// The installer's path as the timer should run it: the installed command, not the temporary
/// bundle the bootstrap unpacked (gone after this run).
pub fn installer_path(l: &Layout) -> Result<PathBuf> {
    for p in ["/usr/local/bin/vikunja-installer", "/opt/vikunja-pve/current/bin/vikunja-installer"] {
        if l.system(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    let exe = std::env::current_exe().map_err(|e| anyhow!("find own executable: {e}"))?;
    if std::env::var_os("VIKUNJA_BUNDLE_DIR").is_some_and(|b| exe.starts_with(b)) {
        return Err(crate::error::fail(
            manifests::Exit::Prerequisite,
            "this installer runs from the bootstrap's temporary bundle, which the timer could not run later; \
             nothing was changed. Install it first (`vikunja-installer upgrade`, or run it from the host with \
             `--instance`), then schedule again",
        ));
    }
    Ok(exe)
}
