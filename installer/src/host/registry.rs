//! The host's record of the instances it made: one `<name>.toml` (container, address, state) and
//! the deployment it was made with (`<name>.deployment.toml`) per instance, in
//! `<state dir>/instances/` (/var/lib/vikunja-pve as root, like the bootstrap's serial state).
//! Backups copied out of containers go to `<state dir>/backups/<name>/` and outlive `destroy`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::instance::config::Deployment;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub name: String,
    pub number: u16,
    pub ctid: u32,
    pub node: String,
    pub hostname: String,
    /// IPv4 address without prefix, or "dhcp" until the container reported one.
    pub address: String,
    pub domain: String,
    pub https_port: u16,
    pub storage: String,
    pub template: String,
    /// creating, ready or failed.
    pub state: String,
    pub created_at: String,
    pub installer_version: String,
    /// Path inside the container of the CA bundle passed as SSL_CERT_FILE (empty: none).
    pub ca_bundle: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read the instance registry {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("cannot write the instance registry {path}: {message}; is the state directory writable (run as root)?")]
    Write { path: PathBuf, message: String },
}

pub struct Registry {
    pub dir: PathBuf,
    pub backups: PathBuf,
}

impl Registry {
    /// Under `--root` the state lives in ROOT/var/lib/vikunja-pve (tests); at / it is the
    /// bootstrap's state directory (VIKUNJA_STATE_DIR, default /var/lib/vikunja-pve).
    pub fn open(root: &Path) -> Registry {
        let state = if root == Path::new("/") {
            manifests::serial::default_state_dir()
        } else {
            root.join("var/lib/vikunja-pve")
        };
        Registry { dir: state.join("instances"), backups: state.join("backups") }
    }

    fn entry_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    pub fn deployment_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.deployment.toml"))
    }

    pub fn all(&self) -> Result<Vec<Entry>, RegistryError> {
        let mut out = Vec::new();
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(RegistryError::Read { path: self.dir.clone(), message: e.to_string() }),
        };
        for e in rd.flatten() {
            let p = e.path();
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if n.ends_with(".toml") && !n.ends_with(".deployment.toml") {
                let text = std::fs::read_to_string(&p)
                    .map_err(|e| RegistryError::Read { path: p.clone(), message: e.to_string() })?;
                out.push(
                    toml::from_str(&text)
                        .map_err(|e| RegistryError::Read { path: p.clone(), message: e.to_string() })?,
                );
            }
        }
        out.sort_by_key(|e: &Entry| e.number);
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Result<Option<Entry>, RegistryError> {
        Ok(self.all()?.into_iter().find(|e| e.name == name))
    }

    pub fn save(&self, e: &Entry, d: &Deployment) -> Result<(), RegistryError> {
        let werr =
            |path: &Path, e: std::io::Error| RegistryError::Write { path: path.to_path_buf(), message: e.to_string() };
        std::fs::create_dir_all(&self.dir).map_err(|x| werr(&self.dir, x))?;
        let text = toml::to_string_pretty(e).unwrap_or_default();
        let f = self.entry_file(&e.name);
        manifests::atomic::write_atomic(&f, text.as_bytes(), 0o600).map_err(|x| werr(&f, x))?;
        let f = self.deployment_file(&e.name);
        manifests::atomic::write_atomic(&f, d.to_toml().as_bytes(), 0o600).map_err(|x| werr(&f, x))?;
        Ok(())
    }

    /// Forgets the instance; its copied-out backups stay.
    pub fn remove(&self, name: &str) -> Result<(), RegistryError> {
        for f in [self.entry_file(name), self.deployment_file(name)] {
            match std::fs::remove_file(&f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RegistryError::Write { path: f, message: e.to_string() }),
            }
        }
        Ok(())
    }

    pub fn backups_of(&self, name: &str) -> PathBuf {
        self.backups.join(name)
    }
}
