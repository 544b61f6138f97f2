//! `restore FILE`: the whole backup is decrypted, unpacked into `.restore-<id>/staged` beside the
//! instance and checked against its manifest before anything live is touched; a damaged, truncated,
//! tampered or unsafe archive, or a wrong passphrase, changes nothing (exit 3). Then, under the
//! operation lock: stop the services → (PostgreSQL/MySQL) dump the live database aside → swap each
//! item (attachments directory, SQLite files, every config and state file) with the staged one,
//! the live one moved into `.restore-<id>/aside` (never deleted first) → restore the database from
//! the backup's dump (`dbbackup`) → start the backup's colour and version → health check. Only a
//! healthy result is committed (aside deleted). Any failure puts every item back, restores the
//! dumped database and starts what ran before.
//!
//! `state/restore-journal` records each step before it happens, and the items with whether each
//! existed, so the next command can undo a restore killed at any point (or finish one killed after
//! it was committed): `recover_locked`.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use manifests::time::{format_rfc3339, now_unix};
use manifests::Exit;

use crate::data::archive::{self, Header, Manifest};
use crate::data::contents::{resolve, skip_config, skip_state};
use crate::data::crypt::Unlock;
use crate::data::dbbackup;
use crate::error::fail;
use crate::error::Failed;
use crate::instance::artifact;
use crate::instance::config::{DbType, Deployment};
use crate::instance::layout::Layout;
use crate::instance::state::{self, Colour, Deployed, LastOperation};
use crate::instance::Instance;
use crate::service::colour::Colours;
use crate::service::init::Init;
use crate::service::{health, nginx};

use crate::fault::kill_point;
use crate::report::note;

pub struct Options<'a> {
    pub file: PathBuf,
    pub unlock: Unlock,
    /// Asked once the backup is verified, before anything live changes; `false` cancels. The
    /// engine never prompts: the command answers (`--yes`, or the terminal).
    pub confirm: &'a dyn Fn(&str) -> Result<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum RestoreStep {
    /// Unpacking and verifying into the staging directory: nothing live changed.
    Verifying,
    /// Services are being stopped.
    Stopping,
    /// The live (server) database was dumped aside.
    DbSaved,
    /// Items are being moved aside and replaced.
    Swapping,
    /// The database is being replaced from the backup.
    DbRestoring,
    /// The restored deployment is starting and being checked.
    Starting,
    /// It was healthy: what remains is deleting the aside copies. Recovery finishes from here.
    Committed,
}

const STEPS: [(RestoreStep, &str); 7] = [
    (RestoreStep::Verifying, "verifying"),
    (RestoreStep::Stopping, "stopping"),
    (RestoreStep::DbSaved, "db-saved"),
    (RestoreStep::Swapping, "swapping"),
    (RestoreStep::DbRestoring, "db-restoring"),
    (RestoreStep::Starting, "starting"),
    (RestoreStep::Committed, "committed"),
];

impl RestoreStep {
    fn name(self) -> &'static str {
        STEPS.iter().find(|(s, _)| *s == self).map(|(_, n)| *n).unwrap_or("?")
    }
    fn parse(s: &str) -> Option<RestoreStep> {
        STEPS.iter().find(|(_, n)| *n == s).map(|(s, _)| *s)
    }
}

/// One thing swapped as a unit: a path relative to the instance directory.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    rel: String,
    dir: bool,
    /// It existed before the restore (so it is in `aside` once moved).
    existed: bool,
    /// The backup has it (so it is taken from `staged`).
    staged: bool,
}

#[derive(Debug, Clone)]
struct RestoreJournal {
    id: String,
    started: String,
    step: RestoreStep,
    archive: String,
    work: PathBuf,
    prev_colour: Colour,
    prev_version: String,
    target_colour: Colour,
    target_version: String,
    /// Where the live database was dumped before it was replaced ("" for SQLite: its files are items).
    db_dump: String,
    items: Vec<Item>,
}

fn journal_path(l: &Layout) -> PathBuf {
    crate::engine::journal::path(l)
}

impl RestoreJournal {
    fn staged(&self) -> PathBuf {
        self.work.join("staged")
    }
    fn aside(&self) -> PathBuf {
        self.work.join("aside")
    }

    fn load(l: &Layout) -> Result<Option<RestoreJournal>> {
        let kv = match state::read_kv(&journal_path(l)) {
            Ok(kv) => kv,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow!("read {}: {e}", journal_path(l).display())),
        };
        let bad = |what: &str| {
            anyhow!(
                "{} is damaged ({what}); remove it only after checking the instance by hand",
                journal_path(l).display()
            )
        };
        let field = |k: &str| state::get(&kv, k).map(str::to_string).ok_or_else(|| bad(&format!("no {k}")));
        let colour = |k: &str| state::get(&kv, k).and_then(Colour::parse).ok_or_else(|| bad(&format!("bad {k}")));
        let items = kv
            .iter()
            .filter(|(k, _)| k == "item")
            .map(|(_, v)| {
                let mut f = v.splitn(4, ' ');
                let (Some(kind), Some(existed), Some(staged), Some(rel)) = (f.next(), f.next(), f.next(), f.next())
                else {
                    return Err(bad("bad item"));
                };
                Ok(Item { rel: rel.into(), dir: kind == "dir", existed: existed == "1", staged: staged == "1" })
            })
            .collect::<Result<_>>()?;
        Ok(Some(RestoreJournal {
            id: field("id")?,
            started: field("started")?,
            step: state::get(&kv, "step").and_then(RestoreStep::parse).ok_or_else(|| bad("bad step"))?,
            archive: field("archive")?,
            work: PathBuf::from(field("work")?),
            prev_colour: colour("prev_color")?,
            prev_version: field("prev_version")?,
            target_colour: colour("target_color")?,
            target_version: field("target_version")?,
            db_dump: field("db_dump")?,
            items,
        }))
    }

    fn save(&self, l: &Layout) -> Result<()> {
        let mut kv: Vec<(&str, String)> = vec![
            ("operation", "restore".into()),
            ("id", self.id.clone()),
            ("started", self.started.clone()),
            ("step", self.step.name().into()),
            ("archive", self.archive.clone()),
            ("work", self.work.to_string_lossy().into_owned()),
            ("prev_color", self.prev_colour.name().into()),
            ("prev_version", self.prev_version.clone()),
            ("target_color", self.target_colour.name().into()),
            ("target_version", self.target_version.clone()),
            ("db_dump", self.db_dump.clone()),
        ];
        for i in &self.items {
            let kind = if i.dir { "dir" } else { "file" };
            kv.push(("item", format!("{kind} {} {} {}", u8::from(i.existed), u8::from(i.staged), i.rel)));
        }
        state::write_kv(&journal_path(l), &kv).with_context(|| format!("write {}", journal_path(l).display()))
    }

    /// Records `step` durably before the caller does what it names.
    fn advance(&mut self, l: &Layout, step: RestoreStep) -> Result<()> {
        self.step = step;
        self.save(l)?;
        kill_point(&format!("restore-{}", step.name()));
        Ok(())
    }
}

struct Progress(Instant);
impl Progress {
    /// On stderr: a recovery may run inside `status --json`, whose stdout is for the JSON.
    fn say(&self, msg: &str) {
        note!("[{:>6.2}s] {msg}", self.0.elapsed().as_secs_f64());
    }
}

// ---------------------------------------------------------------- services

/// Starts a colour's units for `version`, routes nginx to it and reloads nginx (the site and
/// certificate may have changed with the config). The restored instance gets reads only
/// (`frozen`) until the restore is committed: a write it acknowledged would be lost if the
/// restore were undone.
fn start(l: &Layout, d: &Deployment, init: Init, c: Colour, version: &str, frozen: bool) -> Result<()> {
    Colours { l, d, init }.start(c, version)?;
    nginx::route(l, d, init, c, frozen)?;
    nginx::check(l, init)?;
    Ok(nginx::start_or_reload(l, init)?)
}

/// A provisioned PostgreSQL role takes the password of the config now in place (the backup's, or
/// put back): on a new machine `install` gave the role another one, and the database restore and
/// Vikunja log in with the file's.
fn provisioned_role(l: &Layout, d: &Deployment) -> Result<()> {
    if d.database.provision {
        crate::service::pgprovision::provision(l, d)
            .map_err(|e| anyhow!("setting the provisioned PostgreSQL role to the restored password: {e}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- items

/// Regular files (and links) under `root`, relative, sorted; `skip` leaves out runtime files.
fn files_under(root: &Path, skip: &dyn Fn(&Path, bool) -> bool) -> Vec<String> {
    fn walk(root: &Path, rel: &Path, skip: &dyn Fn(&Path, bool) -> bool, out: &mut Vec<String>) {
        for e in fs::read_dir(root.join(rel)).into_iter().flatten().flatten() {
            let r = rel.join(e.file_name());
            let Ok(ft) = e.file_type() else { continue };
            if skip(&r, ft.is_dir()) {
                continue;
            }
            if ft.is_dir() {
                walk(root, &r, skip, out);
            } else if let Some(s) = r.to_str() {
                out.push(s.to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), skip, &mut out);
    out.sort();
    out
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Every item a restore swaps: the attachments directory as one, the SQLite files, and each file
/// of config and state that is live now or in the backup. `deployment.toml` goes last, so that
/// until the very end a crashed restore is read with the settings that match what ran.
fn plan(l: &Layout, staged: &Path, cur: &Deployment, restored: &Deployment) -> Vec<Item> {
    let mut items = vec![Item {
        rel: "data/files".into(),
        dir: true,
        existed: exists(&l.files_dir()),
        staged: staged.join("files").is_dir(),
    }];
    if cur.database.kind == DbType::Sqlite || restored.database.kind == DbType::Sqlite {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let rel = format!("data/vikunja.db{suffix}");
            items.push(Item { existed: exists(&l.base.join(&rel)), rel, dir: false, staged: false });
        }
    }
    for (top, live, skip) in [
        ("config", l.config_dir(), &skip_config as &dyn Fn(&Path, bool) -> bool),
        ("state", l.state_dir(), &skip_state),
    ] {
        let mut all = files_under(&live, skip);
        all.extend(files_under(&staged.join(top), skip));
        all.sort();
        all.dedup();
        for rel in all {
            items.push(Item {
                existed: exists(&live.join(&rel)),
                staged: exists(&staged.join(top).join(&rel)),
                rel: format!("{top}/{rel}"),
                dir: false,
            });
        }
    }
    let last = items.iter().position(|i| i.rel == "config/deployment.toml");
    if let Some(i) = last {
        let it = items.remove(i);
        items.push(it);
    }
    items
}

/// Where an item comes from in the staging tree (the archive's `files/` is `data/files`).
fn staged_path(j: &RestoreJournal, item: &Item) -> PathBuf {
    match item.rel.strip_prefix("data/") {
        Some(rest) => j.staged().join(rest),
        None => j.staged().join(&item.rel),
    }
}

fn ids_of(p: &Path) -> Option<(u32, u32)> {
    fs::symlink_metadata(p).ok().map(|m| (m.uid(), m.gid()))
}

/// Gives restored files the owner of what they replace (or of their directory): the service user
/// keeps owning data and its secrets, root the rest, without the archive saying who owns what.
fn chown_tree(p: &Path, ids: (u32, u32)) -> std::io::Result<()> {
    if ids_of(p) != Some(ids) {
        std::os::unix::fs::lchown(p, Some(ids.0), Some(ids.1))?;
    }
    if fs::symlink_metadata(p)?.is_dir() {
        for e in fs::read_dir(p)? {
            chown_tree(&e?.path(), ids)?;
        }
    }
    Ok(())
}

fn mkparent(p: &Path) -> Result<()> {
    if let Some(parent) = p.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(parent)
            .with_context(|| format!("create {}", parent.display()))?;
    }
    Ok(())
}

fn swap_in(l: &Layout, j: &RestoreJournal, item: &Item) -> Result<()> {
    let live = l.base.join(&item.rel);
    let aside = j.aside().join(&item.rel);
    if item.existed && !exists(&aside) {
        mkparent(&aside)?;
        if item.dir || !item.staged {
            fs::rename(&live, &aside)
        } else {
            // A second name first, then the staged file renamed over the live one: the path is
            // never missing, so even a crash here leaves a readable deployment.toml.
            fs::hard_link(&live, &aside)
        }
        .with_context(|| format!("move {} aside", live.display()))?;
    }
    if item.staged {
        mkparent(&live)?;
        let owner = if item.existed { ids_of(&aside) } else { live.parent().and_then(ids_of) };
        let src = staged_path(j, item);
        fs::rename(&src, &live).with_context(|| format!("put {} in place", live.display()))?;
        if let Some(ids) = owner {
            chown_tree(&live, ids).with_context(|| format!("chown {}", live.display()))?;
        }
    } else if item.dir && item.existed {
        // The backup had no attachments directory: an empty one like the old.
        fs::create_dir(&live).with_context(|| format!("create {}", live.display()))?;
        if let Ok(m) = fs::metadata(&aside) {
            let _ = fs::set_permissions(&live, m.permissions());
            let _ = std::os::unix::fs::chown(&live, Some(m.uid()), Some(m.gid()));
        }
    }
    Ok(())
}

fn swap_back(l: &Layout, j: &RestoreJournal, item: &Item) -> Result<()> {
    let live = l.base.join(&item.rel);
    let aside = j.aside().join(&item.rel);
    if exists(&aside) {
        if item.dir && exists(&live) {
            fs::remove_dir_all(&live).with_context(|| format!("remove the restored {}", live.display()))?;
        }
        fs::rename(&aside, &live).with_context(|| format!("put {} back", live.display()))?;
    } else if !item.existed && exists(&live) {
        if item.dir { fs::remove_dir_all(&live) } else { fs::remove_file(&live) }
            .with_context(|| format!("remove the restored {}", live.display()))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- undo, finish, recovery

/// Puts back everything that was before, whatever step the journal reached.
fn undo(l: &Layout, init: Init, j: &RestoreJournal, p: &Progress) -> Result<()> {
    if j.step >= RestoreStep::Stopping {
        let d = Deployment::load(&l.deployment_file())?;
        Colours { l, d: &d, init }.stop_all()?;
        for item in j.items.iter().rev() {
            swap_back(l, j, item)?;
        }
        if !j.items.is_empty() {
            p.say("config, state and attachments put back");
        }
        let d = Deployment::load(&l.deployment_file())?;
        if j.step >= RestoreStep::DbRestoring && !j.db_dump.is_empty() {
            provisioned_role(l, &d)?;
            dbbackup::restore(l, &d, Path::new(&j.db_dump))?;
            p.say(&format!("database put back from {}", j.db_dump));
        }
        let colours = Colours { l, d: &d, init };
        if !colours.running(j.prev_colour)? {
            start(l, &d, init, j.prev_colour, &j.prev_version, false)?;
        }
        let (ok, report) = colours.gate(j.prev_colour, &j.prev_version);
        if !ok {
            health::print_report(&report);
        }
        p.say(&format!(
            "{} ({}) serves again{}",
            j.prev_colour.name(),
            j.prev_version,
            if ok { "" } else { " but is NOT healthy (see above)" }
        ));
    }
    crate::service::freeze::thaw(l)?;
    remove_work(j)?;
    fs::remove_file(journal_path(l)).or_else(ignore_missing)?;
    Ok(())
}

fn ignore_missing(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn remove_work(j: &RestoreJournal) -> Result<()> {
    // Only ever our own hidden directory beside the instance.
    let ours = j.work.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".restore-"));
    if ours {
        fs::remove_dir_all(&j.work).or_else(ignore_missing).with_context(|| format!("remove {}", j.work.display()))?;
    }
    Ok(())
}

/// The restored deployment was healthy: logs of the backup beside the live ones, state recorded,
/// the old copies deleted.
fn finish(l: &Layout, init: Init, j: &RestoreJournal, restored_version: &str) -> Result<()> {
    let d = Deployment::load(&l.deployment_file())?;
    nginx::route(l, &d, init, j.target_colour, false)?;
    let logs = j.staged().join("logs");
    if logs.is_dir() {
        let dest = l.logs_dir().join(format!("restored-{}", j.id));
        mkparent(&dest)?;
        fs::rename(&logs, &dest).with_context(|| format!("move the backup's logs to {}", dest.display()))?;
    }
    let now = format_rfc3339(now_unix());
    // What the restored instance can roll back to: nothing (the backup holds no pre-update copy).
    crate::engine::lifecycle::RollbackPoint::clear(l)?;
    // The restored instance runs and serves: a `stop` from before it no longer holds.
    crate::instance::state::clear_stopped(l)?;
    state::set_active_colour(l, j.target_colour)?;
    state::set_deployed(
        l,
        &Deployed {
            version: restored_version.to_string(),
            timestamp: now,
            colour: j.target_colour,
            deployment_id: state::deployment_id(&l.instance, &j.started),
        },
    )?;
    crate::service::freeze::thaw(l)?;
    remove_work(j)?;
    fs::remove_file(journal_path(l)).or_else(ignore_missing)?;
    Ok(())
}

fn record(l: &Layout, j: &RestoreJournal, started: Instant, result: &str) {
    let _ = state::record_operation(
        l,
        &LastOperation {
            operation: "restore".into(),
            started: j.started.clone(),
            duration_ms: started.elapsed().as_millis() as u64,
            result: result.into(),
        },
    );
}

fn undo_failed(l: &Layout, j: &RestoreJournal, e: anyhow::Error) -> anyhow::Error {
    fail(
        Exit::RollbackFailed,
        format!(
            "putting the previous state back failed: {e:#}\nState: journal {} (step {}); the previous files are in {}, \
             the database dump (if any) in {}. What to do: fix the cause above, then run any vikunja-installer \
             command for this instance (status) to retry putting it back.",
            journal_path(l).display(),
            j.step.name(),
            j.aside().display(),
            if j.db_dump.is_empty() { "-" } else { &j.db_dump },
        ),
    )
}

/// Finishes (once committed) or undoes the restore in the journal. Called by `recovery` only,
/// under the lock.
pub fn recover(l: &Layout, init: Init) -> Result<()> {
    let Some(j) = RestoreJournal::load(l)? else { return Ok(()) };
    let p = Progress(Instant::now());
    let started = Instant::now();
    if j.step == RestoreStep::Committed {
        note!("an interrupted restore of {} had been committed: finishing it", j.archive);
        finish(l, init, &j, &j.target_version)?;
        record(l, &j, started, "finished after an interruption");
    } else {
        note!("an interrupted restore of {} stopped at step {}: undoing it", j.archive, j.step.name());
        undo(l, init, &j, &p).map_err(|e| undo_failed(l, &j, e))?;
        record(l, &j, started, "undone after an interruption");
    }
    Ok(())
}

// ---------------------------------------------------------------- restore

/// Refuses early, before the bulk of the archive is read: another instance's backup, or one of a
/// Vikunja release that is neither running nor present in `releases/`.
fn check_header(h: &Header, l: &Layout, current_version: &str) -> Result<(), Failed> {
    if h.instance != l.instance {
        return Err(Failed {
            code: Exit::Error,
            message: format!(
                "this is a backup of instance {:?}, not {:?}; restore it into that instance with --instance {} \
                 (install one of that name first if this machine has none)",
                h.instance, l.instance, h.instance
            ),
        });
    }
    if h.vikunja_version != current_version && !artifact::binary_path(l, &h.vikunja_version).is_file() {
        return Err(Failed {
            code: Exit::Error,
            message: format!(
                "the backup was made with Vikunja {v}; this instance runs {current_version} and {rel} has no {v}. \
                 Its database must be restored with the release that wrote it: run `vikunja-installer update \
                 --version {v}` first, then this restore again",
                v = h.vikunja_version,
                rel = l.releases_dir().display()
            ),
        });
    }
    Ok(())
}

/// Kills the process after `left` bytes were read (test fault `restore-unpacking`).
struct KillAfter<R> {
    inner: R,
    left: Option<u64>,
}
impl<R: Read> Read for KillAfter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(left) = self.left.as_mut() {
            *left = left.saturating_sub(n as u64);
            if *left == 0 {
                kill_point("restore-unpacking");
            }
        }
        Ok(n)
    }
}

fn same_database(a: &Deployment, b: &Deployment) -> bool {
    let (x, y) = (&a.database, &b.database);
    x.kind == y.kind && (x.kind == DbType::Sqlite || (x.host == y.host && x.port == y.port && x.name == y.name))
}

fn describe_db(d: &Deployment) -> String {
    let db = &d.database;
    match db.kind {
        DbType::Sqlite => "SQLite".into(),
        DbType::Postgres => format!("PostgreSQL {}:{}/{}", db.host, db.port, db.name),
        DbType::Mysql => format!("MySQL {}:{}/{}", db.host, db.port, db.name),
    }
}

pub struct Restored {
    pub manifest: Manifest,
    pub colour: Colour,
}

pub fn run(inst: &Instance, o: &Options) -> Result<Restored> {
    let begun = crate::engine::recovery::begin(inst, "restore")?;
    let inst = &begun.inst;
    if let crate::engine::lifecycle::Verdict::Refuse(code, msg) = crate::engine::lifecycle::check(
        crate::engine::lifecycle::Op::Restore,
        &inst.layout.instance,
        &crate::engine::lifecycle::Snapshot::read(&inst.layout, || None),
    ) {
        return Err(fail(code, msg));
    }
    let l = &inst.layout;
    let init = inst.init;
    let d = &inst.deployment;
    let p = Progress(Instant::now());
    let started = Instant::now();
    let current = state::deployed(l).ok_or_else(|| {
        fail(Exit::Error, format!("instance {} has no deployed version yet; run vikunja-installer install", l.instance))
    })?;
    let prev_colour = state::active_colour(l).unwrap_or(current.colour);
    let file = resolve(&o.file, Some(l));
    let file = fs::canonicalize(&file).unwrap_or(file);
    let id =
        format!("{}-{}", format_rfc3339(now_unix()).replace([':', '-'], "").trim_end_matches('Z'), std::process::id());
    let mut j = RestoreJournal {
        id: id.clone(),
        started: format_rfc3339(now_unix()),
        step: RestoreStep::Verifying,
        archive: file.to_string_lossy().into_owned(),
        work: l.base.join(format!(".restore-{id}")),
        prev_colour,
        prev_version: current.version.clone(),
        target_colour: prev_colour,
        target_version: current.version.clone(),
        db_dump: String::new(),
        items: Vec::new(),
    };
    j.save(l)?;
    let verified = (|| -> Result<Manifest> {
        for dir in [j.work.clone(), j.staged(), j.aside()] {
            fs::DirBuilder::new().mode(0o700).create(&dir).with_context(|| format!("create {}", dir.display()))?;
        }
        p.say(&format!("verifying {} and unpacking it into {}", file.display(), j.staged().display()));
        let checked = archive::open(&file, &o.unlock).and_then(|(r, _)| {
            let left = crate::fault::armed("restore-unpacking").then_some(1 << 20);
            archive::read(KillAfter { inner: r, left }, Some(&j.staged()), &mut |h| {
                check_header(h, l, &current.version)
            })
        });
        checked.map_err(|e| fail(e.exit(), format!("{}: {e}; nothing was changed", file.display())))
    })();
    let cleanup = |j: &RestoreJournal| {
        let _ = remove_work(j);
        let _ = fs::remove_file(journal_path(l));
    };
    let m = match verified {
        Ok(m) => m,
        Err(e) => {
            cleanup(&j);
            return Err(e);
        }
    };
    let h = &m.header;
    let refuse = |j: &RestoreJournal, code: Exit, msg: String| {
        cleanup(j);
        Err(fail(code, format!("{msg}; nothing was changed")))
    };
    let db_staged = j.staged().join(&h.database_entry);
    if !h.database_entry.starts_with("database/") || !db_staged.is_file() {
        return refuse(&j, Exit::Verification, format!("the backup has no database dump {}", h.database_entry));
    }
    let restored = match Deployment::load(&j.staged().join("config/deployment.toml")) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                &j,
                Exit::Verification,
                format!("the backup's config/deployment.toml is missing or invalid: {e}"),
            )
        }
    };
    if !same_database(d, &restored) {
        return refuse(
            &j,
            Exit::Error,
            format!(
                "the backup's database is {}, this instance uses {}: restoring would overwrite a database this \
                 instance does not use. Install the instance with the backup's database settings first",
                describe_db(&restored),
                describe_db(d)
            ),
        );
    }
    if h.vikunja_version != current.version {
        p.say(&format!(
            "the backup is of Vikunja {}; this instance runs {}: release {} is present in {} and will run the restored data",
            h.vikunja_version,
            current.version,
            h.vikunja_version,
            l.releases_dir().display()
        ));
    }
    // The backup's MCP pins may be ones a later install pruned: their environment is built (and
    // each pinned wheel checked) now, before anything live changes, or the restored MCP unit
    // would have no program and the restore would be undone by its health gate.
    if restored.components.mcp {
        match crate::instance::mcp::ensure_installed(l, &restored.components) {
            Ok(true) => p.say(&format!(
                "MCP server {} + {} of the backup installed",
                restored.components.mcp_server, restored.components.mcp_bridge
            )),
            Ok(false) => {}
            Err(e) => return refuse(&j, e.exit(), format!("the backup's MCP component: {e}")),
        }
    }
    j.target_colour = Colour::parse(&h.colour).unwrap_or(prev_colour);
    j.target_version = h.vikunja_version.clone();
    p.say(&format!(
        "backup verified: instance {}, Vikunja {}, {}, made {}; {} files, {:.1} MiB",
        h.instance,
        h.vikunja_version,
        h.database,
        h.created,
        m.files(),
        m.data_bytes() as f64 / (1024.0 * 1024.0)
    ));
    let q = format!(
        "Replace the database, attachments, settings and state of instance {} with this backup? Vikunja stops \
         meanwhile; the current data is kept until the restored instance is healthy, then deleted",
        l.instance
    );
    if !(o.confirm)(&q)? {
        return refuse(&j, Exit::Error, "restore cancelled".into());
    }

    j.advance(l, RestoreStep::Stopping)?;
    let attempt = (|| -> Result<(bool, Vec<health::Component>)> {
        // Writes are refused from here until the commit: whatever answers meanwhile (the old
        // colour draining, the restored one starting on the same port) must not acknowledge a
        // write that an undone restore would lose.
        nginx::route(l, d, init, prev_colour, true)?;
        Colours { l, d, init }.stop_all()?;
        p.say("writes frozen, services stopped");
        if d.database.kind != DbType::Sqlite {
            let dump = j.aside().join(dbbackup::file_name(d, "database-before-restore"));
            dbbackup::backup(l, d, &dump)?;
            j.db_dump = dump.to_string_lossy().into_owned();
            j.advance(l, RestoreStep::DbSaved)?;
            p.say(&format!("live database dumped aside to {}", dump.display()));
        }
        j.items = plan(l, &j.staged(), d, &restored);
        j.advance(l, RestoreStep::Swapping)?;
        for (n, item) in j.items.iter().enumerate() {
            swap_in(l, &j, item)?;
            if n == 0 {
                kill_point("restore-mid-swap");
            }
        }
        p.say(&format!(
            "attachments, config and state swapped in ({} items; the old ones are in {})",
            j.items.len(),
            j.aside().display()
        ));
        j.advance(l, RestoreStep::DbRestoring)?;
        provisioned_role(l, &restored)?;
        dbbackup::restore(l, &restored, &db_staged)?;
        if restored.database.kind == DbType::Sqlite {
            if let Some(ids) = ids_of(&l.data_dir()) {
                for suffix in ["", "-wal", "-shm"] {
                    let f = l.base.join(format!("data/vikunja.db{suffix}"));
                    if exists(&f) {
                        chown_tree(&f, ids)?;
                    }
                }
            }
        }
        p.say(&format!("database restored from the backup ({})", describe_db(&restored)));
        j.advance(l, RestoreStep::Starting)?;
        start(l, &restored, init, j.target_colour, &j.target_version, true)?;
        p.say(&format!("{} started with {}; health check", j.target_colour.name(), j.target_version));
        Ok(Colours { l, d: &restored, init }.gate(j.target_colour, &j.target_version))
    })();
    match attempt {
        Ok((true, _)) => {
            // The restored files must be on disk before the old ones are deleted. Synced only
            // now, so the disk catches up while the services start and are checked.
            sync_fs(&l.base);
            j.advance(l, RestoreStep::Committed)?;
            finish(l, init, &j, &j.target_version)?;
            record(l, &j, started, "success");
            p.say("healthy: restore committed, the previous data deleted");
            Ok(Restored { manifest: m, colour: j.target_colour })
        }
        Ok((false, report)) => {
            health::print_report(&report);
            undo(l, init, &j, &p).map_err(|e| undo_failed(l, &j, e))?;
            record(l, &j, started, "failed, undone");
            Err(fail(
                Exit::Unhealthy,
                format!(
                    "the restored instance did not become healthy within {} s (see above); the previous data was put back \
                     and {} ({}) serves again. Logs: {}",
                    restored.health.timeout_s,
                    j.prev_colour.name(),
                    j.prev_version,
                    l.logs_dir().display()
                ),
            ))
        }
        Err(e) => {
            p.say(&format!("restore failed: {e:#}"));
            undo(l, init, &j, &p).map_err(|e2| undo_failed(l, &j, e2))?;
            record(l, &j, started, "failed, undone");
            Err(fail(
                Exit::Error,
                format!(
                    "restore failed and was undone; {} ({}) serves again: {e:#}",
                    j.prev_colour.name(),
                    j.prev_version
                ),
            ))
        }
    }
}

/// Flushes the restored files to disk once (cheaper than an fsync per file; their writeback was
/// started as each was unpacked), so a power cut after the commit cannot lose them. Before the
/// commit a power cut is harmless: recovery puts the old files back.
fn sync_fs(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs(2) takes a file descriptor we own and keep open for the call.
        unsafe {
            libc::syncfs(f.as_raw_fd());
        }
    }
}
