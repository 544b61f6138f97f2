//! The rollback guard: the highest release serial this host accepted, per channel, kept in a small
//! state file so a replayed older (but validly signed) release is refused on the next run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read the trust state {path}: {source}; fix its permissions or run as root")]
    Read { path: PathBuf, source: io::Error },
    #[error("trust state {path} line {line} is damaged; it must look like `stable = 1764072000`. Restore it or remove it (which forgets the rollback guard)")]
    Damaged { path: PathBuf, line: usize },
    #[error("cannot record the accepted release in {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

pub struct SerialState {
    pub path: PathBuf,
    serials: BTreeMap<String, u64>,
}

/// Where the state lives: `VIKUNJA_STATE_DIR`, else `/var/lib/vikunja-pve` for root, else
/// `$XDG_STATE_HOME/vikunja-pve` or `$HOME/.local/state/vikunja-pve`.
pub fn default_state_dir() -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    if let Some(d) = std::env::var_os("VIKUNJA_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    // /proc/self belongs to the effective user: a way to ask "am I root" without libc.
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0) {
        return PathBuf::from("/var/lib/vikunja-pve");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(x).join("vikunja-pve");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/state/vikunja-pve")
}

impl SerialState {
    pub fn load(dir: &Path) -> Result<SerialState, StateError> {
        let path = dir.join("trusted-serials");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        let mut serials = BTreeMap::new();
        for (i, l) in text.lines().enumerate() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let parsed = l
                .split_once('=')
                .and_then(|(k, v)| Some((k.trim().to_string(), v.trim().parse::<u64>().ok()?)))
                .filter(|(k, _)| crate::manifest::is_safe_name(k));
            let (k, v) = parsed.ok_or(StateError::Damaged { path: path.clone(), line: i + 1 })?;
            serials.insert(k, v);
        }
        Ok(SerialState { path, serials })
    }

    pub fn last(&self, channel: &str) -> Option<u64> {
        self.serials.get(channel).copied()
    }

    /// Records `serial` for `channel` if it is higher than what was recorded; never lowers it.
    pub fn record(&mut self, channel: &str, serial: u64) -> Result<(), StateError> {
        if self.last(channel).is_some_and(|s| s >= serial) {
            return Ok(());
        }
        self.serials.insert(channel.to_string(), serial);
        let mut text =
            String::from("# vikunja-pve: highest release serial accepted per channel (rollback protection)\n");
        for (k, v) in &self.serials {
            let _ = writeln!(text, "{k} = {v}");
        }
        let werr = |source| StateError::Write { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(werr)?;
        }
        crate::atomic::write_atomic(&self.path, text.as_bytes(), 0o644).map_err(werr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_only_grows_and_survives_a_reload() {
        let dir = std::env::temp_dir().join(format!("serial-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = SerialState::load(&dir).unwrap();
        assert_eq!(s.last("stable"), None);
        s.record("stable", 7).unwrap();
        s.record("stable", 3).unwrap();
        s.record("beta", 1).unwrap();
        let s = SerialState::load(&dir).unwrap();
        assert_eq!((s.last("stable"), s.last("beta")), (Some(7), Some(1)));
        std::fs::write(dir.join("trusted-serials"), "stable = seven\n").unwrap();
        assert!(matches!(SerialState::load(&dir), Err(StateError::Damaged { line: 1, .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
