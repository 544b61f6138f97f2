//! The host's record of the instances it made: one `<name>.toml` (container, node, address,
//! state) and the deployment it was made with (`<name>.deployment.toml`) per instance.
//!
//! On a Proxmox host the record lives on the cluster filesystem, `/etc/pve/priv/vikunja-pve/
//! instances/`, so every node of a cluster sees every instance (priv/: root only, as the settings
//! name secret files). pmxcfs (pve-cluster src/pmxcfs/pmxcfs.c) has create, write, rename, unlink,
//! mkdir and fsync-less files, no hard or symbolic links, chmod only to 0600 in priv/ (0640
//! elsewhere), files up to 1 MiB, and refuses writes without quorum: a record is written to a
//! temporary file created with its mode and renamed over the old one, which it supports.
//! Elsewhere (no /etc/pve/nodes) it stays in `<state dir>/instances/` (/var/lib/vikunja-pve as
//! root), which is also read for the records of older installers; a record saved again moves to
//! the cluster. Backups copied out of containers are too big for pmxcfs: they go to the node's
//! `<state dir>/backups/<name>/` and outlive `destroy`.

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
    /// The node-local registry of older installers, read along (None: `dir` is that one).
    legacy: Option<PathBuf>,
}

impl Registry {
    /// Under `--root` the state lives in ROOT/var/lib/vikunja-pve (tests); at / it is the
    /// bootstrap's state directory (VIKUNJA_STATE_DIR, default /var/lib/vikunja-pve). The records
    /// go to ROOT/etc/pve/priv/vikunja-pve/instances when ROOT/etc/pve is a cluster filesystem
    /// (it has nodes/).
    pub fn open(root: &Path) -> Registry {
        let state = if root == Path::new("/") {
            manifests::serial::default_state_dir()
        } else {
            root.join("var/lib/vikunja-pve")
        };
        let local = state.join("instances");
        let pve = root.join("etc/pve");
        if pve.join("nodes").is_dir() {
            let dir = pve.join("priv/vikunja-pve/instances");
            return Registry { dir, backups: state.join("backups"), legacy: Some(local) };
        }
        Registry { dir: local, backups: state.join("backups"), legacy: None }
    }

    fn entry_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.toml"))
    }

    pub fn deployment_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.deployment.toml"))
    }

    pub fn all(&self) -> Result<Vec<Entry>, RegistryError> {
        let mut out = read_dir(&self.dir)?;
        if let Some(legacy) = &self.legacy {
            for e in read_dir(legacy)? {
                if !out.iter().any(|o| o.name == e.name) {
                    out.push(e);
                }
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
        self.forget_legacy(&e.name)
    }

    /// The record alone, as it changes after creation (the node after a migration); the
    /// deployment goes along from the old node-local record when the record moves to the cluster.
    pub fn save_entry(&self, e: &Entry) -> Result<(), RegistryError> {
        let werr =
            |path: &Path, e: std::io::Error| RegistryError::Write { path: path.to_path_buf(), message: e.to_string() };
        std::fs::create_dir_all(&self.dir).map_err(|x| werr(&self.dir, x))?;
        let dep = self.deployment_file(&e.name);
        if let (false, Some(legacy)) = (dep.is_file(), &self.legacy) {
            let old = legacy.join(format!("{}.deployment.toml", e.name));
            if let Ok(text) = std::fs::read(&old) {
                manifests::atomic::write_atomic(&dep, &text, 0o600).map_err(|x| werr(&dep, x))?;
            }
        }
        let text = toml::to_string_pretty(e).unwrap_or_default();
        let f = self.entry_file(&e.name);
        manifests::atomic::write_atomic(&f, text.as_bytes(), 0o600).map_err(|x| werr(&f, x))?;
        self.forget_legacy(&e.name)
    }

    fn forget_legacy(&self, name: &str) -> Result<(), RegistryError> {
        match &self.legacy {
            Some(l) => remove_files(&[l.join(format!("{name}.toml")), l.join(format!("{name}.deployment.toml"))]),
            None => Ok(()),
        }
    }

    /// Forgets the instance; its copied-out backups stay.
    pub fn remove(&self, name: &str) -> Result<(), RegistryError> {
        remove_files(&[self.entry_file(name), self.deployment_file(name)])?;
        self.forget_legacy(name)
    }

    /// What `self uninstall --purge` removes on this node: its own registry and copied-out backups,
    /// never the cluster's registry, which the other nodes use.
    pub fn node_local(&self) -> Vec<PathBuf> {
        vec![self.legacy.clone().unwrap_or_else(|| self.dir.clone()), self.backups.clone()]
    }

    pub fn backups_of(&self, name: &str) -> PathBuf {
        self.backups.join(name)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<Entry>, RegistryError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(RegistryError::Read { path: dir.to_path_buf(), message: e.to_string() }),
    };
    for e in rd.flatten() {
        let p = e.path();
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if n.ends_with(".toml") && !n.ends_with(".deployment.toml") {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| RegistryError::Read { path: p.clone(), message: e.to_string() })?;
            out.push(
                toml::from_str(&text).map_err(|e| RegistryError::Read { path: p.clone(), message: e.to_string() })?,
            );
        }
    }
    Ok(out)
}

fn remove_files(files: &[PathBuf]) -> Result<(), RegistryError> {
    for f in files {
        match std::fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RegistryError::Write { path: f.clone(), message: e.to_string() }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_a_cluster_filesystem_the_records_live_there_and_older_node_local_ones_move_there() {
        let t = std::env::temp_dir().join(format!("vikunja-registry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let entry = |name: &str, number| Entry {
            name: name.into(),
            number,
            ctid: 100 + u32::from(number),
            node: "pve1".into(),
            hostname: name.into(),
            address: "dhcp".into(),
            domain: format!("{name}.test"),
            https_port: 443,
            storage: "local".into(),
            template: "t".into(),
            state: "ready".into(),
            created_at: String::new(),
            installer_version: String::new(),
            ca_bundle: String::new(),
        };
        // No /etc/pve/nodes: the node's state directory, as before.
        let local = Registry::open(&t);
        assert_eq!(local.dir, t.join("var/lib/vikunja-pve/instances"));
        local.save(&entry("old", 1), &Deployment::default()).unwrap();
        std::fs::create_dir_all(t.join("etc/pve/nodes/pve1")).unwrap();
        let reg = Registry::open(&t);
        assert_eq!(reg.dir, t.join("etc/pve/priv/vikunja-pve/instances"));
        assert_eq!(reg.backups, t.join("var/lib/vikunja-pve/backups"), "backups stay on the node");
        reg.save(&entry("new", 2), &Deployment::default()).unwrap();
        let names = |r: &Registry| r.all().unwrap().into_iter().map(|e| e.name).collect::<Vec<_>>();
        assert_eq!(names(&reg), ["old", "new"], "the older record is read along");
        // Saved again (a migration records its node), the older record moves, deployment and all.
        let mut old = reg.get("old").unwrap().unwrap();
        old.node = "pve2".into();
        reg.save_entry(&old).unwrap();
        assert!(reg.dir.join("old.deployment.toml").is_file());
        assert!(!t.join("var/lib/vikunja-pve/instances/old.toml").exists());
        assert_eq!(reg.get("old").unwrap().unwrap().node, "pve2");
        assert_eq!(reg.node_local()[0], t.join("var/lib/vikunja-pve/instances"), "purge leaves the cluster's");
        reg.remove("old").unwrap();
        assert_eq!(names(&reg), ["new"]);
        let _ = std::fs::remove_dir_all(&t);
    }
}
