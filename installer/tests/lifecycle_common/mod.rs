//! Shared by `lifecycle_e2e` and `sequence_e2e`: a sandbox instance driven through the CLI only
//! (black box), and the checks both need: which process really answers on a colour's port, whether
//! a supervisor owns it, what the state files name, and what nginx serves.
//!
//! Minimal copies of helpers in `update_e2e.rs` / `backup_e2e.rs` (the lead dedupes them into
//! `tests/src` later); nothing here knows the installer's internals beyond its files on disk.

// Each of the two test crates uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vikunja_e2e::load::Target;
pub use vikunja_e2e::sandbox::version_on;
use vikunja_e2e::sandbox::{DownloadSite, Sandbox};

pub const V1: &str = "v2.4.0";
pub const V2: &str = "v2.5.0";
pub const INSTANCE: &str = "lc";

pub fn site() -> &'static DownloadSite {
    static S: OnceLock<DownloadSite> = OnceLock::new();
    S.get_or_init(|| {
        let dir = vikunja_e2e::scratch_dir("lifecycle-site").unwrap();
        DownloadSite::start(&dir, &[V1, V2]).unwrap()
    })
}

pub fn exe() -> &'static str {
    env!("CARGO_BIN_EXE_vikunja-installer")
}

/// The installer as an admin runs it, on `sb`'s root, without a terminal.
pub fn command(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(exe());
    c.args(args)
        .arg("--root")
        .arg(&sb.root)
        .env("SSL_CERT_FILE", &site().ca.ca_pem)
        .env("NO_COLOR", "1")
        .env_remove("VIKUNJA_INSTALLER_TEST_KILL_AT")
        .env_remove("VIKUNJA_BACKUP_PASSPHRASE")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    c
}

pub fn installer_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    let o = command(sb, args, env).output().unwrap();
    log(args, &o);
    o
}

pub fn installer(sb: &Sandbox, args: &[&str]) -> Output {
    installer_env(sb, args, &[])
}

pub fn log(args: &[&str], o: &Output) {
    eprintln!(
        "$ vikunja-installer {} ({})\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        describe(o),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// "exit N" or "killed by signal N".
pub fn describe(o: &Output) -> String {
    match (o.status.code(), o.status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => format!("{:?}", o.status),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// stdout and stderr together: progress and errors may go to either.
pub fn said(o: &Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

pub fn write_config(sb: &Sandbox, instance: &str, version: &str, extra: &str) -> PathBuf {
    let cfg = sb.root.join(format!("{instance}.toml"));
    std::fs::write(&cfg, sb.config(instance, version, &site().base(), extra)).unwrap();
    cfg
}

pub fn install(sb: &Sandbox, version: &str) -> Output {
    let cfg = write_config(sb, INSTANCE, version, "");
    installer(sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()])
}

/// A sandbox with `version` installed under `--init process` and healthy.
pub fn installed(name: &str, version: &str) -> Sandbox {
    let sb = Sandbox::new(name).unwrap();
    let o = install(&sb, version);
    assert!(o.status.success(), "{name}: install failed ({})", describe(&o));
    sb
}

pub fn base(sb: &Sandbox) -> PathBuf {
    sb.instance_dir(INSTANCE)
}

pub fn target(sb: &Sandbox) -> Target {
    target_of(sb, INSTANCE)
}

pub fn target_of(sb: &Sandbox, instance: &str) -> Target {
    Target::new("vikunja.test", sb.ports.https, sb.instance_dir(instance).join("config/ssl/cert.pem"))
}

pub fn state_file(sb: &Sandbox, name: &str) -> String {
    std::fs::read_to_string(base(sb).join("state").join(name)).unwrap_or_default()
}

/// (colour, version) as `state/deployed-version` records them.
pub fn deployed(sb: &Sandbox) -> (String, String) {
    let text = state_file(sb, "deployed-version");
    let field = |k: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(key, _)| key.trim() == k)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    (field("color"), field("version"))
}

pub fn port_of(sb: &Sandbox, colour: &str) -> u16 {
    match colour {
        "blue" => sb.ports.backend_blue,
        "green" => sb.ports.backend_green,
        other => panic!("no colour {other:?}"),
    }
}

pub fn other(colour: &str) -> &'static str {
    if colour == "blue" {
        "green"
    } else {
        "blue"
    }
}

/// (supervisor pid, child pid) from the backend's pid file under `--init process`.
pub fn pid_file(sb: &Sandbox, colour: &str) -> Option<(u32, u32)> {
    let f = base(sb).join(format!("logs/vikunja-{INSTANCE}-backend-{colour}.pid"));
    let text = std::fs::read_to_string(f).ok()?;
    let mut it = text.split_whitespace().map(|x| x.parse::<u32>().ok());
    Some((it.next()??, it.next()??))
}

/// The process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(s) => s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().next()).is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

pub fn wait_dead(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

pub fn kill9(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
}

pub fn parent_of(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
        .unwrap_or_default()
}

/// The pid of the process listening on TCP `port` on loopback: the socket's inode from
/// /proc/net/tcp{,6}, then the process holding a descriptor to it. No ss/lsof needed.
pub fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN.
            let Some(local) = f.get(1) else { continue };
            let Some((_, p)) = local.rsplit_once(':') else { continue };
            if u16::from_str_radix(p, 16).ok() == Some(port) && f.get(3) == Some(&"0A") {
                if let Some(inode) = f.get(9) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| Path::new(i) == link) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// What is wrong with "exactly one colour serves, the one the state names, under its supervisor,
/// and nginx serves the version the state names"; empty when all holds.
pub fn serving_violations(sb: &Sandbox) -> Vec<String> {
    let mut v = Vec::new();
    let active = state_file(sb, "active-color").trim().to_string();
    let (dep_colour, dep_version) = deployed(sb);
    if active != "blue" && active != "green" {
        v.push(format!("state/active-color is {active:?}"));
        return v;
    }
    if dep_colour != active {
        v.push(format!("state/deployed-version names colour {dep_colour:?} but state/active-color {active:?}"));
    }
    let (port, idle_port) = (port_of(sb, &active), port_of(sb, other(&active)));
    match version_on(port) {
        Some(got) if got == dep_version => {}
        got => v.push(format!(
            "the active colour {active} (port {port}) answers version {got:?}, state/deployed-version says {dep_version}"
        )),
    }
    if let Some(got) = version_on(idle_port) {
        v.push(format!("both colours answer: the idle {} (port {idle_port}) serves {got}", other(&active)));
    }
    if let Some(pid) = listener_pid(idle_port) {
        v.push(format!("a process holds the idle colour's port {idle_port}: pid {pid} ({})", cmdline(pid)));
    }
    match (listener_pid(port), pid_file(sb, &active)) {
        (None, _) => v.push(format!("nothing listens on the active colour's port {port}")),
        (Some(owner), Some((sup, child))) if owner == child && alive(sup) && parent_of(child) == Some(sup) => {}
        (Some(owner), pf) => v.push(format!(
            "the process on the active colour's port {port} is pid {owner} ({}), not the child of a live supervisor \
             (pid file: {pf:?}, supervisor alive: {})",
            cmdline(owner),
            pf.is_some_and(|(s, _)| alive(s))
        )),
    }
    let (code, body) = target(sb).request("GET", "/api/v1/info", None);
    if code != 200 || !body.contains(&format!("\"{dep_version}\"")) {
        v.push(format!("through nginx /api/v1/info answered {code} {}, state says {dep_version}", body.trim()));
    }
    v
}

pub fn assert_serving(sb: &Sandbox, what: &str) -> (String, String) {
    let v = serving_violations(sb);
    assert!(v.is_empty(), "{what}: {}", v.join("; "));
    deployed(sb)
}

/// A write through nginx is accepted (2xx, not the freeze's 503).
pub fn assert_writes_accepted(sb: &Sandbox, title: &str, what: &str) {
    let (code, body) = target(sb).create_task(title);
    assert!((200..300).contains(&code), "{what}: a write through nginx answered {code}: {}", body.trim());
}

/// Every backup archive in backups/.
pub fn backups(sb: &Sandbox) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(base(sb).join("backups"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("vikunja-backup-"))
        .collect();
    v.sort();
    v
}

/// Task titles in a plain backup's SQLite database.
pub fn backup_titles(archive: &Path, scratch: &Path) -> Vec<String> {
    let f = std::fs::File::open(archive).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let db = scratch.join("titles.sqlite");
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == "database/vikunja.sqlite" {
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            std::fs::write(&db, data).unwrap();
            let c = rusqlite::Connection::open(&db).unwrap();
            let mut st = c.prepare("SELECT title FROM tasks ORDER BY id").unwrap();
            let titles = st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
            return titles;
        }
    }
    panic!("{}: no database/vikunja.sqlite", archive.display())
}

/// Makes `version` present in releases/ without changing anything else: an update killed right
/// after it recorded its start (the release is downloaded and verified first), then recovered.
pub fn predownload(sb: &Sandbox, version: &str) -> PathBuf {
    let o = installer_env(sb, &["update", "--version", version], &[("VIKUNJA_INSTALLER_TEST_KILL_AT", "started")]);
    assert_eq!(o.status.signal(), Some(9), "predownload: the update was not killed at 'started' ({})", describe(&o));
    let o = installer(sb, &["status", "--json"]);
    assert!(o.status.success(), "predownload: status after the killed update: {}", describe(&o));
    base(sb).join("releases").join(version)
}

pub fn set_fault(release: &Path, fault: &str) {
    std::fs::write(release.join("STANDIN_FAULT"), fault).unwrap();
}
