//! A private nginx instance that imitates GitHub's release download layout
//! over HTTPS, so the installer's `releases/latest/download/…` redirect
//! handling, TLS verification and checksum checks run against a real server.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::ca::TestCa;
use crate::{check_component, describe, free_port, run_checked};

const NGINX_MISSING: &str = "nginx not found: install it with `apt-get install -y nginx`";

/// How often a fresh port is tried; nginx itself retries a busy port for
/// ~2.5 s before giving up, so more attempts would only make failures slow.
const START_ATTEMPTS: usize = 5;

/// Upper bound for "nginx is up" and "the reload took effect".
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// `latest.conf` before any `set_latest`: an empty tag makes `latest` answer
/// 404, which is what GitHub does for a repository without releases.
const NO_LATEST: &str = "set $latest_tag \"\";\n";

/// Every path is relative to `-p PREFIX` or absolute, because the Debian
/// build's compiled-in temp paths point at /var/lib/nginx, which a private
/// instance must not share (and cannot write when not root).
///
/// `daemon off;` keeps the master a child of the test process, tied to it with
/// [`crate::spawn_tied`]: a daemonized master would lose the parent-death signal
/// and outlive a test binary whose servers live in statics (never dropped).
const CONF_TEMPLATE: &str = r#"# Written by vikunja-e2e; rewritten on every start.
daemon off;
worker_processes 1;
pid nginx.pid;
error_log logs/error.log info;
events { worker_connections 1024; }
http {
  default_type application/octet-stream;
  types { text/plain txt; text/x-shellscript sh; application/json json; }
  access_log logs/access.log;
  client_body_temp_path tmp/body;
  proxy_temp_path tmp/proxy;
  fastcgi_temp_path tmp/fastcgi;
  uwsgi_temp_path tmp/uwsgi;
  scgi_temp_path tmp/scgi;
  server {
    listen 127.0.0.1:@PORT@ ssl;
    server_name localhost 127.0.0.1;
    ssl_certificate "@CERT@";
    ssl_certificate_key "@KEY@";
    # nginx 1.22 enables only TLSv1-1.2 by default; clients prefer 1.3.
    ssl_protocols TLSv1.2 TLSv1.3;
    root www;
    include conf.d/latest.conf;
    location ~ ^/(?<owner>[^/]+)/(?<repo>[^/]+)/releases/latest/download/(?<asset>[^/]+)$ {
      if ($latest_tag = "") { return 404; }
      return 302 /$owner/$repo/releases/download/$latest_tag/$asset;
    }
    # A mirror that redirects to plain http: clients must refuse to follow it.
    location ~ ^/downgrade/(?<rest>.*)$ { return 302 http://127.0.0.1:$server_port/$rest; }
    # A mirror that redirects to https elsewhere, as github.com sends release downloads to its CDN.
    location ~ ^/hop/(?<rest>.*)$ { return 302 https://localhost:$server_port/$rest; }
    # The same files, 64 KiB/s: lets tests interrupt a download in flight.
    location /slow/ { limit_rate 64k; alias www/; }
    location / { try_files $uri =404; }
  }
}
"#;

/// A running private nginx that serves `www/` like github.com serves release
/// assets, including the `latest` redirect.
///
/// Dropping it or [`ReleaseServer::stop`] stops nginx and waits for it; if the
/// process ends without either (a server in a `static`), the kernel stops it.
#[derive(Debug)]
pub struct ReleaseServer {
    /// nginx prefix (`-p`): config, pid file, logs and temp dirs live here.
    pub prefix: PathBuf,
    /// Loopback port nginx listens on with TLS.
    pub port: u16,
    /// Document root; releases live at `www/{owner}/{repo}/releases/download/{tag}/`.
    pub www: PathBuf,
    nginx: PathBuf,
    conf: PathBuf,
    ca_pem: PathBuf,
    /// The master, a child of this process; `None` once stopped.
    child: Option<Child>,
}

/// Same as [`ReleaseServer::start`], for callers that read better as `nginx::start(..)`.
pub fn start(prefix: &Path, ca: &TestCa) -> Result<ReleaseServer> {
    ReleaseServer::start(prefix, ca)
}

impl ReleaseServer {
    /// Writes the Vikunja download site's JSON listing of `versions` at its documented place,
    /// `/vikunja/.json` (not `/vikunja.json`): what `update` without `--version`, `update --auto`
    /// and the release notification read.
    pub fn write_vikunja_listing(&self, versions: &[&str]) -> std::io::Result<()> {
        let entries: Vec<String> =
            versions.iter().map(|v| format!("{{\"name\":\"{v}/\",\"type\":\"directory\"}}")).collect();
        let at = self.www.join("vikunja/.json");
        std::fs::create_dir_all(self.www.join("vikunja"))?;
        std::fs::write(&at, format!("[{}]", entries.join(",")))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o644))
    }

    /// Writes a config under `prefix`, starts nginx on a free loopback port
    /// (in the foreground, tied to this process) and returns once the port
    /// accepts connections, so the first request of a test cannot race the
    /// startup.
    ///
    /// Another process may take the chosen port between probing and nginx's
    /// bind, so a bind failure is retried with a new port.
    pub fn start(prefix: &Path, ca: &TestCa) -> Result<ReleaseServer> {
        let nginx = find_nginx()?;
        let prefix = absolute(prefix)?;
        for sub in ["logs", "tmp", "conf.d", "www"] {
            let d = prefix.join(sub);
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let www = prefix.join("www");
        // The worker runs as `nobody` when the master is root.
        fs::set_permissions(&www, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("chmod {}", www.display()))?;
        let latest = prefix.join("conf.d/latest.conf");
        if !latest.exists() {
            write_atomic(&latest, NO_LATEST)?;
        }
        let conf = prefix.join("nginx.conf");
        let mut server =
            ReleaseServer { prefix, port: 0, www, nginx, conf, ca_pem: absolute(&ca.ca_pem)?, child: None };
        // A leftover master from an earlier run on this prefix would keep the
        // pid file and confuse later signals.
        if master_running(&server.prefix, &server.conf) {
            let _ = server.signal("quit");
            server.wait_pid_gone(READY_TIMEOUT);
        }

        let cert = absolute(&ca.leaf_pem)?;
        let key = absolute(&ca.leaf_key)?;
        let mut last_err = String::new();
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let text = CONF_TEMPLATE
                .replace("@PORT@", &port.to_string())
                .replace("@CERT@", &cert.to_string_lossy())
                .replace("@KEY@", &key.to_string_lossy());
            fs::write(&server.conf, text).with_context(|| format!("writing {}", server.conf.display()))?;

            // stderr goes to a file, not a pipe: nobody reads a pipe while
            // nginx runs, and a full one would block it.
            let stderr_path = server.prefix.join(format!("logs/start-{attempt}.stderr"));
            let stderr =
                fs::File::create(&stderr_path).with_context(|| format!("creating {}", stderr_path.display()))?;
            let mut cmd = server.command();
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr);
            let shown = describe(&cmd);
            // The pid file appears once the listeners are bound: a stale one would pass for ours.
            let _ = fs::remove_file(server.prefix.join("nginx.pid"));
            let child = crate::spawn_tied(cmd).with_context(|| format!("could not run `{shown}`"))?;
            server.port = port;
            server.child = Some(child);
            match server.wait_started() {
                Ok(()) => return Ok(server),
                Err(status) => {
                    server.child = None;
                    let err_text = fs::read_to_string(&stderr_path).unwrap_or_default();
                    last_err = format!("`{shown}` failed ({status}): {}", err_text.trim());
                    if !err_text.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        bail!("starting nginx in {}: {last_err}", server.prefix.display())
    }

    /// `https://127.0.0.1:PORT`, without a trailing slash so callers can
    /// append `/owner/repo/...` the way they build GitHub URLs.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Makes the regular files of `assets_dir` downloadable as release `tag`
    /// of `owner/repo`, like uploading assets to a GitHub release.
    pub fn publish(&self, owner: &str, repo: &str, tag: &str, assets_dir: &Path) -> Result<()> {
        let dest = self.release_dir(owner, repo, tag)?;
        fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
        // Readable for the `nobody` worker whatever the umask or source mode.
        let mut d = dest.as_path();
        while d != self.www.as_path() {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("chmod {}", d.display()))?;
            d = d.parent().expect("release dir is below www");
        }
        let entries = fs::read_dir(assets_dir).with_context(|| format!("reading {}", assets_dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", assets_dir.display()))?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let to = dest.join(entry.file_name());
            fs::copy(entry.path(), &to)
                .with_context(|| format!("copying {} to {}", entry.path().display(), to.display()))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(0o644))
                .with_context(|| format!("chmod {}", to.display()))?;
        }
        Ok(())
    }

    /// Points `releases/latest` at `tag`, like publishing a newer release.
    ///
    /// Returns only after a fresh connection sees the new redirect and the old
    /// worker no longer accepts connections, so callers never observe the
    /// previous tag. Takes ~120 ms, most of it nginx's own reload delay.
    pub fn set_latest(&self, tag: &str) -> Result<()> {
        check_component("tag", tag)?;
        write_atomic(&self.prefix.join("conf.d/latest.conf"), &format!("set $latest_tag {tag};\n"))?;
        self.signal("reload")?;
        self.wait_redirect_to(tag)?;
        self.wait_single_worker()
    }

    /// Where nginx serves asset `name` of release `tag` from, so tests can
    /// tamper with or delete a published file.
    pub fn asset_path(&self, owner: &str, repo: &str, tag: &str, name: &str) -> PathBuf {
        self.www.join(owner).join(repo).join("releases/download").join(tag).join(name)
    }

    /// The access log, so tests can assert which URLs a client fetched. It
    /// also contains the harness's own probes of `/_harness/...`.
    pub fn access_log(&self) -> Result<String> {
        let p = self.prefix.join("logs/access.log");
        fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))
    }

    /// `nginx -s reload`: the old workers close their idle keep-alive connections and exit.
    pub fn reload(&self) -> Result<()> {
        self.signal("reload")
    }

    /// Stops nginx and waits (up to 5 s) until it has removed its pid file,
    /// for callers that reuse the port or the prefix right away.
    pub fn stop(mut self) {
        self.terminate();
    }

    /// SIGTERM (nginx's fast shutdown: the master stops its workers, then
    /// exits), then reaps the master; SIGKILL if it is still there after
    /// [`READY_TIMEOUT`], so a test never hangs on a wedged server.
    fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) has no memory effects; `pid` is our unreaped
            // child, so it cannot have been recycled for another process.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + READY_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            sleep(Duration::from_millis(10));
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.nginx);
        cmd.arg("-p").arg(&self.prefix).arg("-c").arg(&self.conf);
        cmd
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let mut cmd = self.command();
        cmd.arg("-s").arg(sig);
        run_checked(&mut cmd).map(|_| ())
    }

    fn release_dir(&self, owner: &str, repo: &str, tag: &str) -> Result<PathBuf> {
        check_component("owner", owner)?;
        check_component("repo", repo)?;
        check_component("tag", tag)?;
        Ok(self.www.join(owner).join(repo).join("releases/download").join(tag))
    }

    /// Waits until our master has written its pid file (it does so after
    /// binding, so a stranger on the port does not pass for nginx) and the
    /// port accepts connections. Err with a description when the master
    /// exited (it gives up on a busy port after ~2.5 s) or never got ready.
    fn wait_started(&mut self) -> std::result::Result<(), String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        // Longer than nginx's own retries on a busy port, so those end in an exit we can see.
        let deadline = Instant::now() + 2 * READY_TIMEOUT;
        let Some(pid) = self.child.as_ref().map(Child::id) else { return Err("not started".into()) };
        loop {
            match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => return Err(status.to_string()),
                Some(Err(e)) => return Err(format!("waiting for nginx: {e}")),
                _ => {}
            }
            if self.master_pid() == Some(pid) && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.terminate();
                return Err(format!(
                    "not serving on {addr} after {:?}; error log: {}",
                    2 * READY_TIMEOUT,
                    self.error_log_tail()
                ));
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Polls with curl because it is the simplest correct TLS client at hand;
    /// the harness stays std-only.
    fn wait_redirect_to(&self, tag: &str) -> Result<()> {
        let url = format!("{}/_harness/probe/releases/latest/download/probe", self.base_url());
        let want = format!("/_harness/probe/releases/download/{tag}/probe");
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut seen = String::new();
        while Instant::now() < deadline {
            let out = Command::new("curl")
                // -q first: ignore ~/.curlrc; --noproxy: tests may export HTTPS_PROXY.
                .args(["-q", "-s", "--noproxy", "*", "--max-time", "2", "-o", "/dev/null"])
                .arg("--cacert")
                .arg(&self.ca_pem)
                .args(["-w", "%{redirect_url}"])
                .arg(&url)
                .output()
                .map_err(|e| anyhow!("running curl to probe the reload: {e} (apt-get install -y curl)"))?;
            seen = String::from_utf8_lossy(&out.stdout).into_owned();
            if seen.ends_with(&want) {
                return Ok(());
            }
            sleep(Duration::from_millis(10));
        }
        bail!(
            "after reload, latest still redirects to {seen:?}, not to a URL ending in {want:?}; error log: {}",
            self.error_log_tail()
        )
    }

    /// After a reload the master starts the new worker, sleeps 100 ms, and
    /// only then tells the old one to stop accepting (measured: probes kept
    /// getting the old tag for ~120 ms). Seeing the new tag once is therefore
    /// not enough; wait until the old worker has closed its listeners too.
    /// Without /proc there is nothing to wait on.
    fn wait_single_worker(&self) -> Result<()> {
        let Some(master) = self.master_pid() else {
            return Ok(());
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match accepting_workers(master) {
                Some(1) | None => return Ok(()),
                Some(n) if Instant::now() >= deadline => {
                    bail!("{n} nginx workers still accept connections {READY_TIMEOUT:?} after a reload")
                }
                Some(_) => sleep(Duration::from_millis(5)),
            }
        }
    }

    fn master_pid(&self) -> Option<u32> {
        fs::read_to_string(self.prefix.join("nginx.pid")).ok()?.trim().parse().ok()
    }

    fn wait_pid_gone(&self, timeout: Duration) {
        let pid = self.prefix.join("nginx.pid");
        let deadline = Instant::now() + timeout;
        while pid.exists() && Instant::now() < deadline {
            sleep(Duration::from_millis(10));
        }
    }

    fn error_log_tail(&self) -> String {
        let text = fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for ReleaseServer {
    /// Without this every test would leave a server holding a port until its
    /// test binary ends.
    fn drop(&mut self) {
        self.terminate();
    }
}

/// True if `prefix/nginx.pid` names a running nginx master started with
/// `conf`. A stale pid file may name a recycled pid, and `nginx -s quit`
/// would then signal an unrelated process.
fn master_running(prefix: &Path, conf: &Path) -> bool {
    let Some(pid) = fs::read_to_string(prefix.join("nginx.pid")).ok().and_then(|s| s.trim().parse::<u32>().ok()) else {
        return false;
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let title = String::from_utf8_lossy(&cmdline);
    title.starts_with("nginx: master process") && title.contains(&*conf.to_string_lossy())
}

/// Stops nginx instances whose prefix is `dir` or a direct subdirectory of
/// it, for cleaning up after a run that was killed before Drop could run.
pub(crate) fn quit_orphans(dir: &Path) {
    let Ok(nginx) = find_nginx() else { return };
    let subdirs = fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
    for prefix in std::iter::once(dir.to_path_buf()).chain(subdirs) {
        let conf = prefix.join("nginx.conf");
        if master_running(&prefix, &conf) {
            let _ = Command::new(&nginx)
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(&conf)
                .args(["-s", "quit"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Children of `master` that are workers still accepting connections (their
/// title changes to "... is shutting down" once they have closed listeners).
fn accepting_workers(master: u32) -> Option<usize> {
    let mut n = 0;
    for entry in fs::read_dir("/proc").ok()? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may contain spaces and parens; fields after the last ')' do not.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|s| s.parse::<u32>().ok());
        if ppid != Some(master) {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let title = String::from_utf8_lossy(&cmdline);
        if title.contains("worker process") && !title.contains("shutting down") {
            n += 1;
        }
    }
    Some(n)
}

/// nginx lives in /usr/sbin on Debian, which is not on a normal user's PATH.
fn find_nginx() -> Result<PathBuf> {
    let from_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    let fixed = ["/usr/sbin", "/usr/local/sbin", "/usr/local/nginx/sbin"].map(PathBuf::from);
    from_path
        .into_iter()
        .chain(fixed)
        .map(|d| d.join("nginx"))
        .find(|p| fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0).unwrap_or(false))
        .ok_or_else(|| anyhow!(NGINX_MISSING))
}

/// Readers (nginx re-reading its config) must see either the old or the new
/// file, never a half-written one.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// nginx resolves relative paths against its prefix, not our cwd.
fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir().context("reading the current directory")?.join(p))
    }
}
