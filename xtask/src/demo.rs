//! `cargo xtask demo`: the main job end to end on this machine. Builds and signs a release, serves
//! it from a local HTTPS release server (nginx with a throw-away CA, GitHub's URL layout), and runs
//! the real one-liner `curl … | sh` against it; the installer answers from its verified bundle.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use vikunja_e2e::{ca::TestCa, nginx::ReleaseServer};

use crate::dist::Dist;

pub const OWNER: &str = "vikunja-pve";
pub const REPO: &str = "vikunja-pve";

/// A release built by `dist` and served over HTTPS, for the demo and the benchmarks.
pub struct Served {
    pub ca: TestCa,
    pub server: ReleaseServer,
    pub spec: release::ReleaseSpec,
    pub assets: std::path::PathBuf,
}

pub fn build_and_serve(root: &Path, name: &str, extra_lib: Vec<std::path::PathBuf>) -> Result<Served> {
    let work = vikunja_e2e::scratch_dir(name)?;
    let assets = work.join("release");
    let d = Dist {
        out: assets.clone(),
        key: None,
        version: None,
        channel: "stable".into(),
        serial: None,
        expires_days: 180,
        min_bootstrap_version: "0.1.0".into(),
        next_keys: None,
        owner: OWNER.into(),
        repo: REPO.into(),
        base_url: "https://github.com".into(),
        extra_lib,
    };
    let spec = crate::dist::run(root, &d)?;
    let ca = TestCa::create(&work.join("ca"))?;
    let server = ReleaseServer::start(&work.join("nginx"), &ca)?;
    let tag = format!("v{}", spec.version);
    server.publish(OWNER, REPO, &tag, &assets)?;
    server.set_latest(&tag)?;
    Ok(Served { ca, server, spec, assets })
}

impl Served {
    /// The environment that points curl, install.sh and the bootstrap at the local server.
    pub fn env(&self, state: &Path) -> Vec<(&'static str, String)> {
        let ca = self.ca.ca_pem.to_string_lossy().into_owned();
        vec![
            ("CURL_CA_BUNDLE", ca.clone()),
            ("SSL_CERT_FILE", ca),
            ("VIKUNJA_INSTALLER_BASE_URL", self.server.base_url()),
            ("VIKUNJA_STATE_DIR", state.to_string_lossy().into_owned()),
        ]
    }

    pub fn one_liner(&self, installer_args: &str) -> String {
        format!(
            "curl -fsSL {}/{OWNER}/{REPO}/releases/latest/download/install.sh | sh -s -- -- {installer_args}",
            self.server.base_url()
        )
    }
}

pub fn run(root: &Path) -> Result<()> {
    crate::prereq::ensure(crate::prereq::DEMO_TOOLS)?;
    println!("== 1. build and sign a release (static binaries, throw-away key)");
    let s = build_and_serve(root, "demo", Vec::new())?;
    println!("   assets: {}", s.assets.display());
    println!("== 2. local HTTPS release server: {} (test CA {})", s.server.base_url(), s.ca.ca_pem.display());
    let vikunja = "v2.5.0";
    let zips = vikunja_e2e::sandbox::standin_zips(&[vikunja])?;
    let dl = s.server.www.join("vikunja").join(vikunja);
    std::fs::create_dir_all(&dl)?;
    let zip = format!("vikunja-{vikunja}-linux-amd64-full.zip");
    std::fs::copy(zips.join(vikunja).join(&zip), dl.join(&zip))?;
    println!("   serving the Vikunja stand-in (a test double) as {zip}");
    let sandbox = vikunja_e2e::sandbox::Sandbox::new("demo-root")?;
    let config = sandbox.root.join("deployment.toml");
    std::fs::write(&config, sandbox.config("demo", vikunja, &format!("{}/vikunja", s.server.base_url()), ""))?;
    let state = s.assets.parent().context("demo dir")?.join("state");
    let args = format!("install --root {} --init process --config {} --yes", sandbox.root.display(), config.display());
    let line = s.one_liner(&args);
    println!(
        "== 3. the one-liner, as a Proxmox admin runs it (here into the sandbox root {}):\n   {line}\n",
        sandbox.root.display()
    );
    let status =
        Command::new("bash").args(["-o", "pipefail", "-c", &line]).envs(s.env(&state)).status().context("run bash")?;
    if !status.success() {
        bail!("the one-liner failed with {status}");
    }
    let p = sandbox.ports;
    let cert = sandbox.instance_dir("demo").join("config/ssl/cert.pem");
    let url = format!("https://vikunja.test:{}/api/v1/info", p.https);
    println!("\n== 4. Vikunja answers through nginx over TLS: curl --cacert {} {url}", cert.display());
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .args(["--resolve", &format!("vikunja.test:{}:127.0.0.1", p.https), &url])
        .output()?;
    println!("   {}", String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() {
        bail!("curl through nginx failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    println!("\n== done: install.sh checked the bootstrap's sha256, the bootstrap verified the signed release and");
    println!("   handed off; the installer verified the Vikunja zip, deployed it behind nginx with TLS and checked");
    println!("   its health. The sandbox's services are stopped now.");
    Ok(())
}
