//! The database: SQLite (rusqlite) or PostgreSQL (postgres, sync), one
//! connection behind a mutex, and xormigrate-style migrations recorded in a
//! `migration` table (`id`, `description`).
//!
//! Queries are written once with `$1` placeholders against the small [`Exec`]
//! interface; each backend adapts them. Integer columns are BIGINT and no
//! column is nullable, which keeps the generic dump/restore path type-exact
//! on PostgreSQL.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::config::Database;
use crate::version::SemVer;

pub struct Migration {
    pub id: &'static str,
    pub description: &'static str,
    /// The first release that ships this migration.
    pub since: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// In id order. A release runs every migration whose `since` is not newer
/// than its own version, so newer releases add schema on top of older data.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        id: "20200101000000",
        description: "Create the tasks table",
        since: "0.0.0",
        sqlite: "CREATE TABLE tasks (id INTEGER PRIMARY KEY, title TEXT NOT NULL, project_id BIGINT NOT NULL, created TEXT NOT NULL)",
        postgres: "CREATE TABLE tasks (id BIGSERIAL PRIMARY KEY, title TEXT NOT NULL, project_id BIGINT NOT NULL, created TEXT NOT NULL)",
    },
    Migration {
        id: "20230601000000",
        description: "Create the task_attachments table",
        since: "0.21.0",
        sqlite: "CREATE TABLE task_attachments (id INTEGER PRIMARY KEY, task_id BIGINT NOT NULL, file_name TEXT NOT NULL, size BIGINT NOT NULL, created TEXT NOT NULL)",
        postgres: "CREATE TABLE task_attachments (id BIGSERIAL PRIMARY KEY, task_id BIGINT NOT NULL, file_name TEXT NOT NULL, size BIGINT NOT NULL, created TEXT NOT NULL)",
    },
    Migration {
        id: "20240601000000",
        description: "Add done to tasks",
        since: "0.24.0",
        sqlite: "ALTER TABLE tasks ADD COLUMN done BOOLEAN NOT NULL DEFAULT false",
        postgres: "ALTER TABLE tasks ADD COLUMN done BOOLEAN NOT NULL DEFAULT false",
    },
    Migration {
        id: "20250101000000",
        description: "Add priority to tasks",
        since: "1.0.0",
        sqlite: "ALTER TABLE tasks ADD COLUMN priority BIGINT NOT NULL DEFAULT 0",
        postgres: "ALTER TABLE tasks ADD COLUMN priority BIGINT NOT NULL DEFAULT 0",
    },
    Migration {
        id: "20260101000000",
        description: "Add description to tasks",
        since: "2.5.0",
        sqlite: "ALTER TABLE tasks ADD COLUMN description TEXT NOT NULL DEFAULT ''",
        postgres: "ALTER TABLE tasks ADD COLUMN description TEXT NOT NULL DEFAULT ''",
    },
];

pub const ATTACHMENTS: &str = "20230601000000";
pub const TASK_DONE: &str = "20240601000000";
pub const TASK_PRIORITY: &str = "20250101000000";
pub const TASK_DESCRIPTION: &str = "20260101000000";

/// The migrations `version` ships. Pre-release tags are ignored here
/// (v1.0.0-rc2 has the 1.0.0 migrations), which is how release candidates
/// behave; an unparsable version gets all of them.
pub fn shipped_by(version: &str) -> Vec<&'static Migration> {
    let Some(v) = SemVer::parse(version) else { return MIGRATIONS.iter().collect() };
    MIGRATIONS.iter().filter(|m| SemVer::parse(m.since).expect("valid literal").core <= v.core).collect()
}

/// A bound parameter. There is no NULL: see the module docs.
#[derive(Debug, Clone)]
pub enum Param {
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

/// A value read back.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

impl Cell {
    pub fn int(&self) -> i64 {
        match self {
            Cell::Int(i) => *i,
            Cell::Bool(b) => *b as i64,
            _ => 0,
        }
    }
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            _ => String::new(),
        }
    }
    pub fn bool(&self) -> bool {
        self.int() != 0
    }
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Cell::Null => serde_json::Value::Null,
            Cell::Int(i) => (*i).into(),
            Cell::Real(f) => (*f).into(),
            Cell::Text(s) => s.clone().into(),
            Cell::Bool(b) => (*b).into(),
        }
    }
}

pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

/// What a query needs from a connection or an open transaction.
pub trait Exec {
    fn exec(&mut self, sql: &str, params: &[Param]) -> Result<u64, String>;
    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Rows, String>;
    fn batch(&mut self, sql: &str) -> Result<(), String>;
    fn is_sqlite(&self) -> bool;
}

struct Lite<'a>(&'a rusqlite::Connection);

/// SQLite reads `$1` as a parameter *named* "1"; `?1` is the positional form.
fn lite_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        let numbered = c == '$' && chars.peek().is_some_and(char::is_ascii_digit);
        out.push(if numbered { '?' } else { c });
    }
    out
}

fn lite_params(params: &[Param]) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value as V;
    params
        .iter()
        .map(|p| match p {
            Param::Int(i) => V::Integer(*i),
            Param::Real(f) => V::Real(*f),
            Param::Text(s) => V::Text(s.clone()),
            Param::Bool(b) => V::Integer(*b as i64),
        })
        .collect()
}

impl Exec for Lite<'_> {
    fn exec(&mut self, sql: &str, params: &[Param]) -> Result<u64, String> {
        let n = self
            .0
            .execute(&lite_sql(sql), rusqlite::params_from_iter(lite_params(params)))
            .map_err(|e| e.to_string())?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Rows, String> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.0.prepare(&lite_sql(sql)).map_err(|e| e.to_string())?;
        let columns: Vec<String> = stmt.column_names().map(str::to_owned).collect();
        let n = columns.len();
        let mut out = Vec::new();
        let mut rows = stmt.query(rusqlite::params_from_iter(lite_params(params))).map_err(|e| e.to_string())?;
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let mut cells = Vec::with_capacity(n);
            for i in 0..n {
                cells.push(match row.get_ref(i).map_err(|e| e.to_string())? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(i) => Cell::Int(i),
                    ValueRef::Real(f) => Cell::Real(f),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Cell::Text(String::from_utf8_lossy(b).into_owned()),
                });
            }
            out.push(cells);
        }
        Ok(Rows { columns, rows: out })
    }

    fn batch(&mut self, sql: &str) -> Result<(), String> {
        self.0.execute_batch(sql).map_err(|e| e.to_string())
    }

    fn is_sqlite(&self) -> bool {
        true
    }
}

struct Pg<'a, C: postgres::GenericClient>(&'a mut C);

fn pg_err(e: postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("pq: {}", db.message()),
        None => e.to_string(),
    }
}

impl<C: postgres::GenericClient> Exec for Pg<'_, C> {
    fn exec(&mut self, sql: &str, params: &[Param]) -> Result<u64, String> {
        let refs = pg_params(params);
        self.0.execute(sql, &refs).map_err(pg_err)
    }

    fn query(&mut self, sql: &str, params: &[Param]) -> Result<Rows, String> {
        use postgres::types::Type;
        let refs = pg_params(params);
        let stmt = self.0.prepare(sql).map_err(pg_err)?;
        let columns: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
        let rows = self.0.query(&stmt, &refs).map_err(pg_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut cells = Vec::with_capacity(columns.len());
            for (i, col) in row.columns().iter().enumerate() {
                let t = col.type_();
                let cell = if *t == Type::INT8 {
                    row.try_get::<_, Option<i64>>(i).map(|v| v.map(Cell::Int))
                } else if *t == Type::INT4 {
                    row.try_get::<_, Option<i32>>(i).map(|v| v.map(|x| Cell::Int(x.into())))
                } else if *t == Type::INT2 {
                    row.try_get::<_, Option<i16>>(i).map(|v| v.map(|x| Cell::Int(x.into())))
                } else if *t == Type::BOOL {
                    row.try_get::<_, Option<bool>>(i).map(|v| v.map(Cell::Bool))
                } else if *t == Type::FLOAT8 {
                    row.try_get::<_, Option<f64>>(i).map(|v| v.map(Cell::Real))
                } else {
                    row.try_get::<_, Option<String>>(i).map(|v| v.map(Cell::Text))
                };
                cells.push(cell.map_err(|e| format!("column {}: {e}", col.name()))?.unwrap_or(Cell::Null));
            }
            out.push(cells);
        }
        Ok(Rows { columns, rows: out })
    }

    fn batch(&mut self, sql: &str) -> Result<(), String> {
        self.0.batch_execute(sql).map_err(pg_err)
    }

    fn is_sqlite(&self) -> bool {
        false
    }
}

fn pg_params(params: &[Param]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| -> &(dyn postgres::types::ToSql + Sync) {
            match p {
                Param::Int(i) => i,
                Param::Real(f) => f,
                Param::Text(s) => s,
                Param::Bool(b) => b,
            }
        })
        .collect()
}

enum Conn {
    Sqlite(rusqlite::Connection),
    /// The config is kept to reconnect after the server went away: Go's
    /// database/sql pool does that transparently, and a health check that
    /// stayed red after a PostgreSQL restart would be a stand-in artefact.
    Postgres(Box<postgres::Client>, Box<postgres::Config>),
}

pub struct Db {
    conn: Mutex<Conn>,
    pub is_sqlite: bool,
}

/// `"t"` with embedded quotes doubled; table and column names in a dump come
/// from an untrusted zip.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Db {
    pub fn open(cfg: &Database) -> Result<Db, String> {
        match cfg {
            Database::Sqlite { path } => {
                let conn = match path {
                    Some(p) => rusqlite::Connection::open(p).map_err(|e| format!("{}: {e}", p.display()))?,
                    None => rusqlite::Connection::open_in_memory().map_err(|e| e.to_string())?,
                };
                // Two releases may share the file during a blue-green switch.
                conn.busy_timeout(Duration::from_secs(5)).map_err(|e| e.to_string())?;
                Ok(Db { conn: Mutex::new(Conn::Sqlite(conn)), is_sqlite: true })
            }
            Database::Postgres { host, port, user, password, database, sslmode } => {
                let mut pc = postgres::Config::new();
                if host.starts_with('/') {
                    pc.host_path(host);
                } else {
                    pc.host(host);
                }
                pc.port(*port).user(user).password(password.as_bytes()).dbname(database);
                pc.connect_timeout(Duration::from_secs(5)).application_name("vikunja-standin");
                match sslmode.as_str() {
                    "disable" | "allow" | "prefer" | "" => {
                        pc.ssl_mode(postgres::config::SslMode::Disable);
                    }
                    other => {
                        return Err(format!("database.sslmode {other:?} is not supported by the stand-in (no TLS)"))
                    }
                }
                let client = pc.connect(postgres::NoTls).map_err(pg_err)?;
                Ok(Db { conn: Mutex::new(Conn::Postgres(Box::new(client), Box::new(pc))), is_sqlite: false })
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Conn> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the plain connection (autocommit).
    pub fn with<T>(&self, f: impl FnOnce(&mut dyn Exec) -> Result<T, String>) -> Result<T, String> {
        let mut guard = self.lock();
        match &mut *guard {
            Conn::Sqlite(c) => f(&mut Lite(c)),
            Conn::Postgres(client, pc) => {
                if client.is_closed() {
                    **client = pc.connect(postgres::NoTls).map_err(pg_err)?;
                }
                f(&mut Pg(&mut **client))
            }
        }
    }

    /// Runs `f` in a transaction, committed only if it returns `Ok`.
    pub fn tx<T>(&self, f: impl FnOnce(&mut dyn Exec) -> Result<T, String>) -> Result<T, String> {
        let mut guard = self.lock();
        match &mut *guard {
            Conn::Sqlite(c) => {
                // IMMEDIATE takes the write lock up front, so two processes on
                // one file wait (busy_timeout) instead of failing mid-way.
                let tx =
                    c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(|e| e.to_string())?;
                let out = f(&mut Lite(&tx))?;
                tx.commit().map_err(|e| e.to_string())?;
                Ok(out)
            }
            Conn::Postgres(client, pc) => {
                if client.is_closed() {
                    **client = pc.connect(postgres::NoTls).map_err(pg_err)?;
                }
                let mut tx = client.transaction().map_err(pg_err)?;
                let out = f(&mut Pg(&mut tx))?;
                tx.commit().map_err(pg_err)?;
                Ok(out)
            }
        }
    }

    /// What `/health` and `healthcheck` run.
    pub fn ping(&self) -> Result<(), String> {
        self.with(|c| c.query("SELECT 1", &[]).map(|_| ()))
    }

    /// Ids and descriptions in the `migration` table (`migrate list`).
    pub fn applied(&self) -> Result<Vec<(String, String)>, String> {
        self.with(|c| {
            let rows = c.query("SELECT id, description FROM migration ORDER BY id", &[])?;
            Ok(rows.rows.iter().map(|r| (r[0].text(), r[1].text())).collect())
        })
    }

    /// Runs the pending ones of `migrations`, each in its own transaction
    /// together with its `migration` row. With `fail_first` (the
    /// fail-migration fault) the first pending one fails after its DDL ran,
    /// so the rollback is real. Returns how many ran.
    pub fn migrate(&self, migrations: &[&Migration], fail_first: bool) -> Result<usize, String> {
        self.with(|c| c.batch("CREATE TABLE IF NOT EXISTS migration (id TEXT NOT NULL PRIMARY KEY, description TEXT NOT NULL DEFAULT '')"))?;
        let done: Vec<String> = self.applied()?.into_iter().map(|(id, _)| id).collect();
        let mut ran = 0;
        for m in migrations.iter().filter(|m| !done.iter().any(|d| d == m.id)) {
            self.tx(|c| {
                c.batch(if c.is_sqlite() { m.sqlite } else { m.postgres })?;
                if fail_first {
                    c.batch("SELECT * FROM standin_fault_fail_migration")
                        .map_err(|e| format!("fault fail-migration injected by the stand-in: {e}"))?;
                }
                c.exec(
                    "INSERT INTO migration (id, description) VALUES ($1, $2)",
                    &[Param::Text(m.id.into()), Param::Text(m.description.into())],
                )
            })
            .map_err(|e| format!("migration {} ({}) failed: {e}", m.id, m.description))?;
            ran += 1;
        }
        Ok(ran)
    }

    /// Deletes the `migration` rows after `id`, leaving the schema as it is:
    /// what most of Vikunja's rollback funcs (`return nil`) amount to.
    pub fn forget_migrations_after(&self, id: &str) -> Result<u64, String> {
        self.with(|c| c.exec("DELETE FROM migration WHERE id > $1", &[Param::Text(id.into())]))
    }

    pub fn tables(&self) -> Result<Vec<String>, String> {
        self.with(|c| {
            let sql = if c.is_sqlite() {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            } else {
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
            };
            Ok(c.query(sql, &[])?.rows.iter().map(|r| r[0].text()).collect())
        })
    }

    /// Every row of `table` as JSON objects, as `database/<table>.json` in a dump.
    pub fn dump_table(&self, table: &str) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
        let order = if table == "migration" { "id" } else { "1" };
        let rows = self.with(|c| c.query(&format!("SELECT * FROM {} ORDER BY {order}", ident(table)), &[]))?;
        Ok(rows.rows.iter().map(|r| rows.columns.iter().cloned().zip(r.iter().map(Cell::to_json)).collect()).collect())
    }

    /// Drops every table, `migration` included (Vikunja's `WipeEverything`).
    pub fn wipe(&self) -> Result<(), String> {
        for t in self.tables()? {
            self.with(|c| {
                let cascade = if c.is_sqlite() { "" } else { " CASCADE" };
                c.batch(&format!("DROP TABLE IF EXISTS {}{cascade}", ident(&t)))
            })?;
        }
        Ok(())
    }

    /// Inserts dumped rows into `table`, in one transaction, then moves a
    /// PostgreSQL id sequence past the restored ids.
    pub fn restore_table(
        &self,
        table: &str,
        rows: &[serde_json::Map<String, serde_json::Value>],
    ) -> Result<(), String> {
        self.tx(|c| {
            for row in rows {
                let cols: Vec<String> = row.keys().map(|k| ident(k)).collect();
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
                let params = row.values().map(json_param).collect::<Result<Vec<_>, _>>()?;
                let sql = format!("INSERT INTO {} ({}) VALUES ({})", ident(table), cols.join(", "), marks.join(", "));
                c.exec(&sql, &params)?;
            }
            if !c.is_sqlite() && rows.iter().any(|r| r.contains_key("id")) {
                c.query(
                    &format!("SELECT setval(pg_get_serial_sequence($1, 'id'), (SELECT MAX(id) FROM {}))", ident(table)),
                    &[Param::Text(table.into())],
                )?;
            }
            Ok(())
        })
    }
}

fn json_param(v: &serde_json::Value) -> Result<Param, String> {
    use serde_json::Value as J;
    Ok(match v {
        J::Bool(b) => Param::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Param::Int(i),
            None => Param::Real(n.as_f64().unwrap_or_default()),
        },
        J::String(s) => Param::Text(s.clone()),
        other => return Err(format!("unsupported value in dump: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &str) -> Vec<&'static str> {
        shipped_by(v).iter().map(|m| m.id).collect()
    }

    #[test]
    fn migrations_by_version() {
        assert_eq!(ids("v0.0.0-standin"), vec!["20200101000000"]);
        assert_eq!(ids("v0.24.6"), vec!["20200101000000", ATTACHMENTS, TASK_DONE]);
        assert_eq!(ids("v1.0.0-rc2"), vec!["20200101000000", ATTACHMENTS, TASK_DONE, TASK_PRIORITY]);
        assert_eq!(ids("v2.5.0").len(), MIGRATIONS.len());
        assert!(MIGRATIONS.windows(2).all(|w| w[0].id < w[1].id), "MIGRATIONS must be in id order");
    }

    #[test]
    fn sqlite_migrate_and_dump() {
        let db = Db::open(&Database::Sqlite { path: None }).unwrap();
        assert_eq!(db.migrate(&shipped_by("v0.24.6"), false).unwrap(), 3);
        db.with(|c| {
            c.exec(
                "INSERT INTO tasks (title, project_id, created) VALUES ($1, $2, $3)",
                &[Param::Text("old".into()), Param::Int(1), Param::Text("t".into())],
            )
        })
        .unwrap();
        assert!(db.migrate(&shipped_by("v2.5.0"), true).is_err(), "fault makes the first pending one fail");
        assert_eq!(db.applied().unwrap().len(), 3, "the failed migration left no record");
        assert_eq!(db.migrate(&shipped_by("v2.5.0"), false).unwrap(), 2);
        let rows = db.dump_table("tasks").unwrap();
        assert_eq!(rows[0]["title"], "old");
        assert_eq!(rows[0]["priority"], 0);
        assert_eq!(db.tables().unwrap(), vec!["migration", "task_attachments", "tasks"]);
        db.wipe().unwrap();
        assert!(db.tables().unwrap().is_empty());
    }
}
