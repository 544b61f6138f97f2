//! Which Vikunja version this process pretends to be, and semver ordering.
//!
//! One build stands in for many releases: the release zip names the binary
//! `vikunja-v<semver>-linux-<arch>`, so a copy under that name *is* that
//! version. Tests and the deployment engine can then install "v2.4.0" and
//! "v2.5.0" side by side without building twice.

use std::cmp::Ordering;
use std::path::Path;

/// Used when neither the file name nor `VIKUNJA_STANDIN_VERSION` says more.
pub const FALLBACK: &str = "v0.0.0-standin";

/// A parsed `[v]MAJOR.MINOR.PATCH[-PRE][+BUILD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemVer {
    pub core: (u64, u64, u64),
    pub pre: Vec<String>,
}

impl SemVer {
    pub fn parse(s: &str) -> Option<SemVer> {
        let s = s.strip_prefix('v').unwrap_or(s);
        // Build metadata never takes part in ordering (semver §10).
        let s = s.split('+').next()?;
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, p),
            None => (s, ""),
        };
        let mut nums = core.split('.').map(|n| {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                n.parse::<u64>().ok()
            }
        });
        let (a, b, c) = (nums.next()??, nums.next()??, nums.next()??);
        if nums.next().is_some() {
            return None;
        }
        let pre: Vec<String> = if pre.is_empty() { Vec::new() } else { pre.split('.').map(str::to_owned).collect() };
        if pre.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')) {
            return None;
        }
        Some(SemVer { core: (a, b, c), pre })
    }

    /// Without the leading `v`, as hashicorp/go-version prints it in
    /// Vikunja's restore error message.
    pub fn plain(&self) -> String {
        let (a, b, c) = self.core;
        if self.pre.is_empty() {
            format!("{a}.{b}.{c}")
        } else {
            format!("{a}.{b}.{c}-{}", self.pre.join("."))
        }
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SemVer {
    /// Full semver precedence: a pre-release sorts before its release.
    fn cmp(&self, other: &Self) -> Ordering {
        self.core.cmp(&other.core).then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (x, y) in self.pre.iter().zip(&other.pre) {
                    let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                        (Ok(a), Ok(b)) => a.cmp(&b),
                        (Ok(_), Err(_)) => Ordering::Less,
                        (Err(_), Ok(_)) => Ordering::Greater,
                        (Err(_), Err(_)) => x.cmp(y),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                self.pre.len().cmp(&other.pre.len())
            }
        })
    }
}

/// The version string this process reports (`vikunja version`, `/api/v1/info`,
/// the dump's `VERSION`), with its leading `v`.
pub fn current() -> String {
    let exe_name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| {
            std::env::args_os().next().and_then(|a| Path::new(&a).file_name().map(|n| n.to_string_lossy().into_owned()))
        });
    if let Some(v) = exe_name.as_deref().and_then(from_release_name) {
        return v;
    }
    match std::env::var("VIKUNJA_STANDIN_VERSION") {
        Ok(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => FALLBACK.to_owned(),
    }
}

/// `vikunja-v2.5.0-linux-amd64` → `v2.5.0`; any other name → `None`.
pub fn from_release_name(name: &str) -> Option<String> {
    let rest = name.strip_prefix("vikunja-")?;
    // rfind: a pre-release may itself contain dashes (`v1.0.0-rc2`).
    let at = rest.rfind("-linux-")?;
    let (ver, arch) = (&rest[..at], &rest[at + "-linux-".len()..]);
    if arch.is_empty() || !ver.starts_with('v') || SemVer::parse(ver).is_none() {
        return None;
    }
    Some(ver.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_names() {
        assert_eq!(from_release_name("vikunja-v2.5.0-linux-amd64").as_deref(), Some("v2.5.0"));
        assert_eq!(from_release_name("vikunja-v1.0.0-rc2-linux-arm-7").as_deref(), Some("v1.0.0-rc2"));
        assert_eq!(from_release_name("vikunja"), None);
        assert_eq!(from_release_name("vikunja-2.5.0-linux-amd64"), None);
        assert_eq!(from_release_name("vikunja-v2.5-linux-amd64"), None);
        assert_eq!(from_release_name("vikunja-v2.5.0-linux-"), None);
    }

    #[test]
    fn ordering() {
        let v = |s| SemVer::parse(s).unwrap();
        assert!(v("v1.0.0-rc2") < v("1.0.0"));
        assert!(v("v1.0.0-rc10") < v("v1.0.0-rc2"), "alphanumeric identifiers compare as ASCII strings in semver");
        assert!(v("1.0.0-alpha") < v("1.0.0-alpha.1"));
        assert!(v("1.0.0-1") < v("1.0.0-alpha"));
        assert!(v("0.24.6") < v("1.0.0-rc0"));
        assert_eq!(v("v2.5.0+build"), v("2.5.0"));
        assert!(SemVer::parse("2.5").is_none());
        assert!(SemVer::parse("2.5.x").is_none());
        assert_eq!(v("v2.5.0-rc.1").plain(), "2.5.0-rc.1");
    }
}
