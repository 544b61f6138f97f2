//! A sandbox root for installer tests and the demo: free loopback ports for every service, the
//! Vikunja stand-in packaged as a release zip and served over HTTPS, and a Drop that stops every
//! supervisor and nginx the installer started under the root, even when a test fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{bail, Context, Result};

use crate::ca::TestCa;
use crate::nginx::ReleaseServer;

/// `cargo xtask standin-zip` once per version per process; returns the zip's directory root
/// (`<out>/<version>/vikunja-<version>-linux-amd64-full.zip`).
pub fn standin_zips(versions: &[&str]) -> Result<PathBuf> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = crate::workspace_root().join("target/standin-zips");
    for v in versions {
        if out.join(v).join(format!("vikunja-{v}-linux-amd64-full.zip")).is_file() && built_this_run(v) {
            continue;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let o = Command::new(cargo)
            .current_dir(crate::workspace_root())
            .args(["xtask", "standin-zip", "--version", v, "--out"])
            .arg(&out)
            .output()
            .context("run cargo xtask standin-zip")?;
        if !o.status.success() {
            bail!("cargo xtask standin-zip --version {v} failed:\n{}", String::from_utf8_lossy(&o.stderr));
        }
        mark_built(v);
    }
    Ok(out)
}

fn built() -> &'static Mutex<Vec<String>> {
    static B: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    B.get_or_init(|| Mutex::new(Vec::new()))
}
fn built_this_run(v: &str) -> bool {
    built().lock().unwrap_or_else(|e| e.into_inner()).iter().any(|x| x == v)
}
fn mark_built(v: &str) {
    built().lock().unwrap_or_else(|e| e.into_inner()).push(v.to_string());
}

/// The directory of release `v` on the download site: `v2.5.0`, but `0.24.6` up to v0.24.x (the
/// old release pipeline dropped the `v` from the directory, not from the zip's name).
pub fn release_dir(v: &str) -> String {
    let plain = v.strip_prefix('v').unwrap_or(v);
    match plain.split('.').next().and_then(|m| m.parse::<u32>().ok()) {
        Some(0) => plain.to_string(),
        _ => v.to_string(),
    }
}

/// The HTTPS download site for stand-in zips: `{base}/vikunja/<version>/<zip>` (see [`release_dir`]).
pub struct DownloadSite {
    pub ca: TestCa,
    pub server: ReleaseServer,
}

impl DownloadSite {
    pub fn start(dir: &Path, versions: &[&str]) -> Result<DownloadSite> {
        let zips = standin_zips(versions)?;
        let ca = TestCa::create(&dir.join("ca"))?;
        let server = ReleaseServer::start(&dir.join("nginx"), &ca)?;
        for v in versions {
            let dest = server.www.join("vikunja").join(release_dir(v));
            std::fs::create_dir_all(&dest)?;
            let name = format!("vikunja-{v}-linux-amd64-full.zip");
            std::fs::copy(zips.join(v).join(&name), dest.join(&name))?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dest.join(&name), std::fs::Permissions::from_mode(0o644))?;
            for d in [dest.as_path(), dest.parent().unwrap()] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        Ok(DownloadSite { ca, server })
    }

    pub fn base(&self) -> String {
        format!("{}/vikunja", self.server.base_url())
    }
}

/// A root directory the installer works in, with services stopped on drop and then the directory
/// removed (the field drops after `Drop::drop`; see [`crate::TestDir`]).
pub struct Sandbox {
    pub root: PathBuf,
    pub ports: Ports,
    _dir: crate::TestDir,
}

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub http: u16,
    pub https: u16,
    pub backend_blue: u16,
    pub backend_green: u16,
    pub frontend_blue: u16,
    pub frontend_green: u16,
    pub mcp_blue: u16,
    pub mcp_green: u16,
}

/// A deployment.toml for an instance in an LXC container behind the Proxmox test doubles (tests,
/// the demo, the benchmark): the doubles share the host's network, so every instance gets its own
/// loopback address `ip` and free ports `p`. `vikunja` holds the lines of the `[vikunja]` table,
/// `extra` more tables.
/// The version a backend port answers on `/api/v1/info` (plain HTTP on loopback), None when
/// nothing answers.
pub fn version_on(port: u16) -> Option<String> {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "3", &format!("http://127.0.0.1:{port}/api/v1/info")])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
    v["version"].as_str().map(str::to_string)
}

pub fn container_config(name: &str, vikunja: &str, ip: &str, p: &Ports, extra: &str) -> String {
    format!(
        "[instance]\nname = \"{name}\"\n\n[vikunja]\n{vikunja}\n\n\
         [network]\ndomain = \"{name}.vikunja.test\"\nip_address = \"{ip}\"\nlisten_address = \"127.0.0.1\"\n\
         http_port = {}\nhttps_port = {}\n\n[ports]\nbackend_blue = {}\nbackend_green = {}\nfrontend_blue = {}\n\
         frontend_green = {}\nmcp_blue = {}\nmcp_green = {}\n\n[health]\ninterval_s = 1\ntimeout_s = 30\n\n\
         [resources]\nmemory_mb = 1024\n{extra}",
        p.http, p.https, p.backend_blue, p.backend_green, p.frontend_blue, p.frontend_green, p.mcp_blue, p.mcp_green
    )
}

impl Sandbox {
    /// Runs the installer `bin` on this sandbox (`--root`), trusting `ca` for downloads, with no
    /// colours, no terminal and no passphrase from the caller's environment, plus `env`; the
    /// command and its output are logged for a failing test's report.
    pub fn run_installer<K, V>(
        &self,
        bin: &str,
        ca: &Path,
        args: &[&str],
        env: impl IntoIterator<Item = (K, V)>,
    ) -> Output
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let o = Command::new(bin)
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .env("SSL_CERT_FILE", ca)
            .env("NO_COLOR", "1")
            .env_remove("VIKUNJA_BACKUP_PASSPHRASE")
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .expect("run the installer");
        eprintln!(
            "$ vikunja-installer {} ({:?})\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    pub fn new(name: &str) -> Result<Sandbox> {
        let dir = crate::TestDir::new(name)?;
        let root = dir.path().to_path_buf();
        let mut p = Vec::new();
        while p.len() < 8 {
            let port = crate::free_port();
            if !p.contains(&port) {
                p.push(port);
            }
        }
        let ports = Ports {
            http: p[0],
            https: p[1],
            backend_blue: p[2],
            backend_green: p[3],
            frontend_blue: p[4],
            frontend_green: p[5],
            mcp_blue: p[6],
            mcp_green: p[7],
        };
        Ok(Sandbox { root, ports, _dir: dir })
    }

    /// A deployment.toml for this sandbox; `extra` is appended verbatim (more TOML tables).
    pub fn config(&self, instance: &str, version: &str, download_base: &str, extra: &str) -> String {
        let p = &self.ports;
        format!(
            "[instance]\nname = \"{instance}\"\n\n[vikunja]\nversion = \"{version}\"\ndownload_base = \"{download_base}\"\n\n\
             [network]\ndomain = \"vikunja.test\"\nlisten_address = \"127.0.0.1\"\nhttp_port = {}\nhttps_port = {}\n\n\
             [ports]\nbackend_blue = {}\nbackend_green = {}\nfrontend_blue = {}\nfrontend_green = {}\nmcp_blue = {}\nmcp_green = {}\n\n\
             [health]\ninterval_s = 1\ntimeout_s = 30\n{extra}",
            p.http, p.https, p.backend_blue, p.backend_green, p.frontend_blue, p.frontend_green, p.mcp_blue, p.mcp_green
        )
    }

    pub fn instance_dir(&self, instance: &str) -> PathBuf {
        self.root.join(format!("opt/vikunja-{instance}"))
    }

    /// Stops every supervisor (SIGTERM: it drains its service) and nginx under this root.
    pub fn stop_all(&self) {
        let opt = self.root.join("opt");
        for inst in std::fs::read_dir(&opt).into_iter().flatten().flatten() {
            let logs = inst.path().join("logs");
            for f in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
                let p = f.path();
                if p.extension().is_some_and(|e| e == "pid") {
                    if let Some(pid) =
                        std::fs::read_to_string(&p).ok().and_then(|t| t.split_whitespace().next().map(str::to_string))
                    {
                        let _ = Command::new("kill").args(["-TERM", &pid]).status();
                    }
                }
            }
            let ng = inst.path().join("config/nginx");
            if ng.join("nginx.pid").exists() {
                let _ = Command::new("nginx")
                    .arg("-p")
                    .arg(&ng)
                    .arg("-c")
                    .arg(ng.join("nginx.conf"))
                    .args(["-s", "quit"])
                    .output();
            }
        }
        // Give drains a moment so ports are free for the next test.
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop_all();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn releases_up_to_0_24_live_in_a_directory_without_the_v() {
        assert_eq!(super::release_dir("v0.24.6"), "0.24.6");
        assert_eq!(super::release_dir("v1.0.0-rc2"), "v1.0.0-rc2");
        assert_eq!(super::release_dir("v2.5.0"), "v2.5.0");
    }
}
