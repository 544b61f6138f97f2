//! What `cargo xtask demo` and the benchmarks share: a release built by `dist` and served over
//! HTTPS from a local GitHub-shaped release server, and a second release to upgrade to. Neither
//! of them imports the other.

use std::path::{Path, PathBuf};

use anyhow::Result;
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
    build_and_serve_with(root, name, extra_lib, None)
}

/// As `build_and_serve`, signed with `key` (a throw-away key kept between runs: the trusted key is
/// compiled in, so a new one each run would rebuild the release binaries every time).
pub fn build_and_serve_with(
    root: &Path,
    name: &str,
    extra_lib: Vec<std::path::PathBuf>,
    key: Option<std::path::PathBuf>,
) -> Result<Served> {
    let work = vikunja_e2e::scratch_dir(name)?;
    let assets = work.join("release");
    let d = dist(assets.clone(), key, None, extra_lib);
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

/// A second release signed with the same throw-away key as `first`, so the first one's installer
/// trusts it: what `cargo xtask demo` and this benchmark upgrade to.
pub fn second_release(root: &Path, first: &Served, name: &str, version: &str) -> Result<PathBuf> {
    let out = vikunja_e2e::scratch_dir(name)?.join("release");
    let d = dist(
        out.clone(),
        Some(first.assets.join("keys").join(release::signing::SECRET_NAME)),
        Some(version.into()),
        Vec::new(),
    );
    crate::dist::run(root, &d)?;
    Ok(out)
}

/// A stable-channel release of this repository's assets for the local server.
fn dist(out: PathBuf, key: Option<PathBuf>, version: Option<String>, extra_lib: Vec<PathBuf>) -> Dist {
    Dist {
        out,
        key,
        version,
        channel: "stable".into(),
        serial: None,
        expires_days: 180,
        min_bootstrap_version: "0.1.0".into(),
        next_keys: None,
        owner: OWNER.into(),
        repo: REPO.into(),
        base_url: "https://github.com".into(),
        extra_lib,
    }
}
