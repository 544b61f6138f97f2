//! Asking for missing settings on a terminal, with the defaults shown; every answer is validated
//! on the spot. Never used without a terminal or with `--yes`/`--config`.

use std::io::{self, BufRead, IsTerminal, Write};

use crate::config::{DbType, Deployment};

pub fn interactive() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

/// Questions and answers go through these, so tests can drive the wizard without a terminal.
pub struct Prompter<'a> {
    pub input: &'a mut dyn BufRead,
    pub output: &'a mut dyn Write,
}

impl Prompter<'_> {
    pub fn ask(
        &mut self,
        label: &str,
        default: &str,
        valid: impl Fn(&str) -> Result<(), String>,
    ) -> io::Result<String> {
        loop {
            write!(self.output, "{label} [{default}]: ")?;
            self.output.flush()?;
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "input closed before the questions were answered",
                ));
            }
            let answer = match line.trim() {
                "" => default.to_string(),
                a => a.to_string(),
            };
            match valid(&answer) {
                Ok(()) => return Ok(answer),
                Err(e) => writeln!(self.output, "  {e}")?,
            }
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

/// A yes/no question on the terminal; anything but y/yes is a no.
pub fn confirm(question: &str) -> io::Result<bool> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut err = io::stderr();
    let mut p = Prompter { input: &mut input, output: &mut err };
    let a = p.ask(&format!("{question} (y/N)"), "n", |_| Ok(()))?;
    Ok(matches!(a.to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// Fills in the settings a person is expected to choose, on the terminal.
pub fn run(d: Deployment) -> io::Result<Deployment> {
    let stdin = io::stdin();
    let mut input = stdin.lock();
    let mut err = io::stderr();
    ask_all(d, &mut Prompter { input: &mut input, output: &mut err })
}

fn ask_all(mut d: Deployment, p: &mut Prompter) -> io::Result<Deployment> {
    writeln!(p.output, "Vikunja installation: press Enter to keep the value in brackets.")?;
    let name = p.ask("Instance name", &d.instance.name.clone(), |v| {
        if crate::config::is_name(v, 31) {
            Ok(())
        } else {
            Err("use a-z, 0-9 and '-', starting with a letter".into())
        }
    })?;
    let number = d.instance.number;
    d = Deployment { instance: crate::config::Instance { name, number }, ..d };
    let domain = p.ask("Domain (the address users type)", &d.network.domain.clone(), |v| {
        let mut t = d.clone();
        t.network.domain = v.into();
        check_field(&t, "network.domain")
    })?;
    d.network.domain = domain;
    let version = p.ask("Vikunja version", &d.vikunja.version.clone(), |v| {
        let mut t = d.clone();
        t.vikunja.version = v.into();
        check_field(&t, "vikunja.version")
    })?;
    d.vikunja.version = version;
    let db = p.ask("Database: sqlite, postgres or mysql", "sqlite", |v| {
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
            p.ask("Database host", "localhost", |v| if v.is_empty() { Err("required".into()) } else { Ok(()) })?;
        let default_port = if d.database.kind == DbType::Postgres { "5432" } else { "3306" };
        d.database.port = p
            .ask("Database port", default_port, |v| v.parse::<u16>().map(|_| ()).map_err(|_| "1 to 65535".into()))?
            .parse()
            .unwrap_or(5432);
        d.database.name = p.ask("Database name", &d.database.name.clone(), |_| Ok(()))?;
        d.database.user = p.ask("Database user", &d.database.user.clone(), |_| Ok(()))?;
        let pw = p.ask("File holding the database password", "", |v| {
            if std::path::Path::new(v).is_file() {
                Ok(())
            } else {
                Err("give an existing file (the password is never typed in)".into())
            }
        })?;
        d.database.password_file = Some(pw.into());
    }
    d.admin.email = p.ask("Administrator e-mail (optional)", "", |v| {
        let mut t = d.clone();
        t.admin.email = v.into();
        check_field(&t, "admin.email")
    })?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drive(answers: &str) -> (io::Result<Deployment>, String) {
        let mut input = io::Cursor::new(answers.as_bytes().to_vec());
        let mut out = Vec::new();
        let r = ask_all(Deployment::default(), &mut Prompter { input: &mut input, output: &mut out });
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn defaults_are_shown_and_taken_on_enter() {
        let (d, out) = drive("\n\n\n\n\n");
        let d = d.unwrap();
        assert!(out.contains("Instance name [main]") && out.contains("Vikunja version [v2.5.0]"), "{out}");
        assert_eq!((d.instance.name.as_str(), d.database.kind), ("main", DbType::Sqlite));
        d.validate().unwrap();
    }

    #[test]
    fn an_invalid_answer_is_explained_and_asked_again() {
        let (d, out) = drive("Bad Name\nteam\nvikunja.example.org\n2.5\nv2.4.0\nsqlite\nadmin@example.org\n");
        let d = d.unwrap();
        assert!(out.contains("use a-z, 0-9"), "{out}");
        assert!(out.contains("not valid: allowed: a Vikunja release like v2.5.0"), "{out}");
        assert_eq!((d.instance.name.as_str(), d.vikunja.version.as_str()), ("team", "v2.4.0"));
        assert_eq!(d.network.domain, "vikunja.example.org");
        assert_eq!(d.admin.email, "admin@example.org");
    }

    #[test]
    fn closed_input_is_an_error_not_a_loop() {
        let (r, _) = drive("main\n");
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
