//! Figures of `backup` and `restore` on 1 GiB of attachments plus a database of 10 000 tasks, each
//! next to what an admin would use instead on the same tree in the same run: `tar czf`, tar with
//! `pigz -1` (our format and level, every core) and tar with `zstd -T0` (vzdump's compressor), with
//! peak memory (`/usr/bin/time -v`).
//!
//! One sandbox instance (the stand-in, SQLite, --init process) gets its tasks and attachments
//! through nginx like a user's: three quarters of the attachment bytes are random (photos, PDFs and
//! office files are compressed already), one quarter is text. Runs alternate ours and the
//! reference after one warm-up of each, so both read from the page cache.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use vikunja_e2e::load::Target;
use vikunja_e2e::sandbox::{standin_zips, Sandbox};

use crate::bench::{timed_ok, Figure, Stats};

const VIKUNJA: &str = "v2.5.0";
const INSTANCE: &str = "bench";
const GIB: u64 = 1 << 30;
const ATTACHMENT: usize = 8 << 20;
const TASKS: usize = 10_000;
const RATIO_GOAL: f64 = 1.0;
const MEMORY_GOAL_KIB: u64 = 64 * 1024;
/// The seed: backups 1-3 min, restore under 5 min (10k tasks, 1 GB of attachments).
const BACKUP_SEED: Duration = Duration::from_secs(180);
const RESTORE_SEED: Duration = Duration::from_secs(300);

/// The command under `/usr/bin/time -v`, so its peak resident memory can be read from stderr.
fn measured(program: &Path) -> Result<Command> {
    ensure!(Path::new("/usr/bin/time").is_file(), "/usr/bin/time is missing: apt-get install -y time");
    let mut c = Command::new("/usr/bin/time");
    c.arg("-v").arg(program).stdin(Stdio::null());
    Ok(c)
}

fn peak_kib(out: &std::process::Output) -> Result<u64> {
    let err = String::from_utf8_lossy(&out.stderr);
    err.lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no peak memory in /usr/bin/time's output:\n{err}"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Text-like bytes: words from a small vocabulary, compressible about 3-4x like documents.
fn text(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "task",
        "project",
        "done",
        "review",
        "meeting",
        "notes",
        "the",
        "a",
        "deadline",
        "follow-up",
        "budget",
        "draft",
        "release",
        "bug",
        "customer",
        "report",
        "and",
        "of",
        "to",
        "monday",
        "invoice",
        "plan",
        "team",
        "ok",
    ];
    let mut s = seed | 1;
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(WORDS[(s % WORDS.len() as u64) as usize].as_bytes());
        out.push(if s.is_multiple_of(11) { b'\n' } else { b' ' });
        if s.is_multiple_of(97) {
            out.extend_from_slice(format!("{s:x} ").as_bytes());
        }
    }
    out.truncate(n);
    out
}

fn random(n: usize) -> Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut v)?;
    Ok(v)
}

fn curl(t: &Target) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--http1.1", "--cacert"]).arg(&t.cacert).args(["--resolve", &t.resolve]);
    c
}

/// 10 000 tasks through nginx in one curl process (one connection, `next` between requests).
fn create_tasks(t: &Target, dir: &Path) -> Result<()> {
    let cfg = dir.join("tasks.curl");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&cfg)?);
    for i in 0..TASKS {
        if i > 0 {
            writeln!(f, "next")?;
        }
        writeln!(f, "url = \"{}/api/v1/projects/1/tasks\"", t.base)?;
        writeln!(f, "request = \"PUT\"\nheader = \"Content-Type: application/json\"\noutput = \"/dev/null\"")?;
        writeln!(f, "cacert = \"{}\"\nresolve = \"{}\"\nhttp1.1", t.cacert.display(), t.resolve)?;
        writeln!(f, "data = \"{{\\\"title\\\":\\\"bench task {i} with a title of typical length\\\"}}\"")?;
        writeln!(f, "write-out = \"%{{http_code}}\\n\"")?;
    }
    f.flush()?;
    drop(f);
    let mut c = Command::new("curl");
    c.args(["-sS", "-K"]).arg(&cfg);
    let (_, out) = timed_ok(c, "creating tasks with curl")?;
    let ok = String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.trim() == "201").count();
    ensure!(ok == TASKS, "only {ok} of {TASKS} tasks were created");
    Ok(())
}

/// 1 GiB of attachments through nginx, 8 MiB each, spread over the first tasks.
fn upload_attachments(t: &Target, dir: &Path) -> Result<u64> {
    let file = dir.join("attachment.bin");
    let (mut total, mut i) = (0u64, 0u64);
    while total < GIB {
        let data = if i % 4 == 3 { text(ATTACHMENT, i + 1) } else { random(ATTACHMENT)? };
        std::fs::write(&file, &data)?;
        let mut c = curl(t);
        c.args(["-f", "-o", "/dev/null", "-X", "PUT", "-F"]).arg(format!("files=@{}", file.display())).arg(format!(
            "{}/api/v1/tasks/{}/attachments",
            t.base,
            i + 1
        ));
        timed_ok(c, "uploading an attachment")?;
        total += data.len() as u64;
        i += 1;
    }
    std::fs::remove_file(&file)?;
    Ok(total)
}

fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

struct Rig {
    installer: PathBuf,
    sb: Sandbox,
    work: PathBuf,
}

impl Rig {
    fn base(&self) -> PathBuf {
        self.sb.instance_dir(INSTANCE)
    }

    fn installer(&self, args: &[&str]) -> Result<Command> {
        let mut c = measured(&self.installer)?;
        c.args(args).arg("--root").arg(&self.sb.root);
        Ok(c)
    }

    /// Ours: (wall time, peak KiB, the backup file).
    fn backup(&self, out: &Path) -> Result<(Duration, u64, PathBuf)> {
        let _ = std::fs::remove_dir_all(out);
        let c = self.installer(&["backup", "--output", &out.to_string_lossy()])?;
        let (d, o) = timed_ok(c, "vikunja-installer backup")?;
        let file = std::fs::read_dir(out)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vikunja-backup-")))
            .context("the backup wrote no file")?;
        Ok((d, peak_kib(&o)?, file))
    }

    fn restore(&self, file: &Path) -> Result<(Duration, u64)> {
        let c = self.installer(&["restore", &file.to_string_lossy(), "--yes"])?;
        let (d, o) = timed_ok(c, "vikunja-installer restore")?;
        Ok((d, peak_kib(&o)?))
    }

    /// A reference: the same directories with tar and a compressor (`None`: tar's own `z`, gzip -6).
    fn tar_c(&self, dest: &Path, tool: &Tool) -> Result<(Duration, u64)> {
        let _ = std::fs::remove_file(dest);
        let mut c = measured(Path::new("tar"))?;
        tool.args(&mut c);
        c.arg("-cf").arg(dest).arg("-C").arg(self.base()).args(["config", "data", "state"]);
        let (d, o) = timed_ok(c, &format!("tar -c with {}", tool.name))?;
        Ok((d, peak_kib(&o)?))
    }

    fn tar_x(&self, archive: &Path, tool: &Tool) -> Result<(Duration, u64)> {
        let dest = self.work.join("tar-x");
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::create_dir_all(&dest)?;
        let mut c = measured(Path::new("tar"))?;
        tool.args(&mut c);
        c.arg("-xf").arg(archive).arg("-C").arg(&dest);
        let (d, o) = timed_ok(c, &format!("tar -x with {}", tool.name))?;
        Ok((d, peak_kib(&o)?))
    }
}

/// What an admin would use instead of `backup`/`restore`: tar with a compressor. The compressor
/// runs as tar's child and tar waits for it, so `/usr/bin/time -v tar …` reports the larger of
/// the two peaks (not their sum).
struct Tool {
    /// As the rows name it.
    name: &'static str,
    /// The extracting command, as the restore rows name it.
    extract: &'static str,
    /// `tar -I` program; `None` is tar's built-in `-z` (gzip -6, one core).
    program: Option<&'static str>,
    file: &'static str,
}

impl Tool {
    fn args(&self, c: &mut Command) {
        match self.program {
            Some(p) => c.args(["-I", p]),
            None => c.arg("-z"),
        };
    }
}

const TOOLS: [Tool; 3] = [
    Tool { name: "`tar czf`", extract: "`tar xzf`", program: None, file: "reference.tar.gz" },
    // Same format as ours (gzip), same level, every core.
    Tool {
        name: "`tar` + `pigz -1`",
        extract: "`tar -x` + `pigz -d`",
        program: Some("pigz -1"),
        file: "reference-pigz.tar.gz",
    },
    // What vzdump uses for container backups: zstd at its default level 3 on every core.
    // zstd decompresses on one thread whatever -T says.
    Tool {
        name: "`tar --zstd` (`zstd -T0`)",
        extract: "`tar -x` + `zstd -d`",
        program: Some("zstd -T0"),
        file: "reference.tar.zst",
    },
];

/// One tool's times and peaks over the timed runs.
#[derive(Default)]
struct Measured {
    backup: Vec<Duration>,
    restore: Vec<Duration>,
    peak_kib: u64,
    size: u64,
}

pub fn figures(installer: &Path, runs: usize) -> Result<Vec<Figure>> {
    let zips = standin_zips(&[VIKUNJA])?;
    let zip = zips.join(VIKUNJA).join(format!("vikunja-{VIKUNJA}-linux-amd64-full.zip"));
    let sb = Sandbox::new("bench-backup")?;
    let work = vikunja_e2e::scratch_dir("bench-backup-work")?;
    let cfg = sb.root.join("deployment.toml");
    let text_cfg = sb.config(INSTANCE, VIKUNJA, "https://127.0.0.1:1/unused", "").replacen(
        "download_base",
        &format!("artifact = \"{}\"\ndownload_base", zip.display()),
        1,
    );
    std::fs::write(&cfg, text_cfg)?;
    let mut c = Command::new(installer);
    c.args(["install", "--init", "process", "--yes", "--root"]).arg(&sb.root).arg("--config").arg(&cfg);
    c.stdin(Stdio::null());
    timed_ok(c, "install")?;
    let rig = Rig { installer: installer.to_path_buf(), sb, work };
    let t = Target::new("vikunja.test", rig.sb.ports.https, rig.base().join("config/ssl/cert.pem"));
    eprintln!("bench: creating {TASKS} tasks and 1 GiB of attachments through nginx");
    create_tasks(&t, &rig.work)?;
    let attached = upload_attachments(&t, &rig.work)?;
    let tree = du(&rig.base().join("config")) + du(&rig.base().join("data")) + du(&rig.base().join("state"));

    let n = runs.clamp(1, 3);
    let ours_dir = rig.work.join("ours");
    let (mut b_ours, mut r_ours) = (Vec::new(), Vec::new());
    let (mut b_peak, mut r_peak) = (0u64, 0u64);
    let mut ours_size = 0u64;
    let mut refs: [Measured; 3] = Default::default();
    for i in 0..=n {
        let (ob, ob_kib, file) = rig.backup(&ours_dir)?;
        let (or, or_kib) = rig.restore(&file)?;
        ours_size = std::fs::metadata(&file)?.len();
        let mut line = format!(
            "bench: backup/restore run {i}: ours {:.1} s / {:.1} s ({} / {})",
            ob.as_secs_f64(),
            or.as_secs_f64(),
            mib(ob_kib),
            mib(or_kib)
        );
        if i > 0 {
            b_ours.push(ob);
            r_ours.push(or);
            b_peak = b_peak.max(ob_kib);
            r_peak = r_peak.max(or_kib);
        }
        for (tool, m) in TOOLS.iter().zip(refs.iter_mut()) {
            let archive = rig.work.join(tool.file);
            let (rb, rb_kib) = rig.tar_c(&archive, tool)?;
            let (rr, rr_kib) = rig.tar_x(&archive, tool)?;
            line.push_str(&format!(", {} {:.1} s / {:.1} s", tool.name, rb.as_secs_f64(), rr.as_secs_f64()));
            m.size = std::fs::metadata(&archive)?.len();
            if i > 0 {
                m.backup.push(rb);
                m.restore.push(rr);
                m.peak_kib = m.peak_kib.max(rb_kib).max(rr_kib);
            }
        }
        eprintln!("{line}");
    }
    // Once more encrypted: age adds ChaCha20-Poly1305 and one scrypt derivation (about 1 s by design).
    let sealed_dir = rig.work.join("sealed");
    let mut c = rig.installer(&["backup", "--encrypt", "--output", &sealed_dir.to_string_lossy()])?;
    c.env("VIKUNJA_BACKUP_PASSPHRASE", "bench passphrase");
    let (sealed, o) = timed_ok(c, "vikunja-installer backup --encrypt")?;
    let sealed_kib = peak_kib(&o)?;
    let _ = std::fs::remove_dir_all(&sealed_dir);
    let titles = t.task_titles().map_err(anyhow::Error::msg)?;
    ensure!(titles.len() == TASKS, "{} of {TASKS} tasks after the restores", titles.len());
    let (bo, ro) = (Stats::of(&mut b_ours), Stats::of(&mut r_ours));
    let secs = |s: &Stats| {
        format!(
            "median {:.1} s (min {:.1}, max {:.1})",
            s.median.as_secs_f64(),
            s.min.as_secs_f64(),
            s.max.as_secs_f64()
        )
    };
    let gib = |b: u64| format!("{:.2} GiB", b as f64 / GIB as f64);
    let common = vec![
        format!(
            "Data: {TASKS} tasks created through nginx (SQLite) and {} of attachments in {} files of {} MiB uploaded \
             through nginx, 3/4 random bytes and 1/4 text; the tree (config, data, state) is {}.",
            gib(attached),
            attached.div_ceil(ATTACHMENT as u64),
            ATTACHMENT >> 20,
            gib(tree)
        ),
        format!(
            "{n} timed runs after one warm-up, ours and the references alternating, all from the page cache; peak \
             memory is the maximum resident set size from /usr/bin/time -v (for tar with a compressor: the larger of \
             tar's and the compressor's, which runs as tar's child)."
        ),
    ];
    let sizes = TOOLS.iter().zip(&refs).map(|(t, m)| format!("{} {}", t.name, gib(m.size))).collect::<Vec<_>>();
    let mut backup_notes = common.clone();
    backup_notes.push(format!(
        "Ours: `vikunja-installer backup --output DIR`: SQLite `VACUUM INTO` dump, then every file streamed once through \
         sha256, tar and gzip level 1 on every core (pigz-style independent 1 MiB chunks; a chunk whose bytes are \
         already random, entropy > 7.99 bits/byte, is stored rather than deflated) into a temp file whose writeback \
         starts every 32 MiB, fsync, rename, retention. Archive {} vs {} (the references do not fsync).",
        gib(ours_size),
        sizes.join(", ")
    ));
    backup_notes.push(format!(
        "Encrypted (`--encrypt`, age with a passphrase): {:.1} s, peak memory {} (one run).",
        sealed.as_secs_f64(),
        mib(sealed_kib)
    ));
    let mut restore_notes = common;
    restore_notes.push(
        "Ours: `vikunja-installer restore FILE --yes`: one pass that inflates (own thread), checks every sha256 against \
         the manifest and unpacks into a staging directory (each file's writeback started as it is closed), stop the \
         backend, swap the attachments directory and each config/state file by rename, restore the database with \
         SQLite's backup API, start, health check, one syncfs, delete the old data. References: `tar -x` of each \
         reference's own archive into an empty directory (no sync, no checksums, nothing stopped or started)."
            .into(),
    );
    let mut out = Vec::new();
    for (what, ours, peak, notes, seed) in [
        ("Backup of 1 GiB of attachments and 10k tasks (SQLite)", &bo, b_peak, &backup_notes, "1-3 min"),
        ("Restore of that backup, health-checked", &ro, r_peak, &restore_notes, "< 5 min"),
    ] {
        let is_backup = what.starts_with("Backup");
        for (k, (tool, m)) in TOOLS.iter().zip(refs.iter_mut()).enumerate() {
            let r = Stats::of(if is_backup { &mut m.backup } else { &mut m.restore });
            let ratio = ours.median.as_secs_f64() / r.median.as_secs_f64();
            let seed_limit = if is_backup { BACKUP_SEED } else { RESTORE_SEED };
            // The first row keeps the name it has always had; the others name their reference.
            let name = if k == 0 { what.to_string() } else { format!("{what}, next to {}", tool.name) };
            // zstd is another format and a better compressor: a row to compare, not a goal.
            let (goal, met) = if tool.name.contains("zstd") {
                ("report (another format; vzdump's)".to_string(), true)
            } else {
                (
                    format!("ratio <= {RATIO_GOAL:.1}, peak memory < 64 MiB (seed: {seed})"),
                    ratio <= RATIO_GOAL && peak < MEMORY_GOAL_KIB && ours.median <= seed_limit,
                )
            };
            let mut notes = if k == 0 { notes.clone() } else { vec![format!("Same runs as \"{what}\"; see there.")] };
            let tool_name = if is_backup { tool.name } else { tool.extract };
            notes.push(format!(
                "Reference {tool_name}: {}, peak memory {}; ratio of medians (ours / reference) {ratio:.2}, peak \
                 memory ratio {:.2}.",
                secs(&r),
                mib(m.peak_kib),
                peak as f64 / m.peak_kib.max(1) as f64
            ));
            out.push(Figure {
                name,
                value: format!("{}, peak memory {}", secs(ours), mib(peak)),
                reference: format!("{tool_name} of the same tree: {}, peak memory {}", secs(&r), mib(m.peak_kib)),
                ratio: Some(ratio),
                goal,
                met,
                notes,
            });
        }
    }
    let (root, work) = (rig.sb.root.clone(), rig.work.clone());
    drop(rig);
    // Several GiB of sandbox, archives and extracted trees: not kept for the next figures.
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_dir_all(work);
    Ok(out)
}
