//! Configuration as Vikunja's `pkg/config` builds it (vikunja.md §3.2):
//! defaults, then `config.yml` from the search path, then `VIKUNJA_*`
//! environment variables, then `<key>.file` indirections.
//!
//! Only YAML is read, and only the subset Vikunja's sample config uses:
//! nested mappings, scalars (plain, 'single' or "double" quoted) and lists
//! (block `- item` or inline `[a, b]`). Like viper, a file that fails to parse
//! is reported and then ignored ("Using default config.").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::logger;
use crate::version::SemVer;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    List(Vec<String>),
}

/// Flattened keys (`database.password`), lowercased as viper treats them.
pub type Raw = BTreeMap<String, Value>;

#[derive(Debug, Clone)]
pub enum Database {
    /// `path` is `None` for `database.path: memory`.
    Sqlite {
        path: Option<PathBuf>,
    },
    Postgres {
        host: String,
        port: u16,
        user: String,
        password: String,
        database: String,
        sslmode: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The config file in use, if any; `dump` copies it into the zip.
    pub file_used: Option<PathBuf>,
    pub rootpath: PathBuf,
    pub interface: String,
    /// With the trailing `/` Vikunja appends; empty when unset.
    pub public_url: String,
    /// Never used to sign anything (the stand-in has no users or tokens);
    /// `web` logs a fingerprint of it so tests can tell whether tokens would
    /// survive a restart.
    pub secret: String,
    /// CIDRs whose X-Forwarded-For is trusted; only logged at start.
    pub trusted_proxies: Vec<String>,
    pub database: Database,
    pub files_basepath: PathBuf,
    /// `files.maxsize` as written, which `/api/v1/info` echoes.
    pub max_size: String,
    /// The effective upload limit in bytes (see [`effective_limit`]).
    pub max_body_bytes: u64,
    pub motd: String,
    pub link_sharing: bool,
    pub registration: bool,
}

/// `service.publicurl` became mandatory (with CORS on) in this release.
const PUBLICURL_REQUIRED_SINCE: &str = "1.0.0-rc2";
/// `$VAR` expansion in `*.file` paths arrived in this release.
const FILE_ENV_EXPANSION_SINCE: &str = "2.3.0";
/// `key.file` / `VIKUNJA_<KEY>_FILE` arrived in this release (3479fa122); before it such a key is
/// one more unknown setting, read by nobody.
const FILE_KEYS_SINCE: &str = "1.0.0-rc0";
/// `service.secret` arrived in this release (83bac1584); before it only `service.JWTSecret` is read.
const SECRET_KEY_SINCE: &str = "2.3.0";

impl Config {
    /// Reads everything, exiting like Vikunja (`log.Fatalf`, exit 1) where it
    /// would: a missing publicurl, an unreadable `*.file`, a bad size, an
    /// unsupported database.
    pub fn load(version: &str) -> Config {
        let ver = SemVer::parse(version);
        let since = |v: &str| ver.as_ref().is_none_or(|cur| *cur >= SemVer::parse(v).expect("valid literal"));

        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let initial_root = match std::env::var("VIKUNJA_SERVICE_ROOTPATH") {
            Ok(r) if !r.is_empty() => PathBuf::from(r),
            _ => cwd.clone(),
        };

        let mut raw = Raw::new();
        let file_used = find_config_file(&initial_root, &cwd);
        match &file_used {
            Some(path) => {
                logger::info(&format!("Using config file: {}", path.display()));
                match std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| parse_yaml(&t)) {
                    Ok(parsed) => raw = parsed,
                    Err(e) => {
                        logger::warn(&format!("{}: {e}", path.display()));
                        logger::warn("Using default config.");
                    }
                }
            }
            None => logger::info("No config file found, using default or config from environment variables."),
        }
        raw.extend(env_overrides(std::env::vars_os()));

        let rootpath = match get(&raw, "service.rootpath") {
            Some(r) if !r.is_empty() => PathBuf::from(r),
            _ => initial_root,
        };
        if since(FILE_KEYS_SINCE) {
            if let Err(e) = resolve_file_keys(&mut raw, &rootpath, since(FILE_ENV_EXPANSION_SINCE)) {
                logger::fatal(&e);
            }
        }
        if !since(SECRET_KEY_SINCE) {
            raw.remove("service.secret");
        }
        build(&raw, rootpath, file_used, since(PUBLICURL_REQUIRED_SINCE)).unwrap_or_else(|e| logger::fatal(&e))
    }
}

/// Turns the merged raw map into a checked [`Config`]; `Err` is the fatal
/// message Vikunja would log.
fn build(raw: &Raw, rootpath: PathBuf, file_used: Option<PathBuf>, publicurl_required: bool) -> Result<Config, String> {
    let s = |k: &str, d: &str| get(raw, k).unwrap_or_else(|| d.to_owned());
    let b = |k: &str, d: bool| get(raw, k).map_or(d, |v| parse_bool(&v));

    let cors_enable = b("cors.enable", true);
    let mut public_url = s("service.publicurl", "");
    if cors_enable && public_url.is_empty() && publicurl_required {
        return Err("service.publicurl is required when cors.enable is true".into());
    }
    if !public_url.is_empty() {
        if !public_url.ends_with('/') {
            public_url.push('/');
        }
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(format!("service.publicurl must include http:// or https:// scheme, got: {public_url}"));
        }
    }

    let max_size = s("files.maxsize", "20MB");
    let bytes = parse_datasize(&max_size).map_err(|e| format!("Could not parse files.maxsize: {e}"))?;

    let mut secret = s("service.secret", "");
    if secret.is_empty() {
        // service.JWTSecret is the pre-2.3.0 name, copied over when set.
        secret = s("service.jwtsecret", "");
    }
    if secret.is_empty() {
        secret = random_hex(32);
        logger::warn(
            "service.secret is not set: generated a random one for this run, so all issued tokens become invalid on restart",
        );
    }

    let under_root = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            rootpath.join(p)
        }
    };
    let database = match s("database.type", "sqlite").to_lowercase().as_str() {
        "sqlite" => {
            let path = s("database.path", "vikunja.db");
            Database::Sqlite { path: (path != "memory").then(|| under_root(path)) }
        }
        "postgres" => {
            let (host, port) = split_host_port(&s("database.host", "localhost"))?;
            Database::Postgres {
                host,
                port,
                user: s("database.user", "vikunja"),
                password: s("database.password", ""),
                database: s("database.database", "vikunja"),
                sslmode: s("database.sslmode", "disable"),
            }
        }
        "mysql" => {
            return Err("database type mysql is not supported by the stand-in (vikunja-standin test double)".into())
        }
        other => return Err(format!("Unknown database type {other:?}")),
    };

    Ok(Config {
        file_used,
        interface: s("service.interface", ":3456"),
        public_url,
        secret,
        trusted_proxies: get_list(raw, "service.trustedproxies"),
        database,
        files_basepath: under_root(s("files.basepath", "files")),
        max_size,
        max_body_bytes: effective_limit(bytes),
        motd: s("service.motd", ""),
        link_sharing: b("service.enablelinksharing", true),
        registration: b("service.enableregistration", true),
        rootpath,
    })
}

/// Vikunja keeps `files.maxsize` as a whole number of MiB (truncating) and
/// treats 0 as "unset, 20 MiB" — so "500KB" really means 20 MiB. Reproduced
/// because a deployment that sizes a proxy's body limit from the config
/// meets exactly this.
pub fn effective_limit(bytes: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    match bytes / MIB {
        0 => 20 * MIB,
        mib => mib * MIB,
    }
}

/// c2h5oh/datasize syntax: an integer and an optional 1024-based unit
/// (B, K/KB, M/MB, G/GB, T/TB), case-insensitive.
pub fn parse_datasize(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("{s:?} does not start with a number"));
    }
    let n: u64 = t[..digits].parse().map_err(|_| format!("{s:?} is too large"))?;
    let shift = match t[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        "t" | "tb" => 40,
        unit => return Err(format!("unknown unit {unit:?} in {s:?}")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

/// Go's strconv.ParseBool, with anything unparsable being false (as cast does).
fn parse_bool(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

fn split_host_port(host: &str) -> Result<(String, u16), String> {
    if let Some((h, p)) = host.rsplit_once(':') {
        if !h.contains(':') || h.starts_with('[') {
            let port = p.parse().map_err(|_| format!("invalid port in database.host {host:?}"))?;
            return Ok((h.trim_start_matches('[').trim_end_matches(']').to_owned(), port));
        }
    }
    Ok((host.to_owned(), 5432))
}

pub fn get(raw: &Raw, key: &str) -> Option<String> {
    match raw.get(key)? {
        Value::Str(s) => Some(s.clone()),
        Value::List(l) => Some(l.join(" ")),
    }
}

fn get_list(raw: &Raw, key: &str) -> Vec<String> {
    match raw.get(key) {
        Some(Value::List(l)) => l.clone(),
        // From the environment a list is one string; split like cast.ToStringSlice
        // (whitespace), and on commas, which is what people write.
        Some(Value::Str(s)) => {
            s.split(|c: char| c.is_whitespace() || c == ',').filter(|x| !x.is_empty()).map(Into::into).collect()
        }
        None => Vec::new(),
    }
}

/// Search order of `viper.AddConfigPath`: rootpath, /etc/vikunja,
/// ~/.config/vikunja, the current directory.
fn find_config_file(rootpath: &Path, cwd: &Path) -> Option<PathBuf> {
    let mut dirs = vec![rootpath.to_path_buf(), PathBuf::from("/etc/vikunja")];
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        dirs.push(Path::new(&home).join(".config").join("vikunja"));
    }
    dirs.push(cwd.to_path_buf());
    for dir in dirs {
        // viper tries json and toml before yaml; the stand-in reads only YAML
        // and says so instead of silently picking a file it cannot parse.
        for other in ["json", "toml"] {
            let p = dir.join(format!("config.{other}"));
            if p.is_file() {
                logger::warn(&format!("{} ignored: the stand-in reads only YAML config files", p.display()));
            }
        }
        for ext in ["yaml", "yml"] {
            let p = dir.join(format!("config.{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// `VIKUNJA_DATABASE_PASSWORD_FILE=x` → `database.password.file = x`: the
/// name minus the prefix, lowercased, `_` as the nesting separator.
pub fn env_overrides(vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>) -> Raw {
    let mut out = Raw::new();
    for (k, v) in vars {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else { continue };
        if let Some(rest) = k.strip_prefix("VIKUNJA_") {
            if !rest.is_empty() {
                out.insert(rest.to_lowercase().replace('_', "."), Value::Str(v.to_owned()));
            }
        }
    }
    out
}

/// For every `<key>.file`, reads that file into `<key>` (trimmed of
/// newlines). Relative paths are under rootpath; an unreadable file is fatal.
pub fn resolve_file_keys(raw: &mut Raw, rootpath: &Path, expand_env: bool) -> Result<(), String> {
    let file_keys: Vec<(String, String)> = raw
        .iter()
        .filter_map(|(k, v)| match v {
            Value::Str(p) if k.ends_with(".file") && !p.is_empty() => Some((k.clone(), p.clone())),
            _ => None,
        })
        .collect();
    for (key, path) in file_keys {
        let path = if expand_env { expand_vars(&path) } else { path };
        let full = if Path::new(&path).is_absolute() { PathBuf::from(&path) } else { rootpath.join(&path) };
        let contents = std::fs::read_to_string(&full)
            .map_err(|e| format!("Failed to read the config file at {} for key {key}: {e}", full.display()))?;
        let target = key.trim_end_matches(".file").to_owned();
        raw.insert(target, Value::Str(contents.trim_matches('\n').to_owned()));
    }
    Ok(())
}

/// `$VAR` and `${VAR}` from the environment, unset ones empty (Go's os.ExpandEnv).
fn expand_vars(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => ("", after),
            }
        } else {
            let n = after.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
            (&after[..n], &after[n..])
        };
        if name.is_empty() {
            out.push('$');
        } else {
            out.push_str(&std::env::var(name).unwrap_or_default());
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A short, stable, non-reversible tag of the secret for the log.
pub fn fingerprint(secret: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    secret.hash(&mut h);
    format!("{:016x}", h.finish())
}

fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).is_err() {
        // Not secret-grade, but the stand-in never protects real data.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        buf.iter_mut().enumerate().for_each(|(i, b)| *b = (t >> (i % 16 * 8)) as u8 ^ std::process::id() as u8);
    }
    buf.iter().map(|b| format!("{b:02X}")).collect()
}

/// Parses the YAML subset described in the module docs into flattened keys.
pub fn parse_yaml(text: &str) -> Result<Raw, String> {
    let mut out = Raw::new();
    // Open mapping keys whose children follow: (indent of the key, full key).
    let mut open: Vec<(usize, String)> = Vec::new();
    // Lines more indented than this belong to a list item we do not model
    // (lists of mappings, e.g. OpenID providers) and are skipped.
    let mut skip_deeper_than: Option<usize> = None;

    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = strip_comment(line).trim_end();
        let content = line.trim_start_matches(' ');
        if content.is_empty() || content == "---" || content == "..." {
            continue;
        }
        if content.starts_with('\t') {
            return Err(format!("line {lineno}: tabs are not allowed for indentation"));
        }
        let indent = line.len() - content.len();
        if let Some(limit) = skip_deeper_than {
            if indent > limit {
                continue;
            }
            skip_deeper_than = None;
        }

        if content == "-" || content.starts_with("- ") {
            // A block list item may sit at its key's own indentation.
            while open.last().is_some_and(|(i, _)| *i > indent) {
                open.pop();
            }
            let Some((_, key)) = open.last() else {
                return Err(format!("line {lineno}: list item outside of a mapping key"));
            };
            let item = content[1..].trim();
            if split_mapping(item).is_some() {
                skip_deeper_than = Some(indent);
            }
            let item = if split_mapping(item).is_some() { item.to_owned() } else { scalar(item, lineno)? };
            match out.entry(key.clone()).or_insert_with(|| Value::List(Vec::new())) {
                Value::List(l) => l.push(item),
                Value::Str(_) => return Err(format!("line {lineno}: {key} has both a value and list items")),
            }
            continue;
        }

        while open.last().is_some_and(|(i, _)| *i >= indent) {
            open.pop();
        }
        let Some((key, value)) = split_mapping(content) else {
            return Err(format!("line {lineno}: expected `key: value`, got {content:?}"));
        };
        let key = scalar(key, lineno)?.to_lowercase();
        let full = match open.last() {
            Some((_, parent)) => format!("{parent}.{key}"),
            None => key,
        };
        match value {
            "" => open.push((indent, full)),
            "|" | ">" | "|-" | ">-" => return Err(format!("line {lineno}: block scalars are not supported")),
            "{}" => {}
            v if v.starts_with('[') => {
                let inner = v.strip_prefix('[').and_then(|v| v.strip_suffix(']'));
                let inner = inner.ok_or_else(|| format!("line {lineno}: unterminated inline list"))?;
                let items = inner.split(',').map(str::trim).filter(|s| !s.is_empty());
                out.insert(full, Value::List(items.map(|i| scalar(i, lineno)).collect::<Result<_, _>>()?));
            }
            v => {
                out.insert(full, Value::Str(scalar(v, lineno)?));
            }
        }
    }
    Ok(out)
}

/// `key: value` → (key, value); the colon must be followed by a space or end
/// the line, and must not sit inside quotes.
fn split_mapping(s: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') if i == 0 => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, ':') => {
                let rest = &s[i + 1..];
                if rest.is_empty() || rest.starts_with(' ') {
                    return Some((s[..i].trim(), rest.trim()));
                }
            }
            _ => {}
        }
    }
    None
}

/// A `#` starts a comment at the line start or after whitespace, outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') if prev_space || line[..i].ends_with(": ") || line[..i].ends_with("- ") => {
                quote = Some(c)
            }
            (Some(q), c) if c == q => quote = None,
            (None, '#') if prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    line
}

fn scalar(s: &str, lineno: usize) -> Result<String, String> {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or_else(|| format!("line {lineno}: unterminated double quote"))?;
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('0') => out.push('\0'),
                Some(c @ ('"' | '\\' | '/')) => out.push(c),
                other => return Err(format!("line {lineno}: unsupported escape \\{}", other.unwrap_or(' '))),
            }
        }
        return Ok(out);
    }
    if let Some(inner) = s.strip_prefix('\'') {
        let inner = inner.strip_suffix('\'').ok_or_else(|| format!("line {lineno}: unterminated single quote"))?;
        return Ok(inner.replace("''", "'"));
    }
    Ok(match s {
        "~" | "null" | "Null" | "NULL" => String::new(),
        s => s.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn yaml_subset() {
        let y = r#"
# comment
service:
  publicurl: "https://todo.example.com" # trailing comment
  JWTSecret: 'it''s'
  interface: ":3456"
  trustedproxies:
  - 10.0.0.0/8
  - "192.168.0.0/16"
  motd: hello # world
database:
  type: postgres
  password:
    file: /run/secrets/db
  host.file: host.txt
cors:
  enable: false
  origins: [ "http://a", http://b ]
auth:
  openid:
    providers:
      - name: x
        authurl: https://idp
      - name: y
log:
  level: INFO
"#;
        let r = parse_yaml(y).unwrap();
        assert_eq!(r["service.publicurl"], s("https://todo.example.com"));
        assert_eq!(r["service.jwtsecret"], s("it's"));
        assert_eq!(r["service.interface"], s(":3456"));
        assert_eq!(r["service.motd"], s("hello"));
        assert_eq!(r["service.trustedproxies"], Value::List(vec!["10.0.0.0/8".into(), "192.168.0.0/16".into()]));
        assert_eq!(r["database.password.file"], s("/run/secrets/db"));
        assert_eq!(r["database.host.file"], s("host.txt"));
        assert_eq!(r["cors.enable"], s("false"));
        assert_eq!(r["cors.origins"], Value::List(vec!["http://a".into(), "http://b".into()]));
        assert!(matches!(&r["auth.openid.providers"], Value::List(l) if l.len() == 2));
        assert_eq!(r["log.level"], s("INFO"), "keys after a skipped list of mappings are read again");
    }

    #[test]
    fn yaml_errors() {
        assert!(parse_yaml("service\n").is_err());
        assert!(parse_yaml("a:\n\tb: 1\n").is_err());
        assert!(parse_yaml("a: \"open\n").is_err());
        assert!(parse_yaml("- x\n").is_err());
    }

    #[test]
    fn env_mapping() {
        let vars =
            [("VIKUNJA_DATABASE_PASSWORD_FILE", "/x"), ("VIKUNJA_SERVICE_PUBLICURL", "http://h"), ("HOME", "/root")];
        let r = env_overrides(vars.iter().map(|(k, v)| ((*k).into(), (*v).into())));
        assert_eq!(r.len(), 2);
        assert_eq!(r["database.password.file"], s("/x"));
        assert_eq!(r["service.publicurl"], s("http://h"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_datasize("20MB").unwrap(), 20 << 20);
        assert_eq!(parse_datasize("1 gb").unwrap(), 1 << 30);
        assert_eq!(parse_datasize("512").unwrap(), 512);
        assert!(parse_datasize("MB").is_err());
        assert!(parse_datasize("1.5MB").is_err());
        assert_eq!(effective_limit(500 << 10), 20 << 20, "under 1 MiB truncates to 0, which means the 20 MiB default");
        assert_eq!(effective_limit((3 << 20) + 5), 3 << 20);
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("db").unwrap(), ("db".into(), 5432));
        assert_eq!(split_host_port("127.0.0.1:5433").unwrap(), ("127.0.0.1".into(), 5433));
        assert_eq!(split_host_port("[::1]:5433").unwrap(), ("::1".into(), 5433));
        assert!(split_host_port("db:x").is_err());
    }

    #[test]
    fn expands_vars() {
        std::env::set_var("STANDIN_TEST_CRED_DIR", "/run/credentials/vikunja.service");
        assert_eq!(expand_vars("$STANDIN_TEST_CRED_DIR/db"), "/run/credentials/vikunja.service/db");
        assert_eq!(expand_vars("${STANDIN_TEST_CRED_DIR}x"), "/run/credentials/vikunja.servicex");
        assert_eq!(expand_vars("a$"), "a$");
    }
}
