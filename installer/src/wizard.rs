//! Asking for missing settings on a terminal, with the defaults shown; every answer is validated
//! on the spot. Never used without a terminal or with `--yes`/`--config`.

use std::io::{self, BufRead, IsTerminal, Write};

use crate::config::{DbType, Deployment};

pub fn interactive() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

fn ask(label: &str, default: &str, valid: impl Fn(&str) -> Result<(), String>) -> io::Result<String> {
    let stdin = io::stdin();
    loop {
        eprint!("{label} [{default}]: ");
        io::stderr().flush()?;
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "input closed"));
        }
        let answer = match line.trim() {
            "" => default.to_string(),
            a => a.to_string(),
        };
        match valid(&answer) {
            Ok(()) => return Ok(answer),
            Err(e) => eprintln!("  {e}"),
        }
    }
}

fn check_field(d: &Deployment, field: &str) -> Result<(), String> {
    match d.validate() {
        Err(crate::config::ConfigError::Invalid(errs)) => match errs.iter().find(|e| e.field == field) {
            Some(e) => Err(format!("not valid: allowed: {}", e.allowed)),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Fills in the settings a person is expected to choose.
pub fn run(mut d: Deployment) -> io::Result<Deployment> {
    eprintln!("Vikunja installation: press Enter to keep the value in brackets.");
    let name = ask("Instance name", &d.instance.name.clone(), |v| {
        if crate::config::is_name(v, 31) {
            Ok(())
        } else {
            Err("use a-z, 0-9 and '-', starting with a letter".into())
        }
    })?;
    let number = d.instance.number;
    d = Deployment { instance: crate::config::Instance { name, number }, ..d };
    let domain = ask("Domain (the address users type)", &d.network.domain.clone(), |v| {
        let mut t = d.clone();
        t.network.domain = v.into();
        check_field(&t, "network.domain")
    })?;
    d.network.domain = domain;
    let version = ask("Vikunja version", &d.vikunja.version.clone(), |v| {
        let mut t = d.clone();
        t.vikunja.version = v.into();
        check_field(&t, "vikunja.version")
    })?;
    d.vikunja.version = version;
    let db = ask("Database: sqlite, postgres or mysql", "sqlite", |v| {
        if ["sqlite", "postgres", "mysql"].contains(&v) {
            Ok(())
        } else {
            Err("choose sqlite, postgres or mysql".into())
        }
    })?;
    d.database.kind = match db.as_str() {
        "postgres" => DbType::Postgres,
        "mysql" => DbType::Mysql,
        _ => DbType::Sqlite,
    };
    if d.database.kind != DbType::Sqlite {
        d.database.host =
            ask("Database host", "localhost", |v| if v.is_empty() { Err("required".into()) } else { Ok(()) })?;
        let default_port = if d.database.kind == DbType::Postgres { "5432" } else { "3306" };
        d.database.port =
            ask("Database port", default_port, |v| v.parse::<u16>().map(|_| ()).map_err(|_| "1 to 65535".into()))?
                .parse()
                .unwrap_or(5432);
        d.database.name = ask("Database name", &d.database.name.clone(), |_| Ok(()))?;
        d.database.user = ask("Database user", &d.database.user.clone(), |_| Ok(()))?;
        let pw = ask("File holding the database password", "", |v| {
            if std::path::Path::new(v).is_file() {
                Ok(())
            } else {
                Err("give an existing file (the password is never typed in)".into())
            }
        })?;
        d.database.password_file = Some(pw.into());
    }
    d.admin.email = ask("Administrator e-mail (optional)", "", |v| {
        let mut t = d.clone();
        t.admin.email = v.into();
        check_field(&t, "admin.email")
    })?;
    Ok(d)
}
