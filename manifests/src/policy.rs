//! Trust decisions: when a release manifest or an asset is accepted. Every refusal is a `TrustError`
//! and maps to exit code 3 (or 4 when the bootstrap itself is too old).

use std::io::{self, Read};

use crate::exit::Exit;
use crate::hash::Sha256;
use crate::keys::{Keyring, SigError, TrustedComment, Verified};
use crate::manifest::{Asset, ManifestError, ReleaseManifest, MANIFEST_NAME, PRODUCT};
use crate::time::format_rfc3339;
use crate::version::Version;

/// What the caller knows independently of the downloaded files.
#[derive(Debug, Clone)]
pub struct Policy {
    pub now: i64,
    /// Waives the freeze check, for air-gapped hosts only (`--allow-expired`).
    pub allow_expired: bool,
    /// The highest serial this host accepted before for the channel.
    pub last_serial: Option<u64>,
    /// The version of the program doing the check (compared with `min_bootstrap_version`).
    pub client_version: Version,
    /// A pinned version: the release must be exactly this one.
    pub pinned: Option<Version>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Signature(#[from] SigError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("release.toml is {0} bytes or more, over the {max} byte limit; refusing it", max = crate::manifest::MAX_MANIFEST_BYTES)]
    ManifestTooLarge(u64),
    #[error("{what}: the signature's trusted comment says {field}:{found} but {expected} was expected (a signature made for another file or release)")]
    CommentMismatch { what: String, field: &'static str, expected: String, found: String },
    #[error("release.toml is for product {0:?}, not {PRODUCT:?}")]
    WrongProduct(String),
    #[error("release {version} expired at {expires} (now {now}): a mirror may be serving a frozen, outdated release. Try again later or another mirror; air-gapped hosts may pass --allow-expired")]
    Expired { version: String, expires: String, now: String },
    #[error("release {version} has serial {serial}, lower than serial {last} this host already accepted for channel {channel}: refusing a rollback to an older release (replay). If you really mean to go back, remove the state file {state}")]
    Rollback { version: String, serial: u64, last: u64, channel: String, state: String },
    #[error("asked for version {pinned} but the server sent release {got}")]
    VersionMismatch { pinned: String, got: String },
    #[error(
        "release {version} needs bootstrap {needed} or newer, this is {have}: download the current install.sh again"
    )]
    ClientTooOld { version: String, needed: String, have: String },
    #[error("release {version} does not list the asset {name}")]
    MissingAsset { version: String, name: String },
    #[error("{name}: {found} bytes, but release.toml says {expected}; the download is corrupt or tampered")]
    SizeMismatch { name: String, expected: u64, found: u64 },
    #[error("{name}: sha256 {found}, but release.toml says {expected}; the download is corrupt or tampered")]
    HashMismatch { name: String, expected: String, found: String },
}

impl TrustError {
    pub fn exit(&self) -> Exit {
        match self {
            TrustError::ClientTooOld { .. } => Exit::Prerequisite,
            TrustError::Signature(SigError::NoTrustedKeys) => Exit::Prerequisite,
            _ => Exit::Verification,
        }
    }
}

/// A manifest that passed every check.
#[derive(Debug, Clone)]
pub struct AcceptedRelease {
    pub manifest: ReleaseManifest,
    pub key_id: String,
    /// Set when the manifest was expired and `allow_expired` let it through.
    pub expiry_waived: bool,
}

fn expect(c: &TrustedComment, what: &str, field: &'static str, expected: &str) -> Result<(), TrustError> {
    match c.get(field) {
        Some(found) if found == expected => Ok(()),
        found => Err(TrustError::CommentMismatch {
            what: what.to_string(),
            field,
            expected: expected.to_string(),
            found: found.unwrap_or("(missing)").to_string(),
        }),
    }
}

/// The freeze and rollback checks shared by manifests and stand-alone signed bundles.
fn check_fresh(
    policy: &Policy,
    version: &str,
    channel: &str,
    serial: u64,
    expires: i64,
    state: &str,
) -> Result<bool, TrustError> {
    if let Some(last) = policy.last_serial {
        if serial < last {
            return Err(TrustError::Rollback {
                version: version.to_string(),
                serial,
                last,
                channel: channel.to_string(),
                state: state.to_string(),
            });
        }
    }
    if let Some(pinned) = &policy.pinned {
        if pinned.to_string() != version {
            return Err(TrustError::VersionMismatch { pinned: pinned.to_string(), got: version.to_string() });
        }
    }
    if expires <= policy.now {
        if !policy.allow_expired {
            return Err(TrustError::Expired {
                version: version.to_string(),
                expires: format_rfc3339(expires),
                now: format_rfc3339(policy.now),
            });
        }
        return Ok(true);
    }
    Ok(false)
}

/// Verifies `release.toml` and its signature. `state` names the serial state file for messages.
pub fn accept_manifest(
    keys: &Keyring,
    bytes: &[u8],
    sig_text: &str,
    policy: &Policy,
    state: &str,
) -> Result<AcceptedRelease, TrustError> {
    if bytes.len() as u64 > crate::manifest::MAX_MANIFEST_BYTES {
        return Err(TrustError::ManifestTooLarge(bytes.len() as u64));
    }
    let Verified { key_id, comment } = keys.verify(MANIFEST_NAME, bytes, sig_text)?;
    let text = std::str::from_utf8(bytes).map_err(|_| ManifestError { line: 1, why: "not UTF-8".into() })?;
    let m = ReleaseManifest::parse(text)?;
    if m.product != PRODUCT {
        return Err(TrustError::WrongProduct(m.product));
    }
    expect(&comment, MANIFEST_NAME, "file", MANIFEST_NAME)?;
    expect(&comment, MANIFEST_NAME, "channel", &m.channel)?;
    expect(&comment, MANIFEST_NAME, "version", &m.version.to_string())?;
    expect(&comment, MANIFEST_NAME, "serial", &m.serial.to_string())?;
    let expiry_waived = check_fresh(policy, &m.version.to_string(), &m.channel, m.serial, m.expires, state)?;
    if policy.client_version < m.min_bootstrap_version {
        return Err(TrustError::ClientTooOld {
            version: m.version.to_string(),
            needed: m.min_bootstrap_version.to_string(),
            have: policy.client_version.to_string(),
        });
    }
    Ok(AcceptedRelease { manifest: m, key_id, expiry_waived })
}

/// The release facts a stand-alone asset signature carries, for air-gapped use without release.toml.
#[derive(Debug, Clone)]
pub struct AssetFacts {
    pub key_id: String,
    pub channel: String,
    pub version: Version,
    pub serial: u64,
    pub expires: i64,
    pub expiry_waived: bool,
}

/// Reads `data` to its end once, checking the asset's own signature (its trusted comment must name
/// this file) and, when the manifest lists it, its exact size and sha256. Bytes beyond the listed
/// size are never read (endless-data attack). `sink` sees every byte that was read.
pub fn accept_asset(
    keys: &Keyring,
    name: &str,
    data: impl Read,
    sig_text: &str,
    listed: Option<&Asset>,
    mut sink: impl io::Write,
) -> Result<Verified, TrustError> {
    let limit = listed.map_or(u64::MAX, |a| a.size.saturating_add(1));
    let mut tee = Tee { inner: data.take(limit), hash: Sha256::default(), count: 0, sink: &mut sink };
    let verified = keys.verify_reader(name, &mut tee, sig_text)?;
    let (count, hash) = (tee.count, tee.hash.finish_hex());
    expect(&verified.comment, name, "file", name)?;
    if let Some(a) = listed {
        if count != a.size {
            return Err(TrustError::SizeMismatch { name: name.to_string(), expected: a.size, found: count });
        }
        if hash != a.sha256 {
            return Err(TrustError::HashMismatch { name: name.to_string(), expected: a.sha256.clone(), found: hash });
        }
    }
    Ok(verified)
}

/// For a bundle verified only by its own signature: the trusted comment carries the release's
/// channel, version, serial and expiry, so the same freeze and rollback rules apply.
pub fn facts_from_comment(
    name: &str,
    verified: &Verified,
    policy: &Policy,
    state: &str,
) -> Result<AssetFacts, TrustError> {
    let comment = &verified.comment;
    let key_id = verified.key_id.clone();
    let field = |f: &'static str| {
        comment.get(f).ok_or_else(|| TrustError::CommentMismatch {
            what: name.to_string(),
            field: f,
            expected: "a value".into(),
            found: "(missing)".into(),
        })
    };
    let bad = |f: &'static str, v: &str| TrustError::CommentMismatch {
        what: name.to_string(),
        field: f,
        expected: "a valid value".into(),
        found: v.to_string(),
    };
    let channel = field("channel")?.to_string();
    let version_s = field("version")?;
    let version = Version::parse(version_s).map_err(|_| bad("version", version_s))?;
    let serial_s = field("serial")?;
    let serial = serial_s.parse().map_err(|_| bad("serial", serial_s))?;
    let expires_s = field("expires")?;
    let expires = expires_s.parse().map_err(|_| bad("expires", expires_s))?;
    let expiry_waived = check_fresh(policy, version_s, &channel, serial, expires, state)?;
    Ok(AssetFacts { key_id, channel, version, serial, expires, expiry_waived })
}

struct Tee<'a, R, W> {
    inner: R,
    hash: Sha256,
    count: u64,
    sink: &'a mut W,
}

impl<R: Read, W: io::Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}
