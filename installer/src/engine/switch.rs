//! The blue-green steps `update`, `restart` (also `install`'s settings rollout) and `rollback`
//! share, and the recovery of one that was interrupted. Not an operation itself: it names none and
//! not `recovery`; the operations take the lock through `recovery::begin` and call in here.
//!
//! All run the same steps (the journal records each before it happens):
//! freeze writes in nginx (reads keep flowing to the serving colour) → back up the database →
//! start the other colour (Vikunja migrates at start) → health gate with the expected version →
//! switch nginx to it and lift the freeze in one checked reload → drain the old colour with SIGINT.
//! An unhealthy new colour is stopped, the backup restored if its migrations changed the schema,
//! and the freeze lifted: the old colour never stopped serving. Because writes are frozen from the
//! backup on, restoring it loses no acknowledged write.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use manifests::time::{format_rfc3339, now_unix};
use manifests::Exit;

use crate::data::dbbackup;
use crate::engine::journal::{Journal, Step};
use crate::engine::lifecycle::{self, Op, RollbackPoint, Snapshot, Verdict};
use crate::error::fail;
use crate::instance::artifact;
use crate::instance::config::Deployment;
use crate::instance::layout::Layout;
use crate::instance::state::{self, Colour, Deployed, LastOperation};
use crate::instance::Instance;
use crate::report::{note, say};
use crate::service::colour::Colours;
use crate::service::init::Init;
use crate::service::{health, nginx, units};

/// Prints what a user watching the operation wants to see, with the time since it began; on
/// stderr when the command's stdout is for something else (a recovery run by `status --json`).
pub(super) struct Progress {
    start: Instant,
    stderr: bool,
}
impl Progress {
    pub(super) fn new(stderr: bool) -> Progress {
        Progress { start: Instant::now(), stderr }
    }
    pub(super) fn say(&self, msg: &str) {
        let line = format!("[{:>6.2}s] {msg}", self.start.elapsed().as_secs_f64());
        if self.stderr {
            note!("{line}");
        } else {
            say!("{line}");
        }
    }
}

pub(super) struct Ctx<'a> {
    pub(super) l: &'a Layout,
    pub(super) d: &'a Deployment,
    pub(super) colours: Colours<'a>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(l: &'a Layout, d: &'a Deployment, init: Init) -> Ctx<'a> {
        Ctx { l, d, colours: Colours { l, d, init } }
    }

    pub(super) fn route(&self, c: Colour, freeze: bool) -> Result<()> {
        Ok(nginx::route(self.l, self.d, self.colours.init, c, freeze)?)
    }

    fn schema_changed(&self, before: &Option<Vec<String>>) -> bool {
        lifecycle::schema_differs(before, &dbbackup::migrations(self.l, self.d))
    }
}

/// Finishes (from `switched` on) or undoes (before) the update or rollback in the journal. Called
/// by `recovery` only, under the lock.
pub fn recover(inst: &Instance) -> Result<()> {
    let ctx = Ctx::new(&inst.layout, &inst.deployment, inst.init);
    let p = Progress::new(true);
    let Some(mut j) = Journal::load(ctx.l).context("read the operation journal")? else { return Ok(()) };
    let started = Instant::now();
    if j.step >= Step::Switched && !j.pending_restore.is_empty() && !Path::new(&j.pending_restore).is_file() {
        // The rollback's old release took the reads on the newer schema, but the copy of the old
        // schema it needed is gone (a journal written before rollbacks checked for it): the only
        // consistent state left is the newer release on the current database.
        p.say(&format!(
            "an interrupted rollback to {} needs {}, which is gone: going back to {} on {} with the current data",
            j.to_version,
            j.pending_restore,
            j.from_version,
            j.from_colour.name()
        ));
        undo(&ctx, &j, &p).map_err(|e| undo_failed(&ctx, &j, e))?;
        RollbackPoint::clear(ctx.l)?;
        record(ctx.l, &j, started, "abandoned: the database copy it needed is missing")?;
        return Ok(());
    }
    if j.step >= Step::Switched {
        p.say(&format!(
            "an interrupted {} ({} -> {}) had already switched traffic to {}: finishing it",
            j.operation,
            j.from_version,
            j.to_version,
            j.to_colour.name()
        ));
        let target = target_deployment(ctx.d, &j.to_version);
        let ctx_to = Ctx::new(ctx.l, &target, ctx.colours.init);
        finish(&ctx_to, &mut j, &p)?;
        record(ctx.l, &j, started, "finished after an interruption")?;
    } else {
        p.say(&format!(
            "an interrupted {} ({} -> {}) stopped at step {}: undoing it",
            j.operation,
            j.from_version,
            j.to_version,
            j.step.name()
        ));
        undo(&ctx, &j, &p).map_err(|e| undo_failed(&ctx, &j, e))?;
        record(ctx.l, &j, started, "undone after an interruption")?;
    }
    Ok(())
}

/// The deployment with `version` as its Vikunja version (a pinned checksum or local zip belongs
/// to the version it was given for).
pub(super) fn target_deployment(d: &Deployment, version: &str) -> Deployment {
    let mut t = d.clone();
    if t.vikunja.version != version {
        t.vikunja.sha256 = None;
        t.vikunja.artifact = None;
        t.vikunja.version = version.to_string();
    }
    t
}

fn undo_failed(ctx: &Ctx, j: &Journal, e: anyhow::Error) -> anyhow::Error {
    fail(
        Exit::RollbackFailed,
        format!(
            "undoing the {op} failed: {e:#}\nState: journal {journal} (step {step}); {from} ({fv}) should serve, {to} ({tv}) \
             should be stopped; database backup {backup}.\nWhat to do: fix the cause above, then run any \
             vikunja-installer command (status) to retry the recovery; by hand, the database comes back with \
             {tool}.",
            op = j.operation,
            journal = crate::engine::journal::path(ctx.l).display(),
            step = j.step.name(),
            from = j.from_colour.name(),
            fv = j.from_version,
            to = j.to_colour.name(),
            tv = j.to_version,
            backup = j.undo_backup,
            tool = match ctx.d.database.kind {
                crate::instance::config::DbType::Sqlite =>
                    format!("sqlite3 {} \".restore {}\" (services stopped)", ctx.l.sqlite_path().display(), j.undo_backup),
                crate::instance::config::DbType::Postgres =>
                    format!("pg_restore --clean --if-exists -d {} {}", ctx.d.database.name, j.undo_backup),
                crate::instance::config::DbType::Mysql => format!("mysql {} < {}", ctx.d.database.name, j.undo_backup),
            },
        ),
    )
}

/// Back to the state before the operation: new colour stopped, database restored if its schema
/// changed, old colour serving reads and writes.
fn undo(ctx: &Ctx, j: &Journal, p: &Progress) -> Result<()> {
    // It never took traffic: nothing to drain, and waiting out its start would only stretch the
    // write freeze.
    ctx.colours.kill(j.to_colour)?;
    p.say(&format!("stopped {}", j.to_colour.name()));
    if j.step >= Step::BackedUp && ctx.schema_changed(&j.migrations_before) {
        dbbackup::restore(ctx.l, ctx.d, Path::new(&j.undo_backup))?;
        p.say(&format!("database restored from {}", j.undo_backup));
    }
    if !ctx.colours.running(j.from_colour)? {
        ctx.colours.start(j.from_colour, &j.from_version)?;
    }
    ctx.route(j.from_colour, false)?;
    p.say(&format!("writes resumed on {} ({})", j.from_colour.name(), j.from_version));
    Journal::remove(ctx.l)?;
    Ok(())
}

/// The new colour is healthy: route to it, lift the freeze, drain the old one, record state.
fn finish(ctx: &Ctx, j: &mut Journal, p: &Progress) -> Result<()> {
    if !ctx.colours.running(j.to_colour)? {
        ctx.colours.start(j.to_colour, &j.to_version)?;
    }
    if !j.pending_restore.is_empty() {
        // A rollback whose old release runs on the newer schema: it takes the reads first, then
        // the old schema comes back under it, and only then do writes resume.
        ctx.route(j.to_colour, true)?;
        p.say(&format!("reads switched to {} ({}); writes still frozen", j.to_colour.name(), j.to_version));
        dbbackup::restore(ctx.l, ctx.d, Path::new(&j.pending_restore))?;
        p.say(&format!("database restored from {}", j.pending_restore));
        j.pending_restore.clear();
        j.save(ctx.l)?;
    }
    ctx.route(j.to_colour, false)?;
    p.say(&format!("traffic switched to {} ({}), writes resumed", j.to_colour.name(), j.to_version));
    ctx.colours.stop(j.from_colour)?;
    p.say(&format!("{} drained and stopped", j.from_colour.name()));
    let ts = format_rfc3339(now_unix());
    state::set_active_colour(ctx.l, j.to_colour)?;
    state::set_deployed(
        ctx.l,
        &Deployed { version: j.to_version.clone(), timestamp: ts, colour: j.to_colour, deployment_id: j.id.clone() },
    )?;
    let mut d = ctx.d.clone();
    if d.vikunja.version != j.to_version {
        d.vikunja.sha256 = None;
        d.vikunja.artifact = None;
        d.vikunja.version = j.to_version.clone();
    }
    manifests::atomic::write_atomic(&ctx.l.deployment_file(), d.to_toml().as_bytes(), 0o640)
        .with_context(|| format!("write {}", ctx.l.deployment_file().display()))?;
    if j.operation == "update" {
        RollbackPoint {
            colour: j.from_colour,
            version: j.from_version.clone(),
            backup: j.undo_backup.clone(),
            migrations: j.migrations_before.clone(),
        }
        .save(ctx.l)?;
    } else if j.operation == "rollback" {
        // A rollback is not rolled back: a second one would restore the copy taken before this
        // one and lose every write made since (the way back is an update).
        RollbackPoint::clear(ctx.l)?;
    }
    // The rollback point (this update's, or the one a restart kept) keeps its copy and release.
    let point = RollbackPoint::load(ctx.l);
    Journal::remove(ctx.l)?;
    // The newest copy stays: an update's is what a rollback restores; a rollback's holds the
    // writes it took back, for an admin who needs one of them.
    let mut keep = vec![std::path::PathBuf::from(&j.undo_backup)];
    keep.extend(point.as_ref().map(|p| std::path::PathBuf::from(&p.backup)));
    prune_operation_dumps(ctx.l, &keep);
    let mut protect = vec![j.to_version.as_str(), j.from_version.as_str()];
    protect.extend(point.as_ref().map(|p| p.version.as_str()));
    prune_releases(ctx.l, &protect, ctx.d.retention.releases.max(2) as usize);
    Ok(())
}

/// Database copies of earlier updates and rollbacks: only the one the rollback point names can
/// still be used (full backups are `backup`'s business, with their own retention).
fn prune_operation_dumps(l: &Layout, keep: &[std::path::PathBuf]) {
    for e in std::fs::read_dir(l.backups_dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = ["pre-update-", "pre-rollback-", "pre-restart-"].iter().any(|p| name.starts_with(p));
        if ours && !keep.contains(&e.path()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Keeps the newest `keep` releases (never the ones in `protect`); older ones are removed.
fn prune_releases(l: &Layout, protect: &[&str], keep: usize) {
    let mut all: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(l.releases_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            (!name.starts_with('.')).then_some(())?;
            Some((e.metadata().ok()?.modified().ok()?, name))
        })
        .collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut kept = protect.len();
    for (_, name) in all {
        if protect.contains(&name.as_str()) {
            continue;
        }
        if kept < keep {
            kept += 1;
            continue;
        }
        let _ = std::fs::remove_dir_all(l.release_dir(&name));
    }
}

fn record(l: &Layout, j: &Journal, started: Instant, result: &str) -> Result<()> {
    state::record_operation(
        l,
        &LastOperation {
            operation: j.operation.clone(),
            started: j.started.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            result: result.into(),
        },
    )?;
    Ok(())
}

/// Which colour serves now, and which version. A colour recorded as active but not running is
/// started again; the other colour left running without a journal is stopped.
pub(super) fn detect_active(ctx: &Ctx, p: &Progress) -> Result<(Colour, String)> {
    let dep = state::deployed(ctx.l).ok_or_else(|| {
        fail(
            Exit::Error,
            format!("instance {} has no deployed version yet; run vikunja-installer install", ctx.d.instance.name),
        )
    })?;
    let active = state::active_colour(ctx.l).unwrap_or(dep.colour);
    let other = other(active);
    if !ctx.colours.running(active)? {
        p.say(&format!("{} is recorded as active but is not running: starting it", active.name()));
        ctx.colours.start(active, &dep.version)?;
    }
    if ctx.colours.running(other)? {
        p.say(&format!("{} is running but not active (left over): stopping it", other.name()));
        ctx.colours.stop(other)?;
    }
    if nginx::routed(ctx.l).map(|(port, _)| port) != Some(units::backend_port(ctx.d, active)) {
        p.say(&format!("nginx did not route to the active colour {}: repaired", active.name()));
        ctx.route(active, false)?;
    }
    Ok((active, dep.version))
}

pub(super) fn other(c: Colour) -> Colour {
    match c {
        Colour::Blue => Colour::Green,
        Colour::Green => Colour::Blue,
    }
}

pub(super) fn operation_id(instance: &str) -> String {
    state::deployment_id(instance, &format_rfc3339(now_unix()))
}

/// The newest release listed at `{download_base}/.json` (the download site's JSON listing): every
/// string in it that is a version counts.
pub fn newest_version(d: &Deployment, fetcher: &manifests::fetch::Fetcher) -> Result<String> {
    let (url, found) = listed_releases(d, fetcher)?;
    found
        .into_iter()
        .filter(|(ver, _)| ver.pre.is_none())
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, s)| s)
        .ok_or_else(|| fail(Exit::Download, format!("{url} lists no release versions; name one with --version vX.Y.Z")))
}

/// Every release the download site lists (pre-releases included), and the listing's URL; shared
/// by `update` without `--version` and `update --auto`.
pub fn listed_releases(
    d: &Deployment,
    fetcher: &manifests::fetch::Fetcher,
) -> Result<(String, Vec<(manifests::Version, String)>)> {
    // The dl site's documented listing is `/vikunja/.json` (`/vikunja.json` works only through a
    // detail of its worker): shared/reference/vikunja.md, corrections.
    let url = format!("{}/.json", d.vikunja.download_base.trim_end_matches('/'));
    let body = fetcher.get_small(&url, 4 << 20).map_err(|e| {
        fail(e.exit(), format!("finding the newest Vikunja release failed: {e}; name one with --version vX.Y.Z"))
    })?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        fail(Exit::Download, format!("{url} is not a JSON listing ({e}); name a release with --version"))
    })?;
    let found = crate::instance::update_policy::listed_versions(&v);
    Ok((url, found))
}

/// Runs the lifecycle's check for `op`: go on, or end here (nothing to do, or refused).
pub(super) fn admit(op: Op, inst: &Instance) -> Result<bool> {
    let (l, d) = (&inst.layout, &inst.deployment);
    match lifecycle::check(op, &d.instance.name, &Snapshot::read(l, || dbbackup::migrations(l, d))) {
        Verdict::Go => Ok(true),
        Verdict::Nothing(msg) => {
            say!("{msg}");
            Ok(false)
        }
        Verdict::Refuse(code, msg) => Err(fail(code, msg)),
    }
}

/// The version floor, checked before anything changes (see `config::supported_vikunja`).
pub(super) fn refuse_unsupported(version: &str) -> Result<()> {
    crate::instance::config::supported_vikunja(version).map_err(|why| {
        fail(
            Exit::Usage,
            format!("cannot update to Vikunja {version}: this installer needs {why}; nothing was changed"),
        )
    })
}

/// A release zip given by hand (no download), with its checksum if known.
#[derive(Clone, Copy, Default)]
pub struct Offline<'a> {
    pub artifact: Option<&'a Path>,
    pub sha256: Option<&'a str>,
}

/// The same restart for a caller that already holds the operation lock and has recovered
/// (`install` rolling out changed settings): the new colour starts with `inst`'s settings, while
/// `serving` describes the running colour (its ports may differ until it stops).
pub fn restart_locked(inst: &Instance, serving: &Deployment) -> Result<()> {
    switch_locked(inst, None, "restart", Offline::default(), Some(serving))
}

pub(super) fn switch_locked(
    inst: &Instance,
    version: Option<&str>,
    op: &str,
    offline: Offline,
    serving: Option<&Deployment>,
) -> Result<()> {
    let restarting = op == "restart";
    let p = Progress::new(false);
    if !admit(Op::Update, inst)? {
        return Ok(());
    }
    let (l, d) = (&inst.layout, &inst.deployment);
    let ctx = Ctx::new(l, serving.unwrap_or(d), inst.init);
    let started = Instant::now();
    let (from, from_version) = detect_active(&ctx, &p)?;
    let fetcher =
        manifests::fetch::Fetcher::new(&format!("vikunja-installer/{}", manifests::build_info::version()), None)
            .map_err(|e| fail(e.exit(), e.to_string()))?
            .offline("copy the release zip here and run `vikunja-installer update --artifact ZIP --version vX.Y.Z`");
    let to_version = match version {
        _ if restarting => from_version.clone(),
        Some(v) => v.to_string(),
        None => newest_version(d, &fetcher)?,
    };
    if !restarting {
        refuse_unsupported(&to_version)?;
    }
    let mut target = target_deployment(d, &to_version);
    if let Some(zip) = offline.artifact {
        target.vikunja.artifact = Some(std::fs::canonicalize(zip).unwrap_or_else(|_| zip.to_path_buf()));
        target.vikunja.sha256 = offline.sha256.map(str::to_string);
    }
    target.validate().map_err(|e| fail(Exit::Usage, e.to_string()))?;
    if to_version == from_version && !restarting {
        say!("Instance {} already runs Vikunja {from_version} on {}: nothing to update.", d.instance.name, from.name());
        return Ok(());
    }
    let to = other(from);
    p.say(&format!(
        "{} instance {} from {from_version} ({}) to {to_version} ({})",
        if restarting { "restarting" } else { "updating" },
        d.instance.name,
        from.name(),
        to.name()
    ));
    artifact::ensure_release(l, &target, Some(&fetcher)).map_err(|e| {
        let hint = if e.exit() == Exit::Download {
            format!(
                "\nNo network? Download {} on another machine, copy it here and run: vikunja-installer update \
                 --version {to_version} --artifact FILE",
                target.artifact_url()
            )
        } else {
            String::new()
        };
        fail(e.exit(), format!("{e}{hint}\nnothing was changed"))
    })?;
    p.say(&format!("release {to_version} verified in {}", l.release_dir(&to_version).display()));

    let id = operation_id(&d.instance.name);
    let backup = l.backups_dir().join(dbbackup::file_name(d, &format!("pre-{op}-{id}")));
    let mut j = Journal::new(op, id, (from, &from_version), (to, &to_version), &backup, None);
    j.advance(l, Step::Started)?;
    let gate = (|| -> Result<(bool, Vec<health::Component>)> {
        j.advance(l, Step::Frozen)?;
        ctx.route(from, true)?;
        let frozen_at = Instant::now();
        p.say(&format!("writes frozen (reads still served by {})", from.name()));
        let nginx_check = nginx::spawn_check(l, inst.init)?;
        j.migrations_before = dbbackup::migrations(l, d);
        dbbackup::backup(l, d, &backup)?;
        j.advance(l, Step::BackedUp)?;
        p.say(&format!("database backed up to {}", backup.display()));
        j.advance(l, Step::Starting)?;
        let ctx_to = Ctx::new(l, &target, inst.init);
        ctx_to.colours.start(to, &to_version)?;
        p.say(&format!("{} started with {to_version}; health gate (timeout {} s)", to.name(), d.health.timeout_s));
        let r = ctx_to.colours.gate(to, &to_version);
        p.say(&format!(
            "health gate: {} after {:.2} s of write freeze",
            if r.0 { "passed" } else { "FAILED" },
            frozen_at.elapsed().as_secs_f64()
        ));
        nginx::checked(nginx_check)?;
        Ok(r)
    })();
    let ctx_to = Ctx::new(l, &target, inst.init);
    settle(&ctx, &ctx_to, &mut j, gate, started, &p)?;
    if restarting {
        say!("Restarted instance {} (Vikunja {to_version}) on {} without downtime.", d.instance.name, to.name());
    } else {
        say!(
            "Updated instance {} to Vikunja {to_version}; `vikunja-installer rollback` goes back to {from_version}.",
            d.instance.name
        );
    }
    Ok(())
}

/// After the health gate: switch and finish when healthy; otherwise undo and report exit 11 (12
/// when undoing failed). Shared by update and rollback, which differ only before the gate.
pub(super) fn settle(
    ctx: &Ctx,
    ctx_to: &Ctx,
    j: &mut Journal,
    gate: Result<(bool, Vec<health::Component>)>,
    started: Instant,
    p: &Progress,
) -> Result<()> {
    let (op, from, to) = (j.operation.clone(), j.from_version.clone(), j.to_version.clone());
    let why = match gate {
        Ok((true, _)) => {
            j.advance(ctx.l, Step::Switched)?;
            finish(ctx_to, j, p).map_err(|e| {
                fail(
                    Exit::RollbackFailed,
                    format!(
                        "traffic is on {} ({}), but finishing the {} failed: {e:#}\nWhat to do: fix the cause above, \
                         then run `vikunja-installer status` to finish it (the journal {} records where it stopped)",
                        j.to_colour.name(),
                        j.to_version,
                        j.operation,
                        crate::engine::journal::path(ctx.l).display()
                    ),
                )
            })?;
            if let Err(e) = record(ctx.l, j, started, "success") {
                note!("warning: could not record the operation in state/last-operation: {e:#}");
            }
            return Ok(());
        }
        Ok((false, report)) => {
            health::print_report(&report);
            format!(
                "Vikunja {to} did not become healthy on {} within {} s (see above); it was stopped",
                j.to_colour.name(),
                ctx.d.health.timeout_s
            )
        }
        Err(e) => {
            p.say(&format!("{op} failed: {e:#}"));
            format!("the {op} to {to} failed: {e:#}")
        }
    };
    undo(ctx, j, p).map_err(|e| undo_failed(ctx, j, e))?;
    record(ctx.l, j, started, "failed, rolled back")?;
    Err(fail(
        Exit::RolledBack,
        format!(
            "{why}; {from} kept serving on {} and nothing was lost. Logs: {}",
            j.from_colour.name(),
            ctx.l.logs_dir().display()
        ),
    ))
}
