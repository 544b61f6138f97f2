//! Assembles every asset of one release into a directory: the bootstrap, the installer bundle,
//! install.sh and release.toml, each with a minisign signature whose trusted comment binds the
//! file name, channel, version, serial and expiry.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use manifests::manifest::{names, Asset, ReleaseManifest, FORMAT, MANIFEST_NAME, PRODUCT};
use manifests::{hash, TrustedComment, Version};

use crate::bundle::{write_bundle, BundleFile};
use crate::signing::SigningKey;

const INSTALL_SH_TEMPLATE: &str = include_str!("../templates/install.sh");

/// What is being released and where install.sh looks for it by default.
#[derive(Debug, Clone)]
pub struct ReleaseSpec {
    pub version: Version,
    pub channel: String,
    pub serial: u64,
    pub published: i64,
    pub expires: i64,
    pub min_bootstrap_version: Version,
    pub target: String,
    pub base_url: String,
    pub owner: String,
    pub repo: String,
}

pub struct Inputs {
    pub bootstrap: PathBuf,
    pub installer: PathBuf,
    /// Templates and libraries shipped beside the installer binary.
    pub extra: Vec<BundleFile>,
}

impl ReleaseSpec {
    pub fn trusted_comment(&self, file: &str) -> String {
        TrustedComment::render(&[
            ("timestamp", self.published.to_string()),
            ("file", file.to_string()),
            ("channel", self.channel.clone()),
            ("version", self.version.to_string()),
            ("serial", self.serial.to_string()),
            ("expires", self.expires.to_string()),
        ])
    }
}

/// Signs `dir/name` into `dir/name.minisig` and returns its manifest entry.
pub fn sign_asset(key: &SigningKey, spec: &ReleaseSpec, dir: &Path, name: &str) -> Result<Asset> {
    let path = dir.join(name);
    let (sha256, size) = hash::sha256_reader(File::open(&path).with_context(|| format!("open {}", path.display()))?)?;
    let sig = key.sign(File::open(&path)?, &spec.trusted_comment(name))?;
    std::fs::write(dir.join(names::signature(name)), sig)?;
    Ok(Asset { name: name.to_string(), size, sha256 })
}

pub fn render_install_sh(spec: &ReleaseSpec, bootstrap_sha256: &str) -> Result<String> {
    for (what, v) in [("owner", &spec.owner), ("repo", &spec.repo)] {
        if !manifests::manifest::is_safe_name(v) {
            bail!("invalid GitHub {what} {v:?}");
        }
    }
    if !spec.base_url.starts_with("https://") || spec.base_url.contains(['"', '\'', '$', '`', '\\', ' ']) {
        bail!("base URL {:?} must be a plain https:// URL", spec.base_url);
    }
    Ok(INSTALL_SH_TEMPLATE
        .replace("@VERSION@", &spec.version.to_string())
        .replace("@BOOTSTRAP_SHA256@", bootstrap_sha256)
        .replace("@BASE_URL@", spec.base_url.trim_end_matches('/'))
        .replace("@OWNER@", &spec.owner)
        .replace("@REPO@", &spec.repo))
}

/// Writes all release assets into `out` and returns the signed manifest.
pub fn assemble(spec: &ReleaseSpec, inputs: Inputs, key: &SigningKey, out: &Path) -> Result<ReleaseManifest> {
    std::fs::create_dir_all(out)?;
    let v = spec.version.to_string();
    let mut assets = Vec::new();

    let boot_name = names::bootstrap(&spec.target);
    std::fs::copy(&inputs.bootstrap, out.join(&boot_name))
        .with_context(|| format!("copy {}", inputs.bootstrap.display()))?;
    let boot = sign_asset(key, spec, out, &boot_name)?;

    let bundle_name = names::bundle(&v, &spec.target);
    let mut files = vec![BundleFile { dest: "bin/vikunja-installer".into(), source: inputs.installer.clone() }];
    files.extend(inputs.extra);
    let tmp = out.join(format!(".{bundle_name}.partial"));
    write_bundle(files, spec.published.max(0) as u64, File::create(&tmp)?)?;
    std::fs::rename(&tmp, out.join(&bundle_name))?;
    assets.push(sign_asset(key, spec, out, &bundle_name)?);

    std::fs::write(out.join(names::INSTALL_SH), render_install_sh(spec, &boot.sha256)?)?;
    assets.push(sign_asset(key, spec, out, names::INSTALL_SH)?);
    assets.insert(0, boot);

    let manifest = ReleaseManifest {
        format: FORMAT,
        product: PRODUCT.to_string(),
        channel: spec.channel.clone(),
        version: spec.version.clone(),
        serial: spec.serial,
        published: spec.published,
        expires: spec.expires,
        min_bootstrap_version: spec.min_bootstrap_version.clone(),
        assets,
    };
    write_manifest(&manifest, key, out, None)?;
    Ok(manifest)
}

/// Writes and signs release.toml. `comment` overrides the trusted comment (tests forge with it).
pub fn write_manifest(m: &ReleaseManifest, key: &SigningKey, out: &Path, comment: Option<&str>) -> Result<()> {
    let text = m.render();
    let tc = comment.map(str::to_string).unwrap_or_else(|| {
        TrustedComment::render(&[
            ("timestamp", m.published.to_string()),
            ("file", MANIFEST_NAME.to_string()),
            ("channel", m.channel.clone()),
            ("version", m.version.to_string()),
            ("serial", m.serial.to_string()),
        ])
    });
    std::fs::write(out.join(MANIFEST_NAME), &text)?;
    std::fs::write(out.join(names::signature(MANIFEST_NAME)), key.sign(text.as_bytes(), &tc)?)?;
    Ok(())
}
