//! The cobra-like command line: which command runs, its flags, and the
//! initialisation each command does in Vikunja (`pkg/cmd/*.go`).
//!
//! Vikunja's `FullInitWithoutAsync` runs the migrations, so `web`,
//! `healthcheck`, `dump` and `restore` all migrate the database before doing
//! anything else; `migrate list` and `migrate rollback` only connect.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::db::{self, Db};
use crate::faults::{self, Fault};
use crate::{api, dump, http, logger, version};

const USAGE: &str = "Vikunja is the to-do app to organize your life.
(This binary is vikunja-standin, a TEST DOUBLE of Vikunja, not Vikunja.)

Usage:
  vikunja [command]

Available Commands:
  dump        Dump all vikunja data into a zip file. Includes config, files and db.
  healthcheck Preform a healthcheck on the Vikunja api server
  migrate     Run all database migrations which didn't already run.
  restore     Restores all vikunja data from a vikunja dump.
  user        Manage users locally through the cli.
  version     Print the version number of Vikunja
  web         Starts the rest api web server
";

/// Runs the command line and returns the exit code.
pub fn run(args: Vec<String>) -> i32 {
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("web", &[][..]),
    };
    let result = match cmd {
        "web" => web(rest),
        "version" => no_flags(rest).map(|_| print_version()),
        "healthcheck" => no_flags(rest).map(|_| healthcheck()),
        "migrate" => migrate(rest),
        "dump" => dump_cmd(rest),
        "restore" => restore_cmd(rest),
        "user" => user_cmd(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(0)
        }
        other if other.starts_with('-') => Err(format!("unknown flag: {other}")),
        other => Err(format!("unknown command \"{other}\" for \"vikunja\"")),
    };
    result.unwrap_or_else(|e| {
        eprintln!("Error: {e}\nRun 'vikunja --help' for usage.");
        1
    })
}

/// Flags of one command: name, short form, and whether it takes a value.
type FlagSpec = [(&'static str, Option<char>, bool)];

#[derive(Default)]
struct Parsed {
    positional: Vec<String>,
    flags: HashMap<&'static str, String>,
}

fn parse(args: &[String], spec: &FlagSpec) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (found, inline) = if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            (spec.iter().find(|f| f.0 == name).ok_or_else(|| format!("unknown flag: --{name}"))?, inline)
        } else if let Some(short) = a.strip_prefix('-').filter(|s| !s.is_empty()) {
            let c = short.chars().next().expect("non-empty");
            let f =
                spec.iter().find(|f| f.1 == Some(c)).ok_or_else(|| format!("unknown shorthand flag: '{c}' in {a}"))?;
            let rest = &short[c.len_utf8()..];
            (f, (!rest.is_empty()).then(|| rest.trim_start_matches('=').to_owned()))
        } else {
            out.positional.push(a.clone());
            continue;
        };
        let (name, _, takes_value) = *found;
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => it.next().cloned().ok_or_else(|| format!("flag needs an argument: --{name}"))?,
            }
        } else {
            "true".to_owned()
        };
        out.flags.insert(name, value);
    }
    Ok(out)
}

fn no_flags(args: &[String]) -> Result<(), String> {
    let p = parse(args, &[])?;
    match p.positional.first() {
        Some(extra) => Err(format!("unknown command \"{extra}\"")),
        None => Ok(()),
    }
}

fn print_version() -> i32 {
    println!("Vikunja api version {}", version::current());
    println!("Built with Rust, vikunja-standin {} (vikunja-standin test double)", env!("CARGO_PKG_VERSION"));
    0
}

/// What every database command needs once initialised.
struct Init {
    version: String,
    fault: Fault,
    config: Config,
    db: Arc<Db>,
    shipped: Vec<&'static db::Migration>,
}

/// Config and a database connection, no migrations (`LightInit` plus engines).
fn light_init() -> Init {
    let version = version::current();
    let fault = faults::load();
    let config = Config::load(&version);
    let db = Db::open(&config.database).unwrap_or_else(|e| logger::fatal(&format!("Could not connect to db: {e}")));
    let shipped = db::shipped_by(&version);
    Init { version, fault, config, db: Arc::new(db), shipped }
}

fn run_migrations(init: &Init) {
    logger::info("Running migrations…");
    match init.db.migrate(&init.shipped, init.fault == Fault::FailMigration) {
        Ok(_) => logger::info("Ran all migrations successfully."),
        Err(e) => logger::fatal(&format!("Migration failed: {e}")),
    }
}

/// `FullInitWithoutAsync`: config, database, then every pending migration.
fn full_init() -> Init {
    let init = light_init();
    run_migrations(&init);
    init
}

fn web(args: &[String]) -> Result<i32, String> {
    no_flags(args)?;
    // Only SIGINT is caught, as in Vikunja's web.go; SIGTERM keeps its
    // default action and kills the process without draining. Registered
    // before init so a Ctrl-C during migrations still ends in a clean exit.
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT])
        .unwrap_or_else(|e| logger::fatal(&format!("cannot handle SIGINT: {e}")));
    let init = full_init();
    logger::info(&format!("Vikunja version {}", init.version));
    if let Fault::SlowStart(d) = init.fault {
        logger::info(&format!("fault slow-start: waiting {:.1}s before listening", d.as_secs_f64()));
        std::thread::sleep(d);
    }

    logger::info(&format!(
        "vikunja-standin: service.secret fingerprint {}",
        crate::config::fingerprint(&init.config.secret)
    ));
    if !init.config.trusted_proxies.is_empty() {
        logger::info(&format!("Trusted proxies: {}", init.config.trusted_proxies.join(", ")));
    }
    let iface = init.config.interface.clone();
    let max_body = init.config.max_body_bytes;
    let app = Arc::new(api::App {
        version: init.version.clone(),
        config: init.config.clone(),
        db: init.db.clone(),
        fault: init.fault,
        shipped: init.shipped.iter().map(|m| m.id).collect(),
    });
    logger::info(&format!("HTTP server listening on {iface}"));
    let server = match http::bind(&iface) {
        Ok(listener) => {
            // Not in Vikunja's log: with a port of 0 this is how a test
            // harness learns the port the kernel picked.
            if let Ok(addr) = listener.local_addr() {
                logger::info(&format!("vikunja-standin: bound {addr}"));
            }
            Some(http::Server::start(listener, Arc::new(move |req: &http::Request| app.handle(req)), max_body))
        }
        Err(e) => {
            // Vikunja logs this from the server goroutine and keeps waiting
            // for a signal: the process stays up, and its unit "active".
            logger::error(&format!("Server error: {}", http::describe_bind_error(&iface, &e)));
            logger::info("shutting down...");
            None
        }
    };

    signals.forever().next();
    logger::info("Shutting down...");
    if let Some(server) = server {
        if !server.shutdown(Duration::from_secs(10)) {
            logger::fatal("Server shutdown failed: context deadline exceeded");
        }
    }
    Ok(0)
}

fn healthcheck() -> i32 {
    let init = full_init();
    let status = if init.fault == Fault::NeverHealthy {
        Err("fault never-healthy injected by the stand-in".to_owned())
    } else {
        init.db.ping()
    };
    match status {
        Ok(()) => {
            println!("API server is healthy");
            0
        }
        Err(e) => {
            println!("API server is not healthy: {e}");
            1
        }
    }
}

fn migrate(args: &[String]) -> Result<i32, String> {
    let p = parse(args, &[("name", Some('n'), true)])?;
    match p.positional.first().map(String::as_str) {
        None => {
            run_migrations(&light_init());
            Ok(0)
        }
        Some("list") => {
            let init = light_init();
            let rows =
                init.db.applied().unwrap_or_else(|e| logger::fatal(&format!("Error getting migration table: {e}")));
            print!("{}", table(&rows));
            Ok(0)
        }
        Some("rollback") => {
            let name = p.flags.get("name").ok_or("required flag(s) \"name\" not set")?;
            let init = light_init();
            init.db
                .forget_migrations_after(name)
                .unwrap_or_else(|e| logger::fatal(&format!("Could not rollback: {e}")));
            logger::info("Rolled back successfully.");
            Ok(0)
        }
        Some(other) => Err(format!("unknown command \"{other}\" for \"vikunja migrate\"")),
    }
}

/// An ASCII table with the header `ID | Description`.
fn table(rows: &[(String, String)]) -> String {
    let w0 = rows.iter().map(|r| r.0.len()).chain(["ID".len()]).max().unwrap_or(2);
    let w1 = rows.iter().map(|r| r.1.len()).chain(["Description".len()]).max().unwrap_or(11);
    let rule = format!("+{}+{}+\n", "-".repeat(w0 + 2), "-".repeat(w1 + 2));
    let mut out = rule.clone();
    out.push_str(&format!("| {:w0$} | {:w1$} |\n", "ID", "Description"));
    out.push_str(&rule);
    for (id, d) in rows {
        out.push_str(&format!("| {id:w0$} | {d:w1$} |\n"));
    }
    out.push_str(&rule);
    out
}

fn dump_cmd(args: &[String]) -> Result<i32, String> {
    let p = parse(args, &[("path", Some('p'), true), ("filename", Some('f'), true)])?;
    let init = full_init();
    let mut filename = p.flags.get("filename").cloned().unwrap_or_else(dump::default_filename);
    if !filename.ends_with(".zip") {
        filename.push_str(".zip");
    }
    let dir = p.flags.get("path").map(PathBuf::from).unwrap_or_else(|| init.config.rootpath.clone());
    if let Err(e) = dump::dump(&init.config, &init.db, &init.version, &dir.join(filename)) {
        // log.Critical: error level, exit code still 0.
        logger::error(&e);
    }
    Ok(0)
}

fn restore_cmd(args: &[String]) -> Result<i32, String> {
    let p = parse(args, &[("preserve-config", None, false)])?;
    let [file] = p.positional.as_slice() else {
        return Err(format!("accepts 1 arg(s), received {}", p.positional.len()));
    };
    let init = full_init();
    let preserve = p.flags.contains_key("preserve-config");
    if let Err(e) = dump::restore(&init.config, &init.db, &init.version, file.as_ref(), preserve, &init.shipped) {
        logger::error(&e);
    }
    Ok(0)
}

/// `vikunja user create -u NAME -e EMAIL -p PASSWORD` and `vikunja user list` (`pkg/cmd/user.go`:
/// FullInit first, so migrations run; a taken username fails with Vikunja's message, exit 1). The
/// stand-in keeps users in a table of its own: it has no login, only the record that one exists.
fn user_cmd(args: &[String]) -> Result<i32, String> {
    let spec = [
        ("username", Some('u'), true),
        ("email", Some('e'), true),
        ("password", Some('p'), true),
        ("avatar-provider", Some('a'), true),
    ];
    let p = parse(args, &spec)?;
    let table = |init: &Init| {
        let serial = if init.db.with(|c| Ok(c.is_sqlite()))? { "INTEGER PRIMARY KEY" } else { "BIGSERIAL PRIMARY KEY" };
        init.db.with(|c| {
            c.batch(&format!(
                "CREATE TABLE IF NOT EXISTS users (id {serial}, username TEXT NOT NULL UNIQUE, email TEXT NOT NULL, password TEXT NOT NULL)"
            ))
        })
    };
    match p.positional.first().map(String::as_str) {
        Some("create") => {
            let mut missing: Vec<&str> =
                ["username", "email"].into_iter().filter(|f| !p.flags.contains_key(f)).collect();
            // Vikunja asks for the password on the terminal when -p is missing; the stand-in has none to ask on.
            if !p.flags.contains_key("password") {
                missing.push("password");
            }
            if !missing.is_empty() {
                let list: Vec<String> = missing.iter().map(|m| format!("\"{m}\"")).collect();
                return Err(format!("required flag(s) {} not set", list.join(", ")));
            }
            let init = full_init();
            table(&init).unwrap_or_else(|e| logger::fatal(&format!("Error creating new user: {e}")));
            let user = p.flags["username"].clone();
            let taken = init
                .db
                .with(|c| c.query("SELECT id FROM users WHERE username = $1", &[db::Param::Text(user.clone())]))
                .unwrap_or_else(|e| logger::fatal(&format!("Error creating new user: {e}")));
            if !taken.rows.is_empty() {
                logger::fatal("Error creating new user: A user with this username already exists.");
            }
            init.db
                .tx(|c| {
                    c.exec(
                        "INSERT INTO users (username, email, password) VALUES ($1, $2, $3)",
                        &[
                            db::Param::Text(user.clone()),
                            db::Param::Text(p.flags["email"].clone()),
                            db::Param::Text("(not kept by the stand-in)".into()),
                        ],
                    )
                })
                .unwrap_or_else(|e| logger::fatal(&format!("Error creating new user: {e}")));
            println!("\nUser was created successfully.");
            Ok(0)
        }
        Some("list") => {
            let init = full_init();
            table(&init).unwrap_or_else(|e| logger::fatal(&format!("Error getting users: {e}")));
            let rows = init
                .db
                .with(|c| c.query("SELECT id, username, email FROM users ORDER BY id", &[]))
                .unwrap_or_else(|e| logger::fatal(&format!("Error getting users: {e}")));
            println!("ID\tUsername\tEmail");
            for r in &rows.rows {
                println!("{}\t{}\t{}", r[0].text(), r[1].text(), r[2].text());
            }
            Ok(0)
        }
        Some(other) => Err(format!("unknown command \"{other}\" for \"vikunja user\"")),
        None => Err("vikunja user needs a command: create or list".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags() {
        let spec = [("path", Some('p'), true), ("filename", Some('f'), true), ("preserve-config", None, false)];
        let p = parse(&v(&["-p", "/d", "--filename=x", "--preserve-config", "pos"]), &spec).unwrap();
        assert_eq!(p.flags["path"], "/d");
        assert_eq!(p.flags["filename"], "x");
        assert_eq!(p.flags["preserve-config"], "true");
        assert_eq!(p.positional, vec!["pos"]);
        assert_eq!(parse(&v(&["-fname"]), &spec).unwrap().flags["filename"], "name");
        assert!(parse(&v(&["--nope"]), &spec).is_err());
        assert!(parse(&v(&["--path"]), &spec).is_err());
    }

    #[test]
    fn migration_table() {
        let t = table(&[("20200101000000".into(), "Create the tasks table".into())]);
        assert!(t.contains("| ID             | Description            |"), "{t}");
        assert!(t.contains("| 20200101000000 | Create the tasks table |"), "{t}");
    }
}
