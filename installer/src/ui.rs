//! Asking for missing settings on a terminal, with the defaults shown; every answer is validated
//! on the spot. Never used without a terminal or with `--yes`/`--config`.
//!
//! The terminal is stdin/stderr when stdin is one; otherwise `/dev/tty` (the `curl … | sh` case,
//! where stdin is the script's pipe, as rustup's installer does it), but only while stderr shows a
//! terminal: output captured by a program (a test, a CI log) means nobody is there to answer.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, IsTerminal, Write};

use crate::instance::config::{DbType, Deployment};

/// The `report` sink of the command line: `Out` is stdout, `Err` stderr.
pub struct Console;

impl crate::report::Sink for Console {
    fn write(&self, stream: crate::report::Stream, text: &str) {
        // Written and flushed at once, so the lines keep their order with the output of the
        // commands run meanwhile (pct, apt-get) on the same descriptors.
        let _ = match stream {
            crate::report::Stream::Out => {
                let mut o = io::stdout().lock();
                o.write_all(text.as_bytes()).and_then(|()| o.flush())
            }
            crate::report::Stream::Err => io::stderr().lock().write_all(text.as_bytes()),
        };
    }

    fn fancy(&self) -> bool {
        std::env::var_os("NO_COLOR").is_none() && io::stdout().is_terminal()
    }
}

/// A secret typed on the terminal without echo (`data::crypt::Ask`): None when stdin is no
/// terminal.
pub fn secret(prompt: &str) -> Option<io::Result<String>> {
    if !io::stdin().is_terminal() {
        return None;
    }
    Some(rpassword::prompt_password(prompt))
}

pub fn interactive() -> bool {
    terminal().is_some()
}

/// Where questions are asked and answered.
pub struct Terminal {
    input: Box<dyn BufRead>,
    output: Box<dyn Write>,
}

impl Terminal {
    pub fn prompter(&mut self) -> Prompter<'_> {
        Prompter { input: &mut *self.input, output: &mut *self.output }
    }
}

/// The terminal to ask on, or None when there is nobody to answer.
pub fn terminal() -> Option<Terminal> {
    if io::stdin().is_terminal() && io::stderr().is_terminal() {
        return Some(Terminal { input: Box::new(BufReader::new(io::stdin())), output: Box::new(io::stderr()) });
    }
    if !io::stderr().is_terminal() {
        return None;
    }
    // ENXIO when the process has no controlling terminal (cron, Ansible, a daemon).
    let tty = OpenOptions::new().read(true).write(true).open("/dev/tty").ok()?;
    let out: File = tty.try_clone().ok()?;
    Some(Terminal { input: Box::new(BufReader::new(tty)), output: Box::new(out) })
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

    /// A yes/no question; Enter takes `default`.
    pub fn yes_no(&mut self, question: &str, default: bool) -> io::Result<bool> {
        let (hint, def) = if default { ("(Y/n)", "y") } else { ("(y/N)", "n") };
        let a = self.ask(&format!("{question} {hint}"), def, |v| {
            if yes_no(v).is_some() {
                Ok(())
            } else {
                Err("answer y or n".into())
            }
        })?;
        Ok(yes_no(&a).unwrap_or(default))
    }
}

/// y/yes/n/no in any case.
pub fn yes_no(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "y" | "yes" | "1" | "true" => Some(true),
        "n" | "no" | "0" | "false" => Some(false),
        _ => None,
    }
}

fn check_field(d: &Deployment, field: &str) -> Result<(), String> {
    match d.validate() {
        Err(crate::instance::config::ConfigError::Invalid(errs)) => match errs.iter().find(|e| e.field == field) {
            Some(e) => Err(format!("not valid: allowed: {}", e.allowed)),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// A yes/no question on the terminal; anything but y/yes is a no.
pub fn confirm(question: &str) -> io::Result<bool> {
    let mut t = terminal().ok_or_else(no_terminal)?;
    t.prompter().yes_no(question, false)
}

fn no_terminal() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "no terminal to ask on")
}

/// Fills in the settings a person is expected to choose, on the terminal.
pub fn run(d: Deployment) -> io::Result<Deployment> {
    let mut t = terminal().ok_or_else(no_terminal)?;
    ask_all(d, &mut t.prompter())
}

fn ask_all(mut d: Deployment, p: &mut Prompter) -> io::Result<Deployment> {
    writeln!(p.output, "Vikunja installation: press Enter to keep the value in brackets.")?;
    let name = p.ask("Instance name", &d.instance.name.clone(), |v| {
        if crate::instance::config::is_name(v, 31) {
            Ok(())
        } else {
            Err("use a-z, 0-9 and '-', starting with a letter".into())
        }
    })?;
    let number = d.instance.number;
    d = Deployment { instance: crate::instance::config::InstanceSection { name, number }, ..d };
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
