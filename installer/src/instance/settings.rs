//! Vikunja's own settings in `deployment.toml` beyond the ones the installer derives: `[mail]`,
//! `[[auth.openid]]`, `vikunja.timezone` and the `[vikunja.settings]` pass-through of any other
//! `config.yml` key (so a key Vikunja adds needs no change here).
//!
//! Three rules hold for all of them:
//! - a key the installer owns (the public URL, the database, the listen address, the secret, …)
//!   cannot be passed through: two sources for one value would silently disagree, so it is
//!   refused with the setting to use instead;
//! - secrets are never values, only files: a secret-looking key must be given as `<key>.file`,
//!   the file must be readable by its owner only, and `install` copies it into the config
//!   directory (0600, the service user's) where Vikunja's `<key>.file` indirection reads it, so
//!   config.yml itself holds no secret;
//! - viper lowercases keys, so `Service.PublicURL` is `service.publicurl` and refused alike.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::instance::config::Deployment;
use crate::instance::layout::Layout;

/// Keys (and whole sections, matched as prefixes) that `config.yml` gets from the installer, with
/// the reason and what to set instead.
const OWNED: &[(&str, &str)] = &[
    ("service.publicurl", "the installer derives it from network.domain and network.https_port: set those"),
    ("service.rootpath", "the installer points it at the instance's config directory"),
    ("service.interface", "each colour listens on its own port from [ports], behind nginx: set [ports]"),
    ("service.unixsocket", "each colour listens on its own port from [ports], behind nginx"),
    ("service.unixsocketmode", "each colour listens on its own port from [ports], behind nginx"),
    ("service.secret", "the installer makes one secret for both colours and keeps it (a new one logs everyone out)"),
    ("service.jwtsecret", "the installer makes one secret for both colours and keeps it (a new one logs everyone out)"),
    ("service.enableregistration", "set vikunja.registration instead"),
    ("service.timezone", "set vikunja.timezone instead"),
    ("service.ipextractionmethod", "nginx on 127.0.0.1 is the only proxy Vikunja trusts"),
    ("service.trustedproxies", "nginx on 127.0.0.1 is the only proxy Vikunja trusts"),
    ("database", "set it in [database] (the installer checks, backs up and restores that database)"),
    ("files.basepath", "files live in the instance's data directory, which backups include"),
    ("files.maxsize", "set files.max_size_mb instead (it also sets nginx's upload limit)"),
    ("cors.enable", "the installer keeps CORS on for the public URL"),
    ("mailer.enabled", "set [mail] host instead (mail is on when a host is set)"),
    ("mailer.host", "set it in [mail] as host"),
    ("mailer.port", "set it in [mail] as port"),
    ("mailer.username", "set it in [mail] as user"),
    ("mailer.password", "set it in [mail] as password_file"),
    ("mailer.fromemail", "set it in [mail] as from"),
    ("mailer.forcessl", "set it in [mail] as tls = \"tls\" or \"starttls\""),
    ("auth.openid.enabled", "add [[auth.openid]] providers instead (OpenID is on when there is one)"),
    ("auth.openid.providers", "add [[auth.openid]] providers instead"),
    ("autotls", "nginx terminates TLS with the certificate from [ssl]"),
];

/// A value for config.yml, already in YAML syntax.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Scalar(String),
    List(Vec<String>),
}

/// One pass-through setting: its lowercased path and value. A `….file` setting's value is the
/// user's file, which `install` copies (see [`secret_copies`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PassThrough {
    pub path: Vec<String>,
    pub value: Yaml,
    pub file: Option<PathBuf>,
}

impl PassThrough {
    pub fn key(&self) -> String {
        self.path.join(".")
    }
}

/// Double-quoted YAML string (control characters are refused before this).
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn scalar(v: &toml::Value) -> Result<String, String> {
    match v {
        toml::Value::String(s) if s.chars().any(char::is_control) => {
            Err("a value without control characters (one line)".into())
        }
        toml::Value::String(s) => Ok(quote(s)),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) if f.is_finite() => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!(
            "a string, number, boolean or a list of them (a {} cannot be passed through)",
            other.type_str()
        )),
    }
}

/// A refused pass-through setting: its key (under vikunja.settings), its value as given, and
/// what is allowed instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub key: String,
    pub value: String,
    pub allowed: String,
}

fn is_secret_name(name: &str) -> bool {
    ["password", "secret", "token", "apikey"].iter().any(|s| name.contains(s))
}

/// Why `key` cannot be passed through, if it cannot.
pub fn owned_reason(key: &str) -> Option<String> {
    for (owned, why) in OWNED {
        if key == *owned || key.starts_with(&format!("{owned}.")) {
            return Some(format!("not this key: the installer owns {owned}: {why}"));
        }
        if owned.starts_with(&format!("{key}.")) {
            return Some(format!(
                "not this key: {key} is a section of config.yml holding {owned}, which the installer owns ({why}); \
                 set the other keys inside it one by one"
            ));
        }
    }
    None
}

/// Every leaf of `[vikunja.settings]`, dotted keys and nested tables alike, checked: the first
/// problem of each key, all keys at once.
pub fn pass_through(settings: &toml::Table) -> Result<Vec<PassThrough>, Vec<Refused>> {
    let mut leaves = Vec::new();
    let mut errs = Vec::new();
    flatten(settings, &mut Vec::new(), &mut leaves, &mut errs);
    let mut out: Vec<PassThrough> = Vec::new();
    for (path, v) in leaves {
        let key = path.join(".");
        let shown = v.to_string();
        let mut refuse = |allowed: String| errs.push(Refused { key: key.clone(), value: shown.clone(), allowed });
        if out.iter().any(|p| p.key() == key) {
            refuse("each key once (it is given twice, as a dotted key and in a table)".into());
            continue;
        }
        let is_file = path.len() > 1 && path.last().is_some_and(|l| l == "file");
        let target = if is_file { path[..path.len() - 1].join(".") } else { key.clone() };
        if path.len() < 2 {
            refuse("section.key: config.yml has sections at the top (service, mailer, …), not values".into());
            continue;
        }
        if let Some(why) = owned_reason(&target) {
            refuse(why);
            continue;
        }
        let name = if is_file { &path[path.len() - 2] } else { &path[path.len() - 1] };
        if !is_file && is_secret_name(name) {
            refuse(format!(
                "a secret only as a file: write \"{key}.file\" = \"/root/secret-file\" (readable by its owner only, \
                 chmod 600)"
            ));
            continue;
        }
        let value = match &v {
            toml::Value::Array(items) => match items.iter().map(scalar).collect() {
                Ok(list) => Yaml::List(list),
                Err(e) => {
                    refuse(e);
                    continue;
                }
            },
            other => match scalar(other) {
                Ok(s) => Yaml::Scalar(s),
                Err(e) => {
                    refuse(e);
                    continue;
                }
            },
        };
        let file = match (&v, is_file) {
            (toml::Value::String(s), true) => match check_secret_file(Path::new(s)) {
                Ok(()) => Some(PathBuf::from(s)),
                Err(e) => {
                    refuse(e);
                    continue;
                }
            },
            (_, true) => {
                refuse("the path of a file, as a string".into());
                continue;
            }
            _ => None,
        };
        out.push(PassThrough { path, value, file });
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

fn flatten(
    t: &toml::Table,
    prefix: &mut Vec<String>,
    leaves: &mut Vec<(Vec<String>, toml::Value)>,
    errs: &mut Vec<Refused>,
) {
    for (k, v) in t {
        let depth = prefix.len();
        let mut ok = true;
        for seg in k.split('.') {
            if seg.is_empty() || !seg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                let mut key = prefix.clone();
                key.push(k.clone());
                errs.push(Refused {
                    key: key.join("."),
                    value: v.to_string(),
                    allowed: "a config.yml key: letters, digits, '_' and '-' between dots".into(),
                });
                ok = false;
                break;
            }
            prefix.push(seg.to_ascii_lowercase());
        }
        if ok {
            match v {
                toml::Value::Table(sub) => flatten(sub, prefix, leaves, errs),
                toml::Value::Array(a) if a.iter().any(|x| x.is_table()) => errs.push(Refused {
                    key: prefix.join("."),
                    value: v.to_string(),
                    allowed: "the keys one by one (a list of tables cannot be passed through)".into(),
                }),
                other => leaves.push((prefix.clone(), other.clone())),
            }
        }
        prefix.truncate(depth);
    }
}

/// The checks of `Deployment::validate` for these settings, reported through its `bad`.
pub fn validate<F: FnMut(&str, &dyn std::fmt::Display, &str)>(d: &Deployment, bad: &mut F) {
    let tz = &d.vikunja.timezone;
    if !tz.is_empty() && !is_timezone(tz) {
        bad(
            "vikunja.timezone",
            tz,
            "a tz database name like Europe/Berlin (a file under /usr/share/zoneinfo), or empty for the container's",
        );
    }
    if let Err(refused) = pass_through(&d.vikunja.settings) {
        for r in refused {
            bad(&format!("vikunja.settings.{}", r.key), &r.value, &r.allowed);
        }
    }
    let line = |s: &str| !s.chars().any(char::is_control);
    let url = |s: &str| {
        (s.starts_with("https://") || s.starts_with("http://"))
            && !s.contains(|c: char| c.is_whitespace() || c.is_control())
    };
    let m = &d.mail;
    if m.host.is_empty() {
        if m.password_file.is_some() || !m.user.is_empty() || !m.from.is_empty() {
            bad("mail.host", &"", "the SMTP server's host name: the other [mail] settings need it");
        }
    } else {
        if !crate::instance::config::is_hostname(&m.host) && m.host.parse::<std::net::IpAddr>().is_err() {
            bad("mail.host", &m.host, "the SMTP server's host name or IP address");
        }
        if m.port == 0 {
            bad("mail.port", &m.port, "1 to 65535 (587 for STARTTLS, 465 for TLS)");
        }
        if !crate::instance::config::is_email(&m.from) {
            bad("mail.from", &m.from, "the sender address, like vikunja@example.com");
        }
        if !line(&m.user) {
            bad("mail.user", &m.user, "a user name on one line");
        }
        if let Some(p) = &m.password_file {
            if let Err(e) = check_secret_file(p) {
                bad("mail.password_file", &p.display(), &e);
            }
        }
    }
    if !["starttls", "tls"].contains(&m.tls.as_str()) {
        bad("mail.tls", &m.tls, "starttls (upgrade when offered, port 587) or tls (from the first byte, port 465)");
    }
    let mut keys: Vec<String> = Vec::new();
    for (i, o) in d.auth.openid.iter().enumerate() {
        let f = |k: &str| format!("auth.openid[{i}].{k}");
        if o.name.is_empty() || !line(&o.name) {
            bad(&f("name"), &o.name, "the name the login page shows, on one line");
        }
        let key = openid_key(&o.name, &o.key);
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            bad(&f("key"), &key, "a-z and 0-9 only (it ends the redirect URL /auth/openid/<key>)");
        } else if keys.contains(&key) {
            bad(&f("key"), &key, "a key no other provider has (set key to tell them apart)");
        }
        keys.push(key);
        if !url(&o.auth_url) {
            bad(&f("auth_url"), &o.auth_url, "the provider's http(s) issuer URL");
        }
        if o.client_id.is_empty() || !line(&o.client_id) {
            bad(&f("client_id"), &o.client_id, "the client id the provider gave Vikunja");
        }
        match &o.client_secret_file {
            None => bad(&f("client_secret_file"), &"", "the file holding the client secret (chmod 600)"),
            Some(p) => {
                if let Err(e) = check_secret_file(p) {
                    bad(&f("client_secret_file"), &p.display(), &e);
                }
            }
        }
        if !line(&o.scope) {
            bad(&f("scope"), &o.scope, "scopes separated by spaces, on one line");
        }
        if !o.logout_url.is_empty() && !url(&o.logout_url) {
            bad(&f("logout_url"), &o.logout_url, "an http(s) URL, or empty");
        }
    }
}

/// A secret file the user names: it must exist and be readable by its owner only, so a secret
/// never sits in a file other local users can read. `Err` is what is allowed.
pub fn check_secret_file(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("an existing file, readable by its owner only ({e})"))?;
    if !meta.is_file() {
        return Err("a file (this is not a regular file)".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "a file readable by its owner only; it has mode {mode:04o}, so other users can read the secret: \
             chmod 600 {}",
            path.display()
        ));
    }
    Ok(())
}

/// An OpenID provider's key: what the redirect URL ends in (`/auth/openid/<key>`).
pub fn openid_key(name: &str, key: &str) -> String {
    if !key.is_empty() {
        return key.to_string();
    }
    name.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_lowercase()
}

/// A tz database name like Europe/Berlin (Vikunja refuses offsets like UTC+2).
pub fn is_timezone(s: &str) -> bool {
    let shape = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('/')
        && !s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'+' | b'-'));
    let zoneinfo = Path::new("/usr/share/zoneinfo");
    shape && (!zoneinfo.is_dir() || zoneinfo.join(s).is_file())
}

/// The container's time zone: /etc/timezone (Debian), else where /etc/localtime points.
pub fn container_timezone(root: &Path) -> Option<String> {
    let from_file = std::fs::read_to_string(root.join("etc/timezone"))
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        .filter(|t| !t.is_empty());
    let tz = from_file.or_else(|| {
        let link = std::fs::read_link(root.join("etc/localtime")).ok()?;
        let s = link.to_string_lossy().into_owned();
        s.split_once("zoneinfo/").map(|(_, tz)| tz.to_string())
    })?;
    is_timezone(&tz).then_some(tz)
}

/// The time zone config.yml gets: the configured one, else the container's, else none
/// (Vikunja's default).
pub fn timezone(l: &Layout, d: &Deployment) -> Option<String> {
    if d.vikunja.timezone.is_empty() {
        container_timezone(&l.root)
    } else {
        Some(d.vikunja.timezone.clone())
    }
}

/// A user's secret file and where its copy for Vikunja goes (in the config directory).
#[derive(Debug, Clone, PartialEq)]
pub struct SecretCopy {
    /// The deployment.toml setting, for messages.
    pub setting: String,
    pub source: PathBuf,
    pub dest: PathBuf,
}

/// Every secret file the settings name, with the path config.yml gives Vikunja for it.
pub fn secret_copies(l: &Layout, d: &Deployment) -> Vec<SecretCopy> {
    let dir = l.config_dir();
    let mut v = Vec::new();
    if let Some(p) = &d.mail.password_file {
        v.push(SecretCopy {
            setting: "mail.password_file".into(),
            source: p.clone(),
            dest: dir.join(".mail-password"),
        });
    }
    for o in &d.auth.openid {
        let key = openid_key(&o.name, &o.key);
        if let Some(p) = &o.client_secret_file {
            v.push(SecretCopy {
                setting: format!("auth.openid {key} client_secret_file"),
                source: p.clone(),
                dest: dir.join(format!(".openid-{key}-secret")),
            });
        }
    }
    for p in pass_through(&d.vikunja.settings).unwrap_or_default() {
        if let Some(f) = &p.file {
            let key = p.key();
            let name = key.trim_end_matches(".file");
            v.push(SecretCopy {
                setting: format!("vikunja.settings.{key}"),
                source: f.clone(),
                dest: dir.join(format!(".setting-{name}")),
            });
        }
    }
    v
}

/// Copies each secret into place (0600, then handed to the service user by the caller) and
/// removes copies no setting names any more. Returns whether anything changed.
pub fn sync_secret_copies(l: &Layout, d: &Deployment) -> std::io::Result<bool> {
    let copies = secret_copies(l, d);
    let mut changed = false;
    for c in &copies {
        check_secret_file(&c.source)
            .map_err(|e| std::io::Error::other(format!("{} {}: must be {e}", c.setting, c.source.display())))?;
        let text = std::fs::read_to_string(&c.source)
            .map_err(|e| std::io::Error::other(format!("read {} {}: {e}", c.setting, c.source.display())))?;
        let value = text.trim_end_matches(['\r', '\n']);
        if std::fs::read_to_string(&c.dest).is_ok_and(|old| old == value) {
            continue;
        }
        manifests::atomic::write_atomic(&c.dest, value.as_bytes(), 0o600)?;
        std::fs::set_permissions(&c.dest, std::fs::Permissions::from_mode(0o600))?;
        changed = true;
    }
    for e in std::fs::read_dir(l.config_dir()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = name == ".mail-password" || name.starts_with(".openid-") || name.starts_with(".setting-");
        if ours && !copies.iter().any(|c| c.dest == e.path()) {
            std::fs::remove_file(e.path())?;
            changed = true;
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn dotted_keys_and_nested_tables_pass_through_lowercased() {
        let p = pass_through(&table(
            "\"service.motd\" = \"Hello\"\n\"Service.EnableCaldav\" = false\n[defaultsettings]\nweek_start = 1\n\
             [cors]\norigins = [\"https://a.example\", \"https://b.example\"]\n",
        ))
        .unwrap();
        let got: Vec<(String, Yaml)> = p.iter().map(|p| (p.key(), p.value.clone())).collect();
        assert!(got.contains(&("service.motd".into(), Yaml::Scalar("\"Hello\"".into()))), "{got:?}");
        assert!(got.contains(&("service.enablecaldav".into(), Yaml::Scalar("false".into()))), "{got:?}");
        assert!(got.contains(&("defaultsettings.week_start".into(), Yaml::Scalar("1".into()))), "{got:?}");
        assert!(got.contains(&(
            "cors.origins".into(),
            Yaml::List(vec!["\"https://a.example\"".into(), "\"https://b.example\"".into()])
        )));
    }

    #[test]
    fn owned_keys_are_refused_with_the_setting_to_use_and_a_control_passes() {
        for (toml_text, owned, hint) in [
            ("\"service.publicurl\" = \"https://x/\"", "service.publicurl", "network.domain"),
            ("[Service]\nPublicURL = \"https://x/\"", "service.publicurl", "network.domain"),
            ("[database]\ntype = \"mysql\"", "database", "[database]"),
            ("\"service.interface\" = \":3456\"", "service.interface", "[ports]"),
            ("\"mailer.host\" = \"smtp\"", "mailer.host", "[mail]"),
            ("\"auth.openid.providers.x.name\" = \"X\"", "auth.openid.providers", "[[auth.openid]]"),
            ("\"database.password.file\" = \"/root/pw\"", "database", "[database]"),
        ] {
            let e = pass_through(&table(toml_text)).unwrap_err();
            assert!(
                e[0].allowed.contains(&format!("owns {owned}")) && e[0].allowed.contains(hint),
                "{toml_text}: {e:?}"
            );
        }
        let e = pass_through(&table("service = \"x\"")).unwrap_err();
        assert_eq!((e[0].key.as_str(), e[0].value.as_str()), ("service", "\"x\""));
        assert!(pass_through(&table("\"service.motd\" = \"ok\"")).is_ok());
    }

    #[test]
    fn secrets_only_as_files() {
        let e = pass_through(&table("\"redis.password\" = \"hunter2\"")).unwrap_err();
        assert!(e[0].allowed.contains("redis.password.file") && e[0].allowed.contains("chmod 600"), "{e:?}");
        let e = pass_through(&table("\"redis.password.file\" = \"/nonexistent/redis-pw\"")).unwrap_err();
        assert!(e[0].allowed.contains("readable by its owner only"), "{e:?}");
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused_and_a_private_one_accepted() {
        let dir = std::env::temp_dir().join(format!("settings-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_secret_file(&f).unwrap_err();
        assert!(e.contains("0644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_secret_file(&f).unwrap();
        assert!(check_secret_file(&dir.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn timezones_are_tz_names() {
        assert!(is_timezone("Europe/Berlin") && is_timezone("UTC"));
        for bad in ["", "UTC+2 ", "../etc/passwd", "/Europe/Berlin", "Europe//Berlin", "Mars/Olympus_Mons"] {
            assert!(!is_timezone(bad), "{bad:?}");
        }
    }
}
