//! Consistent online copies of the instance's database, and putting one back: used by `update`
//! (the pre-migration backup), `rollback`, and the recovery of an interrupted operation.
//!
//! SQLite is copied with `VACUUM INTO` (one read transaction, so a consistent snapshot while
//! Vikunja keeps serving; never a raw copy of a live file) and restored with SQLite's online
//! backup API into the live file, so connections that stay open see the restored pages.
//! PostgreSQL uses `pg_dump -Fc` / `pg_restore`, MySQL `mysqldump --single-transaction`; their
//! passwords go through the environment or a 0600 file, never a command line.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::instance::config::{DbType, Deployment};
use crate::instance::layout::Layout;

#[derive(Debug, thiserror::Error)]
pub enum DbBackupError {
    #[error("{what}: {detail}")]
    Failed { what: String, detail: String },
    #[error("{tool} is not installed; install it (Debian: apt-get install -y {package})")]
    MissingTool { tool: &'static str, package: &'static str },
}

fn failed(what: impl Into<String>, detail: impl std::fmt::Display) -> DbBackupError {
    DbBackupError::Failed { what: what.into(), detail: detail.to_string() }
}

/// The file name a backup of this database type gets (the extension says which tool reads it).
pub fn file_name(d: &Deployment, stem: &str) -> String {
    match d.database.kind {
        DbType::Sqlite => format!("{stem}.sqlite"),
        DbType::Postgres => format!("{stem}.pgdump"),
        DbType::Mysql => format!("{stem}.sql"),
    }
}

/// Writes a consistent copy of the live database to `dest` (which must not exist yet).
pub fn backup(l: &Layout, d: &Deployment, dest: &Path) -> Result<(), DbBackupError> {
    // The plaintext dump is written inside a fresh 0700 directory: the tools create their files
    // with the umask, and a backup directory may be shared (`backup --output`).
    let private = partial_dir(dest);
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| failed(format!("create {}", private.display()), e))?;
    let partial = private.join("dump");
    let result = dump(l, d, &partial).and_then(|()| sync_and_rename(&partial, dest));
    let _ = std::fs::remove_dir_all(&private);
    result
}

fn dump(l: &Layout, d: &Deployment, partial: &Path) -> Result<(), DbBackupError> {
    match d.database.kind {
        DbType::Sqlite => {
            let src = l.sqlite_path();
            let conn = rusqlite::Connection::open_with_flags(&src, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| failed(format!("open {}", src.display()), e))?;
            conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| failed("set busy timeout", e))?;
            let target = partial.to_str().ok_or_else(|| failed("backup path", "is not UTF-8"))?;
            conn.execute("VACUUM INTO ?1", [target])
                .map_err(|e| failed(format!("copy {} with VACUUM INTO", src.display()), e))?;
        }
        DbType::Postgres => {
            let mut c = tool("pg_dump", "postgresql-client")?;
            pg_args(&mut c, l, d);
            c.args(["-Fc", "--no-owner", "-f"]).arg(partial);
            run(c, "pg_dump")?;
        }
        DbType::Mysql => {
            let mut c = tool("mysqldump", "default-mysql-client")?;
            let _defaults = mysql_args(&mut c, l, d)?;
            c.args(["--single-transaction", "--routines", "--result-file"]).arg(partial).arg(&d.database.name);
            run(c, "mysqldump")?;
        }
    }
    Ok(())
}

/// Replaces the live database's contents with the backup at `src`.
pub fn restore(l: &Layout, d: &Deployment, src: &Path) -> Result<(), DbBackupError> {
    if !src.is_file() {
        return Err(failed("restore the database", format!("backup {} does not exist", src.display())));
    }
    match d.database.kind {
        DbType::Sqlite => {
            let live = l.sqlite_path();
            let mut conn =
                rusqlite::Connection::open(&live).map_err(|e| failed(format!("open {}", live.display()), e))?;
            conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| failed("set busy timeout", e))?;
            conn.restore(rusqlite::MAIN_DB, src, None::<fn(rusqlite::backup::Progress)>)
                .map_err(|e| failed(format!("restore {} from {}", live.display(), src.display()), e))?;
        }
        DbType::Postgres => {
            // Tables a newer release created are not in the dump, so `pg_restore --clean` alone
            // would leave them. psql drops every table, view and sequence of the schema and runs
            // the dump's SQL in one transaction, committed only when pg_restore produced all of it.
            let mut dump = tool("pg_restore", "postgresql-client")?;
            dump.args(["--no-owner", "-f", "-"]).arg(src).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut psql = tool("psql", "postgresql-client")?;
            pg_args(&mut psql, l, d);
            // NOTICEs off: psql's stderr is read only at the end, so a flood of them would fill
            // the pipe and stall the restore.
            psql.env("PGOPTIONS", "-c client_min_messages=warning");
            psql.args(["-q", "-v", "ON_ERROR_STOP=1", "-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut dump = dump.spawn().map_err(|e| failed("run pg_restore", e))?;
            let mut psql = psql.spawn().map_err(|e| failed("run psql", e))?;
            let mut input = psql.stdin.take().expect("piped");
            let copied = input
                .write_all(DROP_SCHEMA_OBJECTS.as_bytes())
                .and_then(|()| std::io::copy(dump.stdout.as_mut().expect("piped"), &mut input).map(|_| ()));
            let dump_out = dump.wait_with_output().map_err(|e| failed("wait for pg_restore", e))?;
            let complete = copied.is_ok() && dump_out.status.success();
            let _ = input.write_all(if complete { b"COMMIT;\n" } else { b"ROLLBACK;\n" });
            drop(input);
            let psql_out = psql.wait_with_output().map_err(|e| failed("wait for psql", e))?;
            if !dump_out.status.success() {
                return Err(failed(
                    "pg_restore (nothing was changed)",
                    String::from_utf8_lossy(&dump_out.stderr).trim(),
                ));
            }
            copied.map_err(|e| failed("feed the dump to psql (nothing was changed)", e))?;
            if !psql_out.status.success() {
                return Err(failed(
                    "psql restoring the dump (rolled back)",
                    String::from_utf8_lossy(&psql_out.stderr).trim(),
                ));
            }
        }
        DbType::Mysql => {
            // Tables a newer release created are not in the dump: they are dropped first, in the
            // same session as the dump's own DROP/CREATE (MySQL commits DDL at once, so a failure
            // part-way is reported and the pre-operation backup stays on disk).
            let mut list = tool("mysql", "default-mysql-client")?;
            let _defaults = mysql_args(&mut list, l, d)?;
            list.args([
                "-N",
                "-B",
                "-e",
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
            ])
            .arg(&d.database.name);
            let out = list.output().map_err(|e| failed("run mysql", e))?;
            if !out.status.success() {
                return Err(failed("list the tables with mysql", String::from_utf8_lossy(&out.stderr).trim()));
            }
            let tables: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|t| !t.is_empty())
                .map(|t| format!("`{}`", t.replace('`', "``")))
                .collect();
            let mut c = tool("mysql", "default-mysql-client")?;
            let _defaults2 = mysql_args(&mut c, l, d)?;
            c.arg(&d.database.name).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
            let mut child = c.spawn().map_err(|e| failed("run mysql", e))?;
            let mut input = child.stdin.take().expect("piped");
            let mut head = String::from("SET FOREIGN_KEY_CHECKS=0;\n");
            if !tables.is_empty() {
                head.push_str(&format!("DROP TABLE IF EXISTS {};\n", tables.join(", ")));
            }
            let fed = std::fs::File::open(src)
                .and_then(|mut f| input.write_all(head.as_bytes()).and_then(|()| std::io::copy(&mut f, &mut input)))
                .and_then(|_| input.write_all(b"SET FOREIGN_KEY_CHECKS=1;\n"));
            drop(input);
            let out = child.wait_with_output().map_err(|e| failed("wait for mysql", e))?;
            fed.map_err(|e| failed("feed the dump to mysql", e))?;
            if !out.status.success() {
                return Err(failed("mysql restoring the dump", String::from_utf8_lossy(&out.stderr).trim()));
            }
        }
    }
    Ok(())
}

/// Ids of the migrations recorded in the live database (Vikunja's `migration` table), sorted;
/// an empty list when the table does not exist yet. `None` when they cannot be read (MySQL,
/// without a client library): callers then assume the schema changed.
pub fn migrations(l: &Layout, d: &Deployment) -> Option<Vec<String>> {
    let mut ids: Vec<String> = match d.database.kind {
        DbType::Sqlite => {
            let path = l.sqlite_path();
            if !path.exists() {
                return Some(Vec::new());
            }
            let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
            let exists: bool = conn
                .query_row("SELECT count(*) FROM sqlite_master WHERE type='table' AND name='migration'", [], |r| {
                    r.get::<_, i64>(0)
                })
                .ok()?
                > 0;
            if !exists {
                return Some(Vec::new());
            }
            let mut st = conn.prepare("SELECT id FROM migration").ok()?;
            let rows = st.query_map([], |r| r.get::<_, String>(0)).ok()?;
            rows.collect::<Result<_, _>>().ok()?
        }
        DbType::Postgres => {
            let mut client = pg_client(l, d).ok()?;
            let exists = client.query_one("SELECT to_regclass('migration') IS NOT NULL", &[]).ok()?.get::<_, bool>(0);
            if !exists {
                return Some(Vec::new());
            }
            client.query("SELECT id FROM migration", &[]).ok()?.iter().map(|r| r.get::<_, String>(0)).collect()
        }
        DbType::Mysql => return None,
    };
    ids.sort();
    Some(ids)
}

/// Opens the restore transaction and empties the connection's schema (Vikunja's `database.schema`,
/// `public` by default). Not `DROP OWNED BY`: that fails for a superuser such as `postgres`.
const DROP_SCHEMA_OBJECTS: &str = "BEGIN;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT table_name FROM information_schema.views WHERE table_schema = current_schema() LOOP
    EXECUTE 'DROP VIEW IF EXISTS ' || quote_ident(r.table_name) || ' CASCADE';
  END LOOP;
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
    EXECUTE 'DROP TABLE IF EXISTS ' || quote_ident(r.tablename) || ' CASCADE';
  END LOOP;
  FOR r IN SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = current_schema() LOOP
    EXECUTE 'DROP SEQUENCE IF EXISTS ' || quote_ident(r.sequence_name) || ' CASCADE';
  END LOOP;
END $$;
";

fn partial_dir(dest: &Path) -> PathBuf {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.partial"))
}

/// A backup counts only once it is complete and on disk: fsync, then rename into place.
fn sync_and_rename(partial: &Path, dest: &Path) -> Result<(), DbBackupError> {
    use std::os::unix::fs::PermissionsExt;
    let f = std::fs::File::open(partial).map_err(|e| failed(format!("open {}", partial.display()), e))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| failed(format!("chmod {}", partial.display()), e))?;
    f.sync_all().map_err(|e| failed(format!("fsync {}", partial.display()), e))?;
    std::fs::rename(partial, dest).map_err(|e| failed(format!("rename to {}", dest.display()), e))?;
    if let Some(dir) = dest.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

fn tool(name: &'static str, package: &'static str) -> Result<Command, DbBackupError> {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()));
    if !found {
        return Err(DbBackupError::MissingTool { tool: name, package });
    }
    Ok(Command::new(name))
}

fn run(mut c: Command, what: &str) -> Result<(), DbBackupError> {
    let out = c.output().map_err(|e| failed(format!("run {what}"), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(failed(format!("{what} exited with {}", out.status), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn password(l: &Layout) -> Option<String> {
    crate::instance::secrets::db_password(l).map(|p| p.trim_end_matches(['\r', '\n']).to_string())
}

fn pg_args(c: &mut Command, l: &Layout, d: &Deployment) {
    c.arg("-h").arg(&d.database.host);
    c.arg("-p").arg(d.database.port.to_string());
    c.arg("-U").arg(&d.database.user);
    c.arg("-d").arg(&d.database.name);
    c.arg("--no-password");
    if let Some(pw) = password(l) {
        c.env("PGPASSWORD", pw);
    }
}

fn pg_client(l: &Layout, d: &Deployment) -> Result<postgres::Client, DbBackupError> {
    let mut cfg = postgres::Config::new();
    cfg.host(&d.database.host).port(d.database.port).user(&d.database.user).dbname(&d.database.name);
    if let Some(pw) = password(l) {
        cfg.password(pw);
    }
    cfg.connect(postgres::NoTls).map_err(|e| failed(format!("connect to PostgreSQL {}", d.database.host), e))
}

/// MySQL clients read the password from a `--defaults-extra-file` (mode 0600, removed on drop).
struct DefaultsFile(PathBuf);
impl Drop for DefaultsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mysql_args(c: &mut Command, l: &Layout, d: &Deployment) -> Result<DefaultsFile, DbBackupError> {
    let path = l.state_dir().join(format!(".mysql-client-{}.cnf", std::process::id()));
    let text = format!("[client]\npassword=\"{}\"\n", password(l).unwrap_or_default().replace('"', "\\\""));
    manifests::atomic::write_atomic(&path, text.as_bytes(), 0o600)
        .map_err(|e| failed(format!("write {}", path.display()), e))?;
    c.arg(format!("--defaults-extra-file={}", path.display()));
    c.arg("-h").arg(&d.database.host);
    c.arg("-P").arg(d.database.port.to_string());
    c.arg("-u").arg(&d.database.user);
    Ok(DefaultsFile(path))
}
