//! `update --auto` and `upgrade --auto`: unattended updates by a policy, run by a systemd timer.
//!
//! `update --auto` orchestrates operations that may not call each other in the engine: inside a
//! maintenance window it picks the release (`update_policy::choose` over the download site's
//! listing that `update` itself reads), takes a full backup (`backup::run`, with its retention)
//! when `backup_first`, and runs the manual `update` (blue-green, health gate, automatic undo). An
//! update that was undone puts its version into `state/auto-update-skip`, so the timer does not
//! retry it until a person runs `update --auto --clear-skip` or a manual update. Every run records
//! its result in `state/auto-update` for `status`.
//!
//! `upgrade --auto` does the same for the installer itself against its signed release channel:
//! off unless a person installs its timer, and never past the `--within` boundary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use manifests::time::format_rfc3339;
use manifests::Exit;

use crate::cli::{Update, Upgrade};
use crate::engine::{backup, switch, update, upgrade};
use crate::error::{fail, Failed};
use crate::instance::layout::Layout;
use crate::instance::update_policy::{self, next_opening, window_state, Channel, Updates, Window, WindowState};
use crate::instance::update_state::{self, Record};
use crate::instance::{state, Instance};
use crate::render::autotimer::{self, AutoTimerSpec};
use crate::service::init::Init;
use crate::service::schedule::systemctl;

fn usage(msg: impl Into<String>) -> anyhow::Error {
    fail(Exit::Usage, msg)
}

/// The local wall clock: (weekday with Monday 0, minute of the day, seconds into the minute).
fn local_clock(unix: i64) -> (usize, u32, u32) {
    let t = local_tm(unix);
    (((t.tm_wday + 6) % 7) as usize, (t.tm_hour * 60 + t.tm_min) as u32, t.tm_sec.clamp(0, 59) as u32)
}

fn local_tm(unix: i64) -> libc::tm {
    let t: libc::time_t = unix as libc::time_t;
    // SAFETY: `tm` is plain old data for which all-zero is a valid value; localtime_r only reads
    // `t` and writes `tm`, both live locals, and is the thread-safe variant (it does not use the
    // static buffer of localtime; glibc reads the time zone on its first call). On failure `tm` stays zeroed, which is a valid Sunday 00:00.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    }
}

/// "2026-11-29 03:00 +0100": a local time as the container sees it.
fn local_label(unix: i64) -> String {
    let t = local_tm(unix);
    let off = t.tm_gmtoff / 60;
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} {}{:02}{:02}",
        t.tm_year + 1900,
        t.tm_mon + 1,
        t.tm_mday,
        t.tm_hour,
        t.tm_min,
        if off < 0 { '-' } else { '+' },
        off.abs() / 60,
        off.abs() % 60
    )
}

fn windows(p: &Updates) -> Result<Vec<Window>> {
    p.window
        .iter()
        .map(|w| {
            Window::parse(w).map_err(|why| {
                usage(format!(
                    "updates.window = {w:?} in deployment.toml: {why}; allowed: {}",
                    update_policy::WINDOW_FORMAT
                ))
            })
        })
        .collect()
}

/// When the next window opens, as a local time ("any time" without windows).
fn next_window(ws: &[Window], now: i64) -> String {
    let (wd, minute, sec) = local_clock(now);
    match next_opening(ws, wd, minute) {
        Some((mins, label)) => format!("{label} ({})", local_label(now - sec as i64 + mins as i64 * 60)),
        None => "any time (no updates.window)".into(),
    }
}

/// `update --auto [--clear-skip | --schedule on|off]`.
pub fn update(u: &Update) -> Result<ExitCode> {
    if !u.auto {
        return Err(usage("--clear-skip and --schedule belong to --auto: run `update --auto --clear-skip` or `update --auto --schedule on`"));
    }
    if u.version.is_some() || u.artifact.is_some() || u.sha256.is_some() || u.all || u.dry_run {
        return Err(usage(
            "update --auto chooses the release by [updates] in deployment.toml: leave out --version, --artifact, \
             --sha256, --all and --dry-run (a manual `update --version vX.Y.Z` does the rest)",
        ));
    }
    if u.clear_skip && u.schedule.is_some() {
        return Err(usage("--clear-skip and --schedule are separate steps: run them one after the other"));
    }
    let inst = crate::instance::open(&u.root, u.instance.as_deref())?;
    inst.deployment.validate().map_err(|e| usage(format!("{e}\nfix {}", inst.layout.deployment_file().display())))?;
    if let Some(s) = &u.schedule {
        return schedule_update(&inst, s).map(|()| ExitCode::SUCCESS);
    }
    if u.clear_skip {
        let gone = update_state::clear_skips(&inst.layout)?;
        if gone.is_empty() {
            println!("No version was skipped for instance {}.", inst.layout.instance);
        }
        for s in gone {
            println!("{} is allowed again for automatic updates (skipped since {}: {}).", s.version, s.since, s.reason);
        }
        return Ok(ExitCode::SUCCESS);
    }
    run_update(&inst)
}

/// After a manual update that went through: a person chose a release, so the versions skipped
/// after failed automatic updates are theirs to decide again.
pub fn manual_update_done(inst: &Instance) -> Result<()> {
    for s in update_state::clear_skips(&inst.layout)? {
        println!("{} is allowed again for automatic updates (a manual update clears the skips).", s.version);
    }
    Ok(())
}

fn run_update(inst: &Instance) -> Result<ExitCode> {
    let (l, d) = (&inst.layout, &inst.deployment);
    let p = &d.updates;
    let ws = windows(p)?;
    let now = manifests::time::now_unix();
    let checked = format_rfc3339(now);
    let next = next_window(&ws, now);
    let rec = |updated: Option<&str>, result: &str| -> Result<()> {
        update_state::record(l, &Record { checked: &checked, updated, result, next_window: &next })
            .map_err(|e| anyhow!("write {}: {e}", update_state::state_file(l).display()))
    };
    let (wd, minute, _) = local_clock(now);
    if let WindowState::Closed { opens_in_min, label } = window_state(&ws, wd, minute) {
        rec(None, "outside the maintenance window: nothing checked")?;
        println!(
            "Instance {}: {} is outside every maintenance window ({}); nothing was done. The next opens {label}, \
             in {} h {} min ({next}).",
            l.instance,
            local_label(now),
            p.window.join(", "),
            opens_in_min / 60,
            opens_in_min % 60
        );
        return Ok(ExitCode::SUCCESS);
    }
    let current = state::deployed(l)
        .ok_or_else(|| fail(Exit::Error, format!("instance {} has no deployed version yet; run install", l.instance)))?
        .version;
    let fetcher =
        manifests::fetch::Fetcher::new(&format!("vikunja-installer/{}", manifests::build_info::version()), None)
            .map_err(|e| fail(e.exit(), e.to_string()))?;
    let listed = match switch::listed_releases(d, &fetcher) {
        Ok((_, v)) => v.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
        Err(e) => {
            rec(None, &format!("check failed: {e:#}"))?;
            return Err(e);
        }
    };
    let failed: Vec<String> = update_state::skipped(l).into_iter().map(|s| s.version).collect();
    let decision = update_policy::choose(&current, &listed, p, &failed);
    for h in decision.held.iter().take(5) {
        println!("passed over {h}");
    }
    let Some(to) = decision.to else {
        let msg = format!("up to date: {current} is the newest release channel {} allows", p.channel.name());
        rec(None, &msg)?;
        println!("Instance {}: {msg}; next window {next}.", l.instance);
        return Ok(ExitCode::SUCCESS);
    };
    println!("Instance {}: automatic update {current} -> {to} (channel {}).", l.instance, p.channel.name());
    if p.backup_first {
        let o = backup::Options { seal: None, include_logs: false, output: None };
        match backup::run(inst, &o) {
            Ok(made) => println!("backed up first: {}", made.path.display()),
            Err(e) => {
                rec(None, &format!("backup before {to} failed, nothing updated: {e:#}"))?;
                return Err(
                    e.context(format!("the backup before the automatic update to {to} failed; nothing was updated"))
                );
            }
        }
    }
    match update::update(inst, Some(&to), None, None) {
        Ok(()) if state::deployed(l).is_some_and(|dep| dep.version == to) => {
            rec(Some(&format_rfc3339(manifests::time::now_unix())), &format!("updated {current} -> {to}"))?;
            println!("Instance {}: updated {current} -> {to}; next window {next}.", l.instance);
            Ok(ExitCode::SUCCESS)
        }
        Ok(()) => {
            rec(None, &format!("not updated to {to}: the update did nothing"))?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let code = e.downcast_ref::<Failed>().map(|f| f.code).unwrap_or(Exit::Error);
            let first = format!("{e:#}").lines().next().unwrap_or_default().to_string();
            // Only a release that was tried and undone, or did not verify, is held back; a lock,
            // the network or a stopped instance says nothing about the release.
            if matches!(code, Exit::RolledBack | Exit::RollbackFailed | Exit::Verification) {
                update_state::add_skip(l, &to, &checked, &format!("exit {}: {first}", code.code()))?;
                rec(None, &format!("failed and undone: {to} ({first}); skipped until `update --auto --clear-skip`"))?;
                Err(e.context(format!(
                    "the automatic update to {to} failed and was undone; {current} still serves. {to} is skipped \
                     from now on: after fixing the cause, run `vikunja-installer update --auto --clear-skip` (or \
                     update by hand)"
                )))
            } else {
                rec(None, &format!("failed: {first} (tried again in the next window)"))?;
                Err(e)
            }
        }
    }
}

/// The installer's path for a timer (the installed command, never the bootstrap's temp bundle).
fn installer(root: &Path) -> Result<PathBuf> {
    crate::service::schedule::installer_path(&Layout::new(root, "-"))
}

/// The environment the timer's command needs to reach the same servers as this run. A proxy URL
/// with a user and password is left out: unit files are world-readable and `systemctl show`
/// prints a unit's environment to every local user.
fn passed_env() -> Vec<(String, String)> {
    ["SSL_CERT_FILE", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "VIKUNJA_INSTALLER_BASE_URL"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()).map(|v| (k.to_string(), v)))
        .filter(|(k, v)| {
            let secret = has_userinfo(v);
            if secret {
                eprintln!(
                    "warning: {k} carries a user and password, so it is left out of the timer's unit (systemd shows \
                     a unit's environment to every local user). Give the timer its proxy in an owner-only file: \
                     `systemctl edit <the timer's service>` with [Service] EnvironmentFile=/root/proxy.env (chmod 600)"
                );
            }
            !secret
        })
        .collect()
}

/// Whether a URL names a user (and maybe a password) before its host.
fn has_userinfo(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().is_some_and(|authority| authority.contains('@'))
}

/// Renders the two unit files for `spec` from the bundle's templates.
fn render(spec: &AutoTimerSpec) -> Result<(String, String)> {
    let t = |n| crate::render::templates::load(n).map_err(anyhow::Error::from);
    Ok(autotimer::render(&t(autotimer::SERVICE_TEMPLATE)?, &t(autotimer::TIMER_TEMPLATE)?, spec)?)
}

/// The unit files of an automatic update of instance `l` with policy `p`: (name, text) twice.
pub fn update_units(l: &Layout, p: &Updates, exe: &Path) -> Result<[(String, String); 2]> {
    let ws = windows(p)?;
    let mut exec = vec![exe.to_string_lossy().into_owned(), "update".into(), "--auto".into()];
    exec.extend(["--instance".into(), l.instance.clone()]);
    if l.root != Path::new("/") {
        exec.extend(["--root".into(), l.root.to_string_lossy().into_owned()]);
    }
    // Each window's opening, with a random delay of at most a third of the shortest window (and
    // 15 minutes), so the run lands inside it; without windows, daily at 03:00.
    let shortest = ws.iter().map(|w| (w.end + 1440 - w.start) % 1440).map(|m| if m == 0 { 1440 } else { m }).min();
    let spec = AutoTimerSpec {
        unit: update_state::unit(l),
        description: format!("Automatic update of Vikunja instance {}", l.instance),
        command: "update --auto".into(),
        exec,
        env: passed_env(),
        on_calendar: if ws.is_empty() {
            vec!["*-*-* 03:00:00".into()]
        } else {
            ws.iter().map(Window::on_calendar).collect()
        },
        randomized_delay_s: shortest.map_or(900, |m| (m * 60 / 3).min(900)),
    };
    let (service, timer) = render(&spec)?;
    Ok([(format!("{}.service", spec.unit), service), (format!("{}.timer", spec.unit), timer)])
}

/// Writes, enables and starts (`on`) or stops and removes (`off`) a timer's two units.
fn install_timer(root: &Path, keep_in: Option<&Path>, files: &[(String, String); 2], on: bool) -> Result<bool> {
    let paths = |name: &str| {
        let mut v = vec![root.join("etc/systemd/system").join(name)];
        v.extend(keep_in.map(|d| d.join(name)));
        v
    };
    if !on {
        let existed = files.iter().any(|(n, _)| paths(n)[0].exists());
        if existed {
            let _ = systemctl(&["disable", "--now", &files[1].0]);
            let _ = systemctl(&["stop", &files[0].0]);
        }
        for (n, _) in files {
            for p in paths(n) {
                manifests::atomic::remove_if_present(&p).map_err(|e| anyhow!("remove {}: {e}", p.display()))?;
            }
        }
        if existed {
            systemctl(&["daemon-reload"])?;
        }
        return Ok(existed);
    }
    for (n, text) in files {
        for p in paths(n) {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(|e| anyhow!("create {}: {e}", dir.display()))?;
            }
            manifests::atomic::write_atomic(&p, text.as_bytes(), 0o644)
                .map_err(|e| anyhow!("write {}: {e}", p.display()))?;
        }
    }
    systemctl(&["daemon-reload"])?;
    systemctl(&["enable", "--now", &files[1].0])?;
    Ok(true)
}

fn on_off(s: &str) -> Result<bool> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(usage(format!("--schedule {other:?}: on or off"))),
    }
}

fn needs_systemd(what: &str, instead: &str) -> anyhow::Error {
    fail(
        Exit::Prerequisite,
        format!("{what}: timers need systemd, and this runs under --init process; nothing was changed. Without systemd, have cron run `{instead}` instead"),
    )
}

/// The two unit names of instance `l`'s timer, with no text (what removing needs).
fn unit_names(l: &Layout) -> [(String, String); 2] {
    let u = update_state::unit(l);
    [(format!("{u}.service"), String::new()), (format!("{u}.timer"), String::new())]
}

/// Removes instance `l`'s automatic-update timer if there is one (`uninstall`); whether it existed.
pub fn unschedule(l: &Layout) -> Result<bool> {
    install_timer(&l.root, Some(&l.units_dir()), &unit_names(l), false)
}

/// The installer's own automatic-upgrade timer.
const UPGRADE_UNIT: &str = "vikunja-installer-autoupgrade";

/// Removes the installer's automatic-upgrade timer if there is one (`self uninstall`: its command
/// goes away); whether it existed.
pub fn unschedule_upgrade(root: &Path) -> Result<bool> {
    let names = [(format!("{UPGRADE_UNIT}.service"), String::new()), (format!("{UPGRADE_UNIT}.timer"), String::new())];
    install_timer(root, None, &names, false)
}

fn schedule_update(inst: &Instance, s: &str) -> Result<()> {
    let l = &inst.layout;
    let on = on_off(s)?;
    if on && inst.init != Init::Systemd {
        return Err(needs_systemd(
            &format!("instance {}", l.instance),
            &format!("vikunja-installer update --auto --instance {}", l.instance),
        ));
    }
    let exe = if on { installer(&l.root)? } else { PathBuf::from("/") };
    let files = if on { update_units(l, &inst.deployment.updates, &exe)? } else { unit_names(l) };
    let done = install_timer(&l.root, Some(&l.units_dir()), &files, on)?;
    let p = &inst.deployment.updates;
    if on {
        println!(
            "Automatic updates of instance {} are on: channel {}, windows {}; backup first: {}. Next window: {}. \
             `systemctl start {}.service` checks now; `update --auto --schedule off` turns them off.",
            l.instance,
            p.channel.name(),
            if p.window.is_empty() { "any time (daily at 03:00)".to_string() } else { p.window.join(", ") },
            if p.backup_first { "yes" } else { "no" },
            next_window(&windows(p)?, manifests::time::now_unix()),
            update_state::unit(l)
        );
    } else {
        println!(
            "{} of instance {}.",
            if done { "Removed the automatic updates" } else { "Automatic updates were not scheduled" },
            l.instance
        );
    }
    Ok(())
}

/// `upgrade --auto [--within patch|minor|any] [--schedule on|off]`.
pub fn upgrade(u: &Upgrade) -> Result<ExitCode> {
    if !u.auto {
        return Err(usage("--within and --schedule belong to --auto: run `upgrade --auto --schedule on`"));
    }
    if u.check || u.version.is_some() || u.bundle.is_some() || u.rollback || u.allow_downgrade || u.allow_expired {
        return Err(usage(
            "upgrade --auto chooses the release itself: leave out --check, --version, --bundle, --rollback, \
             --allow-downgrade and --allow-expired",
        ));
    }
    let within = match u.within.as_deref() {
        None => Channel::Patch,
        Some(w) => Channel::parse(w).ok_or_else(|| usage(format!("--within {w:?}: patch, minor or any")))?,
    };
    let home = crate::selfinstall::Home::new(&u.root);
    if let Some(s) = &u.schedule {
        let on = on_off(s)?;
        let unit = UPGRADE_UNIT;
        let files = if on {
            if !Path::new("/run/systemd/system").is_dir() {
                return Err(needs_systemd("upgrade --auto", "vikunja-installer upgrade --auto"));
            }
            let mut exec = vec![installer(&u.root)?.to_string_lossy().into_owned(), "upgrade".into(), "--auto".into()];
            exec.extend(["--within".into(), within.name().into()]);
            exec.extend(u.channel.iter().flat_map(|c| ["--channel".to_string(), c.clone()]));
            exec.extend(u.base_url.iter().flat_map(|c| ["--base-url".to_string(), c.clone()]));
            if u.root != Path::new("/") {
                exec.extend(["--root".into(), u.root.to_string_lossy().into_owned()]);
            }
            let spec = AutoTimerSpec {
                unit: unit.into(),
                description: "Automatic upgrade of vikunja-installer".into(),
                command: "upgrade --auto".into(),
                exec,
                env: passed_env(),
                on_calendar: vec!["*-*-* 04:00:00".into()],
                randomized_delay_s: 3600,
            };
            let (service, timer) = render(&spec)?;
            [(format!("{unit}.service"), service), (format!("{unit}.timer"), timer)]
        } else {
            [(format!("{unit}.service"), String::new()), (format!("{unit}.timer"), String::new())]
        };
        let done = install_timer(&u.root, None, &files, on)?;
        println!(
            "{}",
            match (on, done) {
                (true, _) => format!(
                    "Automatic upgrades of vikunja-installer are on (daily, within {}); `upgrade --auto --schedule off` turns them off.",
                    within.name()
                ),
                (false, true) => "Removed the automatic upgrades of vikunja-installer.".into(),
                (false, false) => "Automatic upgrades of vikunja-installer were not scheduled.".into(),
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let installed = home.current().unwrap_or_else(|| manifests::build_info::version().to_string());
    let record = |result: &str| {
        let f = home.dir.join("auto-upgrade");
        let _ = std::fs::create_dir_all(&home.dir);
        state::write_kv(
            &f,
            &[("last_check", format_rfc3339(manifests::time::now_unix())), ("result", result.to_string())],
        )
        .map_err(|e| anyhow!("write {}: {e}", f.display()))
    };
    let o = upgrade::Options {
        root: u.root.clone(),
        check: false,
        version: None,
        bundle: None,
        rollback: false,
        allow_downgrade: false,
        allow_expired: false,
        channel: u.channel.clone(),
        base_url: u.base_url.clone(),
    };
    let latest = match upgrade::latest(&o) {
        Ok(v) => v,
        Err(e) => {
            record(&format!("check failed: {e:#}"))?;
            return Err(e);
        }
    };
    let policy = Updates { channel: within, ..Updates::default() };
    let decision = update_policy::choose(&installed, &[latest.to_string()], &policy, &[]);
    let Some(to) = decision.to else {
        let why = decision.held.first().map(|h| format!(" ({h} is held back)")).unwrap_or_default();
        record(&format!("up to date: {installed}{why}"))?;
        println!("vikunja-installer {installed}: nothing to upgrade within {}{why}.", within.name());
        return Ok(ExitCode::SUCCESS);
    };
    let to = to.trim_start_matches('v').to_string();
    match upgrade::run(&upgrade::Options { version: Some(to.clone()), ..o }) {
        Ok(code) => {
            record(&format!("upgraded {installed} -> {to}"))?;
            Ok(ExitCode::from(code))
        }
        Err(e) => {
            record(&format!("upgrade to {to} failed: {}", format!("{e:#}").lines().next().unwrap_or_default()))?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn proxy_credentials_are_told_apart_from_plain_proxies() {
        for secret in ["http://user:pw@proxy:3128", "https://u@proxy/", "user:pw@proxy:3128"] {
            assert!(super::has_userinfo(secret), "{secret}");
        }
        for plain in ["http://proxy:3128", "http://proxy:3128/p@th", "https://proxy/?a=b@c", "/etc/ssl/ca.pem"] {
            assert!(!super::has_userinfo(plain), "{plain}");
        }
    }
}
