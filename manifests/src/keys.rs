//! The trusted minisign public keys and signature verification against them.
//!
//! Keys are compiled in (current and next, for rotation): `VIKUNJA_TRUSTED_KEYS` at build time holds
//! the base64 public keys (the second line of a minisign `.pub` file), separated by commas or
//! whitespace. A build without keys trusts nothing and refuses every release.

use std::io::{self, Read};

use minisign_verify::{PublicKey, Signature};

/// What a good signature tells us: which key made it and what its trusted comment says.
#[derive(Debug, Clone)]
pub struct Verified {
    pub key_id: String,
    pub comment: TrustedComment,
}

#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error("this build embeds no trusted public key, so it trusts nothing; use a released binary or build one with `cargo xtask dist`")]
    NoTrustedKeys,
    #[error("invalid trusted public key {0:?}: expected the base64 line of a minisign .pub file")]
    BadKey(String),
    #[error("{what}: the signature file is not a minisign signature ({why})")]
    Malformed { what: String, why: String },
    #[error("{what}: signed with the legacy (non-prehashed) algorithm, which is refused; re-sign with a current minisign (prehashed, the default)")]
    Legacy { what: String },
    #[error("{what}: signed by key {key_id}, which is not trusted (trusted: {trusted}); the file may be forged, or it is from another publisher")]
    UnknownKey { what: String, key_id: String, trusted: String },
    #[error("{what}: the signature does not match the content (tampered or corrupted download)")]
    Invalid { what: String },
    #[error("{what}: cannot read: {source}")]
    Io { what: String, source: io::Error },
}

struct TrustedKey {
    id: String,
    pk: PublicKey,
}

pub struct Keyring {
    keys: Vec<TrustedKey>,
}

impl Keyring {
    /// The keys compiled into this binary.
    pub fn embedded() -> Result<Keyring, SigError> {
        Keyring::from_list(option_env!("VIKUNJA_TRUSTED_KEYS").unwrap_or(""))
    }

    pub fn from_list(list: &str) -> Result<Keyring, SigError> {
        let keys = list
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(|b64| {
                let raw = base64_decode(b64).filter(|r| r.len() == 42 && r[..2] == *b"Ed");
                let pk = PublicKey::from_base64(b64).ok();
                match (raw, pk) {
                    (Some(raw), Some(pk)) => Ok(TrustedKey { id: key_id(&raw[2..10]), pk }),
                    _ => Err(SigError::BadKey(b64.to_string())),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SigError::NoTrustedKeys);
        }
        Ok(Keyring { keys })
    }

    /// Key ids as minisign prints them, current key first.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.id.clone()).collect()
    }

    fn pick(&self, what: &str, sig_text: &str) -> Result<(&TrustedKey, Signature), SigError> {
        let malformed = |why: &str| SigError::Malformed { what: what.to_string(), why: why.to_string() };
        let sig = Signature::decode(sig_text).map_err(|e| malformed(&e.to_string()))?;
        let raw = sig_text
            .lines()
            .nth(1)
            .and_then(|l| base64_decode(l.trim()))
            .filter(|r| r.len() == 74)
            .ok_or_else(|| malformed("second line is not a signature"))?;
        if &raw[..2] != b"ED" {
            return Err(SigError::Legacy { what: what.to_string() });
        }
        let id = key_id(&raw[2..10]);
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| SigError::UnknownKey {
            what: what.to_string(),
            key_id: id.clone(),
            trusted: self.ids().join(", "),
        })?;
        Ok((key, sig))
    }

    /// Verifies a signature over bytes held in memory.
    pub fn verify(&self, what: &str, data: &[u8], sig_text: &str) -> Result<Verified, SigError> {
        self.verify_reader(what, data, sig_text)
    }

    /// Verifies a signature while reading `data` to its end, so large files are checked in one pass
    /// (the reader may write the bytes elsewhere as they go by).
    pub fn verify_reader(&self, what: &str, mut data: impl Read, sig_text: &str) -> Result<Verified, SigError> {
        let (key, sig) = self.pick(what, sig_text)?;
        let mut v = key.pk.verify_stream(&sig).map_err(|_| SigError::Legacy { what: what.to_string() })?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => v.update(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(SigError::Io { what: what.to_string(), source }),
            }
        }
        v.finalize().map_err(|_| SigError::Invalid { what: what.to_string() })?;
        Ok(Verified { key_id: key.id.clone(), comment: TrustedComment::parse(sig.trusted_comment()) })
    }
}

/// minisign shows a key id as the 8 id bytes read as a little-endian u64, in upper-case hex.
pub fn key_id(bytes: &[u8]) -> String {
    bytes.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// The `key:value` fields of a trusted comment, e.g. `timestamp:1764 file:release.toml serial:7`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedComment {
    pub fields: Vec<(String, String)>,
}

impl TrustedComment {
    pub fn parse(s: &str) -> TrustedComment {
        let fields = s
            .split_whitespace()
            .filter_map(|tok| tok.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TrustedComment { fields }
    }

    /// The value of a field that must appear exactly once (a repeated field could smuggle a second value).
    pub fn get(&self, key: &str) -> Option<&str> {
        let mut it = self.fields.iter().filter(|(k, _)| k == key);
        match (it.next(), it.next()) {
            (Some((_, v)), None) => Some(v),
            _ => None,
        }
    }

    pub fn render(fields: &[(&str, String)]) -> String {
        fields.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
    }
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= val(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_encodings() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert!(base64_decode("a$==").is_none());
    }

    #[test]
    fn an_empty_keyring_trusts_nothing() {
        assert!(matches!(Keyring::from_list(" , "), Err(SigError::NoTrustedKeys)));
        assert!(matches!(Keyring::from_list("not-a-key"), Err(SigError::BadKey(_))));
    }

    #[test]
    fn repeated_comment_fields_count_as_missing() {
        let c = TrustedComment::parse("file:a file:b serial:3");
        assert_eq!(c.get("file"), None);
        assert_eq!(c.get("serial"), Some("3"));
    }
}
