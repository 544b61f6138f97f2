//! `[database] provision = true` against a real PostgreSQL server (issue 17): the installer reaches
//! the server as its `postgres` account over the local socket (peer authentication), creates the
//! role with a generated password (0600) and the database, and Vikunja (the stand-in) runs on it;
//! a second install finds both; an update with a migration under load, a rollback that restores
//! the dump, and a backup restored all work as with an external server. Refusals: provision with a
//! password file, or a server that listens beyond loopback.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::sync::OnceLock;

use vikunja_e2e::load::{Load, Target};
use vikunja_e2e::postgres::{PgCluster, PASSWORD};
use vikunja_e2e::sandbox::{DownloadSite, Sandbox};

const V1: &str = "v2.4.0";
const V2: &str = "v2.5.0";
const INSTANCE: &str = "prov";

fn site() -> &'static DownloadSite {
    static S: OnceLock<DownloadSite> = OnceLock::new();
    S.get_or_init(|| {
        let dir = vikunja_e2e::scratch_dir("provision-site").unwrap();
        DownloadSite::start(&dir, &[V1, V2]).unwrap()
    })
}

fn installer(sb: &Sandbox, args: &[&str]) -> Output {
    sb.run_installer(
        env!("CARGO_BIN_EXE_vikunja-installer"),
        &site().ca.ca_pem,
        args,
        std::iter::empty::<(&str, &str)>(),
    )
}

/// `psql -tAc SQL` on database `db`, as `user` with `password`, over TCP.
fn psql(pg: &PgCluster, user: &str, password: &str, db: &str, sql: &str) -> Result<String, String> {
    let o = Command::new(PgCluster::bin_dir().unwrap().join("psql"))
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", user, "-d", db, "-tAc", sql])
        .env("PGPASSWORD", password)
        .output()
        .unwrap();
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// The test cluster with what a distribution's server has: the `postgres` account may connect
/// over the local socket by peer authentication.
fn cluster() -> Option<PgCluster> {
    let pg = PgCluster::for_test()?;
    // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory.
    if unsafe { libc::geteuid() } != 0 {
        vikunja_e2e::skip("provisioning connects as the postgres account through runuser: run as root");
        return None;
    }
    let hba = pg.dir.join("data/pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("local all postgres peer\n{text}")).unwrap();
    assert_eq!(psql(&pg, "postgres", PASSWORD, "postgres", "SELECT pg_reload_conf()").unwrap(), "t");
    Some(pg)
}

fn config(sb: &Sandbox, pg: &PgCluster, more: &str) -> std::path::PathBuf {
    let extra = format!(
        "\n[database]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\nname = \"vk_prov\"\nuser = \"vk_prov\"\n\
         provision = true\nsocket_dir = \"{}\"\n{more}",
        pg.port,
        pg.dir.display()
    );
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, V1, &site().base(), &extra)).unwrap();
    cfg
}

#[test]
fn a_provisioned_local_postgresql_serves_install_update_rollback_backup_and_restore() {
    let Some(pg) = cluster() else { return };
    let sb = Sandbox::new("provision-pg").unwrap();

    // Refused before anything: provision generates the password, so a password file contradicts it.
    let pwf = sb.root.join("pw");
    std::fs::write(&pwf, "x").unwrap();
    let bad = config(&sb, &pg, &format!("password_file = \"{}\"\n", pwf.display()));
    let o = installer(&sb, &["install", "--init", "process", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("database.password_file"));
    assert_eq!(
        psql(&pg, "postgres", PASSWORD, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname='vk_prov'").unwrap(),
        "0"
    );

    let cfg = config(&sb, &pg, "");
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "install failed");
    assert!(String::from_utf8_lossy(&o.stdout).contains("database vk_prov (created)"));
    let pw_file = sb.instance_dir(INSTANCE).join("config/.db-password");
    assert_eq!(std::fs::metadata(&pw_file).unwrap().permissions().mode() & 0o077, 0, "password file not owner-only");
    let password = std::fs::read_to_string(&pw_file).unwrap();
    assert_eq!(password.len(), 48);
    // The role logs in with the generated password only, owns the database, and Vikunja migrated it.
    assert!(psql(&pg, "vk_prov", "wrong", "vk_prov", "SELECT 1").is_err());
    let q = |sql: &str| psql(&pg, "vk_prov", &password, "vk_prov", sql).unwrap();
    assert_eq!(q("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'vk_prov'"), "vk_prov");
    let before = q("SELECT string_agg(id, ',' ORDER BY id) FROM migration");
    assert!(!before.is_empty());
    let st = installer(&sb, &["status", "--json"]);
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("(on this machine, provisioned)"),
        "status does not show the local server"
    );

    // A second install finds role and database and keeps the password.
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("(already there)"));
    assert_eq!(std::fs::read_to_string(&pw_file).unwrap(), password);

    // An update with a migration, under load; then a rollback that restores the dump.
    let t = Target::new("vikunja.test", sb.ports.https, sb.instance_dir(INSTANCE).join("config/ssl/cert.pem"));
    let load = Load::start(&t, 1, 1);
    load.warm_up(5);
    let o = installer(&sb, &["update", "--version", V2]);
    let r = load.stop();
    assert!(o.status.success(), "update failed");
    assert!(r.reads_failed.is_empty(), "{:?}", r.reads_failed);
    let titles = t.task_titles().unwrap();
    assert!(r.writes_acked.iter().all(|w| titles.contains(w)), "acknowledged writes lost");
    assert_ne!(q("SELECT string_agg(id, ',' ORDER BY id) FROM migration"), before, "V2 ran no migration");
    let o = installer(&sb, &["rollback", "--yes"]);
    assert!(o.status.success(), "rollback failed");
    assert_eq!(q("SELECT string_agg(id, ',' ORDER BY id) FROM migration"), before, "the dump was not restored");

    // A backup, a task made after it, and the restore that takes it away again. (The rollback took
    // the writes made during the update with it, as it says: what is there now is what counts.)
    assert!((200..300).contains(&t.create_task("before-the-backup").0));
    let kept = t.task_titles().unwrap();
    assert!(kept.iter().any(|x| x == "before-the-backup"));
    let o = installer(&sb, &["backup"]);
    assert!(o.status.success());
    let (code, _) = t.create_task("after-the-backup");
    assert!((200..300).contains(&code));
    // The backup just taken; the directory also holds the update's and the rollback's database copies.
    let file = std::fs::read_dir(sb.instance_dir(INSTANCE).join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vikunja-backup-")))
        .expect("the backup in backups/");
    let o = installer(&sb, &["restore", file.to_str().unwrap(), "--yes"]);
    assert!(o.status.success(), "restore failed");
    let titles = t.task_titles().unwrap();
    assert!(!titles.iter().any(|x| x == "after-the-backup"), "restore left a later task");
    assert_eq!(titles, kept, "restore did not give back the tasks of the backup");

    // The same backup on a "new machine": its install gave the role another password (P2, in the
    // live password file). The restore swaps the backup's file back in and must give the role that
    // password before it restores the database and starts Vikunja with it.
    let p2 = "ab".repeat(24);
    q(&format!("ALTER ROLE vk_prov PASSWORD '{p2}'"));
    std::fs::write(&pw_file, &p2).unwrap();
    let o = installer(&sb, &["restore", file.to_str().unwrap(), "--yes"]);
    assert!(o.status.success(), "restore onto a role with another password failed");
    assert_eq!(std::fs::read_to_string(&pw_file).unwrap(), password, "the backup's password file is in place");
    assert_eq!(q("SELECT current_user"), "vk_prov", "the role logs in with the backup's password again");
    assert!(psql(&pg, "vk_prov", &p2, "vk_prov", "SELECT 1").is_err(), "the new machine's password still works");
    assert_eq!(t.task_titles().unwrap(), kept);
}
