//! Where everything of one instance lives, always under `--root` (default `/`), so tests and the
//! demo run in a sandbox without touching the machine. The seed's layout:
//! `/opt/vikunja-<instance>/{config,data,backups,state,logs,scripts,releases/<version>}`.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    pub instance: String,
    pub base: PathBuf,
}

impl Layout {
    pub fn new(root: &Path, instance: &str) -> Layout {
        Layout {
            root: root.to_path_buf(),
            instance: instance.to_string(),
            base: under(root, &format!("/opt/vikunja-{instance}")),
        }
    }

    /// A system path (like `/etc/nginx/conf.d`) inside the root.
    pub fn system(&self, abs: &str) -> PathBuf {
        under(&self.root, abs)
    }

    pub fn config_dir(&self) -> PathBuf {
        self.base.join("config")
    }
    pub fn deployment_file(&self) -> PathBuf {
        self.config_dir().join("deployment.toml")
    }
    pub fn vikunja_config(&self) -> PathBuf {
        self.config_dir().join("config.yml")
    }
    pub fn ssl_dir(&self) -> PathBuf {
        self.config_dir().join("ssl")
    }
    /// ACME: the account (one file per directory URL), certificate and key, all 0600.
    pub fn acme_dir(&self) -> PathBuf {
        self.ssl_dir().join("acme")
    }
    /// HTTP-01 tokens while a certificate is ordered, served by nginx on the HTTP port: outside
    /// `config/` (0750), which nginx's workers cannot enter.
    pub fn acme_challenge_dir(&self) -> PathBuf {
        self.base.join("acme-challenge")
    }
    pub fn nginx_dir(&self) -> PathBuf {
        self.config_dir().join("nginx")
    }
    /// Rendered unit files: installed into systemd, or run by the process supervisor.
    pub fn units_dir(&self) -> PathBuf {
        self.config_dir().join("units")
    }
    pub fn db_password_file(&self) -> PathBuf {
        self.config_dir().join(".db-password")
    }
    pub fn service_secret_file(&self) -> PathBuf {
        self.config_dir().join(".service-secret")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }
    pub fn files_dir(&self) -> PathBuf {
        self.data_dir().join("files")
    }
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir().join("vikunja.db")
    }
    pub fn backups_dir(&self) -> PathBuf {
        self.base.join("backups")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.base.join("state")
    }
    pub fn locks_dir(&self) -> PathBuf {
        self.state_dir().join("locks")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.base.join("logs")
    }
    pub fn scripts_dir(&self) -> PathBuf {
        self.base.join("scripts")
    }
    pub fn releases_dir(&self) -> PathBuf {
        self.base.join("releases")
    }
    pub fn release_dir(&self, version: &str) -> PathBuf {
        self.releases_dir().join(version)
    }
    pub fn unit_name(&self, component: &str, colour: &str) -> String {
        format!("vikunja-{}-{component}-{colour}", self.instance)
    }
    pub fn systemd_unit_path(&self, unit: &str) -> PathBuf {
        self.system(&format!("/etc/systemd/system/{unit}.service"))
    }
    pub fn nginx_conf_d(&self) -> PathBuf {
        self.system(&format!("/etc/nginx/conf.d/vikunja-{}.conf", self.instance))
    }

    /// Directories created at install, with the mode each gets (owner set separately).
    pub fn dirs(&self) -> Vec<(PathBuf, u32)> {
        vec![
            (self.base.clone(), 0o755),
            (self.config_dir(), 0o750),
            (self.ssl_dir(), 0o700),
            (self.acme_challenge_dir(), 0o755),
            (self.nginx_dir(), 0o755),
            (self.units_dir(), 0o755),
            (self.data_dir(), 0o750),
            (self.files_dir(), 0o750),
            (self.backups_dir(), 0o700),
            (self.state_dir(), 0o755),
            (self.locks_dir(), 0o755),
            (self.logs_dir(), 0o750),
            (self.scripts_dir(), 0o755),
            (self.releases_dir(), 0o755),
        ]
    }
}

fn under(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

/// Instances installed under `root`: every `/opt/vikunja-*` holding a deployment.toml.
pub fn installed_instances(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(under(root, "/opt"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("vikunja-").map(str::to_string))
        .filter(|i| Layout::new(root, i).deployment_file().is_file())
        .collect();
    v.sort();
    v
}
