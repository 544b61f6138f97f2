//! The settings of `create`: one table of questions, each with its environment variable, used both
//! by the terminal wizard and unattended (`VIKUNJA_*` variables, as community-scripts' `var_*`).
//!
//! The wizard's first question is Default or Advanced (community-scripts' split): Default asks
//! nothing more and shows what it will use; Advanced asks every question of the table. Both end
//! with the summary, the offer to save the answers as a deployment.toml, and one confirmation.
//! Reads and writes through a Prompter so tests drive it without a terminal.

use std::io;
use std::path::{Path, PathBuf};

use crate::instance::config::{DbType, Deployment, FieldError};

pub use crate::ui::Prompter;

/// Facts of the host the questions offer as choices (empty: not known, anything well-formed goes).
#[derive(Default)]
pub struct Choices {
    pub next_id: u32,
    pub storages: Vec<String>,
    pub bridges: Vec<String>,
    /// Templates for this node's architecture: on the template storage and offered by `pveam available`.
    pub templates: Vec<String>,
}

/// One setting: its question, its environment variable, how to show and set it.
pub struct Question {
    pub env: &'static str,
    pub label: &'static str,
    /// The deployment.toml field whose validation judges an answer.
    pub field: &'static str,
    /// Asked only when this holds for the settings so far (the gateway only for a static address).
    when: fn(&Deployment) -> bool,
    get: fn(&Deployment) -> String,
    set: fn(&mut Deployment, &str, &Choices) -> Result<(), String>,
    /// The host's choices to list in the question.
    choices: fn(&Choices) -> Vec<String>,
}

fn always(_: &Deployment) -> bool {
    true
}
fn none(_: &Choices) -> Vec<String> {
    Vec::new()
}
fn num<T: std::str::FromStr>(v: &str) -> Result<T, String> {
    v.parse().map_err(|_| "a whole number".to_string())
}
/// "-" (or nothing) clears an optional setting.
fn opt(v: &str) -> String {
    if v == "-" {
        String::new()
    } else {
        v.to_string()
    }
}
fn path(v: &str) -> Result<Option<PathBuf>, String> {
    match opt(v).as_str() {
        "" => Ok(None),
        p if Path::new(p).is_file() => Ok(Some(PathBuf::from(p))),
        p => Err(format!("{p} is not an existing file")),
    }
}
fn show_path(p: &Option<PathBuf>) -> String {
    p.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
}
fn one_of(v: &str, list: &[String]) -> Result<(), String> {
    if list.is_empty() || list.iter().any(|s| s == v) {
        Ok(())
    } else {
        Err(format!("choose one of {}", list.join(", ")))
    }
}
fn yes_no(v: &str) -> Result<bool, String> {
    crate::ui::yes_no(v).ok_or_else(|| "yes or no".to_string())
}
fn show_yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}
fn external_db(d: &Deployment) -> bool {
    d.database.kind != DbType::Sqlite
}

/// Every question, in the order asked. The README's table of variables lists the same.
pub fn questions() -> Vec<Question> {
    let q = |env, label, field, get, set| Question { env, label, field, when: always, get, set, choices: none };
    vec![
        q(
            "VIKUNJA_INSTANCE",
            "Instance name",
            "instance.name",
            |d| d.instance.name.clone(),
            |d, v, _| {
                if !crate::instance::config::is_name(v, 31) {
                    return Err("use a-z, 0-9 and '-', starting with a letter".into());
                }
                // A hostname derived from the old name follows the new one.
                if d.container.hostname.is_empty() || d.container.hostname == format!("vikunja-{}", d.instance.name) {
                    d.container.hostname = format!("vikunja-{v}");
                }
                d.instance.name = v.into();
                Ok(())
            },
        ),
        q(
            "VIKUNJA_DOMAIN",
            "Domain (the address users type)",
            "network.domain",
            |d| d.network.domain.clone(),
            |d, v, _| {
                d.network.domain = v.into();
                Ok(())
            },
        ),
        Question {
            choices: |c| vec![format!("0 = the next free one, now {}", c.next_id)],
            ..q(
                "VIKUNJA_CT_ID",
                "CT id",
                "container.id",
                |d| d.container.id.to_string(),
                |d, v, _| {
                    d.container.id = num(v)?;
                    Ok(())
                },
            )
        },
        q(
            "VIKUNJA_CT_HOSTNAME",
            "Hostname",
            "container.hostname",
            |d| d.container.hostname.clone(),
            |d, v, _| {
                d.container.hostname = v.into();
                Ok(())
            },
        ),
        Question {
            choices: |c| c.storages.clone(),
            ..q(
                "VIKUNJA_CT_STORAGE",
                "Storage for the root disk",
                "container.storage",
                |d| d.container.storage.clone(),
                |d, v, c| {
                    one_of(v, &c.storages)?;
                    d.container.storage = v.into();
                    Ok(())
                },
            )
        },
        q(
            "VIKUNJA_CT_CORES",
            "CPU cores",
            "resources.cores",
            |d| d.resources.cores.to_string(),
            |d, v, _| {
                d.resources.cores = num(v)?;
                Ok(())
            },
        ),
        q(
            "VIKUNJA_CT_MEMORY",
            "Memory (MiB)",
            "resources.memory_mb",
            |d| d.resources.memory_mb.to_string(),
            |d, v, _| {
                d.resources.memory_mb = num(v)?;
                Ok(())
            },
        ),
        q(
            "VIKUNJA_CT_DISK",
            "Disk (GiB)",
            "resources.disk_gb",
            |d| d.resources.disk_gb.to_string(),
            |d, v, _| {
                d.resources.disk_gb = num(v)?;
                Ok(())
            },
        ),
        Question {
            choices: |c| c.bridges.clone(),
            ..q(
                "VIKUNJA_CT_BRIDGE",
                "Bridge",
                "container.bridge",
                |d| d.container.bridge.clone(),
                |d, v, c| {
                    one_of(v, &c.bridges)?;
                    d.container.bridge = v.into();
                    Ok(())
                },
            )
        },
        q(
            "VIKUNJA_CT_IP",
            "IPv4: dhcp or address/prefix",
            "network.ip_address",
            |d| d.network.ip_address.clone(),
            |d, v, _| {
                d.network.ip_address = v.into();
                if v == "dhcp" {
                    d.network.gateway.clear();
                }
                Ok(())
            },
        ),
        Question {
            when: |d| d.network.ip_address != "dhcp",
            ..q(
                "VIKUNJA_CT_GATEWAY",
                "IPv4 gateway",
                "network.gateway",
                |d| d.network.gateway.clone(),
                |d, v, _| {
                    d.network.gateway = opt(v);
                    Ok(())
                },
            )
        },
        q(
            "VIKUNJA_CT_VLAN",
            "VLAN tag (empty: none)",
            "container.vlan",
            |d| d.container.vlan.map(|v| v.to_string()).unwrap_or_default(),
            |d, v, _| {
                d.container.vlan = if opt(v).is_empty() { None } else { Some(num(v)?) };
                Ok(())
            },
        ),
        q(
            "VIKUNJA_CT_IPV6",
            "IPv6: empty, auto, dhcp or address/prefix",
            "container.ipv6",
            |d| d.container.ipv6.clone(),
            |d, v, _| {
                d.container.ipv6 = opt(v);
                Ok(())
            },
        ),
        q(
            "VIKUNJA_CT_NAMESERVER",
            "DNS server (empty: the host's)",
            "container.nameserver",
            |d| d.container.nameserver.clone(),
            |d, v, _| {
                d.container.nameserver = opt(v);
                Ok(())
            },
        ),
        q(
            "VIKUNJA_CT_SSH_KEYS",
            "SSH public key file for root (empty: none)",
            "container.ssh_public_keys",
            |d| show_path(&d.container.ssh_public_keys),
            |d, v, _| {
                d.container.ssh_public_keys = path(v)?;
                Ok(())
            },
        ),
        q(
            "VIKUNJA_CT_TAGS",
            "Tags (';' between them)",
            "container.tags",
            |d| d.container.tags.clone(),
            |d, v, _| {
                d.container.tags = opt(v);
                Ok(())
            },
        ),
        q(
            "VIKUNJA_CT_ONBOOT",
            "Start on boot (yes/no)",
            "container.onboot",
            |d| show_yes_no(d.container.onboot),
            |d, v, _| {
                d.container.onboot = yes_no(v)?;
                Ok(())
            },
        ),
        Question {
            choices: |c| c.templates.clone(),
            ..q(
                "VIKUNJA_CT_TEMPLATE",
                "Template (debian = the newest Debian offered)",
                "container.template",
                |d| d.container.template.clone(),
                |d, v, c| {
                    if !c.templates.is_empty() && super::pve::pick_template(&c.templates, v).is_none() {
                        return Err(format!("no template matches; offered: {}", c.templates.join(", ")));
                    }
                    d.container.template = v.into();
                    Ok(())
                },
            )
        },
        q(
            "VIKUNJA_APP_VERSION",
            "Vikunja version",
            "vikunja.version",
            |d| d.vikunja.version.clone(),
            |d, v, _| {
                d.vikunja.version = v.into();
                Ok(())
            },
        ),
        q(
            "VIKUNJA_APP_ZIP",
            "Offline Vikunja zip (empty: download it)",
            "vikunja.artifact",
            |d| show_path(&d.vikunja.artifact),
            |d, v, _| {
                d.vikunja.artifact = path(v)?;
                Ok(())
            },
        ),
        q(
            "VIKUNJA_DB",
            "Database: sqlite, postgres or mysql",
            "database.kind",
            |d| match d.database.kind {
                DbType::Sqlite => "sqlite".into(),
                DbType::Postgres => "postgres".into(),
                DbType::Mysql => "mysql".into(),
            },
            |d, v, _| {
                let kind = match v {
                    "sqlite" => DbType::Sqlite,
                    "postgres" | "postgresql" => DbType::Postgres,
                    "mysql" | "mariadb" => DbType::Mysql,
                    _ => return Err("choose sqlite, postgres or mysql".into()),
                };
                if kind != d.database.kind {
                    d.database.port = match kind {
                        DbType::Postgres => 5432,
                        DbType::Mysql => 3306,
                        DbType::Sqlite => 0,
                    };
                }
                d.database.kind = kind;
                Ok(())
            },
        ),
        Question {
            when: external_db,
            ..q(
                "VIKUNJA_DB_HOST",
                "Database host",
                "database.host",
                |d| d.database.host.clone(),
                |d, v, _| {
                    d.database.host = v.into();
                    Ok(())
                },
            )
        },
        Question {
            when: external_db,
            ..q(
                "VIKUNJA_DB_PORT",
                "Database port",
                "database.port",
                |d| d.database.port.to_string(),
                |d, v, _| {
                    d.database.port = v.parse().map_err(|_| "1 to 65535".to_string())?;
                    Ok(())
                },
            )
        },
        Question {
            when: external_db,
            ..q(
                "VIKUNJA_DB_NAME",
                "Database name",
                "database.name",
                |d| d.database.name.clone(),
                |d, v, _| {
                    d.database.name = v.into();
                    Ok(())
                },
            )
        },
        Question {
            when: external_db,
            ..q(
                "VIKUNJA_DB_USER",
                "Database user",
                "database.user",
                |d| d.database.user.clone(),
                |d, v, _| {
                    d.database.user = v.into();
                    Ok(())
                },
            )
        },
        Question {
            when: external_db,
            ..q(
                "VIKUNJA_DB_PASSWORD_FILE",
                "File holding the database password (never typed in)",
                "database.password_file",
                |d| show_path(&d.database.password_file),
                |d, v, _| {
                    d.database.password_file = path(v)?;
                    Ok(())
                },
            )
        },
        q(
            "VIKUNJA_TLS_CERT",
            "TLS certificate: self-signed, or a PEM file",
            "ssl.cert_path",
            |d| d.ssl.cert_path.as_ref().map_or("self-signed".into(), |p| p.display().to_string()),
            |d, v, _| {
                d.ssl.cert_path = if v == "self-signed" { None } else { path(v)? };
                if d.ssl.cert_path.is_none() {
                    d.ssl.key_path = None;
                }
                Ok(())
            },
        ),
        Question {
            when: |d| d.ssl.cert_path.is_some(),
            ..q(
                "VIKUNJA_TLS_KEY",
                "TLS private key (PEM file)",
                "ssl.key_path",
                |d| show_path(&d.ssl.key_path),
                |d, v, _| {
                    d.ssl.key_path = path(v)?;
                    if d.ssl.key_path.is_none() {
                        return Err("the key file of the certificate".into());
                    }
                    Ok(())
                },
            )
        },
        q(
            "VIKUNJA_REGISTRATION",
            "Open registration: anyone reaching the site may sign up (yes/no)",
            "vikunja.registration",
            |d| show_yes_no(d.vikunja.registration),
            |d, v, _| {
                d.vikunja.registration = yes_no(v)?;
                Ok(())
            },
        ),
    ]
}

/// The problems of `d` in `field`, as `create` would report them.
fn field_ok(d: &Deployment, field: &str) -> Result<(), String> {
    let mut errs = super::create::container_errors(d);
    if let Err(crate::instance::config::ConfigError::Invalid(e)) = d.validate() {
        errs.extend(e);
    }
    match errs.iter().find(|e| e.field == field) {
        Some(e) => Err(format!("not valid: allowed: {}", e.allowed)),
        None => Ok(()),
    }
}

fn apply(q: &Question, d: &mut Deployment, v: &str, c: &Choices) -> Result<(), String> {
    let mut t = d.clone();
    (q.set)(&mut t, v, c)?;
    field_ok(&t, q.field)?;
    *d = t;
    Ok(())
}

/// Fills the settings from `VIKUNJA_*` variables (read through `var`); every bad one is reported.
pub fn from_env(d: &mut Deployment, c: &Choices, var: impl Fn(&str) -> Option<String>) -> Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    for q in questions() {
        if let Some(v) = var(q.env) {
            if let Err(e) = apply(&q, d, v.trim(), c) {
                errs.push(FieldError { field: q.env.into(), value: v, allowed: e });
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Fills in defaults that come from the host (the first storage). The CT id stays 0, "the next
/// free one", so an id taken meanwhile by someone else is no failure.
pub fn host_defaults(d: &mut Deployment, c: &Choices) {
    if d.container.hostname.is_empty() {
        d.container.hostname = format!("vikunja-{}", d.instance.name);
    }
    if d.container.storage.is_empty() {
        d.container.storage = c.storages.first().cloned().unwrap_or_default();
    }
}

/// The first question: the defaults (shown, nothing more asked) or every question.
pub fn ask_mode(p: &mut Prompter) -> io::Result<bool> {
    let a = p.ask("Settings: 1) Default  2) Advanced", "1", |v| match v {
        "1" | "2" | "default" | "advanced" | "d" | "a" => Ok(()),
        _ => Err("1 (default) or 2 (advanced)".into()),
    })?;
    Ok(matches!(a.as_str(), "2" | "advanced" | "a"))
}

/// Every question of the table that applies, each re-asked until its answer is valid.
pub fn ask_all(mut d: Deployment, c: &Choices, p: &mut Prompter) -> io::Result<Deployment> {
    writeln!(p.output, "Press Enter to keep the value in brackets, '-' to clear an optional one.")?;
    host_defaults(&mut d, c);
    for q in questions() {
        if !(q.when)(&d) {
            continue;
        }
        let list = (q.choices)(c);
        let label = if list.is_empty() { q.label.to_string() } else { format!("{} ({})", q.label, list.join(", ")) };
        let current = (q.get)(&d);
        let a = p.ask(&label, &current, |v| {
            let mut t = d.clone();
            apply(&q, &mut t, v, c)
        })?;
        apply(&q, &mut d, &a, c).map_err(io::Error::other)?;
    }
    Ok(d)
}

/// What will be used, one line per setting that applies.
pub fn summary(d: &Deployment, template: Option<&str>, next_id: u32) -> String {
    let mut s = String::from("\nThe container and Vikunja will be set up with:\n");
    for q in questions() {
        if !(q.when)(d) {
            continue;
        }
        let mut v = (q.get)(d);
        if v.is_empty() {
            v = "-".into();
        }
        if q.env == "VIKUNJA_CT_ID" && d.container.id == 0 {
            v = format!("the next free one ({next_id} now)");
        }
        if q.env == "VIKUNJA_CT_TEMPLATE" {
            match template {
                Some(t) if t != v => v = format!("{v} ({t})"),
                Some(_) => {}
                None if super::pve::is_family(&v) => {
                    v = format!("{v} (the newest offered for {} after pveam update)", super::pve::node_arch())
                }
                None => {}
            }
        }
        let name = q.label.split([':', '(']).next().unwrap_or(q.label).trim();
        s.push_str(&format!("  {name:<26} {v}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> Choices {
        Choices {
            next_id: 104,
            storages: vec!["local-lvm".into(), "local".into()],
            bridges: vec!["vmbr0".into(), "vmbr1".into()],
            templates: vec![
                "debian-12-standard_12.7-1_amd64.tar.zst".into(),
                "debian-13-standard_13.1-2_amd64.tar.zst".into(),
            ],
        }
    }

    fn drive(answers: &str) -> (io::Result<Deployment>, String) {
        let mut input = io::Cursor::new(answers.as_bytes().to_vec());
        let mut out = Vec::new();
        let r = ask_all(Deployment::default(), &choices(), &mut Prompter { input: &mut input, output: &mut out });
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn advanced_takes_the_hosts_defaults_on_enter_and_asks_bad_answers_again() {
        let (d, out) = drive(&"\n".repeat(30));
        let d = d.unwrap();
        assert!(
            out.contains("CT id (0 = the next free one, now 104) [0]")
                && out.contains("Storage for the root disk (local-lvm, local) [local-lvm]"),
            "{out}"
        );
        assert!(out.contains("Bridge (vmbr0, vmbr1) [vmbr0]") && out.contains("[self-signed]"), "{out}");
        assert!(!out.contains("IPv4 gateway") && !out.contains("Database host"), "not asked for dhcp/sqlite: {out}");
        assert_eq!((d.container.id, d.container.hostname.as_str()), (0, "vikunja-main"));
        assert!(d.vikunja.registration);
        assert!(
            summary(&d, Some("debian-13-standard_13.1-2_amd64.tar.zst"), 104).contains("the next free one (104 now)")
        );

        let zip = std::env::temp_dir().join(format!("wizard-zip-{}", std::process::id()));
        std::fs::write(&zip, "zip").unwrap();
        let answers = [
            "Team",
            "team",
            "team.example.org",
            "42",
            "105",
            "",
            "nfs",
            "local",
            "",
            "",
            "",
            "vmbr9",
            "vmbr1",
            "10.0.0.5",
            "10.0.0.5/24",
            "10.0.0.1",
            "5000",
            "7",
            "auto",
            "",
            "/nonexistent",
            "",
            "",
            "maybe",
            "no",
            "ubuntu-24",
            "debian-13",
            "2.5",
            "v2.4.0",
            zip.to_str().unwrap(),
            "oracle",
            "postgres",
            "db.lan",
            "",
            "",
            "",
            "",
            "/nonexistent/cert.pem",
            "",
            "no",
        ];
        let (d, out) = drive(&(answers.join("\n") + "\n"));
        std::fs::remove_file(&zip).unwrap();
        let d = d.unwrap();
        for e in [
            "use a-z, 0-9",
            "a Proxmox CT id",
            "choose one of local-lvm, local",
            "choose one of vmbr0, vmbr1",
            "dhcp or an IPv4 address",
            "1 to 4094",
            "is not an existing file",
            "yes or no",
            "no template matches",
            "a Vikunja release like v2.5.0",
            "choose sqlite, postgres or mysql",
        ] {
            assert!(out.contains(e), "{e} missing in:\n{out}");
        }
        assert_eq!((d.instance.name.as_str(), d.container.hostname.as_str()), ("team", "vikunja-team"));
        assert_eq!(
            (d.container.id, d.container.storage.as_str(), d.container.bridge.as_str()),
            (105, "local", "vmbr1")
        );
        assert_eq!((d.network.ip_address.as_str(), d.network.gateway.as_str()), ("10.0.0.5/24", "10.0.0.1"));
        assert_eq!((d.container.vlan, d.container.ipv6.as_str(), d.container.onboot), (Some(7), "auto", false));
        assert_eq!((d.container.template.as_str(), d.vikunja.version.as_str()), ("debian-13", "v2.4.0"));
        assert_eq!(d.vikunja.artifact.as_deref(), Some(zip.as_path()));
        assert_eq!((d.database.kind, d.database.host.as_str(), d.database.port), (DbType::Postgres, "db.lan", 5432));
        assert_eq!((d.ssl.cert_path.as_ref(), d.vikunja.registration), (None, false));
    }

    #[test]
    fn input_closed_midway_is_an_error_not_a_default() {
        let (r, _) = drive("main\nexample.org\n");
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let mut input = io::Cursor::new(b"3\n".to_vec());
        let mut out = Vec::new();
        assert!(ask_mode(&mut Prompter { input: &mut input, output: &mut out }).is_err());
        let mut input = io::Cursor::new(b"\n".to_vec());
        assert!(!ask_mode(&mut Prompter { input: &mut input, output: &mut out }).unwrap(), "Enter is Default");
    }

    #[test]
    fn every_question_has_a_variable_with_one_prefix_and_the_readme_lists_them() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        for q in questions() {
            assert!(q.env.starts_with("VIKUNJA_"), "{}", q.env);
            assert!(readme.contains(&format!("`{}`", q.env)), "README lacks {}", q.env);
        }
    }

    #[test]
    fn variables_set_what_the_questions_set_and_bad_ones_are_all_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let mut d = Deployment::default();
        from_env(
            &mut d,
            &choices(),
            env(&[
                ("VIKUNJA_CT_MEMORY", "4096"),
                ("VIKUNJA_DOMAIN", "tasks.example.org"),
                ("VIKUNJA_REGISTRATION", "no"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (d.resources.memory_mb, d.network.domain.as_str(), d.vikunja.registration),
            (4096, "tasks.example.org", false)
        );
        let mut d = Deployment::default();
        let errs = from_env(
            &mut d,
            &choices(),
            env(&[("VIKUNJA_CT_MEMORY", "lots"), ("VIKUNJA_CT_BRIDGE", "vmbr7"), ("VIKUNJA_CT_CORES", "2")]),
        )
        .unwrap_err();
        let named: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(named, ["VIKUNJA_CT_MEMORY", "VIKUNJA_CT_BRIDGE"]);
        assert!(errs[1].allowed.contains("vmbr0, vmbr1"), "{errs:?}");
    }
}
