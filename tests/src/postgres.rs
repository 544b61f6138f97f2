//! A throwaway PostgreSQL server for tests: a cluster made with the Debian `postgresql`
//! package's initdb/pg_ctl, on a free loopback port, in a temp dir, with password (SCRAM)
//! authentication, stopped and deleted on drop. Start takes about 1 s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const PASSWORD: &str = "standin-pg-secret";

/// A private PostgreSQL cluster, stopped and deleted on drop.
///
/// initdb and postgres refuse to run as root, so as root the cluster is
/// owned by and run as the `postgres` user (or `nobody`) through `runuser`;
/// as any other user it runs as that user.
pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    run_as: Option<String>,
}

impl PgCluster {
    /// The newest `/usr/lib/postgresql/<v>/bin` that has initdb, else the
    /// directory of an initdb on PATH.
    pub fn bin_dir() -> Option<PathBuf> {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
            .filter(|(_, b): &(u32, PathBuf)| b.join("initdb").is_file())
            .collect();
        versions.sort();
        if let Some((_, b)) = versions.pop() {
            return Some(b);
        }
        std::env::split_paths(&std::env::var_os("PATH")?)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
            .map(|d| {
                std::fs::canonicalize(d.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or(d)
            })
    }

    /// A started cluster for a test, or `None` (with a message) where no PostgreSQL server is
    /// installed; with `STANDIN_REQUIRE_POSTGRES` set (CI) a missing server fails the test instead.
    pub fn for_test() -> Option<PgCluster> {
        let Some(bin) = PgCluster::bin_dir() else {
            assert!(std::env::var_os("STANDIN_REQUIRE_POSTGRES").is_none(), "PostgreSQL server binaries are required");
            crate::skip("no PostgreSQL server binaries (apt-get install -y postgresql)");
            return None;
        };
        Some(PgCluster::start(&bin).unwrap_or_else(|e| panic!("starting PostgreSQL: {e}")))
    }

    pub fn start(bin: &Path) -> Result<PgCluster, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        // /tmp rather than target/: every path component must be traversable
        // by the cluster's user, which the work tree may not be.
        let dir = std::env::temp_dir().join(format!(
            "standin-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let run_as =
            is_root().then(|| if user_ids("postgres").is_some() { "postgres".to_owned() } else { "nobody".to_owned() });
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, PASSWORD).map_err(|e| e.to_string())?;
        let mut cluster = PgCluster { dir, port: 0, bin: bin.to_path_buf(), run_as };
        if let Some(user) = &cluster.run_as {
            let (uid, gid) = user_ids(user).ok_or_else(|| format!("no user {user}"))?;
            for p in [&cluster.dir, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", p.display()))?;
            }
        }
        let data = cluster.dir.join("data");
        cluster.pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--pwfile",
                pwfile.to_str().unwrap(),
                "-A",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        // A port free a moment ago can be taken meanwhile: retry a few.
        let mut last = String::new();
        for _ in 0..3 {
            cluster.port = crate::free_port();
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    cluster.createdb("vikunja")?;
                    return Ok(cluster);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn pg_ctl_start(&self) -> Result<(), String> {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let data = self.dir.join("data");
        let log = self.dir.join("postgres.log");
        self.pg(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &opts, "-w", "-t", "30", "start"],
        )
        .map(|_| ())
    }

    pub fn stop(&self) {
        let data = self.dir.join("data");
        let _ = self.pg("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"]);
    }

    fn createdb(&self, name: &str) -> Result<(), String> {
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", name])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("createdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// Runs a server binary as the cluster's user.
    fn pg(&self, tool: &str, args: &[&str]) -> Result<String, String> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args).current_dir(&self.dir);
        let out = cmd.output().map_err(|e| format!("{tool}: {e}"))?;
        let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
            return Err(format!("{tool} failed ({}): {all}\n{log}", out.status));
        }
        Ok(all)
    }

    /// The `[database]` table of a deployment.toml pointing the installer at this cluster.
    pub fn deployment_toml(&self) -> String {
        format!(
            "\n[database]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\nname = \"vikunja\"\nuser = \"postgres\"\npassword_file = \"{}\"\n",
            self.port,
            self.dir.join("pwfile").display()
        )
    }

    /// `psql -tAc SQL` against the cluster's `vikunja` database: the trimmed output.
    pub fn query(&self, sql: &str) -> String {
        let o = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "vikunja", "-tAc", sql])
            .env("PGPASSWORD", PASSWORD)
            .output();
        o.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string()).unwrap_or_default()
    }

    /// Environment that points the stand-in at this cluster; the password
    /// travels through `VIKUNJA_DATABASE_PASSWORD_FILE`.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("VIKUNJA_DATABASE_TYPE".into(), "postgres".into()),
            ("VIKUNJA_DATABASE_HOST".into(), format!("127.0.0.1:{}", self.port)),
            ("VIKUNJA_DATABASE_USER".into(), "postgres".into()),
            ("VIKUNJA_DATABASE_PASSWORD_FILE".into(), self.dir.join("pwfile").display().to_string()),
            ("VIKUNJA_DATABASE_DATABASE".into(), "vikunja".into()),
        ]
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        crate::remove_test_dir(&self.dir);
    }
}

fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?))).flatten()
    })
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}
