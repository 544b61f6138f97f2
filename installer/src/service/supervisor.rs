//! `--init process`: where no systemd runs as PID 1 (init-less containers, CI, the demo), each unit
//! file is run by `vikunja-installer supervise`, a small supervisor with systemd's semantics for the
//! keys our units use: ExecStart, Environment, WorkingDirectory, User/Group (when they exist in the
//! root), KillSignal, TimeoutStopSec, Restart=on-failure with RestartSec. Its pid file names the
//! child it runs; its output goes to the unit's log under logs/.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::report::note;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

#[derive(Debug, Clone, PartialEq)]
pub struct UnitFile {
    pub exec: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub user: Option<String>,
    pub kill_signal: i32,
    pub stop_timeout: Duration,
    pub restart_sec: Duration,
}

/// systemd's word splitting for ExecStart and Environment: whitespace, with double quotes.
fn split_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => cur.extend(chars.next()),
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Undoes what `render` escapes for systemd: `%%` is a literal `%` (systemd's specifiers) in
/// every setting, and `$$` a literal `$` in command lines, so both init modes run the same argv
/// and environment.
fn unescape(s: &str, dollars: bool) -> String {
    let s = s.replace("%%", "%");
    if dollars {
        s.replace("$$", "$")
    } else {
        s
    }
}

fn signal_number(name: &str) -> Option<i32> {
    Some(match name.trim() {
        "SIGINT" | "INT" => libc::SIGINT,
        "SIGTERM" | "TERM" => libc::SIGTERM,
        "SIGQUIT" | "QUIT" => libc::SIGQUIT,
        "SIGHUP" | "HUP" => libc::SIGHUP,
        "SIGKILL" | "KILL" => libc::SIGKILL,
        _ => return None,
    })
}

fn seconds(v: &str) -> Option<Duration> {
    let v = v.trim().trim_end_matches('s');
    v.parse::<u64>().ok().map(Duration::from_secs)
}

impl UnitFile {
    pub fn parse(text: &str) -> Result<UnitFile, String> {
        let mut u = UnitFile {
            exec: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            user: None,
            kill_signal: libc::SIGTERM,
            stop_timeout: Duration::from_secs(90),
            restart_sec: Duration::from_millis(100),
        };
        let mut in_service = false;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                in_service = line == "[Service]";
                continue;
            }
            let Some((k, v)) = line.split_once('=').filter(|_| in_service && !line.starts_with('#')) else { continue };
            match k.trim() {
                "ExecStart" => u.exec = split_words(v).iter().map(|w| unescape(w, true)).collect(),
                "Environment" => u.env.extend(
                    split_words(v)
                        .into_iter()
                        .filter_map(|kv| kv.split_once('=').map(|(a, b)| (a.to_string(), unescape(b, false)))),
                ),
                "WorkingDirectory" => u.working_dir = Some(PathBuf::from(unescape(v.trim(), false))),
                "User" => u.user = Some(v.trim().to_string()),
                "KillSignal" => u.kill_signal = signal_number(v).ok_or(format!("unsupported KillSignal={v}"))?,
                "TimeoutStopSec" => u.stop_timeout = seconds(v).ok_or(format!("bad TimeoutStopSec={v}"))?,
                "RestartSec" => u.restart_sec = seconds(v).ok_or(format!("bad RestartSec={v}"))?,
                _ => {}
            }
        }
        if u.exec.is_empty() {
            return Err("no ExecStart".into());
        }
        Ok(u)
    }
}

fn send(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) only takes two integers and touches no memory of this process.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn spawn(u: &UnitFile, root: &Path) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(&u.exec[0]);
    c.args(&u.exec[1..]).envs(u.env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
    if let Some(d) = &u.working_dir {
        c.current_dir(d);
    }
    let is_root =
        std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    if let (true, Some(user)) = (is_root, &u.user) {
        if let Some(ids) = crate::instance::account::lookup(root, user) {
            c.uid(ids.uid).gid(ids.gid);
        }
    }
    // The service dies with its supervisor: a `kill -9` of the supervisor must not leave an
    // unsupervised backend holding the colour's port (systemd gets this from the cgroup).
    let supervisor = std::process::id() as libc::pid_t;
    let on_death = u.kill_signal;
    // SAFETY: the closure runs in the forked child before exec and only makes two async-signal-safe
    // system calls (prctl, getppid) on integers; it allocates nothing and touches no shared state.
    // std runs it after setuid, so the credential change cannot clear the death signal.
    unsafe {
        c.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, on_death as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The supervisor may have died between fork and prctl: then no signal would come.
            if libc::getppid() != supervisor {
                return Err(std::io::Error::other("the supervisor exited while starting the service"));
            }
            Ok(())
        });
    }
    c.spawn()
}

/// The supervisor loop; returns when the unit is stopped or exits cleanly.
pub fn run(unit_file: &Path, pid_file: &Path, root: &Path) -> ExitCode {
    let text = match std::fs::read_to_string(unit_file) {
        Ok(t) => t,
        Err(e) => {
            note!("supervise: read {}: {e}", unit_file.display());
            return ExitCode::from(1);
        }
    };
    let u = match UnitFile::parse(&text) {
        Ok(u) => u,
        Err(e) => {
            note!("supervise: {}: {e}", unit_file.display());
            return ExitCode::from(1);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        if signal_hook::flag::register(sig, stop.clone()).is_err() {
            note!("supervise: cannot install signal handlers");
            return ExitCode::from(1);
        }
    }
    loop {
        let mut child = match spawn(&u, root) {
            Ok(c) => c,
            Err(e) => {
                note!("supervise: cannot start {}: {e}", u.exec[0]);
                let _ = std::fs::remove_file(pid_file);
                return ExitCode::from(1);
            }
        };
        let pid = child.id() as i32;
        let _ = manifests::atomic::write_atomic(pid_file, format!("{} {pid}\n", std::process::id()).as_bytes(), 0o644);
        let status = loop {
            if let Ok(Some(st)) = child.try_wait() {
                break Some(st);
            }
            if stop.load(Ordering::SeqCst) {
                send(pid, u.kill_signal);
                let deadline = Instant::now() + u.stop_timeout;
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                if child.try_wait().ok().flatten().is_none() {
                    note!("supervise: stop timeout; sending SIGKILL");
                    let _ = child.kill();
                    let _ = child.wait();
                }
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        match status {
            None => break,
            Some(st) if st.success() => break,
            Some(st) => {
                note!("supervise: {} exited with {st}; restarting in {:?}", u.exec[0], u.restart_sec);
                let until = Instant::now() + u.restart_sec;
                while Instant::now() < until && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if stop.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
    }
    let _ = std::fs::remove_file(pid_file);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_keys_our_units_use() {
        let u = UnitFile::parse(
            "[Unit]\nDescription=x\n[Service]\nExecStart=/opt/v/vikunja \"web\" --x=\"a b\"\n\
             Environment=\"A=1\" \"B=two words\"\nEnvironment=C=3\nKillSignal=SIGINT\nTimeoutStopSec=20\n\
             RestartSec=5s\nUser=vikunja\nWorkingDirectory=/opt/v/data\n[Install]\nWantedBy=multi-user.target\n",
        )
        .unwrap();
        assert_eq!(u.exec, ["/opt/v/vikunja", "web", "--x=a b"]);
        assert_eq!(u.env, [("A".into(), "1".into()), ("B".into(), "two words".into()), ("C".into(), "3".into())]);
        assert_eq!(
            (u.kill_signal, u.stop_timeout, u.restart_sec),
            (libc::SIGINT, Duration::from_secs(20), Duration::from_secs(5))
        );
        assert!(UnitFile::parse("[Service]\nUser=x\n").is_err());
    }

    #[test]
    fn what_render_escapes_for_systemd_runs_unescaped() {
        let spec = crate::render::ServiceSpec {
            unit: "vikunja-t-backend-blue".into(),
            description: "d".into(),
            exec: vec!["/opt/v/100%/vikunja".into(), "web".into(), "--x=50% of $HOME".into(), "a$$b".into()],
            working_dir: "/opt/v/100%".into(),
            user: "vikunja".into(),
            group: "vikunja".into(),
            env: vec![("RATE".into(), "99% \"sure\" $5".into())],
            read_write_paths: vec!["/opt/v/data".into()],
            kill_signal: "SIGINT".into(),
            stop_timeout_s: 20,
            restart_sec: 5,
        };
        let template = crate::render::templates::load("systemd/service.tmpl").unwrap();
        let text = crate::render::render_unit(&template, &spec).unwrap();
        assert!(text.contains("%%"), "the test must exercise the escaping: {text}");
        let u = UnitFile::parse(&text).unwrap();
        assert_eq!(u.exec, spec.exec);
        assert_eq!(u.env, spec.env);
        assert_eq!(u.working_dir.as_deref(), Some(std::path::Path::new("/opt/v/100%")));
    }
}
