//! `backup`, `backup list` and `backup verify`.
//!
//! A backup is one archive (see `archive`): a consistent database dump (the one temporary copy:
//! SQLite `VACUUM INTO`, `pg_dump -Fc`, `mysqldump --single-transaction`, through `dbbackup`), then
//! config (secrets included), state and attachments streamed straight from disk through sha256,
//! tar, a parallel gzip and optionally age into `.<name>.partial-<pid>`, fsynced and only then
//! renamed to `vikunja-backup-<instance>-YYYY-MM-DD-HH-MM-SS.tar.gz[.age]`: a crashed backup never
//! looks like a good one, and `state/backup-journal` lets the next command delete its leftovers.
//! Memory stays flat whatever the data size. After a good backup, the newest `retention.backups`
//! of the instance are kept.
//!
//! Attachments are read while Vikunja keeps running: one uploaded after the dump is in the archive
//! without a database row (harmless); one deleted meanwhile is reported as skipped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use manifests::time::{format_rfc3339, now_unix};
use manifests::Exit;

use crate::data::archive::{self, Header, Manifest, Skipped};
use crate::data::crypt::{Seal, Unlock};
use crate::data::dbbackup;
use crate::data::pargz::ParGzWriter;
use crate::error::fail;
use crate::instance::config::DbType;
use crate::instance::layout::Layout;
use crate::instance::state::{self, LastOperation};
use crate::instance::Instance;

/// gzip level 1: on attachments (mostly compressed already: images, PDFs, office files) higher
/// levels cost several times the CPU for a few percent; text and the dump still shrink 3-5x.
const GZIP_LEVEL: u32 = 1;

pub struct Options {
    pub seal: Option<Seal>,
    pub include_logs: bool,
    pub output: Option<PathBuf>,
}

// ---------------------------------------------------------------- what is backed up

fn is_temp(rel: &Path) -> bool {
    let name = rel.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    name.starts_with('.') && (name.contains(".tmp-") || name.contains(".partial") || name.starts_with(".mysql-client-"))
}

/// Files under `config/` that belong to this machine's nginx, not to the settings: the private
/// nginx of `--init process` (its main file is rendered for the init mode, so a backup from a
/// systemd machine restores onto a process one and back), its pid and scratch directories.
pub fn skip_config(rel: &Path, _is_dir: bool) -> bool {
    let s = rel.to_string_lossy();
    matches!(s.as_ref(), "nginx/nginx.conf" | "nginx/nginx.pid" | "nginx/tmp" | "nginx/logs") || is_temp(rel)
}

/// State that describes this machine or an operation in progress, never the deployment: locks,
/// journals, caches, nginx's temp files and what it last applied, the init mode, Debian's default
/// site put aside, a `stop`.
pub fn skip_state(rel: &Path, _is_dir: bool) -> bool {
    let top = rel.components().next().map(|c| c.as_os_str().to_string_lossy().into_owned()).unwrap_or_default();
    matches!(
        top.as_str(),
        "locks"
            | "journal"
            | "restore-journal"
            | "backup-journal"
            | "rollback-point"
            | "nginx-temp"
            | "nginx-applied-upstream.conf"
            // The write freeze's flag: a restore swapping it away would lift the freeze it runs under.
            | "writes-frozen"
            | "health-cache.json"
            // The machine's counters and metrics (issue 17), not the instance's: a restore must not
            // turn `_total` counters back.
            | "observe"
            | "metrics.prom"
            | "init"
            | "nginx-default-site.disabled"
            // Whether the services run here now (`stop`): a restored instance runs.
            | "stopped"
    ) || is_temp(rel)
}

/// Supervisor pid files live beside the logs; they name processes of this machine only.
pub fn skip_logs(rel: &Path, is_dir: bool) -> bool {
    !is_dir && rel.extension().is_some_and(|e| e == "pid")
}

// ---------------------------------------------------------------- names

const PREFIX: &str = "vikunja-backup-";

/// `vikunja-backup-<instance>-YYYY-MM-DD-HH-MM-SS.tar.gz`
pub fn file_name(instance: &str, unix: i64, encrypted: bool) -> String {
    let stamp = format_rfc3339(unix).trim_end_matches('Z').replace(['T', ':'], "-");
    format!("{PREFIX}{instance}-{stamp}.tar.gz{}", if encrypted { ".age" } else { "" })
}

/// The time stamp of one of this instance's backup names, if it is one.
fn stamp_of<'a>(instance: &str, name: &'a str) -> Option<&'a str> {
    let rest = name.strip_prefix(PREFIX)?.strip_prefix(instance)?.strip_prefix('-')?;
    let stamp = rest.strip_suffix(".tar.gz.age").or_else(|| rest.strip_suffix(".tar.gz"))?;
    let ok = stamp.len() == 19
        && stamp
            .char_indices()
            .all(|(i, c)| if [4, 7, 10, 13, 16].contains(&i) { c == '-' } else { c.is_ascii_digit() });
    ok.then_some(stamp)
}

/// This instance's backups in `dir`, newest first.
pub fn backups_in(dir: &Path, instance: &str) -> Vec<PathBuf> {
    let mut v: Vec<(String, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let stamp = stamp_of(instance, &name)?.to_string();
            e.file_type().ok()?.is_file().then(|| (stamp, e.path()))
        })
        .collect();
    v.sort();
    v.into_iter().rev().map(|(_, p)| p).collect()
}

// ---------------------------------------------------------------- interrupted backups

fn journal_path(l: &Layout) -> PathBuf {
    crate::engine::journal::path(l)
}

/// Deletes what a killed backup left (its partial archive and database dump), as recorded in
/// `journal`; says so. Called by `recovery`.
pub fn cleanup_interrupted(_l: &Layout, journal: &Path) {
    let Ok(kv) = state::read_kv(journal) else { return };
    let (Some(dir), Some(stem)) = (state::get(&kv, "dir"), state::get(&kv, "stem")) else {
        let _ = fs::remove_file(journal);
        return;
    };
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        // `.NAME.partial-PID`, `.NAME.database-PID.EXT` and dbbackup's `..NAME.database-PID.EXT.partial`.
        let ours = name.starts_with('.') && name.trim_start_matches('.').starts_with(stem);
        if ours && fs::remove_file(e.path()).is_ok() {
            eprintln!("removed {} left by an interrupted backup", e.path().display());
        }
    }
    let _ = fs::remove_file(journal);
}

// ---------------------------------------------------------------- backup

/// The archive file, handing each written stretch to the disk right away (without waiting), so
/// the fsync at the end waits for the last stretch only instead of the whole archive.
struct Writeback {
    file: File,
    written: u64,
    handed: u64,
}

const WRITEBACK_STRETCH: u64 = 32 << 20;

impl Write for Writeback {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.file.write(b)?;
        self.written += n as u64;
        if self.written - self.handed >= WRITEBACK_STRETCH {
            use std::os::fd::AsRawFd;
            // SAFETY: sync_file_range(2) takes the descriptor of a file we own and keep open, and integers.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.handed as i64,
                    (self.written - self.handed) as i64,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.handed = self.written;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The file, then (optionally) age, under the gzip stream.
enum Out {
    Plain(BufWriter<Writeback>),
    Sealed(age::stream::StreamWriter<BufWriter<Writeback>>),
}

impl Write for Out {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Out::Plain(w) => w.write(b),
            Out::Sealed(w) => w.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Out::Plain(w) => w.flush(),
            Out::Sealed(w) => w.flush(),
        }
    }
}

impl Out {
    fn finish(self) -> io::Result<File> {
        let buffered = match self {
            Out::Plain(w) => w,
            Out::Sealed(w) => w.finish()?,
        };
        Ok(buffered.into_inner().map_err(|e| e.into_error())?.file)
    }
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub struct Made {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub size: u64,
    pub removed: Vec<PathBuf>,
}

pub fn run(inst: &Instance, o: &Options) -> Result<Made> {
    let begun = crate::engine::recovery::begin(inst, "backup")?;
    let inst = &begun.inst;
    let l = &inst.layout;
    if let crate::engine::lifecycle::Verdict::Refuse(code, msg) = crate::engine::lifecycle::check(
        crate::engine::lifecycle::Op::Backup,
        &l.instance,
        &crate::engine::lifecycle::Snapshot::read(l, || None),
    ) {
        return Err(fail(code, msg));
    }
    let d = &inst.deployment;
    let started = Instant::now();
    let started_at = format_rfc3339(now_unix());
    let deployed = state::deployed(l).ok_or_else(|| {
        fail(Exit::Error, format!("instance {} has no deployed version yet; run vikunja-installer install", l.instance))
    })?;
    let colour = state::active_colour(l).unwrap_or(deployed.colour);
    let out_dir = o.output.clone().unwrap_or_else(|| l.backups_dir());
    if !out_dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&out_dir)
            .with_context(|| format!("create the backup directory {}", out_dir.display()))?;
    }
    // Two backups in the same second would get the same name: the second waits for the next one.
    let (mut unix, encrypted) = (now_unix(), o.seal.is_some());
    while out_dir.join(file_name(&l.instance, unix, encrypted)).exists() {
        std::thread::sleep(std::time::Duration::from_millis(200));
        unix = now_unix();
    }
    let name = file_name(&l.instance, unix, encrypted);
    let dest = out_dir.join(&name);
    let tmp = out_dir.join(format!(".{name}.partial-{}", std::process::id()));
    let db_tmp =
        out_dir.join(format!(".{}", dbbackup::file_name(d, &format!("{name}.database-{}", std::process::id()))));
    state::write_kv(
        &journal_path(l),
        &[
            ("operation", "backup".into()),
            ("dir", out_dir.to_string_lossy().into_owned()),
            ("stem", name.clone()),
            ("started", started_at.clone()),
        ],
    )
    .context("write state/journal")?;
    let result = write_archive(l, d, o, &deployed.version, colour.name(), unix, &tmp, &db_tmp);
    let _ = fs::remove_file(&db_tmp);
    let (manifest, skipped) = match result {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(journal_path(l));
            return Err(e);
        }
    };
    fs::rename(&tmp, &dest).with_context(|| format!("rename {} to {}", tmp.display(), dest.display()))?;
    File::open(&out_dir).and_then(|f| f.sync_all()).with_context(|| format!("fsync {}", out_dir.display()))?;
    let _ = fs::remove_file(journal_path(l));
    let size = fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
    for s in &skipped {
        eprintln!("warning: not in the backup: {} ({})", s.path.display(), s.why);
    }
    let removed = retention(&out_dir, &l.instance, d.retention.backups.max(1) as usize, &dest);
    state::record_operation(
        l,
        &LastOperation {
            operation: "backup".into(),
            started: started_at,
            duration_ms: started.elapsed().as_millis() as u64,
            result: "success".into(),
        },
    )?;
    Ok(Made { path: dest, manifest, size, removed })
}

/// `backup --json`: the file written, with the names `status` and `health` use for the rest.
pub fn made_json(m: &Made, encrypted: bool) -> serde_json::Value {
    let h = &m.manifest.header;
    let sha256 = File::open(&m.path).and_then(manifests::hash::sha256_reader).map(|(h, _)| h).unwrap_or_default();
    serde_json::json!({
        "schema": crate::service::status::JSON_SCHEMA,
        "instance": h.instance,
        "version": h.vikunja_version,
        "colour": h.colour,
        "database": h.database,
        "created": h.created,
        "encrypted": encrypted,
        "file": {"path": m.path.to_string_lossy(), "size": m.size, "sha256": sha256},
        "removed": m.removed.iter().map(|r| r.to_string_lossy().into_owned()).collect::<Vec<_>>(),
    })
}

pub fn print_made(m: &Made, seal: Option<&Seal>, elapsed: f64) {
    let h = &m.manifest.header;
    println!(
        "Backup of instance {} (Vikunja {}, {}) written to {}",
        h.instance,
        h.vikunja_version,
        h.database,
        m.path.display()
    );
    println!(
        "  {} files, {} of data -> {} archive in {elapsed:.1} s; {}",
        m.manifest.files(),
        mib(m.manifest.data_bytes()),
        mib(m.size),
        seal.map(crate::data::crypt::describe)
            .unwrap_or_else(|| "not encrypted (it holds secrets: keep it private)".into())
    );
    for r in &m.removed {
        println!("  retention: removed {}", r.display());
    }
}

#[allow(clippy::too_many_arguments)]
fn write_archive(
    l: &Layout,
    d: &crate::instance::config::Deployment,
    o: &Options,
    version: &str,
    colour: &str,
    unix: i64,
    tmp: &Path,
    db_tmp: &Path,
) -> Result<(Manifest, Vec<Skipped>)> {
    let _ = fs::remove_file(db_tmp);
    dbbackup::backup(l, d, db_tmp).map_err(|e| anyhow!("database backup failed, no backup was written: {e}"))?;
    crate::fault::kill_point("backup-dumped");
    let db_entry = format!("database/{}", dbbackup::file_name(d, "vikunja"));
    let header = Header {
        format: archive::FORMAT,
        product: archive::PRODUCT.into(),
        instance: l.instance.clone(),
        vikunja_version: version.into(),
        created: format_rfc3339(unix),
        database: match d.database.kind {
            DbType::Sqlite => "sqlite",
            DbType::Postgres => "postgres",
            DbType::Mysql => "mysql",
        }
        .into(),
        database_entry: db_entry.clone(),
        colour: colour.into(),
        include_logs: o.include_logs,
        installer_version: manifests::build_info::version().to_string(),
    };
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    let buffered = BufWriter::with_capacity(1 << 20, Writeback { file, written: 0, handed: 0 });
    let out = match &o.seal {
        Some(seal) => Out::Sealed(crate::data::crypt::encrypt(buffered, seal)?),
        None => Out::Plain(buffered),
    };
    let io_ctx = |e: io::Error| {
        let hint = if e.raw_os_error() == Some(libc::ENOSPC) {
            "; the disk is full: free space (df -h), lower retention.backups or write elsewhere with --output DIR"
        } else {
            ""
        };
        anyhow!("writing the backup {} failed: {e}{hint}", tmp.display())
    };
    let gz = ParGzWriter::new(out, GZIP_LEVEL, 0).map_err(io_ctx)?;
    let mut w = archive::Writer::new(gz, header).map_err(io_ctx)?;
    let mut skipped = Vec::new();
    w.add_dir("database", 0o700, unix.max(0) as u64).map_err(io_ctx)?;
    w.add_file(&db_entry, db_tmp).map_err(io_ctx)?;
    w.add_tree("config", &l.config_dir(), &skip_config, &mut skipped).map_err(io_ctx)?;
    w.add_tree("state", &l.state_dir(), &skip_state, &mut skipped).map_err(io_ctx)?;
    crate::fault::kill_point("backup-archiving");
    w.add_tree("files", &l.files_dir(), &|_, _| false, &mut skipped).map_err(io_ctx)?;
    if o.include_logs {
        w.add_tree("logs", &l.logs_dir(), &skip_logs, &mut skipped).map_err(io_ctx)?;
    }
    let (gz, manifest) = w.finish().map_err(io_ctx)?;
    let file = gz.finish().and_then(Out::finish).map_err(io_ctx)?;
    file.sync_all().map_err(io_ctx)?;
    Ok((manifest, skipped))
}

/// Keeps the newest `keep` backups of the instance in `dir` (never `just_made`).
fn retention(dir: &Path, instance: &str, keep: usize, just_made: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for old in backups_in(dir, instance).into_iter().skip(keep) {
        if old != just_made && fs::remove_file(&old).is_ok() {
            removed.push(old);
        }
    }
    removed
}

// ---------------------------------------------------------------- list, verify

pub fn list(dir: &Path, instance: &str, json: bool) -> Result<()> {
    let all = backups_in(dir, instance);
    let rows: Vec<serde_json::Value> = all
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
            let size = fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let encrypted = name.ends_with(".age");
            let header = archive::peek_header(p);
            serde_json::json!({
                "file": p.to_string_lossy(),
                "name": name,
                "size": size,
                "encrypted": encrypted,
                "created": header.as_ref().map(|h| h.created.clone()),
                "vikunja_version": header.as_ref().map(|h| h.vikunja_version.clone()),
                "database": header.as_ref().map(|h| h.database.clone()),
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if rows.is_empty() {
        println!("No backups of instance {instance} in {}.", dir.display());
        return Ok(());
    }
    println!("Backups of instance {instance} in {} (newest first):", dir.display());
    for r in &rows {
        let what = match (r["vikunja_version"].as_str(), r["encrypted"].as_bool()) {
            (Some(v), _) => format!("Vikunja {v}, {}", r["database"].as_str().unwrap_or("?")),
            (None, Some(true)) => "encrypted".into(),
            _ => "unreadable header".into(),
        };
        println!("  {:<60} {:>12}  {what}", r["name"].as_str().unwrap_or(""), mib(r["size"].as_u64().unwrap_or(0)));
    }
    Ok(())
}

/// A backup named without a directory is looked for in the instance's backup directory too.
pub fn resolve(file: &Path, l: Option<&Layout>) -> PathBuf {
    if file.exists() || file.components().count() > 1 {
        return file.to_path_buf();
    }
    match l {
        Some(l) if l.backups_dir().join(file).exists() => l.backups_dir().join(file),
        _ => file.to_path_buf(),
    }
}

/// Reads the whole backup: decryption, every entry's size and sha256 against the manifest, the
/// gzip trailer. Changes nothing.
pub fn verify(path: &Path, unlock: &Unlock) -> Result<(Manifest, bool)> {
    let checked = archive::open(path, unlock)
        .and_then(|(r, encrypted)| archive::read(r, None, &mut |_| Ok(())).map(|m| (m, encrypted)));
    checked.map_err(|e| fail(e.exit(), format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_instance_and_time_and_never_match_another_instance() {
        let n = file_name("main", 1_760_887_800, false);
        assert_eq!(n, "vikunja-backup-main-2025-10-19-15-30-00.tar.gz");
        assert_eq!(stamp_of("main", &n), Some("2025-10-19-15-30-00"));
        assert_eq!(stamp_of("main", &file_name("main", 0, true)), Some("1970-01-01-00-00-00"));
        assert_eq!(stamp_of("main", &file_name("main-2", 1_760_887_800, false)), None);
        assert_eq!(stamp_of("main-2", &n), None);
        assert_eq!(stamp_of("main", ".vikunja-backup-main-2025-10-19-15-30-00.tar.gz.partial-1"), None);
        assert_eq!(stamp_of("main", "vikunja-backup-main-2025-10-19-15-30-00.tar.gz.partial"), None);
    }

    #[test]
    fn retention_keeps_the_newest_of_this_instance_only() {
        let dir = std::env::temp_dir().join(format!("retention-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let made: Vec<PathBuf> = (0..4).map(|i| dir.join(file_name("a", 1_700_000_000 + i * 60, i % 2 == 1))).collect();
        for p in &made {
            fs::write(p, b"x").unwrap();
        }
        let other = dir.join(file_name("a-b", 1_700_000_000, false));
        fs::write(&other, b"x").unwrap();
        let removed = retention(&dir, "a", 2, &made[3]);
        assert_eq!(removed, vec![made[1].clone(), made[0].clone()]);
        assert_eq!(backups_in(&dir, "a"), vec![made[3].clone(), made[2].clone()]);
        assert!(other.exists(), "another instance's backup was removed");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn runtime_files_are_left_out() {
        assert!(skip_state(Path::new("locks/operation.lock"), false));
        assert!(skip_state(Path::new("restore-journal"), false));
        assert!(skip_state(Path::new(".active-color.tmp-12"), false));
        assert!(!skip_state(Path::new("deployed-version"), false));
        assert!(skip_config(Path::new("nginx/nginx.pid"), false));
        assert!(!skip_config(Path::new("nginx/site.conf"), false));
        assert!(!skip_config(Path::new(".service-secret"), false));
        assert!(skip_logs(Path::new("vikunja-a-backend-blue.pid"), false));
        assert!(!skip_logs(Path::new("vikunja-a-backend-blue.log"), false));
    }
}
