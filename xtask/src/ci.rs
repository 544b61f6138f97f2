//! `cargo xtask ci`: everything a change must pass. The README's test command and `.ci/run` call it.
//!
//! The test run must also leave no process behind: xtask becomes a child subreaper, so whatever the
//! tests start and then orphan (a daemonized nginx, a PostgreSQL postmaster, an LXC monitor and its
//! container) is reparented to xtask instead of init, and anything still below xtask once
//! `cargo test` has ended is a leftover of the run. New processes elsewhere whose command line or
//! working directory is in this work tree's `target/` count too (started through another daemon;
//! reported, not killed). Processes that were running before the tests, like
//! the system PostgreSQL service the package installation may start, are never counted.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long leftovers get to finish shutting down after `cargo test` ends: servers tied to a test
/// binary get SIGTERM when it exits and need a moment; a supervisor drains its service.
const GRACE: Duration = Duration::from_secs(10);

fn cargo_cmd(root: &Path, args: &[&str]) -> Command {
    eprintln!("xtask ci: cargo {}", args.join(" "));
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The tests that need a PostgreSQL server fail instead of skipping: prereq installed one.
    cmd.current_dir(root).env("STANDIN_REQUIRE_POSTGRES", "1").args(args);
    cmd
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let status = cargo_cmd(root, args).status().with_context(|| format!("run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

pub fn run(root: &Path) -> Result<()> {
    crate::prereq::ensure(crate::prereq::TEST_TOOLS)?;
    cargo(root, &["fmt", "--all", "--", "--check"])?;
    cargo(root, &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])?;
    let args = ["test", "--workspace", "--locked"];
    let (status, leftovers) = run_leaving_nothing(root, cargo_cmd(root, &args), GRACE)?;
    if !status.success() {
        if !leftovers.is_empty() {
            eprintln!("xtask ci: the failed test run also left processes behind (now killed):\n{leftovers}");
        }
        bail!("cargo {} failed", args.join(" "));
    }
    if !leftovers.is_empty() {
        bail!(
            "the test run left processes behind (now killed); every server a test starts must end with its \
             test binary (vikunja_e2e::spawn_tied, or a Drop guard for daemons):\n{leftovers}"
        );
    }
    Ok(())
}

/// Runs `cmd` as a child subreaper and returns its status and a description of the processes it
/// started that are still running `grace` after it ended (those below xtask are killed before
/// returning), empty if none.
pub fn run_leaving_nothing(root: &Path, mut cmd: Command, grace: Duration) -> Result<(ExitStatus, String)> {
    let before: HashSet<(u32, u64)> = processes().iter().map(|p| (p.pid, p.start)).collect();
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on this process; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        bail!("prctl(PR_SET_CHILD_SUBREAPER): {}", std::io::Error::last_os_error());
    }
    let child = cmd.spawn().context("run cargo test")?;
    let status = wait_reaping(child.id())?;
    let me = std::process::id();
    let mark = root.join("target").to_string_lossy().into_owned();
    let deadline = Instant::now() + grace;
    let left = loop {
        reap_orphans();
        let all = processes();
        let left: Vec<&Proc> = all
            .iter()
            .filter(|p| p.pid != me && !before.contains(&(p.pid, p.start)))
            .filter(|p| descends_from(p, me, &all) || p.cmdline.contains(&mark) || p.cwd.starts_with(&mark))
            .collect();
        if left.is_empty() || Instant::now() >= deadline {
            break left.into_iter().cloned().collect::<Vec<Proc>>();
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report: String =
        left.iter().map(|p| format!("  pid {} (parent {}): {} [cwd {}]\n", p.pid, p.ppid, p.cmdline, p.cwd)).collect();
    let all = processes();
    for p in left.iter().filter(|p| descends_from(p, me, &all)) {
        // SAFETY: kill(2) has no memory effects. The pid was seen a moment ago with the start time
        // it had before the test run ended; a recycled pid in between is the only risk, and it is
        // bounded to processes started in the last few milliseconds.
        unsafe { libc::kill(p.pid as libc::pid_t, libc::SIGKILL) };
    }
    reap_orphans();
    Ok((status, report))
}

/// Waits for `pid` and reaps every orphan that dies meanwhile, so stopped daemons of the test run
/// do not pile up as zombies below the subreaper.
fn wait_reaping(pid: u32) -> Result<ExitStatus> {
    loop {
        let mut raw = 0;
        // SAFETY: waitpid writes only to `raw`, a live local.
        let got = unsafe { libc::waitpid(-1, &mut raw, 0) };
        if got < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            bail!("waiting for cargo test: {e}");
        }
        if got as u32 == pid {
            return Ok(ExitStatus::from_raw(raw));
        }
    }
}

fn reap_orphans() {
    let mut raw = 0;
    // SAFETY: as in wait_reaping; WNOHANG returns 0 when no child has exited.
    while unsafe { libc::waitpid(-1, &mut raw, libc::WNOHANG) } > 0 {}
}

#[derive(Clone, Debug)]
struct Proc {
    pid: u32,
    ppid: u32,
    /// Start time in clock ticks since boot: with the pid it names one process, not a recycled pid.
    start: u64,
    cmdline: String,
    cwd: String,
}

/// Every live process in /proc (zombies left out: they run nothing and are reaped above).
fn processes() -> Vec<Proc> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The command name may contain spaces and parens; the fields after the last ')' do not.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 20 || f[0] == "Z" || f[0] == "X" {
            continue;
        }
        let (Ok(ppid), Ok(start)) = (f[1].parse::<u32>(), f[19].parse()) else { continue };
        if pid == 2 || ppid == 2 {
            continue; // kthreadd and the kernel threads
        }
        // An empty command line is not a kernel thread: a process in the middle of execve reads
        // empty for a moment, and leaving it out of the "before" snapshot made it a leftover.
        let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = if raw.is_empty() {
            format!("[{}]", stat.split_once('(').and_then(|(_, r)| r.rsplit_once(')')).map_or("", |(c, _)| c))
        } else {
            String::from_utf8_lossy(&raw).replace('\0', " ").trim_end().to_owned()
        };
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).map(|p| p.display().to_string()).unwrap_or_default();
        out.push(Proc { pid, ppid, start, cmdline, cwd });
    }
    out
}

fn descends_from(p: &Proc, ancestor: u32, all: &[Proc]) -> bool {
    let mut ppid = p.ppid;
    for _ in 0..all.len() {
        if ppid == ancestor {
            return true;
        }
        match all.iter().find(|q| q.pid == ppid) {
            Some(q) => ppid = q.ppid,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    /// One test: the subreaper and `waitpid(-1)` would steal the children of tests running beside it.
    #[test]
    fn leftovers_are_found_and_killed_and_nothing_else() {
        let root = crate::workspace_root();
        let grace = Duration::from_millis(500);
        // A process that was running before the command started is not the command's leftover.
        let mut earlier = Command::new("sleep").arg("61").spawn().unwrap();

        // Control: a command whose child ends with it leaves nothing behind.
        let (status, left) = run_leaving_nothing(&root, sh("sleep 0.1 & wait"), grace).unwrap();
        assert!(status.success());
        assert_eq!(left, "");

        // A background child and a daemonized one (new session, parent gone) both stay behind.
        let (status, left) =
            run_leaving_nothing(&root, sh("sleep 62 & setsid sh -c 'sleep 63 &' ; exit 4"), grace).unwrap();
        assert_eq!(status.code(), Some(4));
        assert!(left.contains("sleep 62") && left.contains("sleep 63"), "{left}");
        assert!(!left.contains("sleep 61"), "{left}");
        let all = processes();
        assert!(!all.iter().any(|p| p.cmdline == "sleep 62" || p.cmdline == "sleep 63"), "leftovers were killed");
        assert!(all.iter().any(|p| p.pid == earlier.id()), "the earlier process was left alone");
        earlier.kill().unwrap();
        earlier.wait().unwrap();
    }
}
