//! Harness for end-to-end tests of vikunja-pve: real processes on loopback
//! instead of mocks, so the installer is exercised against the same TLS,
//! redirect and proxy behaviour it meets against GitHub.
//!
//! Used by the integration tests in `tests/tests/` and by `cargo xtask demo` /
//! `cargo xtask bench`, which is why it is ordinary library code.

pub mod ca;
pub mod disk;
pub mod evil;
pub mod keepalive;
pub mod load;
pub mod mcp;
pub mod nginx;
pub mod postgres;
pub mod proxy;
pub mod pty;
pub mod sandbox;
mod skip;

use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};

use anyhow::{bail, Context, Result};
pub use skip::skip;

/// A loopback TCP port that was free a moment ago, for servers that must be
/// told their port up front (nginx cannot report an ephemeral one back).
///
/// The port is released before returning, so another process may grab it;
/// callers that bind it must be ready to retry with a fresh one.
///
/// # Panics
/// If no loopback socket can be bound at all, which means the machine cannot
/// run any of these tests.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
    listener.local_addr().expect("local address of a bound listener").port()
}

/// The workspace root, so tests and xtask find `target/` and the other crates
/// without depending on the current directory they were started from.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the vikunja-e2e crate lives one level below the workspace root")
        .to_path_buf()
}

/// A fresh, empty directory `<workspace>/target/e2e/<name>-<pid>-<n>`.
///
/// Kept under `target/` (not `/tmp`) so artefacts of a failed run stay next to
/// the build for inspection and `cargo clean` removes them; the pid and counter
/// keep parallel tests and concurrent runs apart. Dirs of the same `name`
/// left by runs whose process is gone are removed (and their nginx stopped).
pub fn scratch_dir(name: &str) -> Result<PathBuf> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        bail!("scratch_dir: {name:?} is not a plain directory name");
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let base = workspace_root().join("target").join("e2e");
    remove_dead_runs(&base, name);
    let dir = base.join(format!("{name}-{}-{n}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing stale scratch dir {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating scratch dir {}", dir.display()))?;
    Ok(dir)
}

/// Set (to anything) to keep the temp dirs of tests, passed or failed, for inspection.
pub const KEEP_TEST_DIRS: &str = "VIKUNJA_KEEP_TEST_DIRS";

/// A test's [`scratch_dir`] that is removed when dropped, also while a failing test unwinds, so
/// failed runs do not pile up copies under `target/e2e`. With `VIKUNJA_KEEP_TEST_DIRS` set it is
/// kept and its path printed. Drop it after whatever still runs from it (declare it first).
#[derive(Debug)]
pub struct TestDir(PathBuf);

impl TestDir {
    pub fn new(name: &str) -> Result<TestDir> {
        scratch_dir(name).map(TestDir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TestDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<std::ffi::OsStr> for TestDir {
    fn as_ref(&self) -> &std::ffi::OsStr {
        self.0.as_os_str()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        remove_test_dir(&self.0);
    }
}

/// What every test temp dir does when its test ends: removed, or kept and named when
/// `VIKUNJA_KEEP_TEST_DIRS` is set.
pub fn remove_test_dir(dir: &Path) {
    if std::env::var_os(KEEP_TEST_DIRS).is_some() {
        eprintln!("{KEEP_TEST_DIRS}: kept {}", dir.display());
    } else if std::fs::remove_dir_all(dir).is_err() {
        // A service told to stop may still write its last log lines; once more after it did.
        std::thread::sleep(std::time::Duration::from_millis(500));
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Deletes `<name>-<pid>-<n>` dirs left by processes that no longer run, so
/// repeated runs do not pile up copies; dirs of live runs (parallel test
/// binaries, a running demo) are left alone. Best effort: a failure here only
/// costs disk space.
fn remove_dead_runs(base: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(s) = file_name.to_str() else { continue };
        let mut parts = s.rsplitn(3, '-');
        let (Some(n), Some(pid), Some(stem)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        if stem != name || n.parse::<usize>().is_err() || pid == me {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // A killed run (Ctrl-C on `cargo xtask demo`) never ran Drop, so
            // its nginx may still be serving from this dir.
            nginx::quit_orphans(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Spawns `cmd` (which must stay in the foreground: no daemonizing) so that the kernel sends it
/// SIGTERM when this process ends, however it ends: normal exit, panic, abort or SIGKILL.
///
/// Servers a test keeps in a `static` are never dropped, so Drop alone would leave them running
/// after the test binary is gone. `PR_SET_PDEATHSIG` fires when the *thread* that forked the
/// child exits, and libtest runs each test on its own short-lived thread; so every tied child is
/// forked by one spawner thread that lives as long as the process.
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    type Job = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<io::Result<mpsc::Sender<Job>>> = OnceLock::new();
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes the syscalls prctl and
    // getppid, which are async-signal-safe; it allocates nothing (the error is a raw errno).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl; then no signal would ever come.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        // The sender lives in this static and is never dropped, so the loop never ends.
        std::thread::Builder::new().name("tied-spawner".into()).spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        })?;
        Ok(tx)
    });
    let spawner =
        spawner.as_ref().map_err(|e| io::Error::new(e.kind(), format!("starting the spawner thread: {e}")))?;
    let (reply_tx, reply_rx) = mpsc::channel();
    let gone = || io::Error::other("the tied-spawner thread is gone");
    spawner.send((cmd, reply_tx)).map_err(|_| gone())?;
    reply_rx.recv().map_err(|_| gone())?
}

/// Runs `cmd` to completion and turns a failure into an error that names the
/// command and carries its stderr, because a bare exit code from openssl or
/// nginx is useless when a test fails on someone else's machine.
pub(crate) fn run_checked(cmd: &mut Command) -> Result<Output> {
    let shown = describe(cmd);
    let out = cmd.output().with_context(|| format!("could not run `{shown}`"))?;
    if !out.status.success() {
        bail!("`{shown}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

/// A shell-like rendering of a command for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Rejects names that would escape their directory or break the nginx config
/// they are pasted into; tests pass literals, so a bad one is a harness bug.
pub(crate) fn check_component(what: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
    if !ok {
        bail!("{what} {value:?} must be non-empty and use only [A-Za-z0-9._+-]");
    }
    Ok(())
}
