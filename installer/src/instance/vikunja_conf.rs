//! Vikunja's own `config.yml`. Written without secrets (the service secret and the database
//! password reach Vikunja as `VIKUNJA_*_FILE` paths in the unit; the settings' secrets as
//! `<key>.file` paths to owner-only copies, see `crate::instance::settings`) and with absolute paths,
//! because Vikunja resolves relative ones against `service.rootpath`, which is the config
//! directory here.
//!
//! Built as a tree: the keys the installer owns first, then `[mail]`, `[[auth.openid]]` and the
//! pass-through settings merged into their sections (validation already refused any pass-through
//! key the installer owns, so nothing here overwrites anything).

use crate::instance::config::{DbType, Deployment};
use crate::instance::layout::Layout;
use crate::instance::settings::{self, quote as q, Yaml};

/// An ordered YAML mapping: keys keep the order they were set in.
#[derive(Default)]
struct Map(Vec<(String, Node)>);

enum Node {
    Value(Yaml),
    Map(Map),
}

impl Map {
    fn set(&mut self, path: &[String], v: Yaml) {
        let Some((first, rest)) = path.split_first() else { return };
        let pos = match self.0.iter().position(|(k, _)| k == first) {
            Some(p) => p,
            None => {
                let n = if rest.is_empty() { Node::Value(v.clone()) } else { Node::Map(Map::default()) };
                self.0.push((first.clone(), n));
                self.0.len() - 1
            }
        };
        match (&mut self.0[pos].1, rest.is_empty()) {
            (node, true) => *node = Node::Value(v),
            (Node::Map(m), false) => m.set(rest, v),
            (node, false) => {
                let mut m = Map::default();
                m.set(rest, v);
                *node = Node::Map(m);
            }
        }
    }

    fn put(&mut self, dotted: &str, v: String) {
        let path: Vec<String> = dotted.split('.').map(str::to_string).collect();
        self.set(&path, Yaml::Scalar(v));
    }

    fn emit(&self, out: &mut String, indent: usize) {
        let pad = "  ".repeat(indent);
        for (k, n) in &self.0 {
            match n {
                Node::Value(Yaml::Scalar(s)) => out.push_str(&format!("{pad}{k}: {s}\n")),
                Node::Value(Yaml::List(items)) if items.is_empty() => out.push_str(&format!("{pad}{k}: []\n")),
                Node::Value(Yaml::List(items)) => {
                    out.push_str(&format!("{pad}{k}:\n"));
                    for i in items {
                        out.push_str(&format!("{pad}  - {i}\n"));
                    }
                }
                Node::Map(m) => {
                    out.push_str(&format!("{pad}{k}:\n"));
                    m.emit(out, indent + 1);
                }
            }
        }
    }
}

pub fn render(l: &Layout, d: &Deployment) -> String {
    let mut m = Map::default();
    let path = |p: std::path::PathBuf| q(&p.to_string_lossy());
    m.put("service.publicurl", q(&d.public_url()));
    m.put("service.rootpath", path(l.config_dir()));
    // nginx on 127.0.0.1 is the only proxy whose X-Real-IP is believed.
    m.put("service.ipextractionmethod", q("realip"));
    m.put("service.trustedproxies", q("127.0.0.1/32,::1/128"));
    m.put("service.enableregistration", d.vikunja.registration.to_string());
    if let Some(tz) = settings::timezone(l, d) {
        m.put("service.timezone", q(&tz));
    }
    match d.database.kind {
        DbType::Sqlite => {
            m.put("database.type", q("sqlite"));
            m.put("database.path", path(l.sqlite_path()));
        }
        DbType::Postgres | DbType::Mysql => {
            let t = if d.database.kind == DbType::Postgres { "postgres" } else { "mysql" };
            m.put("database.type", q(t));
            m.put("database.host", q(&format!("{}:{}", d.database.host, d.database.port)));
            m.put("database.user", q(&d.database.user));
            m.put("database.database", q(&d.database.name));
            m.put("database.sslmode", q(&d.database.sslmode));
        }
    }
    m.put("files.basepath", path(l.files_dir()));
    m.put("files.maxsize", format!("\"{}MB\"", d.files.max_size_mb));
    m.put("cors.enable", "true".into());
    let copies = settings::secret_copies(l, d);
    let copy_of = |setting: &str| copies.iter().find(|c| c.setting == setting).map(|c| path(c.dest.clone()));
    let mail = &d.mail;
    if !mail.host.is_empty() {
        m.put("mailer.enabled", "true".into());
        m.put("mailer.host", q(&mail.host));
        m.put("mailer.port", mail.port.to_string());
        if !mail.user.is_empty() {
            m.put("mailer.username", q(&mail.user));
        }
        if let Some(p) = copy_of("mail.password_file") {
            m.put("mailer.password.file", p);
        }
        m.put("mailer.fromemail", q(&mail.from));
        m.put("mailer.forcessl", (mail.tls == "tls").to_string());
    }
    if !d.auth.openid.is_empty() {
        m.put("auth.openid.enabled", "true".into());
        for o in &d.auth.openid {
            let key = settings::openid_key(&o.name, &o.key);
            let p = format!("auth.openid.providers.{key}");
            m.put(&format!("{p}.name"), q(&o.name));
            m.put(&format!("{p}.authurl"), q(&o.auth_url));
            m.put(&format!("{p}.clientid"), q(&o.client_id));
            // Vikunja reads provider values from `<key>.file` itself (its general file lookup
            // skips the providers).
            if let Some(f) = copy_of(&format!("auth.openid {key} client_secret_file")) {
                m.put(&format!("{p}.clientsecret.file"), f);
            }
            if !o.scope.is_empty() {
                m.put(&format!("{p}.scope"), q(&o.scope));
            }
            if !o.logout_url.is_empty() {
                m.put(&format!("{p}.logouturl"), q(&o.logout_url));
            }
        }
    }
    for s in settings::pass_through(&d.vikunja.settings).unwrap_or_default() {
        let value = match &s.file {
            Some(_) => copy_of(&format!("vikunja.settings.{}", s.key())).map(Yaml::Scalar).unwrap_or(s.value),
            None => s.value,
        };
        m.set(&s.path, value);
    }
    let mut y = format!(
        "# Vikunja configuration of instance {}, written by vikunja-installer; edits are replaced on the next\n\
         # install or update: change deployment.toml instead. Secrets come from VIKUNJA_*_FILE in the units\n\
         # and from the *.file copies in this directory.\n",
        d.instance.name
    );
    m.emit(&mut y, 0);
    y
}

/// `section.key: value` for every value line of a config.yml this module wrote (list items
/// belong to their key).
fn leaves(yml: &str) -> Vec<(String, String)> {
    let mut stack: Vec<String> = Vec::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in yml.lines().filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty()) {
        let depth = (line.len() - line.trim_start().len()) / 2;
        let body = line.trim();
        if let Some(item) = body.strip_prefix("- ") {
            if let Some(last) = out.last_mut() {
                last.1.push_str(&format!(" - {item}"));
            }
            continue;
        }
        let Some((k, v)) = body.split_once(':') else { continue };
        stack.truncate(depth);
        stack.push(k.to_string());
        out.push((stack.join("."), v.trim().to_string()));
    }
    // Section headers have no value of their own.
    out.retain(|(_, v)| !v.is_empty());
    out
}

/// What differs between two config.yml texts, one line per key (config.yml holds no secrets).
pub fn changed_keys(old: &str, new: &str) -> Vec<String> {
    let (old, new) = (leaves(old), leaves(new));
    let mut v = Vec::new();
    for (k, n) in &new {
        match old.iter().find(|(ok, _)| ok == k) {
            Some((_, o)) if o == n => {}
            Some((_, o)) => v.push(format!("{k}: {o} -> {n}")),
            None => v.push(format!("{k}: (none) -> {n}")),
        }
    }
    for (k, o) in &old {
        if !new.iter().any(|(nk, _)| nk == k) {
            v.push(format!("{k}: {o} -> (removed)"));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    #[test]
    fn mail_openid_timezone_and_pass_through_land_in_their_sections_without_secrets() {
        let dir = std::env::temp_dir().join(format!("vconf-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("s");
        std::fs::write(&secret, "hunter2\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = format!(
            "[vikunja]\ntimezone = \"Europe/Berlin\"\n[vikunja.settings]\n\"service.motd\" = \"Hi\"\n\
             \"redis.password.file\" = \"{s}\"\n[vikunja.settings.defaultsettings]\nweek_start = 1\n\
             [mail]\nhost = \"smtp.example.org\"\nport = 465\nuser = \"vikunja\"\npassword_file = \"{s}\"\n\
             from = \"vikunja@example.org\"\ntls = \"tls\"\n\
             [[auth.openid]]\nname = \"Key Cloak\"\nauth_url = \"https://id.example.org/realms/x\"\n\
             client_id = \"vikunja\"\nclient_secret_file = \"{s}\"\n",
            s = secret.display()
        );
        let d = Deployment::parse(&text, Path::new("d.toml")).unwrap();
        d.validate().unwrap();
        let l = Layout::new(&dir, "main");
        let y = render(&l, &d);
        let cfg = l.config_dir();
        for want in [
            "service:\n  publicurl: \"https://vikunja.local/\"\n".to_string(),
            "  timezone: \"Europe/Berlin\"\n  motd: \"Hi\"\n".into(),
            format!(
                "mailer:\n  enabled: true\n  host: \"smtp.example.org\"\n  port: 465\n  username: \"vikunja\"\n  \
                 password:\n    file: \"{}\"\n  fromemail: \"vikunja@example.org\"\n  forcessl: true\n",
                cfg.join(".mail-password").display()
            ),
            format!(
                "auth:\n  openid:\n    enabled: true\n    providers:\n      keycloak:\n        name: \"Key Cloak\"\n        \
                 authurl: \"https://id.example.org/realms/x\"\n        clientid: \"vikunja\"\n        clientsecret:\n          \
                 file: \"{}\"\n",
                cfg.join(".openid-keycloak-secret").display()
            ),
            format!("redis:\n  password:\n    file: \"{}\"\n", cfg.join(".setting-redis.password").display()),
            "defaultsettings:\n  week_start: 1\n".into(),
        ] {
            assert!(y.contains(&want), "missing:\n{want}\nin:\n{y}");
        }
        assert!(!y.contains("hunter2"), "{y}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn changed_keys_name_each_changed_value_with_its_section() {
        let old = "# c\nservice:\n  publicurl: \"https://a/\"\n  motd: \"x\"\ncors:\n  origins:\n    - \"a\"\n";
        let new = "service:\n  publicurl: \"https://b/\"\ncors:\n  origins:\n    - \"a\"\nmailer:\n  port: 25\n";
        assert_eq!(
            changed_keys(old, new),
            [
                "service.publicurl: \"https://a/\" -> \"https://b/\"",
                "mailer.port: (none) -> 25",
                "service.motd: \"x\" -> (removed)"
            ]
        );
        assert!(changed_keys(new, new).is_empty());
    }
}
