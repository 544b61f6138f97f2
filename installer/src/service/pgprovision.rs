//! `[database] provision = true`: PostgreSQL on this machine, set up for the instance. The
//! distribution's server (installed with apt-get when missing, on a real root only), reached as
//! its `postgres` account over the local socket (peer authentication, no superuser password); a
//! login role with a generated password kept in `config/.db-password` (0600) and a database it
//! owns. Every step is idempotent: a second `install` finds both and only re-sets the password
//! from the file. The server must listen on loopback only, as Debian's default does; anything
//! else is refused rather than changed behind the admin's back. SQL goes to psql on stdin, so the
//! password never appears on a command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::instance::config::Deployment;
use crate::instance::layout::Layout;

/// The newest psql: the distribution's versioned directories first, then PATH.
fn psql() -> Option<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin/psql"))))
        .filter(|(_, p): &(u32, PathBuf)| p.is_file())
        .collect();
    v.sort();
    v.pop()
        .map(|(_, p)| p)
        .or_else(|| std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("psql")).find(|p| p.is_file()))
}

/// Runs `sql` as the server's `postgres` account; the rows, `|`-separated.
fn superuser(psql: &Path, d: &Deployment, db: &str, sql: &str) -> Result<String, String> {
    let mut child = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(psql)
        .args(["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(&d.database.socket_dir)
        .args(["-p", &d.database.port.to_string(), "-d", db, "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run runuser -u postgres -- psql: {e}"))?;
    child.stdin.take().map(|mut i| i.write_all(sql.as_bytes())).transpose().map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "psql as postgres on {} port {} failed: {}",
            d.database.socket_dir.display(),
            d.database.port,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Whether every address in `listen_addresses` is this machine's own.
pub fn local_only(listen: &str) -> bool {
    listen.split(',').map(str::trim).all(|a| matches!(a, "localhost" | "127.0.0.1" | "::1" | ""))
}

/// Another instance on this root that provisions the same role or database on the same server:
/// two instances sharing one would reset each other's password and restore over each other's data.
fn shared_with(l: &Layout, d: &Deployment) -> Option<(String, String)> {
    let db = &d.database;
    crate::instance::layout::installed_instances(&l.root).into_iter().filter(|n| *n != l.instance).find_map(|n| {
        let other = Deployment::load(&Layout::new(&l.root, &n).deployment_file()).ok()?;
        let o = &other.database;
        let same_server = o.provision && o.port == db.port && o.socket_dir == db.socket_dir;
        if same_server && o.user == db.user {
            Some((n, format!("role {}", db.user)))
        } else if same_server && o.name == db.name {
            Some((n, format!("database {}", db.name)))
        } else {
            None
        }
    })
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Sets up server, role and database; returns what it did, for install's report.
pub fn provision(l: &Layout, d: &Deployment) -> Result<String, String> {
    if let Some((other, what)) = shared_with(l, d) {
        return Err(format!(
            "instance {other} already provisions the {what} on this server; two instances sharing it would \
             overwrite each other's password and data. Give instance {} its own [database] name and user \
             (for example name = \"vikunja_{}\", user = \"vikunja_{}\"); nothing was changed",
            l.instance,
            l.instance.replace('-', "_"),
            l.instance.replace('-', "_")
        ));
    }
    let psql = match psql() {
        Some(p) => p,
        None if l.root == Path::new("/") && Path::new("/usr/bin/apt-get").is_file() => {
            let o = Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", "postgresql"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output()
                .map_err(|e| format!("run apt-get: {e}"))?;
            if !o.status.success() {
                return Err(format!(
                    "apt-get install postgresql failed: {}; install it by hand, then run install again",
                    String::from_utf8_lossy(&o.stderr).trim()
                ));
            }
            psql().ok_or("apt-get installed postgresql, but no psql was found")?
        }
        None => return Err("PostgreSQL is not installed: apt-get install -y postgresql, then run install again".into()),
    };
    let listen = superuser(&psql, d, "postgres", "SHOW listen_addresses;")?;
    if !local_only(&listen) {
        return Err(format!(
            "the PostgreSQL server listens on {listen:?}, not only on this machine; provision keeps it local: set \
             listen_addresses = 'localhost' in postgresql.conf and restart it, or use it as an external server \
             (provision = false, with password_file)"
        ));
    }
    let pw_file = l.db_password_file();
    // Only a password this code generated (hex) is reused: the file may still hold one copied from
    // an earlier external server's password_file, which the SQL below could not quote safely.
    let password = match std::fs::read_to_string(&pw_file).map(|p| p.trim_end_matches(['\r', '\n']).to_string()) {
        Ok(p) if is_hex(&p) => p,
        _ => {
            let p = crate::instance::secrets::random_hex(24).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(l.config_dir()).map_err(|e| format!("create {}: {e}", l.config_dir().display()))?;
            manifests::atomic::write_atomic(&pw_file, p.as_bytes(), 0o600)
                .map_err(|e| format!("write {}: {e}", pw_file.display()))?;
            p
        }
    };
    // Names are validated (letters, digits, '_' and '-') and the password is hex: quoting is enough.
    let (user, db) = (&d.database.user, &d.database.name);
    superuser(
        &psql,
        d,
        "postgres",
        &format!(
            "DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') THEN ALTER ROLE \"{user}\" LOGIN \
             PASSWORD '{password}'; ELSE CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'; END IF; END$$;"
        ),
    )?;
    let exists = superuser(&psql, d, "postgres", &format!("SELECT 1 FROM pg_database WHERE datname = '{db}';"))? == "1";
    if !exists {
        superuser(&psql, d, "postgres", &format!("CREATE DATABASE \"{db}\" OWNER \"{user}\";"))?;
    }
    Ok(format!(
        "PostgreSQL on this machine (port {}, listening on {listen}): role {user}{}, database {db}{}",
        d.database.port,
        " (password in config/.db-password)",
        if exists { " (already there)" } else { " (created)" }
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_listen_addresses_are_local() {
        for ok in ["localhost", "127.0.0.1", "127.0.0.1,::1", "localhost, ::1"] {
            assert!(super::local_only(ok), "{ok}");
        }
        for no in ["*", "0.0.0.0", "localhost,192.168.1.5", "::"] {
            assert!(!super::local_only(no), "{no}");
        }
    }

    #[test]
    fn a_second_instance_may_not_provision_the_same_role_or_database() {
        use crate::instance::config::Deployment;
        use crate::instance::layout::Layout;
        let root = std::env::temp_dir().join(format!("pgprovision-shared-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let write = |name: &str, number: u16, db: &str, user: &str| {
            let mut d = Deployment::for_instance(name, number);
            d.database.provision = true;
            d.database.name = db.into();
            d.database.user = user.into();
            let l = Layout::new(&root, name);
            std::fs::create_dir_all(l.config_dir()).unwrap();
            std::fs::write(l.deployment_file(), d.to_toml()).unwrap();
            (l, d)
        };
        write("one", 1, "vikunja", "vikunja");
        let (l, d) = write("two", 2, "vikunja", "vikunja");
        let e = super::shared_with(&l, &d).unwrap();
        assert_eq!(e, ("one".to_string(), "role vikunja".to_string()));
        let (l, d) = write("two", 2, "vikunja", "vikunja_two");
        assert_eq!(super::shared_with(&l, &d).unwrap().1, "database vikunja");
        // Control: its own role and database.
        let (l, d) = write("two", 2, "vikunja_two", "vikunja_two");
        assert_eq!(super::shared_with(&l, &d), None);
        let _ = std::fs::remove_dir_all(&root);
    }
}
