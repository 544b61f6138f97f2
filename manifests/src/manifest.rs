//! `release.toml`: the signed index of one release (TUF's targets and snapshot roles in one file).
//!
//! The file is a strict subset of TOML: `key = "string"` or `key = integer` lines and `[[asset]]`
//! tables. A hand-written parser keeps serde and toml out of the bootstrap and refuses anything
//! ambiguous (duplicate keys, unknown tables, escapes). Unknown top-level keys are ignored so a
//! later release can add fields; `format` is raised for changes older readers must not accept.

use std::fmt::Write as _;

use crate::time::{format_rfc3339, parse_rfc3339};
use crate::version::Version;

pub const FORMAT: u32 = 1;
pub const PRODUCT: &str = "vikunja-installer";
/// A manifest larger than this is refused before parsing (endless-data attack).
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
pub const MANIFEST_NAME: &str = "release.toml";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseManifest {
    pub format: u32,
    pub product: String,
    pub channel: String,
    pub version: Version,
    pub serial: u64,
    pub published: i64,
    pub expires: i64,
    pub min_bootstrap_version: Version,
    pub assets: Vec<Asset>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("release.toml line {line}: {why}")]
pub struct ManifestError {
    pub line: usize,
    pub why: String,
}

/// Asset and channel names end up in URLs and paths: keep them to a safe alphabet.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

enum Value {
    Str(String),
    Int(u64),
}

fn parse_value(raw: &str) -> Result<Value, String> {
    if let Some(inner) = raw.strip_prefix('"') {
        let s = inner.strip_suffix('"').ok_or("unterminated string")?;
        if s.contains(['"', '\\']) || s.chars().any(char::is_control) {
            return Err("strings may not contain quotes, backslashes or control characters".into());
        }
        Ok(Value::Str(s.to_string()))
    } else if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        raw.parse().map(Value::Int).map_err(|_| "integer out of range".to_string())
    } else {
        Err(format!("unsupported value {raw:?}: expected \"string\" or integer"))
    }
}

type Table = Vec<(String, Value, usize)>;

fn take_str(t: &mut Table, key: &str, line: usize) -> Result<String, ManifestError> {
    match take(t, key, line)? {
        Value::Str(s) => Ok(s),
        Value::Int(_) => Err(ManifestError { line, why: format!("{key} must be a string") }),
    }
}

fn take_int(t: &mut Table, key: &str, line: usize) -> Result<u64, ManifestError> {
    match take(t, key, line)? {
        Value::Int(n) => Ok(n),
        Value::Str(_) => Err(ManifestError { line, why: format!("{key} must be an integer") }),
    }
}

fn take(t: &mut Table, key: &str, line: usize) -> Result<Value, ManifestError> {
    let pos = t
        .iter()
        .position(|(k, _, _)| k == key)
        .ok_or_else(|| ManifestError { line, why: format!("missing key {key}") })?;
    Ok(t.remove(pos).1)
}

impl ReleaseManifest {
    pub fn parse(text: &str) -> Result<ReleaseManifest, ManifestError> {
        let mut top: Table = Vec::new();
        let mut assets: Vec<(Table, usize)> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |why: String| ManifestError { line, why };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if l == "[[asset]]" {
                assets.push((Vec::new(), line));
                continue;
            }
            if l.starts_with('[') {
                return Err(err(format!("unknown table {l}")));
            }
            let (k, v) = l.split_once('=').ok_or_else(|| err("expected key = value".into()))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(err(format!("invalid key {k:?}")));
            }
            let value = parse_value(v).map_err(err)?;
            let table = match assets.last_mut() {
                Some((t, _)) => t,
                None => &mut top,
            };
            if table.iter().any(|(key, _, _)| key == k) {
                return Err(err(format!("duplicate key {k}")));
            }
            table.push((k.to_string(), value, line));
        }
        let l0 = 1;
        let format = take_int(&mut top, "format", l0)?;
        if format != u64::from(FORMAT) {
            return Err(ManifestError {
                line: l0,
                why: format!("format {format} is not supported (this build reads format {FORMAT}); use a newer bootstrap or installer"),
            });
        }
        let version_err = |e: crate::version::VersionError| ManifestError { line: l0, why: e.to_string() };
        let time_err = |e: crate::time::TimeError| ManifestError { line: l0, why: e.to_string() };
        let product = take_str(&mut top, "product", l0)?;
        let channel = take_str(&mut top, "channel", l0)?;
        if !is_safe_name(&channel) {
            return Err(ManifestError { line: l0, why: format!("invalid channel {channel:?}") });
        }
        let version = Version::parse(&take_str(&mut top, "version", l0)?).map_err(version_err)?;
        let serial = take_int(&mut top, "serial", l0)?;
        let published = parse_rfc3339(&take_str(&mut top, "published", l0)?).map_err(time_err)?;
        let expires = parse_rfc3339(&take_str(&mut top, "expires", l0)?).map_err(time_err)?;
        let min_bootstrap_version =
            Version::parse(&take_str(&mut top, "min_bootstrap_version", l0)?).map_err(version_err)?;
        let mut out = Vec::new();
        for (mut t, line) in assets {
            let name = take_str(&mut t, "name", line)?;
            if !is_safe_name(&name) {
                return Err(ManifestError { line, why: format!("invalid asset name {name:?}") });
            }
            if out.iter().any(|a: &Asset| a.name == name) {
                return Err(ManifestError { line, why: format!("asset {name} listed twice") });
            }
            let size = take_int(&mut t, "size", line)?;
            let sha256 = take_str(&mut t, "sha256", line)?;
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                return Err(ManifestError { line, why: "sha256 must be 64 lower-case hex digits".into() });
            }
            if let Some((k, _, l)) = t.first() {
                return Err(ManifestError { line: *l, why: format!("unknown asset key {k}") });
            }
            out.push(Asset { name, size, sha256 });
        }
        Ok(ReleaseManifest {
            format: FORMAT,
            product,
            channel,
            version,
            serial,
            published,
            expires,
            min_bootstrap_version,
            assets: out,
        })
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# vikunja-pve release manifest. Signed by release.toml.minisig; do not edit.");
        let _ = writeln!(s, "format = {}", self.format);
        let _ = writeln!(s, "product = \"{}\"", self.product);
        let _ = writeln!(s, "channel = \"{}\"", self.channel);
        let _ = writeln!(s, "version = \"{}\"", self.version);
        let _ = writeln!(s, "serial = {}", self.serial);
        let _ = writeln!(s, "published = \"{}\"", format_rfc3339(self.published));
        let _ = writeln!(s, "expires = \"{}\"", format_rfc3339(self.expires));
        let _ = writeln!(s, "min_bootstrap_version = \"{}\"", self.min_bootstrap_version);
        for a in &self.assets {
            let _ = write!(s, "\n[[asset]]\nname = \"{}\"\nsize = {}\nsha256 = \"{}\"\n", a.name, a.size, a.sha256);
        }
        s
    }

    pub fn asset(&self, name: &str) -> Option<&Asset> {
        self.assets.iter().find(|a| a.name == name)
    }
}

/// The asset names of a release, so that the release tool and the downloaders agree on them.
pub mod names {
    pub const TARGET: &str = "x86_64-unknown-linux-gnu";
    pub const INSTALL_SH: &str = "install.sh";

    pub fn bootstrap(target: &str) -> String {
        format!("vikunja-bootstrap-{target}")
    }
    pub fn bundle(version: &str, target: &str) -> String {
        format!("vikunja-installer-{version}-{target}.tar.gz")
    }
    pub fn signature(asset: &str) -> String {
        format!("{asset}.minisig")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ReleaseManifest {
        ReleaseManifest {
            format: FORMAT,
            product: PRODUCT.into(),
            channel: "stable".into(),
            version: Version::parse("1.2.3").unwrap(),
            serial: 42,
            published: 1_795_608_000,
            expires: 1_811_160_000,
            min_bootstrap_version: Version::parse("0.1.0").unwrap(),
            assets: vec![Asset { name: "a.tar.gz".into(), size: 10, sha256: "ab".repeat(32) }],
        }
    }

    #[test]
    fn render_then_parse_is_identity() {
        let m = sample();
        assert_eq!(ReleaseManifest::parse(&m.render()).unwrap(), m);
    }

    #[test]
    fn what_we_write_is_real_toml() {
        let v: toml::Value = toml::from_str(&sample().render()).unwrap();
        assert_eq!(v["serial"].as_integer(), Some(42));
        assert_eq!(v["asset"][0]["name"].as_str(), Some("a.tar.gz"));
    }

    #[test]
    fn refuses_ambiguity() {
        let good = sample().render();
        let dup = good.replacen("serial = 42", "serial = 42\nserial = 43", 1);
        assert!(ReleaseManifest::parse(&dup).unwrap_err().why.contains("duplicate"));
        let escape = good.replacen("\"stable\"", "\"sta\\u0062le\"", 1);
        assert!(ReleaseManifest::parse(&escape).is_err());
        let bad_name = good.replacen("a.tar.gz", "../a.tar.gz", 1);
        assert!(ReleaseManifest::parse(&bad_name).unwrap_err().why.contains("invalid asset name"));
        let newer = good.replacen("format = 1", "format = 2", 1);
        assert!(ReleaseManifest::parse(&newer).unwrap_err().why.contains("newer"));
        let table = format!("{good}\n[signed]\nx = 1\n");
        assert!(ReleaseManifest::parse(&table).is_err());
    }

    #[test]
    fn ignores_unknown_top_level_keys_for_forward_compatibility() {
        let text = sample().render().replacen("serial = 42", "serial = 42\nnotes = \"x\"", 1);
        assert_eq!(ReleaseManifest::parse(&text).unwrap(), sample());
    }
}
