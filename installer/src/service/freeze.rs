//! The write freeze, without an nginx reload. The site always holds the check (templates
//! nginx/site.conf.tmpl): while `state/writes-frozen` exists, nginx answers every method but GET
//! and HEAD under `/api/` with 503 and `Retry-After`. Freezing creates the file, lifting removes
//! it; writes are frozen exactly while it exists.
//!
//! A freeze returns only once no write that got past the check is still running, so a database
//! dump taken next holds every acknowledged write and no write reaches the database after it:
//! 1. nginx tests the flag (rewrite phase) and connects to the backend in one turn of a worker's
//!    event loop: the API location is unbuffered (`proxy_request_buffering off`), so
//!    `ngx_http_read_client_request_body` calls the upstream at once (HTTP/1.1, and HTTP/2 with
//!    the body still arriving) or from an event posted to the same turn (HTTP/2 with the whole
//!    body in hand); nothing between the two phases waits (no auth_request, limit_req, cache).
//!    A worker seen blocked in `epoll_wait` after the flag was created has ended the turn it was
//!    in, so every request that found no flag has its backend connection by then.
//! 2. Then every connection to the serving colour's backend port is noted, and the freeze waits
//!    until they are all closed. The upstream keeps no idle connections (no `keepalive`), and the
//!    backend closes its side only when the request's handler has returned, also when the client
//!    went away mid-request: closed means the write is committed or never will be.
//!
//! A request that outlasts `DRAIN` fails the freeze (the caller undoes its operation, which lifts
//! the freeze); nothing is dumped meanwhile.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::instance::layout::Layout;
use crate::service::init::Init;

/// In `state/` (0755 under a 0755 base, `layout.rs`), so the nginx workers' `-f` test can see the
/// file; one they could not see would leave writes open, which [`freeze`] checks and refuses.
pub fn flag(l: &Layout) -> PathBuf {
    l.state_dir().join("writes-frozen")
}

pub fn is_frozen(l: &Layout) -> bool {
    flag(l).exists()
}

/// Longest wait for the requests running when the freeze began.
const DRAIN: Duration = Duration::from_secs(10);

/// Freezes writes and waits until every request that got past the check has finished (see the
/// module's comment). `backend_port` is the port nginx routes `/api/` to now.
/// Why writes could not be frozen or the freeze lifted.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("freeze writes: create {}: {err}", path.display())]
    Create { path: std::path::PathBuf, err: std::io::Error },
    #[error("lift the write freeze: remove {}: {err}", path.display())]
    Thaw { path: std::path::PathBuf, err: std::io::Error },
    #[error("freeze writes: {}: {err}", dir.display())]
    Look { dir: std::path::PathBuf, err: std::io::Error },
    #[error(
        "freeze writes: nginx's workers (uid {uid}) cannot look into {} (mode {mode:o}), so they would not see {} and writes would stay open; make it searchable for them (chmod o+x {})",
        dir.display(),
        flag.display(),
        dir.display()
    )]
    Hidden { uid: u32, dir: std::path::PathBuf, mode: u32, flag: std::path::PathBuf },
    #[error(
        "freeze writes: cannot read /proc/{pid}/syscall of nginx worker {pid} ({err}), so it cannot be proven that no write is still on its way; run the installer as root"
    )]
    Unprovable { pid: i32, err: std::io::Error },
    #[error("nginx worker {pid} was not idle once in {secs} s after writes were frozen; run the command again")]
    WorkerBusy { pid: i32, secs: u64 },
    #[error(
        "{left} request(s) to the backend on port {port} still ran {secs} s after writes were frozen (a slow upload?); waiting longer would stretch the freeze. Run the command again when they have finished"
    )]
    Draining { left: usize, port: u16, secs: u64 },
}

pub fn freeze(l: &Layout, init: Init, backend_port: u16) -> Result<(), FreezeError> {
    let path = flag(l);
    // Its presence is the whole state, and creating a name is atomic. Not synced: the journal
    // (synced) is the durable record, and after a crash recovery lifts or sets the freeze again
    // before anything else runs.
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&path)
        .and_then(|mut f| f.write_all(b"writes to /api/ are answered 503 while this file exists\n"))
        .map_err(|err| FreezeError::Create { path: path.clone(), err })?;
    crate::fault::kill_point("freeze-flag-written");
    let deadline = Instant::now() + DRAIN;
    let workers = crate::service::nginx::workers(l, init);
    if let Some(w) = workers.first() {
        visible_to(&path, *w)?;
    }
    for pid in workers {
        wait_turned(pid, deadline)?;
    }
    let open = crate::service::sockets::connections(backend_port);
    loop {
        let now = crate::service::sockets::connections(backend_port);
        let left: Vec<_> = open.iter().filter(|c| now.contains(c)).collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(FreezeError::Draining { left: left.len(), port: backend_port, secs: DRAIN.as_secs() });
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// nginx's `-f` is false when it may not look (EACCES), which would leave writes open: every
/// directory above the flag must be searchable for the worker's user (by its uid and primary gid
/// from /proc; a supplementary group alone is not trusted).
fn visible_to(flag: &std::path::Path, worker: i32) -> Result<(), FreezeError> {
    use std::os::unix::fs::MetadataExt;
    let status = std::fs::read_to_string(format!("/proc/{worker}/status")).unwrap_or_default();
    let id = |key: &str| -> Option<u32> {
        status.lines().find_map(|x| x.strip_prefix(key)?.split_whitespace().nth(1)?.parse().ok())
    };
    let (Some(uid), Some(gid)) = (id("Uid:"), id("Gid:")) else {
        return Ok(()); // the worker is gone: nothing to look
    };
    for dir in flag.ancestors().skip(1) {
        let m = std::fs::metadata(dir).map_err(|err| FreezeError::Look { dir: dir.to_path_buf(), err })?;
        if !searchable(m.mode(), m.uid(), m.gid(), uid, gid) {
            return Err(FreezeError::Hidden {
                uid,
                dir: dir.to_path_buf(),
                mode: m.mode() & 0o7777,
                flag: flag.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn searchable(mode: u32, owner: u32, group: u32, uid: u32, gid: u32) -> bool {
    uid == 0
        || if uid == owner {
            mode & 0o100 != 0
        } else if gid == group {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
}

/// Lifts the freeze. Idempotent.
pub fn thaw(l: &Layout) -> Result<(), FreezeError> {
    manifests::atomic::remove_if_present(&flag(l)).map_err(|err| FreezeError::Thaw { path: flag(l), err })
}

/// Waits until nginx worker `pid` is seen blocked in `epoll_wait` (or has exited): it has then
/// finished the event-loop turn it was in.
fn wait_turned(pid: i32, deadline: Instant) -> Result<(), FreezeError> {
    loop {
        match std::fs::read_to_string(format!("/proc/{pid}/syscall")) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                if !crate::service::sockets::alive(pid) {
                    return Ok(());
                }
                return Err(FreezeError::Unprovable { pid, err: e });
            }
            Ok(s) if in_epoll_wait(&s) => return Ok(()),
            Ok(_) if !crate::service::sockets::alive(pid) => return Ok(()),
            Ok(_) => {}
        }
        if Instant::now() > deadline {
            return Err(FreezeError::WorkerBusy { pid, secs: DRAIN.as_secs() });
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// `/proc/PID/syscall` of a task blocked in a system call starts with its number; "running" or
/// "-1 …" otherwise.
fn in_epoll_wait(syscall: &str) -> bool {
    let nr: Option<i64> = syscall.split_whitespace().next().and_then(|n| n.parse().ok());
    // epoll_wait, epoll_pwait, epoll_pwait2 (generic numbers on aarch64: epoll_pwait 22).
    #[cfg(target_arch = "x86_64")]
    const EPOLL: &[i64] = &[232, 281, 441];
    #[cfg(target_arch = "aarch64")]
    const EPOLL: &[i64] = &[22, 441];
    nr.is_some_and(|n| EPOLL.contains(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_task_blocked_in_epoll_wait_counts() {
        assert!(in_epoll_wait("232 0x8 0x55d0 0x200 0xea60 0x0 0x0 0x7ffd 0x7f12\n"));
        assert!(!in_epoll_wait("running\n"));
        assert!(!in_epoll_wait("-1 0x7ffd 0x7f12\n"));
        assert!(!in_epoll_wait("0 0x3 0x55d0 0x400 0x0 0x0 0x0 0x7ffd 0x7f12\n"), "read(2) is not the event loop");
    }

    #[test]
    fn a_directory_is_searchable_by_the_class_the_worker_falls_in() {
        assert!(searchable(0o755, 0, 0, 33, 33));
        assert!(!searchable(0o750, 0, 0, 33, 33), "others without x");
        assert!(searchable(0o750, 0, 33, 33, 33), "group x");
        assert!(!searchable(0o075, 33, 0, 33, 33), "the owner's bits decide for the owner");
        assert!(searchable(0o700, 5, 5, 0, 0), "root");
    }

    #[test]
    fn a_thread_blocked_in_epoll_wait_is_seen_there() {
        // SAFETY: epoll_create1 takes a flag and returns a descriptor or -1; nothing is borrowed.
        let ep = unsafe { libc::epoll_create1(0) };
        assert!(ep >= 0);
        let t = std::thread::spawn(move || {
            let mut ev = [libc::epoll_event { events: 0, u64: 0 }; 1];
            // SAFETY: `ev` outlives the call and holds exactly the one event passed as maxevents.
            unsafe { libc::epoll_wait(ep, ev.as_mut_ptr(), 1, 300) }
        });
        std::thread::sleep(Duration::from_millis(100));
        let seen = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .any(|t| std::fs::read_to_string(t.path().join("syscall")).is_ok_and(|s| in_epoll_wait(&s)));
        t.join().unwrap();
        // SAFETY: `ep` is our own descriptor, closed once.
        unsafe { libc::close(ep) };
        assert!(seen, "no thread of this process was seen in epoll_wait");
    }
}
