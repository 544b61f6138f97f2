//! `cargo xtask standin-zip`: packages the Vikunja test double exactly like a real Vikunja release
//! (`vikunja-<v>-linux-amd64-full.zip` holding `vikunja-<v>-linux-amd64`, its `.sha256` as
//! `<hex>  <name>`, `config.yml.sample` and `LICENSE`), so the installer's download and
//! verification path runs unchanged in tests and the demo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use argh::FromArgs;

/// Package the Vikunja stand-in as a Vikunja release zip.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "standin-zip")]
pub struct StandinZip {
    /// the Vikunja version to pose as, like v2.5.0
    #[argh(option)]
    pub version: String,
    /// output directory; the zip goes to OUT/<version>/ like on the download site
    #[argh(option)]
    pub out: PathBuf,
}

const SAMPLE: &str = "# config.yml.sample of the Vikunja stand-in (a test double, not Vikunja)\nservice:\n  interface: \":3456\"\n  publicurl: \"\"\ndatabase:\n  type: \"sqlite\"\n  path: \"./vikunja.db\"\n";

/// Builds the stand-in (a fast, stripped profile: the zip is made often) and returns its path.
pub fn build(root: &Path) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["build", "--locked", "--profile", "standin", "-p", "vikunja-standin"])
        .status()
        .context("run cargo build -p vikunja-standin")?;
    if !status.success() {
        bail!("building the stand-in failed");
    }
    Ok(root.join("target/standin/vikunja-standin"))
}

pub fn package(root: &Path, version: &str, out: &Path) -> Result<PathBuf> {
    if !version.starts_with('v') || manifests::Version::parse(&version[1..]).is_err() {
        bail!("--version {version}: expected a Vikunja version like v2.5.0");
    }
    let bin = build(root)?;
    let name = format!("vikunja-{version}-linux-amd64");
    let dir = out.join(version);
    std::fs::create_dir_all(&dir)?;
    let zip_path = dir.join(format!("{name}-full.zip"));
    let data = std::fs::read(&bin).with_context(|| format!("read {}", bin.display()))?;
    let sum = format!("{}  {name}\n", manifests::hash::sha256_hex(&data));
    let tmp = dir.join(".partial.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&tmp)?);
    let exec = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .unix_permissions(0o755);
    let plain = exec.unix_permissions(0o644);
    zip.start_file(name.as_str(), exec)?;
    zip.write_all(&data)?;
    zip.start_file(format!("{name}.sha256"), plain)?;
    zip.write_all(sum.as_bytes())?;
    zip.start_file("config.yml.sample", plain)?;
    zip.write_all(SAMPLE.as_bytes())?;
    zip.start_file("LICENSE", plain)?;
    zip.write_all(b"The Vikunja stand-in is a test double of vikunja-pve; Vikunja itself is AGPL-3.0.\n")?;
    zip.finish()?;
    std::fs::rename(&tmp, &zip_path)?;
    Ok(zip_path)
}
