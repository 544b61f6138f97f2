//! The `backup schedule` command (what `crate::service::schedule` reads back for `status`): scheduled backups as a systemd timer and a oneshot service that runs this
//! installer's `backup` (so retention, encryption and the operation lock are those of a manual
//! backup). The units are rendered like the instance's other units, kept in `config/units/` and
//! installed into /etc/systemd/system. Under `--init process` nothing would run a timer, so the
//! command refuses (exit 4) rather than leave a schedule that never fires.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, Result};
use manifests::Exit;

use crate::cli::BackupSchedule;
use crate::error::fail;
use crate::instance::layout::Layout;
use crate::render::{render_backup_timer, BackupTimerSpec};
use crate::service::init::Init;
use crate::service::schedule::{files, remove, shown, systemctl, unit};

/// A cron expression of five fields as a systemd calendar expression. Numbers, `*`, lists,
/// ranges and steps; day-of-month and day-of-week together are refused, since cron runs when
/// either matches and systemd only when both do.
pub fn cron_to_calendar(expr: &str) -> Result<String, String> {
    let f: Vec<&str> = expr.split_whitespace().collect();
    let [min, hour, dom, mon, dow] = f.as_slice() else {
        return Err(format!(
            "--cron {expr:?}: expected five fields (minute hour day-of-month month day-of-week), like \"30 2 * * *\""
        ));
    };
    if *dom != "*" && *dow != "*" {
        return Err(format!(
            "--cron {expr:?}: restricts both day of month and day of week; cron runs when either matches, systemd \
             timers only when both do. Use one of them (the other `*`)"
        ));
    }
    let field = |name: &str, v: &str, lo: u32, hi: u32| -> Result<Vec<u32>, String> {
        let mut out = Vec::new();
        for part in v.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)),
                None => (part, Some(1)),
            };
            let step =
                step.ok_or_else(|| format!("--cron {expr:?}: the {name} step in {part:?} is not a positive number"))?;
            let num = |x: &str| {
                x.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n)).ok_or_else(|| {
                    format!(
                        "--cron {expr:?}: the {name} {x:?} is not a number from {lo} to {hi} (names are not supported)"
                    )
                })
            };
            let (a, b) = match range {
                "*" => (lo, hi),
                r => match r.split_once('-') {
                    Some((a, b)) => (num(a)?, num(b)?),
                    None if part.contains('/') => (num(r)?, hi),
                    None => (num(r)?, num(r)?),
                },
            };
            if a > b {
                return Err(format!("--cron {expr:?}: the {name} range {range:?} runs backwards"));
            }
            out.extend((a..=b).step_by(step as usize));
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    };
    let list = |v: &[u32], all: usize, width: usize| -> String {
        if v.len() == all {
            "*".into()
        } else {
            v.iter().map(|n| format!("{n:0width$}")).collect::<Vec<_>>().join(",")
        }
    };
    let minutes = field("minute", min, 0, 59)?;
    let hours = field("hour", hour, 0, 23)?;
    let days = field("day of month", dom, 1, 31)?;
    let months = field("month", mon, 1, 12)?;
    // 0 and 7 are both Sunday in cron.
    let mut weekdays: Vec<u32> = field("day of week", dow, 0, 7)?.into_iter().map(|d| d % 7).collect();
    weekdays.sort_unstable();
    weekdays.dedup();
    const NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    let dow_part = if weekdays.len() == 7 {
        String::new()
    } else {
        format!("{} ", weekdays.iter().map(|d| NAMES[*d as usize]).collect::<Vec<_>>().join(","))
    };
    Ok(format!(
        "{dow_part}*-{}-{} {}:{}:00",
        list(&months, 12, 2),
        list(&days, 31, 2),
        list(&hours, 24, 2),
        list(&minutes, 60, 2)
    ))
}

/// The calendar expression and random delay chosen on the command line.
fn calendar(s: &BackupSchedule) -> Result<(String, u32)> {
    let usage = |m: String| fail(Exit::Usage, m);
    match (s.daily, s.weekly, &s.cron) {
        (true, false, None) => Ok(("*-*-* 03:00:00".into(), 1800)),
        (false, true, None) => Ok(("Sun *-*-* 03:00:00".into(), 1800)),
        (false, false, Some(c)) => Ok((cron_to_calendar(c).map_err(usage)?, 0)),
        (false, false, None) => {
            Err(usage("backup schedule: choose --daily, --weekly or --cron EXPR (or --off)".into()))
        }
        _ => Err(usage("backup schedule: --daily, --weekly and --cron exclude each other; choose one".into())),
    }
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
        return Err(fail(
            Exit::Prerequisite,
            "this installer runs from the bootstrap's temporary bundle, which the timer could not run later; \
             nothing was changed. Install it first (`vikunja-installer upgrade`, or run it from the host with \
             `--instance`), then schedule again",
        ));
    }
    Ok(exe)
}

/// The backup command the timer runs.
fn exec(l: &Layout, s: &BackupSchedule) -> Result<Vec<String>> {
    let mut v = vec![installer_path(l)?.to_string_lossy().into_owned(), "backup".into()];
    v.extend(["--instance".into(), l.instance.clone()]);
    if l.root != Path::new("/") {
        v.extend(["--root".into(), l.root.to_string_lossy().into_owned()]);
    }
    if s.encrypt && !s.recipient.is_empty() {
        return Err(fail(Exit::Usage, "--encrypt (a passphrase) and --recipient (keys) exclude each other"));
    }
    if s.encrypt {
        let f = s.passphrase_file.as_ref().ok_or_else(|| {
            fail(
                Exit::Usage,
                "a scheduled --encrypt needs --passphrase-file FILE: nobody is at a terminal when the timer runs",
            )
        })?;
        let f = std::fs::canonicalize(f)
            .map_err(|e| fail(Exit::Usage, format!("--passphrase-file {}: {e}", f.display())))?;
        v.extend(["--encrypt".into(), "--passphrase-file".into(), f.to_string_lossy().into_owned()]);
    } else if s.passphrase_file.is_some() {
        return Err(fail(Exit::Usage, "--passphrase-file is for --encrypt; add --encrypt (or leave the file out)"));
    }
    crate::data::crypt::recipients(&s.recipient).map_err(|e| fail(Exit::Usage, e.to_string()))?;
    for r in &s.recipient {
        v.extend(["--recipient".into(), r.clone()]);
    }
    Ok(v)
}

/// Renders the schedule's two unit files.
pub fn render(l: &Layout, s: &BackupSchedule) -> Result<[(String, String); 2]> {
    let (on_calendar, delay) = calendar(s)?;
    let spec = BackupTimerSpec {
        unit: unit(l),
        description: format!("Scheduled backup of Vikunja instance {}", l.instance),
        exec: exec(l, s)?,
        on_calendar,
        randomized_delay_s: delay,
    };
    let t = |n| crate::render::templates::load(n).map_err(|e| anyhow!(e));
    let (service, timer) =
        render_backup_timer(&t("systemd/backup.service.tmpl")?, &t("systemd/backup.timer.tmpl")?, &spec)?;
    let [(sn, _), (tn, _)] = files(l);
    Ok([(sn, service), (tn, timer)])
}

/// Checks a calendar expression with systemd itself where it is available.
fn check_calendar(expr: &str) -> Result<()> {
    match Command::new("systemd-analyze").args(["calendar", expr]).output() {
        Ok(o) if !o.status.success() => Err(fail(
            Exit::Usage,
            format!("systemd does not accept the schedule {expr:?}: {}", String::from_utf8_lossy(&o.stderr).trim()),
        )),
        _ => Ok(()),
    }
}

pub fn command(s: BackupSchedule) -> Result<()> {
    let inst = crate::instance::open(&s.root, s.instance.as_deref())?;
    let l = &inst.layout;
    if s.off {
        if s.daily || s.weekly || s.cron.is_some() || s.encrypt || !s.recipient.is_empty() {
            return Err(fail(Exit::Usage, "backup schedule --off takes no schedule or encryption options"));
        }
        let existed = remove(l, inst.init)?;
        println!(
            "{} of instance {}.",
            if existed { "Removed the scheduled backup" } else { "No backup was scheduled" },
            l.instance
        );
        return Ok(());
    }
    let files_text = render(l, &s)?;
    if inst.init != Init::Systemd {
        return Err(fail(
            Exit::Prerequisite,
            format!(
                "instance {} runs under --init process, and timers need systemd; nothing was changed. Without \
                 systemd, have cron run `vikunja-installer backup --instance {}` instead",
                l.instance, l.instance
            ),
        ));
    }
    let (on_calendar, _) = calendar(&s)?;
    check_calendar(&on_calendar)?;
    for (name, text) in &files_text {
        for p in [l.units_dir().join(name), l.system(&format!("/etc/systemd/system/{name}"))] {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| anyhow!("create {}: {e}", dir.display()))?;
            }
            manifests::atomic::write_atomic(&p, text.as_bytes(), 0o644)
                .map_err(|e| anyhow!("write {}: {e}", p.display()))?;
        }
    }
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--now", &files_text[1].0])?;
    let shown = shown(l, inst.init);
    println!(
        "Scheduled backups of instance {} ({on_calendar}); retention keeps the newest {}. Next: {}. \
         `systemctl start {}.service` backs up now; `backup schedule --off` removes the schedule.",
        l.instance,
        inst.deployment.retention.backups.max(1),
        shown.next_run.as_deref().unwrap_or("-"),
        unit(l)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cron_to_calendar;

    #[test]
    fn cron_expressions_become_the_same_systemd_calendar() {
        assert_eq!(cron_to_calendar("30 2 * * *").unwrap(), "*-*-* 02:30:00");
        assert_eq!(cron_to_calendar("0 3 * * 0").unwrap(), "Sun *-*-* 03:00:00");
        assert_eq!(cron_to_calendar("0 3 * * 7").unwrap(), "Sun *-*-* 03:00:00");
        assert_eq!(cron_to_calendar("15 1 * * 1-5").unwrap(), "Mon,Tue,Wed,Thu,Fri *-*-* 01:15:00");
        assert_eq!(cron_to_calendar("*/15 * * * *").unwrap(), "*-*-* *:00,15,30,45:00");
        assert_eq!(cron_to_calendar("0 0 1 */3 *").unwrap(), "*-01,04,07,10-01 00:00:00");
        assert_eq!(cron_to_calendar("0 22-23/1,6 * * *").unwrap(), "*-*-* 06,22,23:00:00");
        // And systemd reads each the way cron would (its next elapse is checked against cron's
        // meaning above; here that it is accepted at all).
        for cron in ["30 2 * * *", "15 1 * * 1-5", "*/15 * * * *", "0 0 1 */3 *", "0 22-23/1,6 * * *"] {
            let cal = cron_to_calendar(cron).unwrap();
            let out = std::process::Command::new("systemd-analyze").args(["calendar", &cal]).output().unwrap();
            assert!(out.status.success(), "{cron} -> {cal}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn cron_expressions_systemd_would_read_differently_are_refused_naming_the_field() {
        for (bad, says) in [
            ("0 3 * *", "five fields"),
            ("0 3 1 * 1", "either matches"),
            ("60 3 * * *", "minute \"60\""),
            ("0 3 * JAN *", "names are not supported"),
            ("0 5-3 * * *", "backwards"),
            ("*/0 * * * *", "step"),
        ] {
            let e = cron_to_calendar(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
