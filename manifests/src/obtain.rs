//! Getting a verified installer bundle: online from the release layout (GitHub or a mirror), or
//! offline from a bundle file. Either way the bytes land in an unlinked file inside the destination
//! directory and are unpacked only after every check passed. The bootstrap and `vikunja-installer
//! upgrade` both come through here, so they accept exactly the same releases.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::fetch::{FetchError, Fetcher};
use crate::manifest::{names, MANIFEST_NAME, MAX_MANIFEST_BYTES};
use crate::policy::{accept_asset, accept_manifest, facts_from_comment, AcceptedRelease, Policy, TrustError};
use crate::serial::{SerialState, StateError};
use crate::unpack::{unpack_tar_gz, Limits, UnpackError};
use crate::{Exit, Keyring, Version};

const MAX_SIG_BYTES: u64 = 4096;

/// The GitHub owner and repository compiled in by `cargo xtask dist` (overridable at run time).
pub const DEFAULT_OWNER: &str = match option_env!("VIKUNJA_DEFAULT_OWNER") {
    Some(o) => o,
    None => "vikunja-pve",
};
pub const DEFAULT_REPO: &str = match option_env!("VIKUNJA_DEFAULT_REPO") {
    Some(r) => r,
    None => "vikunja-pve",
};

#[derive(Debug, thiserror::Error)]
pub enum ObtainError {
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}")]
    Usage(String),
}

impl ObtainError {
    pub fn exit(&self) -> Exit {
        match self {
            ObtainError::Trust(e) => e.exit(),
            ObtainError::Fetch(e) => e.exit(),
            ObtainError::Unpack(UnpackError::Write { .. }) => Exit::Error,
            ObtainError::Unpack(_) => Exit::Verification,
            ObtainError::State(_) => Exit::Prerequisite,
            ObtainError::Io { .. } => Exit::Error,
            ObtainError::Usage(_) => Exit::Usage,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ObtainError {
    let what = what.into();
    move |source| ObtainError::Io { what, source }
}

/// What the installer is told about the release it came from.
pub struct Release {
    pub version: Version,
    pub channel: String,
    pub serial: u64,
    pub key_id: String,
    pub source: String,
}

impl Release {
    /// Records the serial as the channel's rollback guard. Only once the release was accepted as a
    /// whole (unpacked, and the caller's own checks passed): a bundle refused at unpacking, or an
    /// installer that does not answer, must not lock the host out of the release it had.
    pub fn record(&self, state: &mut SerialState) -> Result<(), StateError> {
        state.record(&self.channel, self.serial)
    }
}

/// Where releases are downloaded from.
pub struct Source {
    pub base: String,
    pub owner: String,
    pub repo: String,
}

impl Source {
    pub fn from_env(cli_base: Option<&str>) -> Result<Source, ObtainError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let base = cli_base.map(str::to_string).or_else(|| env("VIKUNJA_INSTALLER_BASE_URL"));
        let base = base.unwrap_or_else(|| "https://github.com".into()).trim_end_matches('/').to_string();
        let owner = env("VIKUNJA_GITHUB_OWNER").unwrap_or_else(|| DEFAULT_OWNER.into());
        let repo = env("VIKUNJA_GITHUB_REPO").unwrap_or_else(|| DEFAULT_REPO.into());
        for (what, v) in [("VIKUNJA_GITHUB_OWNER", &owner), ("VIKUNJA_GITHUB_REPO", &repo)] {
            if !crate::manifest::is_safe_name(v) {
                return Err(ObtainError::Usage(format!("{what}={v:?} is not a valid GitHub name")));
            }
        }
        if !base.starts_with("https://") {
            return Err(FetchError::PlainHttp(base).into());
        }
        Ok(Source { base, owner, repo })
    }

    pub fn url(&self, tag: Option<&Version>, asset: &str) -> String {
        match tag {
            Some(v) => format!("{}/{}/{}/releases/download/v{v}/{asset}", self.base, self.owner, self.repo),
            None => format!("{}/{}/{}/releases/latest/download/{asset}", self.base, self.owner, self.repo),
        }
    }
}

/// An unlinked scratch file in `dir`: it vanishes with the process whatever happens.
fn scratch_file(dir: &Path) -> Result<File, ObtainError> {
    let path = dir.join(".bundle.partial");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(format!("create {}", path.display())))?;
    std::fs::remove_file(&path).map_err(io_err(format!("unlink {}", path.display())))?;
    Ok(f)
}

fn rewind(f: &mut File) -> Result<(), ObtainError> {
    f.rewind().map_err(io_err("rewind the downloaded bundle"))
}

pub struct Context<'a> {
    /// Names the program in progress messages ("vikunja-bootstrap").
    pub who: &'a str,
    pub keys: &'a Keyring,
    pub policy: Policy,
    /// Read for the rollback guard only: the caller records the serial (`Release::record`) once it
    /// has accepted the release as a whole, so a release refused later moves no guard.
    pub state: &'a SerialState,
    pub dest: &'a Path,
}

fn unpack(mut f: File, dest: &Path) -> Result<(), ObtainError> {
    rewind(&mut f)?;
    let size = f.metadata().map_err(io_err("stat the downloaded bundle"))?.len();
    unpack_tar_gz(io::BufReader::new(f), dest, Limits::for_compressed(size))?;
    Ok(())
}

pub fn online(cx: Context, src: &Source, fetcher: &Fetcher) -> Result<Release, ObtainError> {
    let state_path = cx.state.path.display().to_string();
    let pin = cx.policy.pinned.clone();
    let manifest_url = src.url(pin.as_ref(), MANIFEST_NAME);
    eprintln!("{}: fetching {manifest_url}", cx.who);
    let bytes = fetcher.get_small(&manifest_url, MAX_MANIFEST_BYTES)?;
    let version = version_for_urls(&bytes, pin)?;
    let sig = fetcher.get_small(&src.url(Some(&version), &names::signature(MANIFEST_NAME)), MAX_SIG_BYTES)?;
    let sig = String::from_utf8_lossy(&sig);
    let accepted = accept_manifest(cx.keys, &bytes, &sig, &cx.policy, &state_path)?;
    let m = &accepted.manifest;
    let name = names::bundle(&m.version.to_string(), crate::build_info::TARGET);
    let listed = m
        .asset(&name)
        .ok_or_else(|| TrustError::MissingAsset { version: m.version.to_string(), name: name.clone() })?;
    let bundle_sig = fetcher.get_small(&src.url(Some(&m.version), &names::signature(&name)), MAX_SIG_BYTES)?;
    let mut file = scratch_file(cx.dest)?;
    fetcher.download(&src.url(Some(&m.version), &name), listed.size, &name, &mut file)?;
    rewind(&mut file)?;
    let verified = accept_asset(
        cx.keys,
        &name,
        io::BufReader::new(&file),
        &String::from_utf8_lossy(&bundle_sig),
        Some(listed),
        io::sink(),
    )?;
    let facts = facts_from_comment(&name, &verified, &cx.policy, &state_path)?;
    warn_expired(
        cx.who,
        &m.version,
        &[(MANIFEST_NAME, m.expires, accepted.expiry_waived), (&name, facts.expires, facts.expiry_waived)],
    );
    unpack(file, cx.dest)?;
    Ok(Release {
        version: m.version.clone(),
        channel: m.channel.clone(),
        serial: m.serial,
        key_id: accepted.key_id,
        source: src.url(Some(&m.version), &name),
    })
}

/// The version named by a downloaded `release.toml`, read before its signature is checked only to
/// pin the remaining URLs to one tag, so that a `latest` that moves meanwhile cannot mix two
/// releases; the signature then binds it. A pinned version needs no parse; otherwise a file that
/// does not parse is refused with the parser's own reason.
fn version_for_urls(bytes: &[u8], pin: Option<Version>) -> Result<Version, ObtainError> {
    if let Some(v) = pin {
        return Ok(v);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        TrustError::Manifest(crate::manifest::ManifestError { line: 1, why: format!("not UTF-8 text ({e})") })
    })?;
    Ok(crate::ReleaseManifest::parse(text).map_err(TrustError::Manifest)?.version)
}

/// One warning naming every signed thing whose expiry `--allow-expired` waived: (file, expires, waived).
fn warn_expired(who: &str, version: &Version, items: &[(&str, i64, bool)]) {
    let expired: Vec<String> = items
        .iter()
        .filter(|(_, _, waived)| *waived)
        .map(|(what, at, _)| format!("{what} (expired {})", crate::time::format_rfc3339(*at)))
        .collect();
    if !expired.is_empty() {
        eprintln!(
            "{who}: WARNING: release {version} is past its expiry date: {}; accepted only because of --allow-expired",
            expired.join(", ")
        );
    }
}

fn read_small(path: &Path, limit: u64) -> Result<Vec<u8>, ObtainError> {
    use std::io::Read;
    let mut out = Vec::new();
    File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut out))
        .map_err(io_err(format!("read {}", path.display())))?;
    if out.len() as u64 > limit {
        return Err(ObtainError::Usage(format!(
            "{} is larger than {limit} bytes; is it the right file?",
            path.display()
        )));
    }
    Ok(out)
}

pub fn offline(cx: Context, bundle: &Path, signature: Option<PathBuf>) -> Result<Release, ObtainError> {
    let state_path = cx.state.path.display().to_string();
    let name = bundle
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ObtainError::Usage(format!("{}: not a bundle file name", bundle.display())))?
        .to_string();
    let sig_path = signature.unwrap_or_else(|| bundle.with_file_name(names::signature(&name)));
    if !sig_path.exists() {
        return Err(ObtainError::Usage(format!(
            "signature {} not found: copy the bundle's .minisig next to it (or pass --signature FILE); an unsigned bundle is never run",
            sig_path.display()
        )));
    }
    let sig = String::from_utf8_lossy(&read_small(&sig_path, MAX_SIG_BYTES)?).into_owned();
    // A release.toml copied along is checked too, so its size, hash, serial and expiry also apply.
    let dir = bundle.parent().unwrap_or(Path::new("."));
    let manifest_path = dir.join(MANIFEST_NAME);
    let manifest_sig = dir.join(names::signature(MANIFEST_NAME));
    let accepted = if manifest_path.exists() && manifest_sig.exists() {
        let bytes = read_small(&manifest_path, MAX_MANIFEST_BYTES)?;
        let msig = String::from_utf8_lossy(&read_small(&manifest_sig, MAX_SIG_BYTES)?).into_owned();
        Some(accept_manifest(cx.keys, &bytes, &msig, &cx.policy, &state_path)?)
    } else {
        None
    };
    let listed =
        match &accepted {
            Some(a) => Some(a.manifest.asset(&name).cloned().ok_or_else(|| TrustError::MissingAsset {
                version: a.manifest.version.to_string(),
                name: name.clone(),
            })?),
            None => None,
        };
    let input = File::open(bundle).map_err(io_err(format!("open {}", bundle.display())))?;
    let mut copy = scratch_file(cx.dest)?;
    // Verify while copying, then unpack the copy: the file cannot change between check and use.
    let verified =
        accept_asset(cx.keys, &name, io::BufReader::new(input), &sig, listed.as_ref(), io::BufWriter::new(&mut copy))?;
    let facts = facts_from_comment(&name, &verified, &cx.policy, &state_path)?;
    let mut expired = vec![(name.as_str(), facts.expires, facts.expiry_waived)];
    if let Some(a) = &accepted {
        expired.insert(0, (MANIFEST_NAME, a.manifest.expires, a.expiry_waived));
    }
    warn_expired(cx.who, &facts.version, &expired);
    unpack(copy, cx.dest)?;
    Ok(Release {
        version: facts.version,
        channel: facts.channel,
        serial: facts.serial,
        key_id: facts.key_id,
        source: bundle.display().to_string(),
    })
}

/// Fetches and verifies only `release.toml` (for `upgrade --check`): nothing is downloaded
/// beyond it, and no serial is recorded.
pub fn check_latest(
    keys: &Keyring,
    policy: &Policy,
    state_path: &str,
    src: &Source,
    fetcher: &Fetcher,
) -> Result<AcceptedRelease, ObtainError> {
    let url = src.url(policy.pinned.as_ref(), MANIFEST_NAME);
    let bytes = fetcher.get_small(&url, MAX_MANIFEST_BYTES)?;
    let version = version_for_urls(&bytes, policy.pinned.clone())?;
    let sig = fetcher.get_small(&src.url(Some(&version), &names::signature(MANIFEST_NAME)), MAX_SIG_BYTES)?;
    Ok(accept_manifest(keys, &bytes, &String::from_utf8_lossy(&sig), policy, state_path)?)
}
