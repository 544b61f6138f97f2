//! Starting and stopping units: through systemd in production, or through our own supervisor
//! (`--init process`) where no systemd runs as PID 1. Callers see one interface.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::instance::layout::Layout;

/// Why a unit could not be installed, started or stopped. The texts are the ones the installer
/// always printed. No variant has a `source`: the text already contains the cause, and `main`
/// prints an error's chain (`{:#}`), which would repeat it.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("--init {0}: expected systemd, process or auto")]
    UnknownChoice(String),
    #[error("{unit} (supervisor pid {pid}) did not stop within {secs} s")]
    StopTimeout { unit: String, pid: i32, secs: u64 },
    #[error("{action} {}: {err}", path.display())]
    Io { action: &'static str, path: PathBuf, err: std::io::Error },
    #[error("run systemctl: {0}")]
    RunSystemctl(std::io::Error),
    #[error("systemctl {args} failed: {stderr}")]
    Systemctl { args: String, stderr: String },
    #[error("find own executable: {0}")]
    OwnExe(std::io::Error),
    #[error("{0}")]
    DupLog(std::io::Error),
    #[error("start the supervisor for {unit}: {err}")]
    Spawn { unit: String, err: std::io::Error },
    #[error("{unit} did not start; see {}", log.display())]
    NotStarted { unit: String, log: PathBuf },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    Systemd,
    Process,
}

impl Init {
    /// `auto`: systemd when it runs as PID 1 and we manage the real root; otherwise processes.
    pub fn choose(choice: &str, root: &Path) -> Result<Init, InitError> {
        match choice {
            "systemd" => Ok(Init::Systemd),
            "process" => Ok(Init::Process),
            "auto" => Ok(if root == Path::new("/") && Path::new("/run/systemd/system").is_dir() {
                Init::Systemd
            } else {
                Init::Process
            }),
            other => Err(InitError::UnknownChoice(other.to_string())),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Init::Systemd => "systemd",
            Init::Process => "process",
        }
    }

    /// Puts a rendered unit in place; returns whether it changed.
    pub fn install_unit(self, l: &Layout, unit: &str, text: &str) -> Result<bool, InitError> {
        let own = crate::service::units::unit_file(l, unit);
        let mut changed = write_if_changed(&own, text)?;
        if self == Init::Systemd {
            changed |= write_if_changed(&l.systemd_unit_path(unit), text)?;
            if changed {
                systemctl(&["daemon-reload"])?;
            }
        }
        Ok(changed)
    }

    pub fn start(self, l: &Layout, unit: &str) -> Result<(), InitError> {
        match self {
            Init::Systemd => systemctl(&["enable", "--now", &format!("{unit}.service")]),
            Init::Process => start_process(l, unit),
        }
    }

    pub fn stop(self, l: &Layout, unit: &str) -> Result<(), InitError> {
        match self {
            Init::Systemd => systemctl(&["disable", "--now", &format!("{unit}.service")]),
            Init::Process => stop_process(l, unit),
        }
    }

    pub fn is_active(self, l: &Layout, unit: &str) -> bool {
        match self {
            Init::Systemd => Command::new("systemctl")
                .args(["is-active", "--quiet", &format!("{unit}.service")])
                .status()
                .is_ok_and(|s| s.success()),
            Init::Process => supervisor_pid(l, unit).is_some(),
        }
    }

    /// Stops a unit at once, without the drain of `stop`: for a colour that never took traffic
    /// (an update or rollback being undone), where waiting out a slow start only prolongs the
    /// write freeze.
    pub fn kill(self, l: &Layout, unit: &str) -> Result<(), InitError> {
        match self {
            Init::Systemd => {
                let _ = systemctl(&["kill", "--signal=SIGKILL", &format!("{unit}.service")]);
                systemctl(&["disable", "--now", &format!("{unit}.service")])
            }
            Init::Process => {
                let child = child_pid(l, unit);
                // The supervisor first, so it sees the stop request before the child's death and
                // does not restart it.
                let Some(sup) = supervisor_pid(l, unit) else { return Ok(()) };
                signal(sup, libc::SIGTERM);
                if let Some(c) = child {
                    signal(c, libc::SIGKILL);
                }
                wait_gone(sup, Duration::from_secs(10)).map_err(|()| InitError::StopTimeout {
                    unit: unit.to_string(),
                    pid: sup,
                    secs: 10,
                })
            }
        }
    }

    /// The pid of the unit's service process while it runs.
    pub fn main_pid(self, l: &Layout, unit: &str) -> Option<i32> {
        self.service_pid(l, unit).filter(|p| crate::service::sockets::alive(*p))
    }

    /// The pid the unit last started its service as, alive or not (None under systemd once the
    /// service exited).
    pub fn service_pid(self, l: &Layout, unit: &str) -> Option<i32> {
        match self {
            Init::Systemd => main_pid_of(&format!("{unit}.service")),
            Init::Process => child_pid(l, unit),
        }
    }

    /// Whether process `pid` belongs to the unit: in its cgroup under systemd, a descendant of
    /// its supervisor otherwise.
    pub fn owns(self, l: &Layout, unit: &str, pid: i32) -> bool {
        match self {
            Init::Systemd => std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|cg| cg.lines().any(|line| line.ends_with(&format!("/{unit}.service")))),
            Init::Process => supervisor_pid(l, unit)
                .is_some_and(|sup| pid != sup && crate::service::sockets::descends_from(pid, sup)),
        }
    }

    /// How long the unit's current process has been running.
    pub fn uptime(self, l: &Layout, unit: &str) -> Option<Duration> {
        match self {
            Init::Systemd => {
                let started_us: u64 =
                    systemctl_show(&format!("{unit}.service"), "ExecMainStartTimestampMonotonic")?.parse().ok()?;
                let up = std::fs::read_to_string("/proc/uptime").ok()?;
                let now_s: f64 = up.split_whitespace().next()?.parse().ok()?;
                (started_us > 0).then(|| Duration::from_secs_f64(now_s - started_us as f64 / 1e6))
            }
            Init::Process => {
                supervisor_pid(l, unit)?;
                let m = std::fs::metadata(pid_file(l, unit)).ok()?.modified().ok()?;
                SystemTime::now().duration_since(m).ok()
            }
        }
    }
}

/// One property of a systemd unit, as `systemctl show -p NAME --value` prints it.
fn systemctl_show(service: &str, property: &str) -> Option<String> {
    let out = Command::new("systemctl").args(["show", "-p", property, "--value", service]).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The main process of a systemd service while it runs (systemd reports 0 when none).
pub fn main_pid_of(service: &str) -> Option<i32> {
    systemctl_show(service, "MainPID")?.parse().ok().filter(|p: &i32| *p > 0)
}

fn write_if_changed(path: &Path, text: &str) -> Result<bool, InitError> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|err| InitError::Io { action: "create", path: dir.to_path_buf(), err })?;
    }
    manifests::atomic::write_atomic(path, text.as_bytes(), 0o644).map_err(|err| InitError::Io {
        action: "write",
        path: path.to_path_buf(),
        err,
    })?;
    Ok(true)
}

fn systemctl(args: &[&str]) -> Result<(), InitError> {
    let out = Command::new("systemctl").args(args).output().map_err(InitError::RunSystemctl)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(InitError::Systemctl {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

pub fn pid_file(l: &Layout, unit: &str) -> PathBuf {
    l.logs_dir().join(format!("{unit}.pid"))
}

pub fn log_file(l: &Layout, unit: &str) -> PathBuf {
    l.logs_dir().join(format!("{unit}.log"))
}

/// The supervisor's pid, if it is alive and really is our supervisor for this unit (a stale pid
/// file may name an unrelated process by now).
pub fn supervisor_pid(l: &Layout, unit: &str) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file(l, unit)).ok()?;
    let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    let unit_file = crate::service::units::unit_file(l, unit);
    (cmdline.contains("supervise") && cmdline.contains(&*unit_file.to_string_lossy())).then_some(pid)
}

/// Under `--init process`: the unit's supervisor died without stopping (its pid file is still
/// there, naming a process that is gone).
pub fn crashed(l: &Layout, unit: &str) -> bool {
    pid_file(l, unit).exists() && supervisor_pid(l, unit).is_none()
}

/// The pid of the service process the supervisor runs.
pub fn child_pid(l: &Layout, unit: &str) -> Option<i32> {
    supervisor_pid(l, unit)?;
    std::fs::read_to_string(pid_file(l, unit)).ok()?.split_whitespace().nth(1)?.parse().ok()
}

fn start_process(l: &Layout, unit: &str) -> Result<(), InitError> {
    use std::os::unix::process::CommandExt;
    if supervisor_pid(l, unit).is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(InitError::OwnExe)?;
    let log_path = log_file(l, unit);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(|err| InitError::Io {
        action: "open",
        path: log_path.clone(),
        err,
    })?;
    let err = log.try_clone().map_err(InitError::DupLog)?;
    let pid = pid_file(l, unit);
    let _ = std::fs::remove_file(&pid);
    Command::new(exe)
        .arg("supervise")
        .arg("--root")
        .arg(&l.root)
        .arg("--unit-file")
        .arg(crate::service::units::unit_file(l, unit))
        .arg("--pid-file")
        .arg(&pid)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        // Its own process group: a Ctrl-C at the terminal that ran the installer must not stop services.
        .process_group(0)
        .spawn()
        .map_err(|err| InitError::Spawn { unit: unit.to_string(), err })?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if child_pid(l, unit).is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(InitError::NotStarted { unit: unit.to_string(), log: log_path })
}

fn stop_process(l: &Layout, unit: &str) -> Result<(), InitError> {
    let Some(pid) = supervisor_pid(l, unit) else { return Ok(()) };
    signal(pid, libc::SIGTERM);
    wait_gone(pid, Duration::from_secs(30)).map_err(|()| InitError::StopTimeout {
        unit: unit.to_string(),
        pid,
        secs: 30,
    })
}

pub fn signal(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) only takes two integers and touches no memory of this process.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Waits until `pid` has exited (or is a zombie, as good as gone).
pub fn wait_gone(pid: i32, limit: Duration) -> Result<(), ()> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !crate::service::sockets::alive(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(())
}
