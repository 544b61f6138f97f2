//! Seeded random sequences of lifecycle operations on one instance, under a read/write load through
//! nginx, with the instance's invariants checked after every step (issue 10):
//! - exactly one colour serves, the one `state/active-color` names, and it is the child of a live
//!   supervisor (not an orphan);
//! - the version nginx serves (`/api/v1/info`) is `state/deployed-version`'s;
//! - every acknowledged write is present, except those made after an update and undone by a
//!   rollback that said it restored the database, and those a restore replaced with its backup;
//! - no two commands in a row exit 1, and the command after each step (`status`) succeeds.
//!
//! `VIKUNJA_SEQ_SEED` (default: the clock) and `VIKUNJA_SEQ_STEPS` (default [`CI_STEPS`]) choose the
//! sequence; the seed is printed first and in every failure, so `VIKUNJA_SEQ_SEED=<seed>` replays
//! it. `cargo xtask soak --steps N --seed S` runs this test with those variables.

mod lifecycle_common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lifecycle_common::*;
use vikunja_e2e::load::Target;
use vikunja_e2e::sandbox::Sandbox;

/// Steps when `VIKUNJA_SEQ_STEPS` is unset: measured at 45 steps a minute on the shared 2-core
/// machine (a step and its checks take 1–7 s), so about 80 s, plus building the stand-in zips and
/// the install: inside the four minutes CI allows.
const CI_STEPS: usize = 60;

/// The kill points the installer honours in `VIKUNJA_INSTALLER_TEST_KILL_AT` (journal steps, the
/// upstream write, restore steps and backup phases). A name the installer no longer knows just
/// lets the operation finish, which the sequence also checks.
const KILL_UPDATE: &[&str] = &[
    "started",
    "frozen",
    "freeze-flag-written",
    "backed-up",
    "starting",
    "switched",
    "upstream-written-green",
    "upstream-written-blue",
    "reload-signalled",
];
const KILL_RESTORE: &[&str] = &[
    "restore-verifying",
    "restore-unpacking",
    "restore-stopping",
    "restore-db-saved",
    "restore-swapping",
    "restore-mid-swap",
    "restore-db-restoring",
    "restore-starting",
    "restore-committed",
];
const KILL_BACKUP: &[&str] = &["backup-dumped", "backup-archiving"];

/// splitmix64: a dependency-free, reproducible generator; quality is plenty for picking steps.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

/// Readers and writers through nginx for the whole sequence. Unlike `vikunja_e2e::load::Load`
/// the acknowledged titles can be read while it runs, so each write is placed before, during or
/// after one step; titles carry the seed so none repeats.
struct Traffic {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<String>>>,
    reads_ok: Arc<AtomicU64>,
    reads_failed: Arc<AtomicU64>,
    threads: Vec<JoinHandle<()>>,
}

impl Traffic {
    fn start(t: &Target, seed: u64) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (reads_ok, reads_failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut threads = Vec::new();
        {
            let (t, stop, ok, failed) = (t.clone(), stop.clone(), reads_ok.clone(), reads_failed.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (code, _) = t.request("GET", "/api/v1/tasks/all", None);
                    if code == 200 { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }));
        }
        for w in 0..2 {
            let (t, stop, acked) = (t.clone(), stop.clone(), acked.clone());
            threads.push(std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let title = format!("s{seed:x}-w{w}-{n}");
                    let (code, _) = t.create_task(&title);
                    if (200..300).contains(&code) {
                        acked.lock().unwrap().push(title);
                    }
                    std::thread::sleep(Duration::from_millis(if code == 503 { 50 } else { 100 }));
                }
            }));
        }
        Traffic { stop, acked, reads_ok, reads_failed, threads }
    }

    fn cut(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn between(&self, from: usize, to: usize) -> Vec<String> {
        self.acked.lock().unwrap()[from..to].to_vec()
    }

    fn stop(self) -> (usize, u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let n = self.acked.lock().unwrap().len();
        (n, self.reads_ok.load(Ordering::Relaxed), self.reads_failed.load(Ordering::Relaxed))
    }
}

/// Which writes must be present, given what the operations said they did.
#[derive(Default)]
struct Model {
    /// Acknowledged and never legitimately undone: must be listed.
    must: BTreeSet<String>,
    /// While there is an update to roll back: the writes acknowledged since it began, which a
    /// rollback that restores the pre-update database may drop (when it says so). None after a
    /// completed rollback: there is nothing to roll back, so no write may be dropped by one.
    since_update: Option<BTreeSet<String>>,
    /// Acknowledged while an operation that may drop them ran: present or not, both are right.
    maybe: BTreeSet<String>,
    /// Complete backups: the archive, the task titles in its database, and whether it was taken
    /// while there was an update to roll back.
    backups: Vec<(PathBuf, Vec<String>, bool)>,
}

impl Model {
    fn keep(&mut self, writes: &[String]) {
        for w in writes {
            self.must.insert(w.clone());
            if let Some(s) = &mut self.since_update {
                s.insert(w.clone());
            }
        }
    }
    fn updated(&mut self, during: &[String]) {
        self.must.extend(during.iter().cloned());
        self.since_update = Some(during.iter().cloned().collect());
    }
    /// A completed rollback; `restored`: it said it restored the database taken before the update.
    fn rolled_back(&mut self, restored: bool, during: &[String]) {
        if restored {
            for w in self.since_update.take().unwrap_or_default() {
                self.must.remove(&w);
                self.maybe.insert(w);
            }
            self.maybe.extend(during.iter().cloned());
        } else {
            self.keep(during);
        }
        self.since_update = None;
    }
    fn restored(&mut self, titles: &[String], had_point: bool, during: &[String]) {
        let was: BTreeSet<String> = std::mem::take(&mut self.must);
        self.maybe.extend(was);
        self.maybe.extend(during.iter().cloned());
        self.must = titles.iter().cloned().collect();
        for t in &self.must {
            self.maybe.remove(t);
        }
        // A backup taken while an update could be rolled back may bring that rollback point back
        // (if its dump is still there), and rolling back to it may drop anything written since
        // that update: the model allows all of it. A backup taken with nothing to roll back
        // leaves nothing to roll back.
        self.since_update = had_point.then(|| self.must.clone());
    }
}

/// The step kinds `VIKUNJA_SEQ_WITHOUT` may name.
const KINDS: &[&str] = &[
    "update",
    "restart",
    "rollback",
    "backup",
    "restore",
    "status",
    "kill-at",
    "kill-after",
    "kill-supervisor",
    "kill-backend",
    "competing",
];

#[derive(Debug, Clone)]
enum Op {
    /// On v2.4.0 an update to v2.5.0. On v2.5.0, `true`: a downgrade by update to v2.4.0 (which
    /// keeps v2.5.0's schema); `false`: `update --version v2.5.0` again, which must change nothing.
    /// One in four downgrades: each keeps v2.5.0's schema for good, which makes the restoring
    /// rollbacks (v2.5.0's schema back to v2.4.0's) rare.
    Update(bool),
    Rollback,
    /// A zero-downtime restart on the same version (moves to the other colour).
    Restart,
    Backup,
    Restore(usize),
    Status,
    /// An operation killed by the installer's own fault hook at a named point.
    KillAt(Box<Op>, &'static str),
    /// An operation killed with a real SIGKILL after a delay (ms).
    KillAfter(Box<Op>, u64),
    /// kill -9 of the serving colour's supervisor (true) or its backend (false).
    KillService(bool),
    /// A second operation started while the first holds the lock: it must exit 5.
    Competing(Box<Op>, Box<Op>),
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Update(_) => "update",
            Op::Rollback => "rollback",
            Op::Restart => "restart",
            Op::Backup => "backup",
            Op::Restore(_) => "restore",
            Op::Status => "status",
            Op::KillAt(..) => "kill-at",
            Op::KillAfter(..) => "kill-after",
            Op::KillService(true) => "kill-supervisor",
            Op::KillService(false) => "kill-backend",
            Op::Competing(..) => "competing",
        }
    }
}

struct Runner {
    seed: u64,
    /// The environment that replays this sequence.
    replay: String,
    sb: Sandbox,
    model: Model,
    traffic: Option<Traffic>,
    /// The previous command exited 1.
    last_was_1: Option<String>,
    step: usize,
    /// The step being run, for failure messages.
    current: String,
    /// A killed restore whose outcome `check` decides: the backup's titles, whether it had a
    /// rollback point, the writes acknowledged during it.
    undecided: Option<(Vec<String>, bool, Vec<String>)>,
    /// The writes acknowledged while the current step (and the `status` after it) ran.
    during_step: BTreeSet<String>,
    /// How many acknowledged writes the model has placed.
    cut: usize,
    log: Vec<String>,
    scratch: PathBuf,
}

impl Runner {
    fn fail(&self, msg: &str) -> ! {
        panic!(
            "{} step {} ({}): {msg}\nthe steps so far:\n  {}",
            self.replay,
            self.step,
            self.current,
            self.log.join("\n  ")
        )
    }

    /// Runs one installer command to its end and checks "no two commands in a row exit 1".
    fn command(&mut self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let o = installer_env(&self.sb, args, env);
        self.exit_seen(args, &o);
        o
    }

    fn exit_seen(&mut self, args: &[&str], o: &Output) {
        let what = format!("`{}` ({})", args.join(" "), describe(o));
        if o.status.code() == Some(1) {
            if let Some(prev) = &self.last_was_1 {
                let msg = format!("two commands in a row exited 1: {prev}, then {what}: {}", stderr(o).trim());
                self.fail(&msg);
            }
            self.last_was_1 = Some(what);
        } else if o.status.signal().is_none() {
            self.last_was_1 = None;
        }
    }

    fn args(&self, op: &Op) -> Vec<String> {
        match op {
            Op::Update(down) => {
                let to = if deployed(&self.sb).1 == V1 || !down { V2 } else { V1 };
                vec!["update".into(), "--version".into(), to.into()]
            }
            Op::Rollback => vec!["rollback".into(), "--yes".into()],
            Op::Restart => vec!["restart".into()],
            Op::Backup => vec!["backup".into()],
            Op::Restore(i) => {
                vec!["restore".into(), self.model.backups[*i].0.to_string_lossy().into_owned(), "--yes".into()]
            }
            _ => vec!["status".into(), "--json".into()],
        }
    }

    /// A random step whose kind `without` does not name.
    fn choose(&self, rng: &mut Rng, without: &[String]) -> Op {
        loop {
            let op = self.choose_any(rng);
            if !without.iter().any(|w| w == op.kind()) {
                return op;
            }
        }
    }

    fn choose_any(&self, rng: &mut Rng) -> Op {
        let plain = |rng: &mut Rng, backups: usize| -> Op {
            match rng.below(if backups > 0 { 4 } else { 3 }) {
                0 => Op::Update(rng.below(4) == 0),
                1 => Op::Rollback,
                2 => Op::Backup,
                _ => Op::Restore(rng.below(backups)),
            }
        };
        let n = self.model.backups.len();
        match rng.below(100) {
            0..=17 => Op::Update(rng.below(4) == 0),
            18..=21 => Op::Restart,
            22..=35 => Op::Rollback,
            36..=47 => Op::Backup,
            48..=57 if n > 0 => Op::Restore(rng.below(n)),
            48..=57 => Op::Backup,
            58..=61 => Op::Status,
            62..=75 => {
                let op = plain(rng, n);
                let point = match op {
                    Op::Update(_) | Op::Rollback => rng.pick(KILL_UPDATE),
                    Op::Restore(_) => rng.pick(KILL_RESTORE),
                    _ => rng.pick(KILL_BACKUP),
                };
                Op::KillAt(Box::new(op), point)
            }
            76..=84 => {
                // Within the operation: a backup takes ~0.3 s here, the others ~1 s.
                let op = plain(rng, n);
                let ms = 20 + rng.below(if matches!(op, Op::Backup) { 300 } else { 1200 }) as u64;
                Op::KillAfter(Box::new(op), ms)
            }
            85..=92 => Op::KillService(rng.below(2) == 0),
            _ => {
                let first = match rng.below(3) {
                    0 => Op::Update(rng.below(4) == 0),
                    1 => Op::Rollback,
                    _ => Op::Backup,
                };
                Op::Competing(Box::new(first), Box::new(plain(rng, n)))
            }
        }
    }

    /// Runs `op` (maybe killed); returns its output and whether it was killed.
    fn run_op(&mut self, op: &Op) -> (Output, bool) {
        match op {
            Op::KillAt(inner, point) => {
                let args = self.args(inner);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let o = self.command(&args, &[("VIKUNJA_INSTALLER_TEST_KILL_AT", point)]);
                let killed = o.status.signal() == Some(9);
                (o, killed)
            }
            Op::KillAfter(inner, ms) => {
                let args = self.args(inner);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let child =
                    command(&self.sb, &args, &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
                let pid = child.id();
                let deadline = Instant::now() + Duration::from_millis(*ms);
                let mut child = child;
                while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if child.try_wait().unwrap().is_none() {
                    kill9(pid);
                }
                let o = child.wait_with_output().unwrap();
                log(&args, &o);
                self.exit_seen(&args, &o);
                let killed = o.status.signal() == Some(9);
                (o, killed)
            }
            _ => {
                let args = self.args(op);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                (self.command(&args, &[]), false)
            }
        }
    }

    fn step(&mut self, op: Op) {
        let before = deployed(&self.sb);
        let backups_before = backups(&self.sb);
        let traffic = self.traffic.take().unwrap();
        let c0 = traffic.cut();
        self.model.keep(&traffic.between(self.cut, c0));
        self.traffic = Some(traffic);
        let started = Instant::now();
        let mut outcome: Option<(Op, Output, bool)> = None;
        let mut rebaseline = false;
        match &op {
            Op::KillService(supervisor) => {
                let colour = before.0.clone();
                let Some((sup, child)) = pid_file(&self.sb, &colour) else {
                    self.fail(&format!("no pid file for the serving colour {colour}"));
                };
                if *supervisor {
                    kill9(sup);
                    // Its backend must die with it; the invariants name an orphan if not.
                    wait_dead(child, Duration::from_secs(3));
                } else {
                    kill9(child);
                    // The supervisor restarts it after RestartSec (5 s).
                    let deadline = Instant::now() + Duration::from_secs(15);
                    std::thread::sleep(Duration::from_secs(1));
                    while version_on(port_of(&self.sb, &colour)).is_none() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
            Op::Competing(first, second) => {
                let args = self.args(first);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let child =
                    command(&self.sb, &args, &[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
                let lock = base(&self.sb).join("state/locks/operation.lock");
                let mut child = child;
                let mut held = false;
                while child.try_wait().unwrap().is_none() {
                    if std::fs::read_to_string(&lock).unwrap_or_default().contains(&format!("PID: {}", child.id())) {
                        held = true;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                if held {
                    let a2 = self.args(second);
                    let a2: Vec<&str> = a2.iter().map(String::as_str).collect();
                    let o2 = installer_env(&self.sb, &a2, &[]);
                    let still = child.try_wait().unwrap().is_none();
                    if still && o2.status.code() != Some(5) {
                        self.fail(&format!(
                            "`{}` while `{}` held the lock exited {} (expected 5): {}",
                            a2.join(" "),
                            args.join(" "),
                            describe(&o2),
                            said(&o2).trim()
                        ));
                    }
                    if still {
                        self.log.push(format!("    competing `{}` refused with 5", a2.join(" ")));
                    } else if o2.status.code() != Some(5) {
                        // The first finished before the second asked for the lock, so the second
                        // ran too, on a state the model did not follow: start over from what is.
                        self.log.push(format!("    `{}` ran after the first finished", a2.join(" ")));
                        rebaseline = true;
                    }
                }
                let o = child.wait_with_output().unwrap();
                log(&args, &o);
                self.exit_seen(&args, &o);
                outcome = Some(((**first).clone(), o, false));
            }
            Op::KillAt(inner, _) | Op::KillAfter(inner, _) => {
                let (o, killed) = self.run_op(&op);
                outcome = Some(((**inner).clone(), o, killed));
            }
            Op::Status => {}
            _ => {
                let (o, _) = self.run_op(&op);
                outcome = Some((op.clone(), o, false));
            }
        }
        // The next command: it recovers whatever was interrupted and must succeed.
        let st = self.command(&["status", "--json"], &[]);
        let c1 = self.traffic.as_ref().unwrap().cut();
        let during = self.traffic.as_ref().unwrap().between(c0, c1);
        self.during_step = during.iter().cloned().collect();
        self.cut = c1;
        let after = deployed(&self.sb);
        let mut entry = format!("{op:?} [{:.1}s]", started.elapsed().as_secs_f64());
        if let Some((inner, o, killed)) = &outcome {
            entry.push_str(&format!(" -> {}{}", describe(o), if *killed { " (killed)" } else { "" }));
            self.account(inner, o, *killed, &before, &after, &backups_before, &during);
        } else {
            self.model.keep(&during);
        }
        entry.push_str(&format!(" => {} {}", after.0, after.1));
        self.log.push(entry);
        if rebaseline {
            let present: BTreeSet<String> = self.titles().into_iter().collect();
            self.model.maybe.clear();
            self.model.since_update = Some(present.clone());
            self.model.must = present;
        }
        if !st.status.success() {
            self.fail(&format!("`status` after the step exited {}: {}", describe(&st), stderr(&st).trim()));
        }
        self.check();
    }

    #[allow(clippy::too_many_arguments)]
    fn account(
        &mut self,
        op: &Op,
        o: &Output,
        killed: bool,
        before: &(String, String),
        after: &(String, String),
        backups_before: &[PathBuf],
        during: &[String],
    ) {
        let text = said(o);
        match op {
            Op::Update(_) if after.1 != before.1 => self.model.updated(during),
            // A killed rollback announced the restore before it began; its recovery finished it.
            Op::Rollback if after != before => {
                self.model.rolled_back(killed || text.contains("database restored"), during)
            }
            Op::Backup => {
                self.model.keep(during);
                for new in backups(&self.sb).into_iter().filter(|b| !backups_before.contains(b)) {
                    let titles = backup_titles(&new, &self.scratch);
                    let had_point = self.model.since_update.is_some();
                    self.model.backups.push((new, titles, had_point));
                }
            }
            Op::Restore(i) => {
                let (_, titles, had_point) = self.model.backups[*i].clone();
                if killed {
                    // Undone or finished: the data says which, read once in `check`.
                    self.undecided = Some((titles, had_point, during.to_vec()));
                    return;
                }
                let finished = o.status.success();
                if finished {
                    self.model.restored(&titles, had_point, during);
                } else {
                    self.model.keep(during);
                }
            }
            _ => self.model.keep(during),
        }
    }

    fn titles(&self) -> Vec<String> {
        target(&self.sb).task_titles().unwrap_or_else(|e| self.fail(&format!("listing tasks through nginx: {e}")))
    }

    fn check(&mut self) {
        let v = serving_violations(&self.sb);
        if !v.is_empty() {
            self.fail(&v.join("; "));
        }
        let present: BTreeSet<String> = self.titles().into_iter().collect();
        if let Some((titles, had_point, during)) = self.undecided.take() {
            // A killed restore, recovered: undone keeps every write the model requires; finished
            // holds every task of the backup.
            let lost_if_undone: Vec<&String> = self.model.must.difference(&present).collect();
            let lost_if_finished: Vec<&String> = titles.iter().filter(|t| !present.contains(*t)).collect();
            if lost_if_undone.is_empty() {
                self.model.keep(&during);
            } else if lost_if_finished.is_empty() {
                self.model.restored(&titles, had_point, &during);
            } else {
                self.fail(&format!(
                    "after the killed restore and its recovery the database is neither the one before the \
                     restore ({} acknowledged writes missing: {:?}) nor the backup's ({} of its {} tasks missing: {:?})",
                    lost_if_undone.len(),
                    &lost_if_undone[..lost_if_undone.len().min(8)],
                    lost_if_finished.len(),
                    titles.len(),
                    &lost_if_finished[..lost_if_finished.len().min(8)]
                ));
            }
        }
        let lost: Vec<&String> = self.model.must.difference(&present).collect();
        if !lost.is_empty() {
            let (during, before): (Vec<&String>, Vec<&String>) =
                lost.iter().partition(|w| self.during_step.contains(**w));
            self.fail(&format!(
                "{} acknowledged writes are missing (none was undone by a rollback or restore that said so): \
                 {} acknowledged while this step ran {:?}, {} before it {:?}",
                lost.len(),
                during.len(),
                &during[..during.len().min(8)],
                before.len(),
                &before[..before.len().min(8)]
            ));
        }
        let probe = format!("s{:x}-probe-{}", self.seed, self.step);
        let (code, body) = target(&self.sb).create_task(&probe);
        if !(200..300).contains(&code) {
            self.fail(&format!("a write through nginx after the step answered {code}: {}", body.trim()));
        }
        self.model.keep(&[probe]);
    }
}

/// Runs `steps` random steps from `seed`; panics with the seed and the steps so far on the first
/// broken invariant. The entry point for `cargo xtask soak` (through this test binary's env).
pub fn run_sequence(seed: u64, steps: usize, without: &[String]) {
    for w in without {
        assert!(KINDS.contains(&w.as_str()), "VIKUNJA_SEQ_WITHOUT: no step kind {w:?} (kinds: {})", KINDS.join(", "));
    }
    assert!(without.len() < KINDS.len(), "VIKUNJA_SEQ_WITHOUT leaves no step to run");
    eprintln!("sequence: VIKUNJA_SEQ_SEED={seed} VIKUNJA_SEQ_STEPS={steps} VIKUNJA_SEQ_WITHOUT={}", without.join(","));
    let mut rng = Rng(seed);
    let sb = Sandbox::new("lc-seq").unwrap();
    let o = install(&sb, V1);
    assert!(o.status.success(), "VIKUNJA_SEQ_SEED={seed}: install failed: {}", said(&o));
    let scratch = sb.root.join("seq-scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let traffic = Traffic::start(&target(&sb), seed);
    let mut r = Runner {
        seed,
        replay: if without.is_empty() {
            format!("VIKUNJA_SEQ_SEED={seed}")
        } else {
            format!("VIKUNJA_SEQ_SEED={seed} VIKUNJA_SEQ_WITHOUT={}", without.join(","))
        },
        sb,
        model: Model::default(),
        traffic: Some(traffic),
        last_was_1: None,
        step: 0,
        current: "install".into(),
        undecided: None,
        during_step: BTreeSet::new(),
        cut: 0,
        log: vec!["install v2.4.0".into()],
        scratch,
    };
    r.check();
    let started = Instant::now();
    for i in 1..=steps {
        r.step = i;
        let op = r.choose(&mut rng, without);
        r.current = format!("{op:?}");
        eprintln!("=== VIKUNJA_SEQ_SEED={seed} step {i}/{steps}: {op:?}");
        r.step(op);
    }
    let (acked, reads_ok, reads_failed) = r.traffic.take().unwrap().stop();
    eprintln!(
        "sequence VIKUNJA_SEQ_SEED={seed}: {steps} steps in {:.0} s ({:.1} operations/min), {acked} writes \
         acknowledged, {reads_ok} reads ok, {reads_failed} failed, 0 invariant violations\n  {}",
        started.elapsed().as_secs_f64(),
        steps as f64 * 60.0 / started.elapsed().as_secs_f64(),
        r.log.join("\n  ")
    );
}

#[test]
fn random_lifecycle_sequences_keep_the_invariants() {
    let seed = std::env::var("VIKUNJA_SEQ_SEED").ok().and_then(|s| s.trim().parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    let steps = std::env::var("VIKUNJA_SEQ_STEPS").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(CI_STEPS);
    // Leaves out step kinds (comma-separated, e.g. `kill-supervisor`), to look past a known bug.
    let without: Vec<String> = std::env::var("VIKUNJA_SEQ_WITHOUT")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    run_sequence(seed, steps, &without);
}
