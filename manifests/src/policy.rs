//! Trust decisions: when a release manifest or an asset is accepted. Every refusal is a `TrustError`
//! and maps to exit code 3 (or 4 when the bootstrap itself is too old).

use std::io::{self, Read};

use crate::exit::Exit;
use crate::hash::Sha256;
use crate::keys::{Keyring, SigError, TrustedComment, Verified};
use crate::manifest::{Asset, ManifestError, ReleaseManifest, MANIFEST_NAME, PRODUCT};
use crate::time::format_rfc3339;
use crate::version::Version;

/// How far a release's `published` time may be ahead of this host's clock. Generous, because a
/// host whose hardware clock keeps local time is hours off until NTP corrects it.
pub const MAX_CLOCK_SKEW: i64 = 86_400;

/// How far a serial may be above its release's `published` time (in seconds since 1970, the unit
/// `cargo xtask dist` gives serials by default). Small hand-picked serials stay far below it. The
/// bound is what keeps one wrongly signed release with serial u64::MAX from locking every host out
/// of all later releases: with it, a bad serial blocks releases for at most this margin plus
/// [`MAX_CLOCK_SKEW`].
pub const SERIAL_MARGIN: u64 = 86_400;

/// What the caller knows independently of the downloaded files.
#[derive(Debug, Clone)]
pub struct Policy {
    pub now: i64,
    /// Waives the freeze check, for air-gapped hosts only (`--allow-expired`).
    pub allow_expired: bool,
    /// The one channel accepted: the client's compiled-in channel, or the one named by `--channel`.
    /// A release of another channel is refused, even when signed by the same key.
    pub channel: String,
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
    #[error("release {version} is on channel {channel:?}, but this program follows channel {expected:?}: refusing it. To switch channels on purpose, pass --channel {channel}")]
    WrongChannel { version: String, channel: String, expected: String },
    #[error("release {version} says it was published at {published}, later than this host's clock ({now}) allows: check the clock (timedatectl), or the release is not genuine")]
    PublishedInFuture { version: String, published: String, now: String },
    #[error("release {version} says it was published at {published} but expires at {expires}, before that: a broken release; refusing it")]
    ExpiresBeforePublished { version: String, published: String, expires: String },
    #[error("release {version} has serial {serial}, more than {margin} above its publication time {published} (at most {max} is accepted): a serial that high would lock this host out of every later release; refusing it", margin = SERIAL_MARGIN)]
    SerialTooHigh { version: String, serial: u64, published: String, max: u64 },
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

/// The release facts every check below needs, from `release.toml` or from a bundle's own
/// signature.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub version: &'a str,
    pub channel: &'a str,
    pub serial: u64,
    pub published: i64,
    pub expires: i64,
}

/// The channel, date, serial, rollback, pin and freeze checks shared by manifests and stand-alone
/// signed bundles. Returns whether expiry was waived by `allow_expired`.
pub fn check_release(policy: &Policy, r: Facts, state: &str) -> Result<bool, TrustError> {
    let version = || r.version.to_string();
    if r.channel != policy.channel {
        return Err(TrustError::WrongChannel {
            version: version(),
            channel: r.channel.to_string(),
            expected: policy.channel.clone(),
        });
    }
    if r.expires < r.published {
        return Err(TrustError::ExpiresBeforePublished {
            version: version(),
            published: format_rfc3339(r.published),
            expires: format_rfc3339(r.expires),
        });
    }
    if r.published > policy.now.saturating_add(MAX_CLOCK_SKEW) {
        return Err(TrustError::PublishedInFuture {
            version: version(),
            published: format_rfc3339(r.published),
            now: format_rfc3339(policy.now),
        });
    }
    let max = (r.published.max(0) as u64).saturating_add(SERIAL_MARGIN);
    if r.serial > max {
        return Err(TrustError::SerialTooHigh {
            version: version(),
            serial: r.serial,
            published: format_rfc3339(r.published),
            max,
        });
    }
    if let Some(last) = policy.last_serial {
        if r.serial < last {
            return Err(TrustError::Rollback {
                version: version(),
                serial: r.serial,
                last,
                channel: r.channel.to_string(),
                state: state.to_string(),
            });
        }
    }
    if let Some(pinned) = &policy.pinned {
        if pinned.to_string() != r.version {
            return Err(TrustError::VersionMismatch { pinned: pinned.to_string(), got: version() });
        }
    }
    if r.expires <= policy.now {
        if !policy.allow_expired {
            return Err(TrustError::Expired {
                version: version(),
                expires: format_rfc3339(r.expires),
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
    let version = m.version.to_string();
    let facts =
        Facts { version: &version, channel: &m.channel, serial: m.serial, published: m.published, expires: m.expires };
    let expiry_waived = check_release(policy, facts, state)?;
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
    pub published: i64,
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
    // minisign's conventional `timestamp`: when the release was signed, i.e. published.
    let published_s = field("timestamp")?;
    let published = published_s.parse().map_err(|_| bad("timestamp", published_s))?;
    let facts = Facts { version: version_s, channel: &channel, serial, published, expires };
    let expiry_waived = check_release(policy, facts, state)?;
    Ok(AssetFacts { key_id, channel, version, serial, published, expires, expiry_waived })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FORMAT;

    const NOW: i64 = 1_795_608_000; // 2026-11-25T12:00:00Z
    const DAY: i64 = 86_400;

    fn policy() -> Policy {
        Policy {
            now: NOW,
            allow_expired: false,
            channel: "stable".into(),
            last_serial: Some(100),
            client_version: Version::parse("0.2.0").unwrap(),
            pinned: None,
        }
    }

    fn facts() -> Facts<'static> {
        Facts { version: "0.2.0", channel: "stable", serial: 200, published: NOW - DAY, expires: NOW + 90 * DAY }
    }

    fn refused(p: &Policy, f: Facts) -> TrustError {
        let e = check_release(p, f, "/state/trusted-serials").unwrap_err();
        assert_eq!(e.exit(), Exit::Verification, "{e}");
        e
    }

    #[test]
    fn a_fresh_release_of_our_channel_is_accepted() {
        assert!(!check_release(&policy(), facts(), "s").unwrap());
        // The same serial again is a re-install, not a rollback.
        assert!(!check_release(&policy(), Facts { serial: 100, ..facts() }, "s").unwrap());
    }

    #[test]
    fn only_the_channel_followed_is_accepted() {
        let e = refused(&policy(), Facts { channel: "beta", ..facts() });
        assert!(
            matches!(&e, TrustError::WrongChannel { channel, expected, .. } if channel == "beta" && expected == "stable")
        );
        assert!(e.to_string().contains("--channel beta"), "{e}");
        let beta = Policy { channel: "beta".into(), ..policy() };
        assert!(check_release(&beta, Facts { channel: "beta", ..facts() }, "s").is_ok());
        refused(&beta, facts());
    }

    #[test]
    fn the_serial_is_bounded_by_the_publication_time() {
        let max = (NOW - DAY) as u64 + SERIAL_MARGIN;
        assert!(check_release(&policy(), Facts { serial: max, ..facts() }, "s").is_ok());
        let e = refused(&policy(), Facts { serial: max + 1, ..facts() });
        assert!(matches!(e, TrustError::SerialTooHigh { max: m, .. } if m == max), "{e}");
        refused(&policy(), Facts { serial: u64::MAX, ..facts() });
        // Serials of the default scheme (the publication time) are always inside the bound.
        assert!(check_release(&policy(), Facts { serial: (NOW - DAY) as u64, ..facts() }, "s").is_ok());
    }

    #[test]
    fn publication_in_the_future_or_after_expiry_is_refused() {
        let in_skew = Facts { published: NOW + MAX_CLOCK_SKEW, ..facts() };
        assert!(check_release(&policy(), in_skew, "s").is_ok());
        let future = Facts { published: NOW + MAX_CLOCK_SKEW + 1, ..facts() };
        assert!(matches!(refused(&policy(), future), TrustError::PublishedInFuture { .. }));
        // Far in the future would otherwise lift the serial bound with it.
        let lifted = Facts { published: i64::MAX / 2, serial: u64::MAX / 2, expires: i64::MAX, ..facts() };
        assert!(matches!(refused(&policy(), lifted), TrustError::PublishedInFuture { .. }));
        let inverted = Facts { published: NOW - DAY, expires: NOW - 2 * DAY, ..facts() };
        assert!(matches!(refused(&policy(), inverted), TrustError::ExpiresBeforePublished { .. }));
    }

    #[test]
    fn a_rollback_names_the_channel_and_the_state_file() {
        let e = refused(&policy(), Facts { serial: 99, ..facts() });
        let text = e.to_string();
        assert!(text.contains("channel stable") && text.contains("/state/trusted-serials"), "{text}");
        assert!(text.contains("serial 99") && text.contains("serial 100"), "{text}");
        let beta = Policy { channel: "beta".into(), ..policy() };
        let text = refused(&beta, Facts { channel: "beta", serial: 99, ..facts() }).to_string();
        assert!(text.contains("channel beta"), "{text}");
    }

    #[test]
    fn expiry_is_refused_unless_waived_and_a_pin_must_match() {
        let expired = Facts { expires: NOW, ..facts() };
        assert!(matches!(refused(&policy(), expired), TrustError::Expired { .. }));
        let waive = Policy { allow_expired: true, ..policy() };
        assert!(check_release(&waive, expired, "s").unwrap(), "a waived expiry is reported");
        let pinned = Policy { pinned: Some(Version::parse("0.1.0").unwrap()), ..policy() };
        assert!(matches!(refused(&pinned, facts()), TrustError::VersionMismatch { .. }));
    }

    struct Signer {
        keys: Keyring,
        pk: minisign::PublicKey,
        sk: minisign::SecretKey,
    }

    impl Signer {
        fn new() -> Signer {
            let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
            Signer { keys: Keyring::from_list(&kp.pk.to_base64()).unwrap(), pk: kp.pk, sk: kp.sk }
        }
        fn sign(&self, data: &[u8], comment: &str) -> String {
            minisign::sign(Some(&self.pk), &self.sk, data, Some(comment), None).unwrap().to_string()
        }
    }

    fn manifest(serial: u64, channel: &str) -> ReleaseManifest {
        ReleaseManifest {
            format: FORMAT,
            product: PRODUCT.into(),
            channel: channel.into(),
            version: Version::parse("0.2.0").unwrap(),
            serial,
            published: NOW - DAY,
            expires: NOW + 90 * DAY,
            min_bootstrap_version: Version::parse("0.1.0").unwrap(),
            assets: vec![Asset { name: "b.tar.gz".into(), size: 4, sha256: crate::hash::sha256_hex(b"data") }],
        }
    }

    fn comment(m: &ReleaseManifest, file: &str) -> String {
        TrustedComment::render(&[
            ("timestamp", m.published.to_string()),
            ("file", file.into()),
            ("channel", m.channel.clone()),
            ("version", m.version.to_string()),
            ("serial", m.serial.to_string()),
            ("expires", m.expires.to_string()),
        ])
    }

    #[test]
    fn accept_manifest_applies_every_release_check_after_the_signature() {
        let s = Signer::new();
        let m = manifest(200, "stable");
        let text = m.render();
        let ok = accept_manifest(
            &s.keys,
            text.as_bytes(),
            &s.sign(text.as_bytes(), &comment(&m, MANIFEST_NAME)),
            &policy(),
            "s",
        );
        assert_eq!(ok.unwrap().manifest, m);

        for (bad, needle) in [(manifest(u64::MAX, "stable"), "serial"), (manifest(200, "beta"), "channel")] {
            let text = bad.render();
            let sig = s.sign(text.as_bytes(), &comment(&bad, MANIFEST_NAME));
            let e = accept_manifest(&s.keys, text.as_bytes(), &sig, &policy(), "s").unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        // The comment must describe this manifest: a signature made for another file is refused.
        let sig = s.sign(text.as_bytes(), &comment(&m, "other.toml"));
        let e = accept_manifest(&s.keys, text.as_bytes(), &sig, &policy(), "s").unwrap_err();
        assert!(matches!(e, TrustError::CommentMismatch { field: "file", .. }), "{e}");
        let old = Policy { client_version: Version::parse("0.0.9").unwrap(), ..policy() };
        let sig = s.sign(text.as_bytes(), &comment(&m, MANIFEST_NAME));
        let e = accept_manifest(&s.keys, text.as_bytes(), &sig, &old, "s").unwrap_err();
        assert_eq!(e.exit(), Exit::Prerequisite, "{e}");
        // Signed by a key this build does not trust.
        let e = accept_manifest(&Signer::new().keys, text.as_bytes(), &sig, &policy(), "s").unwrap_err();
        assert!(matches!(e, TrustError::Signature(_)), "{e}");
    }

    #[test]
    fn accept_asset_checks_name_size_and_hash_and_reads_no_further() {
        let s = Signer::new();
        let m = manifest(200, "stable");
        let listed = &m.assets[0];
        let sig = s.sign(b"data", &comment(&m, "b.tar.gz"));
        let mut seen = Vec::new();
        accept_asset(&s.keys, "b.tar.gz", &b"data"[..], &sig, Some(listed), &mut seen).unwrap();
        assert_eq!(seen, b"data");

        let endless = std::io::repeat(b'x');
        let mut seen = Vec::new();
        let e = accept_asset(&s.keys, "b.tar.gz", endless, &sig, Some(listed), &mut seen).unwrap_err();
        assert!(matches!(e, TrustError::Signature(_)), "{e}");
        assert_eq!(seen.len(), 5, "read past the listed size");

        let wrong = Asset { sha256: crate::hash::sha256_hex(b"atad"), ..listed.clone() };
        let e = accept_asset(&s.keys, "b.tar.gz", &b"data"[..], &sig, Some(&wrong), io::sink()).unwrap_err();
        assert!(matches!(e, TrustError::HashMismatch { .. }), "{e}");
        let e = accept_asset(&s.keys, "c.tar.gz", &b"data"[..], &sig, None, io::sink()).unwrap_err();
        assert!(matches!(e, TrustError::CommentMismatch { field: "file", .. }), "{e}");
    }

    #[test]
    fn a_bundle_signature_alone_carries_the_same_checks() {
        let s = Signer::new();
        let m = manifest(200, "stable");
        let v = s.keys.verify("b.tar.gz", b"data", &s.sign(b"data", &comment(&m, "b.tar.gz"))).unwrap();
        let f = facts_from_comment("b.tar.gz", &v, &policy(), "s").unwrap();
        assert_eq!((f.serial, f.published, f.channel.as_str()), (200, NOW - DAY, "stable"));

        let high = manifest(u64::MAX, "stable");
        let v = s.keys.verify("b.tar.gz", b"data", &s.sign(b"data", &comment(&high, "b.tar.gz"))).unwrap();
        assert!(matches!(facts_from_comment("b.tar.gz", &v, &policy(), "s"), Err(TrustError::SerialTooHigh { .. })));
        let beta = manifest(200, "beta");
        let v = s.keys.verify("b.tar.gz", b"data", &s.sign(b"data", &comment(&beta, "b.tar.gz"))).unwrap();
        assert!(matches!(facts_from_comment("b.tar.gz", &v, &policy(), "s"), Err(TrustError::WrongChannel { .. })));
        let no_time = TrustedComment::render(&[
            ("file", "b.tar.gz".into()),
            ("channel", "stable".into()),
            ("version", "0.2.0".into()),
            ("serial", "200".into()),
            ("expires", (NOW + DAY).to_string()),
        ]);
        let v = s.keys.verify("b.tar.gz", b"data", &s.sign(b"data", &no_time)).unwrap();
        let e = facts_from_comment("b.tar.gz", &v, &policy(), "s").unwrap_err();
        assert!(matches!(e, TrustError::CommentMismatch { field: "timestamp", .. }), "{e}");
    }
}
