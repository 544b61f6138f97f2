//! nginx in front of the instance: the site and the upstream include rendered from templates, every
//! change checked with `nginx -t` before a reload, and a failing check puts the previous files back
//! so the running nginx (which was never reloaded) keeps serving the old configuration.
//! Production uses the system nginx (a conf.d include); `--init process` runs nginx with its own
//! prefix under the instance's config directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::instance::config::Deployment;
use crate::instance::layout::Layout;
use crate::instance::state::Colour;
use crate::instance::tls::CertPaths;
use crate::render::{render_nginx_main, render_site, render_upstreams, MainSpec, SiteSpec, Upstreams};
use crate::report::note;
use crate::service::init::Init;

/// Why nginx could not be configured, started, reloaded or stopped. The texts are the ones the
/// installer always printed. No variant has a `source`: the text already contains the cause, and
/// `main` prints an error's chain (`{:#}`), which would repeat it.
#[derive(Debug, thiserror::Error)]
pub enum NginxError {
    #[error("run nginx -t: {0}; install nginx")]
    Missing(std::io::Error),
    #[error("{what}: {err}")]
    Run { what: String, err: std::io::Error },
    #[error("{what} failed: {stderr}")]
    Failed { what: String, stderr: String },
    #[error("{action} {}: {err}", path.display())]
    Io { action: &'static str, path: PathBuf, err: std::io::Error },
    #[error("move {} aside: {err}", path.display())]
    MoveAside { path: PathBuf, err: std::io::Error },
    #[error("{0}\nthe previous nginx configuration was kept and is still serving")]
    Rejected(Box<NginxError>),
    #[error("nginx (pid {0}) did not stop within 15 s")]
    StopTimeout(i32),
    #[error("nginx did not apply the new configuration within {secs} s; see {}", log.display())]
    NotApplied { secs: u64, log: PathBuf },
    #[error(transparent)]
    Template(#[from] crate::render::templates::TemplateError),
    #[error("{0}")]
    Render(crate::render::RenderError),
    #[error(transparent)]
    Freeze(#[from] crate::service::freeze::FreezeError),
}

fn failed(what: &str, stderr: &[u8]) -> NginxError {
    NginxError::Failed { what: what.to_string(), stderr: String::from_utf8_lossy(stderr).trim().to_string() }
}

fn run_err(what: &str) -> impl FnOnce(std::io::Error) -> NginxError + '_ {
    move |err| NginxError::Run { what: what.to_string(), err }
}

pub fn site_file(l: &Layout) -> PathBuf {
    l.nginx_dir().join("site.conf")
}
pub fn upstream_file(l: &Layout) -> PathBuf {
    l.nginx_dir().join("upstream.conf")
}
fn main_file(l: &Layout) -> PathBuf {
    l.nginx_dir().join("nginx.conf")
}
fn pid_path(l: &Layout) -> PathBuf {
    l.nginx_dir().join("nginx.pid")
}

/// How nginx is invoked in this mode: private prefix, or the system's default configuration.
fn nginx_cmd(l: &Layout, init: Init) -> Command {
    let mut c = Command::new("nginx");
    if init == Init::Process {
        c.arg("-p").arg(l.nginx_dir()).arg("-c").arg(main_file(l));
    }
    c
}

pub fn check(l: &Layout, init: Init) -> Result<(), NginxError> {
    let out = nginx_cmd(l, init).arg("-t").output().map_err(NginxError::Missing)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed("nginx -t", &out.stderr))
    }
}

/// `nginx -t` of the configuration on disk, started now and judged by [`checked`]: an update runs
/// it while the database is backed up and the new colour starts, so a configuration that the
/// switch's reload would refuse fails the update before the switch, at no cost in time.
pub fn spawn_check(l: &Layout, init: Init) -> Result<std::process::Child, NginxError> {
    nginx_cmd(l, init)
        .arg("-t")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(NginxError::Missing)
}

pub fn checked(child: std::process::Child) -> Result<(), NginxError> {
    let out = child.wait_with_output().map_err(run_err("nginx -t"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed("nginx -t", &out.stderr))
    }
}

/// Replaces files atomically, runs `nginx -t`, and restores the old contents if the check fails.
/// Returns whether anything changed.
pub fn replace_checked(l: &Layout, init: Init, files: &[(PathBuf, String)]) -> Result<bool, NginxError> {
    let mut old: Vec<(PathBuf, Option<String>)> = Vec::new();
    for (path, text) in files {
        let prev = std::fs::read_to_string(path).ok();
        if prev.as_deref() == Some(text.as_str()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|err| NginxError::Io {
                action: "create",
                path: dir.to_path_buf(),
                err,
            })?;
        }
        manifests::atomic::write_atomic(path, text.as_bytes(), 0o644).map_err(|err| NginxError::Io {
            action: "write",
            path: path.clone(),
            err,
        })?;
        old.push((path.clone(), prev));
    }
    if old.is_empty() {
        return Ok(false);
    }
    if let Err(e) = check(l, init) {
        for (path, prev) in old.iter().rev() {
            let _ = match prev {
                Some(t) => manifests::atomic::write_atomic(path, t.as_bytes(), 0o644),
                None => std::fs::remove_file(path),
            };
        }
        return Err(NginxError::Rejected(Box::new(e)));
    }
    Ok(true)
}

pub fn site_spec(l: &Layout, d: &Deployment, cert: &CertPaths) -> SiteSpec {
    SiteSpec {
        instance: d.instance.name.clone(),
        domain: d.network.domain.clone(),
        listen_addr: d.network.listen_address.clone(),
        http_port: d.network.http_port,
        https_port: d.network.https_port,
        cert: cert.cert.clone(),
        key: cert.key.clone(),
        max_body_mb: d.files.max_size_mb,
        upstream_include: upstream_file(l),
        freeze_flag: crate::service::freeze::flag(l),
        static_frontend: d.components.frontend_dir.clone(),
        mcp: d.components.mcp,
        mcp_auth: crate::instance::mcp::nginx_auth_file(l),
        access_log: l.logs_dir().join("nginx/access.log"),
        error_log: l.logs_dir().join("nginx/error.log"),
        acme_challenge_dir: l.acme_challenge_dir(),
    }
}

/// The upstream file's contents: which colour gets traffic.
pub fn upstreams(d: &Deployment, colour: Colour) -> Upstreams {
    Upstreams {
        instance: d.instance.name.clone(),
        backend_port: crate::service::units::backend_port(d, colour),
        mcp_port: d.components.mcp.then_some(crate::service::units::mcp_port(d, colour)),
    }
}

/// Points traffic at `colour`, then freezes writes or lifts the freeze (`freeze.rs`: a flag file,
/// no reload). The upstream and site files are rendered again, replaced atomically and checked
/// with `nginx -t`; nginx reloads only when what it runs differs from them, so a freeze or a lift
/// on the colour already served costs no reload (an instance whose site predates the flag check
/// gets it with one reload here, before its first freeze). A failing check leaves the previous
/// files and the running nginx untouched.
pub fn route(l: &Layout, d: &Deployment, init: Init, colour: Colour, write_freeze: bool) -> Result<(), NginxError> {
    let t = |n| crate::render::templates::load(n).map_err(NginxError::Template);
    let up = render_upstreams(&t("nginx/upstream.conf.tmpl")?, &upstreams(d, colour)).map_err(NginxError::Render)?;
    let site =
        render_site(&t("nginx/site.conf.tmpl")?, &site_spec(l, d, &cert_paths(l, d))).map_err(NginxError::Render)?;
    replace_checked(l, init, &[(upstream_file(l), up.clone()), (site_file(l), site.clone())])?;
    crate::fault::kill_point(&format!("upstream-written-{}", colour.name()));
    // The files alone cannot tell whether nginx runs them: a run killed between writing them and
    // reloading left nginx on the old rules. What the last successful reload applied is recorded.
    let applied = std::fs::read_to_string(applied_file(l)).ok();
    if !is_running(l, init) || applied.as_deref() != Some(applied_text(&up, &site).as_str()) {
        start_or_reload(l, init)?;
    }
    if write_freeze {
        crate::service::freeze::freeze(l, init, crate::service::units::backend_port(d, colour))
    } else {
        crate::service::freeze::thaw(l)
    }
    .map_err(NginxError::Freeze)
}

/// The certificate files the site names: the configured ones, or the self-signed pair `install`
/// made (`tls::ensure`, which this does not call: an update must not renew a certificate).
pub fn cert_paths(l: &Layout, d: &Deployment) -> CertPaths {
    match (&d.ssl.cert_path, &d.ssl.key_path) {
        (Some(cert), Some(key)) => CertPaths { cert: cert.clone(), key: key.clone(), self_signed: false },
        _ => crate::instance::tls::acme_obtained(l, d).unwrap_or_else(|| CertPaths {
            cert: l.ssl_dir().join("cert.pem"),
            key: l.ssl_dir().join("key.pem"),
            self_signed: true,
        }),
    }
}

/// What the upstream file currently routes to: (backend port, writes frozen).
pub fn routed(l: &Layout) -> Option<(u16, bool)> {
    let text = std::fs::read_to_string(upstream_file(l)).ok()?;
    let port =
        text.lines().find_map(|x| x.trim().strip_prefix("server 127.0.0.1:")?.strip_suffix(';')?.parse().ok())?;
    Some((port, crate::service::freeze::is_frozen(l)))
}

/// The complete set of nginx files for this instance.
pub fn render_all(
    l: &Layout,
    d: &Deployment,
    init: Init,
    cert: &CertPaths,
    up: &Upstreams,
) -> Result<Vec<(PathBuf, String)>, NginxError> {
    let t = |n| crate::render::templates::load(n).map_err(NginxError::Template);
    let e = NginxError::Render;
    let mut files = vec![
        (upstream_file(l), render_upstreams(&t("nginx/upstream.conf.tmpl")?, up).map_err(e)?),
        (site_file(l), render_site(&t("nginx/site.conf.tmpl")?, &site_spec(l, d, cert)).map_err(e)?),
    ];
    match init {
        Init::Process => {
            let main = MainSpec {
                prefix: l.nginx_dir(),
                temp_dir: temp_dir(l),
                site: site_file(l),
                error_log: l.logs_dir().join("nginx/error.log"),
                user: None,
            };
            files.push((main_file(l), render_nginx_main(&t("nginx/nginx.conf.tmpl")?, &main).map_err(e)?));
        }
        Init::Systemd => files.push((l.nginx_conf_d(), conf_d_include(l, d))),
    }
    Ok(files)
}

/// The system nginx's include of the instance's site (under systemd): `stop` removes it when other
/// instances share that nginx, `start` puts it back.
pub fn conf_d_include(l: &Layout, d: &Deployment) -> String {
    format!("# vikunja-pve instance {}\ninclude {};\n", d.instance.name, site_file(l).display())
}

/// Stops serving this instance: its own nginx under `--init process`; under systemd the system
/// nginx, or only this instance's include when other instances are installed on the machine.
pub fn stop(l: &Layout, init: Init) -> Result<(), NginxError> {
    let _ = std::fs::remove_file(applied_file(l));
    match init {
        Init::Process => {
            let Some(pid) = process_pid(l) else { return Ok(()) };
            let out = nginx_cmd(l, init).args(["-s", "quit"]).output().map_err(run_err("nginx -s quit"))?;
            if !out.status.success() {
                crate::service::init::signal(pid, libc::SIGQUIT);
            }
            crate::service::init::wait_gone(pid, Duration::from_secs(15)).map_err(|()| NginxError::StopTimeout(pid))
        }
        Init::Systemd => {
            let others = crate::instance::layout::installed_instances(&l.root).into_iter().any(|i| i != l.instance);
            let (verb, what) = if others {
                let inc = l.nginx_conf_d();
                std::fs::remove_file(&inc)
                    .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
                    .map_err(|err| NginxError::Io { action: "remove", path: inc.clone(), err })?;
                ("reload", "systemctl reload nginx")
            } else {
                ("stop", "systemctl stop nginx")
            };
            let out = Command::new("systemctl").args([verb, "nginx.service"]).output().map_err(run_err(what))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(failed(what, &out.stderr))
            }
        }
    }
}

/// Outside `config/` (0750, not traversable for the workers' user), so uploads and downloads larger
/// than nginx's memory buffers can be spooled.
fn temp_dir(l: &Layout) -> PathBuf {
    l.state_dir().join("nginx-temp")
}

pub fn prepare_dirs(l: &Layout) -> Result<(), NginxError> {
    for d in [l.logs_dir().join("nginx"), l.nginx_dir().join("tmp"), l.nginx_dir().join("logs"), temp_dir(l)] {
        std::fs::create_dir_all(&d).map_err(|err| NginxError::Io { action: "create", path: d.clone(), err })?;
    }
    Ok(())
}

pub fn is_running(l: &Layout, init: Init) -> bool {
    match init {
        Init::Systemd => Command::new("systemctl")
            .args(["is-active", "--quiet", "nginx.service"])
            .status()
            .is_ok_and(|s| s.success()),
        Init::Process => process_pid(l).is_some(),
    }
}

fn process_pid(l: &Layout) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_path(l)).ok()?.trim().parse().ok()?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    String::from_utf8_lossy(&cmd).contains("nginx").then_some(pid)
}

/// Starts nginx, or reloads it so it picks up checked changes. A reload returns only once the
/// new configuration serves: new workers are up and the old ones have finished their requests
/// (bounded by `RELOAD_DRAIN`), so a caller that next stops a backend or backs up the database
/// knows no old worker still sends traffic by the old rules.
pub fn start_or_reload(l: &Layout, init: Init) -> Result<(), NginxError> {
    let run = |mut c: Command, what: &str| -> Result<(), NginxError> {
        let out = c.output().map_err(run_err(what))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(failed(what, &out.stderr))
        }
    };
    // Forgotten before the signal, recorded again only once the reload completed: a run killed in
    // between must leave "unknown" (so the next route reloads), not the rules nginx ran before.
    let _ = std::fs::remove_file(applied_file(l));
    let master = master_pid(l, init);
    let old_workers = master.map(children).unwrap_or_default();
    match (init, is_running(l, init)) {
        (Init::Process, true) => {
            let mut c = nginx_cmd(l, init);
            c.args(["-s", "reload"]);
            run(c, "nginx -s reload")?;
        }
        (Init::Process, false) => {
            run(nginx_cmd(l, init), "start nginx")?;
            record_applied(l);
            return Ok(());
        }
        (Init::Systemd, running) => {
            let mut c = Command::new("systemctl");
            c.args([if running { "reload" } else { "restart" }, "nginx.service"]);
            run(c, "systemctl reload nginx")?;
            if !running {
                record_applied(l);
                return Ok(());
            }
        }
    }
    crate::fault::kill_point("reload-signalled");
    if let Some(m) = master {
        wait_for_reload(m, &old_workers, &l.logs_dir().join("nginx/error.log"))?;
    }
    record_applied(l);
    Ok(())
}

/// A copy of the upstream and site files as the running nginx last loaded them.
fn applied_file(l: &Layout) -> PathBuf {
    l.state_dir().join("nginx-applied-upstream.conf")
}

fn applied_text(upstream: &str, site: &str) -> String {
    format!("{upstream}\n{site}")
}

fn record_applied(l: &Layout) {
    match (std::fs::read_to_string(upstream_file(l)), std::fs::read_to_string(site_file(l))) {
        (Ok(up), Ok(site)) => {
            let _ = manifests::atomic::write_atomic(&applied_file(l), applied_text(&up, &site).as_bytes(), 0o644);
        }
        _ => {
            let _ = std::fs::remove_file(applied_file(l));
        }
    }
}

/// Longest wait for old workers to finish their requests; long-lived connections (MCP streams)
/// may outlast it, and then the caller goes on.
const RELOAD_DRAIN: Duration = Duration::from_secs(10);

/// Waits until new workers serve and the old ones are gone. No new worker means nginx did not
/// apply the configuration (the master refused it): an error, since callers rely on the new rules
/// (a write freeze before a backup). Old workers still busy with long requests are only warned about.
fn wait_for_reload(master: i32, old: &[i32], error_log: &std::path::Path) -> Result<(), NginxError> {
    let start = Instant::now();
    loop {
        let now = children(master);
        let new_up = now.iter().any(|p| !old.contains(p));
        let old_gone = !now.iter().any(|p| old.contains(p));
        if new_up && old_gone {
            return Ok(());
        }
        if start.elapsed() > RELOAD_DRAIN {
            if !new_up {
                return Err(NginxError::NotApplied { secs: RELOAD_DRAIN.as_secs(), log: error_log.to_path_buf() });
            }
            note!("warning: old nginx workers still finish long requests after {} s", RELOAD_DRAIN.as_secs());
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `pid` is the nginx that serves this instance (its master or a worker): under systemd
/// the system's nginx, which serves every instance of the machine; otherwise the instance's own.
pub fn owns(l: &Layout, init: Init, pid: i32) -> bool {
    match master_pid(l, init) {
        Some(m) => crate::service::sockets::descends_from(pid, m),
        None => false,
    }
}

fn master_pid(l: &Layout, init: Init) -> Option<i32> {
    match init {
        Init::Process => process_pid(l),
        Init::Systemd => crate::service::init::main_pid_of("nginx.service"),
    }
}

/// The running nginx's worker processes (under systemd also its cache helpers, which run the same
/// event loop); none when nginx does not run.
pub fn workers(l: &Layout, init: Init) -> Vec<i32> {
    master_pid(l, init).map(children).unwrap_or_default()
}

/// Live (not zombie) child processes of `pid`: nginx's workers.
fn children(pid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).ok().is_some_and(|s| {
                let Some((_, rest)) = s.rsplit_once(')') else { return false };
                let mut f = rest.split_whitespace();
                let state = f.next().unwrap_or("Z");
                state != "Z" && f.next().and_then(|pp| pp.parse::<i32>().ok()) == Some(pid)
            })
        })
        .collect()
}

/// Debian's default site answers on port 80 with a welcome page; in a container dedicated to
/// Vikunja it is moved aside (not deleted) so the instance's redirect answers instead.
pub fn disable_default_site(l: &Layout) -> Result<(), NginxError> {
    let default = l.system("/etc/nginx/sites-enabled/default");
    if default.symlink_metadata().is_ok() {
        let aside = l.state_dir().join("nginx-default-site.disabled");
        std::fs::rename(&default, &aside).map_err(|err| NginxError::MoveAside { path: default.clone(), err })?;
    }
    Ok(())
}

pub fn have_nginx() -> bool {
    Command::new("nginx").arg("-v").output().is_ok()
}
