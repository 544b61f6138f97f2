//! `cargo xtask dist`: builds the static release binaries with the trusted key, version and channel
//! compiled in, then assembles and signs every release asset.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use argh::FromArgs;
use manifests::{build_info::TARGET, Version};
use release::{Inputs, ReleaseSpec, SigningKey};

/// Build, assemble and sign a release into a directory.
#[derive(FromArgs, Debug, Clone)]
#[argh(subcommand, name = "dist")]
pub struct Dist {
    /// output directory for the release assets
    #[argh(option)]
    pub out: PathBuf,
    /// minisign secret key; without it a throw-away pair is made (or reused) in OUT/keys/
    #[argh(option)]
    pub key: Option<PathBuf>,
    /// release version (default: the workspace version)
    #[argh(option)]
    pub version: Option<String>,
    /// release channel (default: stable)
    #[argh(option, default = "String::from(\"stable\")")]
    pub channel: String,
    /// manifest serial (default: the publish time in seconds, which only grows)
    #[argh(option)]
    pub serial: Option<u64>,
    /// days until the manifest expires (default 180)
    #[argh(option, default = "180")]
    pub expires_days: i64,
    /// oldest bootstrap/installer that can read this release (default 0.1.0: manifest format 1)
    #[argh(option, default = "String::from(\"0.1.0\")")]
    pub min_bootstrap_version: String,
    /// extra public keys to trust besides the signing key (base64, comma separated): the next key, for rotation
    #[argh(option)]
    pub next_keys: Option<String>,
    /// the GitHub owner compiled into install.sh and the bootstrap
    #[argh(option, default = "String::from(\"vikunja-pve\")")]
    pub owner: String,
    /// the GitHub repository compiled into install.sh and the bootstrap
    #[argh(option, default = "String::from(\"vikunja-pve\")")]
    pub repo: String,
    /// base URL compiled into install.sh
    #[argh(option, default = "String::from(\"https://github.com\")")]
    pub base_url: String,
    /// extra file to ship in the bundle under lib/ (repeatable; the benchmark pads bundles with it)
    #[argh(option)]
    pub extra_lib: Vec<PathBuf>,
}

pub struct Built {
    pub bootstrap: PathBuf,
    pub installer: PathBuf,
}

/// `cargo build --release` of both binaries, statically linked, in a target dir of their own so the
/// static flags and compiled-in keys never invalidate the normal build.
pub fn build_static(
    root: &Path,
    trusted_keys: &str,
    version: &str,
    channel: &str,
    owner: &str,
    repo: &str,
) -> Result<Built> {
    let target_dir = root.join("target/dist").join(version);
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "-p",
            "vikunja-bootstrap",
            "-p",
            "vikunja-installer",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        // With --target, RUSTFLAGS reach only the target binaries, not build scripts or proc macros.
        .env("RUSTFLAGS", "-C target-feature=+crt-static -C link-arg=-Wl,--icf=all")
        .env("VIKUNJA_TRUSTED_KEYS", trusted_keys)
        .env("VIKUNJA_RELEASE_VERSION", version)
        .env("VIKUNJA_RELEASE_CHANNEL", channel)
        .env("VIKUNJA_DEFAULT_OWNER", owner)
        .env("VIKUNJA_DEFAULT_REPO", repo)
        .status()
        .context("run cargo build")?;
    if !status.success() {
        bail!("cargo build of the release binaries failed");
    }
    let bin = target_dir.join(TARGET).join("release");
    let built = Built { bootstrap: bin.join("vikunja-bootstrap"), installer: bin.join("vikunja-installer") };
    for b in [&built.bootstrap, &built.installer] {
        assert_static(b)?;
    }
    Ok(built)
}

/// `file` must call the binary statically linked: a dynamic one would not start on older hosts.
fn assert_static(bin: &Path) -> Result<()> {
    let out = Command::new("file").arg("-b").arg(bin).output().context("run `file` (apt-get install -y file)")?;
    let desc = String::from_utf8_lossy(&out.stdout);
    if !desc.contains("statically linked") && !desc.contains("static-pie linked") {
        bail!("{} is not statically linked: {desc}", bin.display());
    }
    Ok(())
}

pub fn run(root: &Path, d: &Dist) -> Result<release::ReleaseSpec> {
    let key = match &d.key {
        Some(k) => SigningKey::load(k)?,
        None => SigningKey::throwaway_in(&d.out.join("keys"))?,
    };
    let version = d.version.clone().unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    let version = Version::parse(&version)?;
    let mut trusted = key.public_b64();
    if let Some(next) = &d.next_keys {
        trusted = format!("{trusted},{next}");
    }
    manifests::Keyring::from_list(&trusted).context("--next-keys")?;
    let built = build_static(root, &trusted, &version.to_string(), &d.channel, &d.owner, &d.repo)?;
    let published = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s.parse().context("SOURCE_DATE_EPOCH must be seconds since 1970")?,
        Err(_) => manifests::time::now_unix(),
    };
    let spec = ReleaseSpec {
        version: version.clone(),
        channel: d.channel.clone(),
        serial: d.serial.unwrap_or(published as u64),
        published,
        expires: published + d.expires_days * 86400,
        min_bootstrap_version: Version::parse(&d.min_bootstrap_version)?,
        target: TARGET.to_string(),
        base_url: d.base_url.clone(),
        owner: d.owner.clone(),
        repo: d.repo.clone(),
    };
    let mut extra = Vec::new();
    let templates = root.join("installer/templates");
    if templates.is_dir() {
        extra.extend(release::files_under(&templates, "templates")?);
    }
    for f in &d.extra_lib {
        let name = f.file_name().and_then(|n| n.to_str()).context("--extra-lib needs a file name")?;
        extra.push(release::BundleFile { dest: format!("lib/{name}"), source: f.clone() });
    }
    let assets = d.out.clone();
    release::assemble(&spec, Inputs { bootstrap: built.bootstrap, installer: built.installer, extra }, &key, &assets)?;
    eprintln!("dist: release {} (serial {}) written to {}", spec.version, spec.serial, assets.display());
    Ok(spec)
}
