//! Watching an instance: the facts behind its metrics (`gather`), the one hook after every
//! command that changes an instance (`after`: counts, notifies a failed or undone update or a
//! failed backup, rewrites the metrics), and the timer's run (`tick`: health changes, a certificate
//! near its end, a newer Vikunja release, then the metrics). A notification that cannot be
//! delivered is logged here and counted (`vikunja_pve_notifications_failed_total`); it never
//! changes the command's result.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use manifests::Exit;

use crate::cli::Command;
use crate::instance::observe::{self, Observed};
use crate::instance::{state, Instance};
use crate::service::metrics::{Facts, Operation};
use crate::service::notify::{self, Event, Message};

/// A command that changes an instance, and which one it is.
pub struct Watched {
    root: PathBuf,
    instance: Option<String>,
    op: &'static str,
    /// The serving version before the command: an `update` that changed none (up to date, outside
    /// its window) is no update to count.
    before: Option<String>,
}

/// The instance a command changes, if it changes one (read before the command consumes its argv).
pub fn watched(cmd: &Command) -> Option<Watched> {
    let w = |root: &PathBuf, instance: &Option<String>, op| {
        let before = crate::instance::open(root, instance.as_deref())
            .ok()
            .and_then(|i| crate::instance::state::deployed(&i.layout))
            .map(|d| d.version);
        Some(Watched { root: root.clone(), instance: instance.clone(), op, before })
    };
    match cmd {
        Command::Install(i) => {
            let name = i.config.as_ref().and_then(|p| crate::instance::config::Deployment::load(p).ok());
            Some(Watched { root: i.root.clone(), instance: name.map(|d| d.instance.name), op: "install", before: None })
        }
        // `--clear-skip` and `--schedule` change no deployment.
        Command::Update(u) if !u.all && !u.dry_run && !u.clear_skip && u.schedule.is_none() => {
            w(&u.root, &u.instance, "update")
        }
        Command::Rollback(r) if !r.dry_run => w(&r.root, &r.instance, "rollback"),
        Command::Restart(r) if !r.dry_run => w(&r.root, &r.instance, "restart"),
        Command::Stop(s) => w(&s.root, &s.instance, "stop"),
        Command::Start(s) => w(&s.root, &s.instance, "start"),
        Command::Backup(b) if b.cmd.is_none() => w(&b.root, &b.instance, "backup"),
        Command::Restore(r) => w(&r.root, &r.instance, "restore"),
        _ => None,
    }
}

/// After the command: count it, notify what went wrong, rewrite the metrics. Whatever fails here
/// is a warning; the command's exit code stays what the command made it.
pub fn after(w: Option<Watched>, result: &Result<ExitCode>) {
    let Some(w) = w else { return };
    let Ok(inst) = crate::instance::open(&w.root, w.instance.as_deref()) else { return };
    let err = result.as_ref().err();
    let code = err.map(|e| e.downcast_ref::<crate::error::Failed>().map_or(Exit::Error, |f| f.code));
    // A usage error or a held lock changed nothing: no failure to count or announce.
    let changed = !matches!(code, Some(Exit::Usage | Exit::Locked));
    let event = match (w.op, code) {
        ("update", None) => {
            let now = crate::instance::state::deployed(&inst.layout).map(|d| d.version);
            if now != w.before {
                count(&inst, |o| o.updates_succeeded += 1);
            }
            None
        }
        ("update", Some(Exit::RolledBack)) if changed => {
            count(&inst, |o| o.updates_rolled_back += 1);
            Some(Event::UpdateRolledBack)
        }
        ("update", Some(_)) if changed => {
            count(&inst, |o| o.updates_failed += 1);
            Some(Event::UpdateFailed)
        }
        ("rollback", None) => {
            count(&inst, |o| o.rollbacks += 1);
            None
        }
        ("backup", Some(_)) if changed => Some(Event::BackupFailed),
        _ => None,
    };
    if let (Some(event), Some(e)) = (event, err) {
        send(&inst, event, format!("{e:#}"));
    }
    let _ = put(&inst, gather(&inst), None, false);
}

/// Counts into `state/observe`; a failure is a warning.
fn count(inst: &Instance, change: impl FnOnce(&mut Observed)) {
    if let Err(e) = observe::update(&inst.layout, change) {
        eprintln!(
            "warning: counting for the metrics failed ({}): {e}",
            inst.layout.state_dir().join("observe").display()
        );
    }
}

/// Sends one notification; a failure is logged and counted, never returned.
fn send(inst: &Instance, event: Event, message: String) {
    let m = Message {
        event,
        instance: inst.layout.instance.clone(),
        version: state::deployed(&inst.layout).map(|d| d.version).unwrap_or_default(),
        message,
        time: manifests::time::format_rfc3339(manifests::time::now_unix()),
    };
    match notify::send(&inst.deployment.notify, &m) {
        Ok(false) => {}
        Ok(true) => {
            count(inst, |o| o.notifications_sent += 1);
        }
        Err(e) => {
            eprintln!(
                "warning: {e} (counted in vikunja_pve_notifications_failed_total; the command's result is unchanged)"
            );
            count(inst, |o| o.notifications_failed += 1);
        }
    }
}

/// The facts of `inst` now; the health check runs unless the instance is stopped or not deployed.
pub fn gather(inst: &Instance) -> Facts {
    let (l, d) = (&inst.layout, &inst.deployment);
    let deployed = state::deployed(l);
    let stopped = state::is_stopped(l);
    let colour = deployed.as_ref().map(|x| state::active_colour(l).unwrap_or(x.colour));
    let mut f = Facts {
        instance: l.instance.clone(),
        installer_version: manifests::build_info::version().to_string(),
        state: match (&deployed, stopped) {
            (None, _) => "not installed",
            (Some(_), true) => "stopped",
            (Some(_), false) => "serving",
        }
        .into(),
        colour: colour.map(|c| c.name().to_string()),
        version: deployed.as_ref().map(|x| x.version.clone()),
        generated: manifests::time::now_unix(),
        ..Facts::default()
    };
    if let (Some(x), Some(colour), false) = (&deployed, colour, stopped) {
        let t = crate::service::health::Target { l, d, init: inst.init, colour, version: &x.version };
        let started = Instant::now();
        let report = crate::service::health::check_all(&t);
        f.health_seconds = Some(started.elapsed().as_secs_f64());
        f.components = report
            .iter()
            .map(|c| (c.name.split(' ').next().unwrap_or(c.name).to_ascii_lowercase(), c.healthy))
            .collect();
    }
    f.last_operation = state::last_operation(l).map(|o| Operation {
        started: manifests::time::parse_rfc3339(&o.started).ok(),
        operation: o.operation,
        result: o.result,
        duration_seconds: o.duration_ms as f64 / 1000.0,
    });
    counters(&mut f, &observe::load(l));
    f.last_backup = crate::engine::backup::backups_in(&l.backups_dir(), &l.instance).first().and_then(|p| {
        let m = std::fs::metadata(p).ok()?;
        let t = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
        Some((t, m.len()))
    });
    f.certificate_expiry = crate::instance::tls::expiry(l, d);
    f.disk = vec![("data".into(), du(&l.data_dir())), ("backups".into(), du(&l.backups_dir()))];
    f
}

fn counters(f: &mut Facts, o: &Observed) {
    (f.updates_succeeded, f.updates_failed, f.updates_rolled_back, f.rollbacks) =
        (o.updates_succeeded, o.updates_failed, o.updates_rolled_back, o.rollbacks);
    (f.notifications_sent, f.notifications_failed) = (o.notifications_sent, o.notifications_failed);
}

/// Bytes in the files under `dir` (symbolic links not followed).
fn du(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) if m.is_file() => total += m.len(),
                _ => {}
            }
        }
    }
    total
}

/// Where the metrics of `inst` go: `[metrics] textfile`, else `state/metrics.prom`.
pub fn textfile(inst: &Instance) -> PathBuf {
    inst.deployment.metrics.textfile.clone().unwrap_or_else(|| inst.layout.state_dir().join("metrics.prom"))
}

/// Writes the metrics of `f` atomically (to `to`, else the configured textfile), with the counters
/// as they are now. A failed write is a warning unless `strict`.
pub fn put(inst: &Instance, mut f: Facts, to: Option<&std::path::Path>, strict: bool) -> Result<Facts> {
    counters(&mut f, &observe::load(&inst.layout));
    let path = to.map(PathBuf::from).unwrap_or_else(|| textfile(inst));
    if let Err(e) = manifests::atomic::write_atomic(&path, crate::service::metrics::render(&f).as_bytes(), 0o644) {
        let msg = format!("writing the metrics to {} failed: {e}", path.display());
        if strict {
            anyhow::bail!("{msg}; check that the directory exists and is writable");
        }
        eprintln!("warning: {msg}");
    }
    Ok(f)
}

/// The timer's run: health changes, a certificate near its end and a newer release are announced
/// once each; then the metrics are written.
pub fn tick(inst: &Instance, to: Option<&std::path::Path>) -> Result<Facts> {
    let (l, d) = (&inst.layout, &inst.deployment);
    let f = gather(inst);
    // An operation in progress (its journal) may have a colour down on purpose: judge health later.
    let busy = matches!(crate::engine::journal::pending(l), Ok(Some(_)));
    let before = observe::load(l);
    if f.state == "serving" && !busy && !f.components.is_empty() {
        let healthy = f.components.iter().all(|(_, up)| *up);
        let now = if healthy { "healthy" } else { "unhealthy" };
        if before.health != now {
            count(inst, |o| o.health = now.into());
            let failing: Vec<&str> = f.components.iter().filter(|(_, up)| !up).map(|(c, _)| c.as_str()).collect();
            if !healthy {
                send(
                    inst,
                    Event::Unhealthy,
                    format!("unhealthy: {}; `vikunja-installer health` says why and what to do", failing.join(", ")),
                );
            } else if before.health == "unhealthy" {
                send(inst, Event::Recovered, "every component answers its health check again".into());
            }
        }
    }
    let now = manifests::time::now_unix();
    if let Some(end) = f.certificate_expiry {
        let days = i64::from(d.notify.certificate_days);
        if end - now < days * 86_400 && before.certificate_announced != end {
            count(inst, |o| o.certificate_announced = end);
            let left = (end - now).max(0) / 86_400;
            send(
                inst,
                Event::CertificateExpiring,
                format!(
                    "the TLS certificate ends {} ({left} days left); {}",
                    manifests::time::format_rfc3339(end),
                    if d.ssl.cert_path.is_some() {
                        "renew it at ssl.cert_path, then run `vikunja-installer install`"
                    } else {
                        "`vikunja-installer install` renews the self-signed one"
                    }
                ),
            );
        }
    }
    if !d.notify.url.is_empty() && d.notify.releases && now - before.release_checked >= 86_400 {
        count(inst, |o| o.release_checked = now);
        let fetcher =
            manifests::fetch::Fetcher::new(&format!("vikunja-installer/{}", manifests::build_info::version()), None);
        match fetcher.map_err(anyhow::Error::from).and_then(|fe| crate::engine::switch::newest_version(d, &fe)) {
            Ok(newest) => {
                let newer = f.version.as_deref().is_some_and(|v| {
                    let p = |x: &str| manifests::version::Version::parse(x.trim_start_matches('v')).ok();
                    matches!((p(&newest), p(v)), (Some(a), Some(b)) if a > b)
                });
                if newer && before.release_announced != newest {
                    count(inst, |o| o.release_announced = newest.clone());
                    send(
                        inst,
                        Event::ReleaseAvailable,
                        format!(
                            "Vikunja {newest} is available (serving {}); `vikunja-installer update` installs it with a health-gated switch",
                            f.version.as_deref().unwrap_or("?")
                        ),
                    );
                }
            }
            Err(e) => eprintln!("warning: looking for a newer Vikunja release failed: {e:#}"),
        }
    }
    put(inst, f, to, true)
}
