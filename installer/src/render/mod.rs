//! Renders the systemd unit and nginx files of an instance from `{{name}}` templates.
//!
//! The engine is deliberately tiny: placeholders only, no conditionals or loops. Optional parts
//! (the MCP location, a static frontend, extra environment lines) are built here from small
//! snippets and handed to the template as multi-line blocks.
//!
//! Every value is checked against the syntax it lands in before it is substituted, so a value can
//! never end a directive early, open a block or add a line: for systemd no control characters
//! (and `%`/`$` are escaped), for nginx one bare token with no `; { } " ' \ $ #` or whitespace.

pub mod autotimer;
pub mod templates;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const UNIT_TEMPLATE: &str = "systemd/service.tmpl";
const SITE_TEMPLATE: &str = "nginx/site.conf.tmpl";
const UPSTREAM_TEMPLATE: &str = "nginx/upstream.conf.tmpl";
const MAIN_TEMPLATE: &str = "nginx/nginx.conf.tmpl";
const BACKUP_SERVICE_TEMPLATE: &str = "systemd/backup.service.tmpl";
const BACKUP_TIMER_TEMPLATE: &str = "systemd/backup.timer.tmpl";
const CERT_SERVICE_TEMPLATE: &str = "systemd/cert-renew.service.tmpl";
const CERT_TIMER_TEMPLATE: &str = "systemd/cert-renew.timer.tmpl";

/// The templates compiled into the binary, used when no bundle directory is available.
pub fn builtin(name: &str) -> Option<&'static str> {
    match name {
        UNIT_TEMPLATE => Some(include_str!("../../templates/systemd/service.tmpl")),
        SITE_TEMPLATE => Some(include_str!("../../templates/nginx/site.conf.tmpl")),
        UPSTREAM_TEMPLATE => Some(include_str!("../../templates/nginx/upstream.conf.tmpl")),
        MAIN_TEMPLATE => Some(include_str!("../../templates/nginx/nginx.conf.tmpl")),
        BACKUP_SERVICE_TEMPLATE => Some(include_str!("../../templates/systemd/backup.service.tmpl")),
        BACKUP_TIMER_TEMPLATE => Some(include_str!("../../templates/systemd/backup.timer.tmpl")),
        "systemd/metrics.service.tmpl" => Some(include_str!("../../templates/systemd/metrics.service.tmpl")),
        "systemd/metrics.timer.tmpl" => Some(include_str!("../../templates/systemd/metrics.timer.tmpl")),
        CERT_SERVICE_TEMPLATE => Some(include_str!("../../templates/systemd/cert-renew.service.tmpl")),
        CERT_TIMER_TEMPLATE => Some(include_str!("../../templates/systemd/cert-renew.timer.tmpl")),
        autotimer::SERVICE_TEMPLATE => Some(include_str!("../../templates/systemd/autoupdate.service.tmpl")),
        autotimer::TIMER_TEMPLATE => Some(include_str!("../../templates/systemd/autoupdate.timer.tmpl")),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("template {template}: no value for placeholder {{{{{placeholder}}}}}")]
    Missing { template: String, placeholder: String },
    #[error("template {template}: value for {{{{{placeholder}}}}} {reason}")]
    Invalid { template: String, placeholder: String, reason: String },
    #[error("template {template}, line {line}: {reason}")]
    Syntax { template: String, line: usize, reason: String },
}

pub struct ServiceSpec {
    /// Unit name without the `.service` suffix, e.g. "vikunja-main-backend-blue".
    pub unit: String,
    pub description: String,
    /// argv with the absolute program path first; quoted and escaped here as systemd needs.
    pub exec: Vec<String>,
    pub working_dir: PathBuf,
    pub user: String,
    pub group: String,
    /// `Environment=` entries. Unit files are world-readable: pass secrets as `*_FILE` paths.
    pub env: Vec<(String, String)>,
    /// The only writable paths under `ProtectSystem=strict` (data, logs). They must exist.
    pub read_write_paths: Vec<PathBuf>,
    pub kill_signal: String,
    pub stop_timeout_s: u32,
    pub restart_sec: u32,
}

pub struct SiteSpec {
    /// `[a-z0-9-]+`; names the upstreams, so it must match [`Upstreams::instance`].
    pub instance: String,
    pub domain: String,
    /// "" for all IPv4 addresses, or an IP address such as "127.0.0.1".
    pub listen_addr: String,
    pub http_port: u16,
    pub https_port: u16,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `client_max_body_size` in MiB; keep it equal to Vikunja's files.maxsize.
    pub max_body_mb: u32,
    /// The file [`render_upstreams`] output goes to.
    pub upstream_include: PathBuf,
    /// While this file exists, the site answers every method but GET and HEAD under `/api/` with
    /// 503 and `Retry-After` (the write freeze, `freeze.rs`). The nginx workers must be able to
    /// stat it: every directory above it must be traversable for them.
    pub freeze_flag: PathBuf,
    /// Serve `/` from this directory (Vikunja before 0.23); `None` proxies `/` to the backend,
    /// which embeds the frontend.
    pub static_frontend: Option<PathBuf>,
    /// Add a `/mcp` location; the upstream file must then define the mcp upstream too.
    pub mcp: bool,
    /// The snippet the `/mcp` location includes first: the bearer-token check (`instance::mcp`).
    pub mcp_auth: PathBuf,
    pub access_log: PathBuf,
    pub error_log: PathBuf,
    /// Served on the HTTP port under `/.well-known/acme-challenge/` (HTTP-01 tokens).
    pub acme_challenge_dir: PathBuf,
}

pub struct Upstreams {
    pub instance: String,
    pub backend_port: u16,
    pub mcp_port: Option<u16>,
}

/// A whole nginx.conf for a private prefix (no systemd in the container, CI, the demo): pid, temp
/// paths and logs inside `prefix`, `include /etc/nginx/mime.types;`, and `include <site>`.
pub struct MainSpec {
    pub prefix: PathBuf,
    /// Parent of nginx's temp directories (request bodies, buffered responses). The workers run as
    /// an unprivileged user, so every directory above it must be traversable for them.
    pub temp_dir: PathBuf,
    pub site: PathBuf,
    pub error_log: PathBuf,
    /// Argument of the `user` directive for the workers ("user" or "user group"); only
    /// meaningful when the master runs as root. Without a group nginx looks up a group named
    /// like the user, which fails for Debian's nobody (its group is nogroup).
    pub user: Option<String>,
}

pub fn render_unit(template: &str, s: &ServiceSpec) -> Result<String, RenderError> {
    let t = UNIT_TEMPLATE;
    let unit = unit_name(t, "unit", &s.unit)?;
    let description = systemd_text(t, "description", &s.description)?;

    let exec_start = exec_start(t, &s.exec)?;

    let working_dir = abs_path(t, "working_dir", &s.working_dir)?;
    let working_dir = systemd_text(t, "working_dir", working_dir)?;
    if working_dir.ends_with(char::is_whitespace) {
        return Err(invalid(t, "working_dir", "ends in whitespace, which systemd strips"));
    }
    let user = account_name(t, "user", &s.user)?;
    let group = account_name(t, "group", &s.group)?;

    let mut environment = String::new();
    for (k, v) in &s.env {
        let key_ok = k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !key_ok {
            return Err(invalid(
                t,
                "environment",
                format!("has the variable name {k:?}, which is not [A-Za-z_][A-Za-z0-9_]*"),
            ));
        }
        if let Some(reason) = control_char(v) {
            return Err(invalid(t, "environment", format!("{k} {reason}")));
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%");
        let _ = writeln!(environment, "Environment=\"{k}={v}\"");
    }

    let mut read_write_paths = String::new();
    for p in &s.read_write_paths {
        let p = abs_path(t, "read_write_paths", p)?;
        if let Some(reason) = control_char(p) {
            return Err(invalid(t, "read_write_paths", format!("{p:?} {reason}")));
        }
        let _ = writeln!(read_write_paths, "ReadWritePaths={}", systemd_word(p, false));
    }

    let kill_signal = &s.kill_signal;
    let signal_ok = kill_signal.len() > 3
        && kill_signal.starts_with("SIG")
        && kill_signal[3..].chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+');
    if !signal_ok {
        return Err(invalid(t, "kill_signal", format!("is {kill_signal:?}, not a signal name like SIGINT")));
    }

    fill(
        t,
        template,
        &[
            ("unit", Value::Line(unit.to_owned())),
            ("description", Value::Line(description)),
            ("exec_start", Value::Line(exec_start)),
            ("working_dir", Value::Line(working_dir)),
            ("user", Value::Line(user.to_owned())),
            ("group", Value::Line(group.to_owned())),
            ("environment", Value::Block(environment)),
            ("read_write_paths", Value::Block(read_write_paths)),
            ("kill_signal", Value::Line(kill_signal.clone())),
            ("stop_timeout_s", Value::Line(s.stop_timeout_s.to_string())),
            ("restart_sec", Value::Line(s.restart_sec.to_string())),
        ],
    )
}

/// An `ExecStart=` command line: the absolute program path, then each argument quoted and escaped
/// as systemd needs.
fn exec_start(t: &str, exec: &[String]) -> Result<String, RenderError> {
    let Some(program) = exec.first() else {
        return Err(invalid(t, "exec_start", "is empty: the program path is missing"));
    };
    if !program.starts_with('/') {
        return Err(invalid(t, "exec_start", format!("starts with {program:?}, which is not an absolute path")));
    }
    // argv[0] is not subject to $-expansion, so "$$" there would stay literal; refuse instead.
    if program.contains('$') {
        return Err(invalid(t, "exec_start", "has a `$` in the program path"));
    }
    let mut line = String::new();
    for (i, arg) in exec.iter().enumerate() {
        if let Some(reason) = control_char(arg) {
            return Err(invalid(t, "exec_start", format!("argument {i} {reason}")));
        }
        if i > 0 {
            line.push(' ');
        }
        line.push_str(&systemd_word(arg, true));
    }
    Ok(line)
}

/// A scheduled backup: a oneshot service running the installer's `backup`, and its timer.
pub struct BackupTimerSpec {
    /// Base name of both units without suffix, e.g. "vikunja-main-backup".
    pub unit: String,
    pub description: String,
    /// argv of the backup command, absolute program path first.
    pub exec: Vec<String>,
    /// A systemd calendar expression (`OnCalendar=`), e.g. "*-*-* 03:00:00".
    pub on_calendar: String,
    pub randomized_delay_s: u32,
}

/// Renders (service, timer) of a scheduled backup.
pub fn render_backup_timer(
    service_template: &str,
    timer_template: &str,
    s: &BackupTimerSpec,
) -> Result<(String, String), RenderError> {
    render_timer((BACKUP_SERVICE_TEMPLATE, BACKUP_TIMER_TEMPLATE), service_template, timer_template, s)
}

/// Renders (service, timer) of ACME certificate renewal: the same oneshot-and-timer shape as a
/// scheduled backup, running `cert renew`.
pub fn render_cert_timer(
    service_template: &str,
    timer_template: &str,
    s: &BackupTimerSpec,
) -> Result<(String, String), RenderError> {
    render_timer((CERT_SERVICE_TEMPLATE, CERT_TIMER_TEMPLATE), service_template, timer_template, s)
}

fn render_timer(
    (ts, tt): (&str, &str),
    service_template: &str,
    timer_template: &str,
    s: &BackupTimerSpec,
) -> Result<(String, String), RenderError> {
    let unit = unit_name(ts, "unit", &s.unit)?;
    let description = systemd_text(ts, "description", &s.description)?;
    let service = fill(
        ts,
        service_template,
        &[
            ("unit", Value::Line(unit.to_owned())),
            ("description", Value::Line(description.clone())),
            ("exec_start", Value::Line(exec_start(ts, &s.exec)?)),
        ],
    )?;
    let calendar = systemd_text(tt, "on_calendar", &s.on_calendar)?;
    if calendar.trim().is_empty() {
        return Err(invalid(tt, "on_calendar", "is empty"));
    }
    let timer = fill(
        tt,
        timer_template,
        &[
            ("unit", Value::Line(unit.to_owned())),
            ("description", Value::Line(description)),
            ("on_calendar", Value::Line(calendar)),
            ("randomized_delay_s", Value::Line(s.randomized_delay_s.to_string())),
        ],
    )?;
    Ok((service, timer))
}

// The site template has no conditionals: these snippets fill its `{{root_location}}` and
// `{{mcp_location}}` blocks, rendered with the same checked values as the template itself.
const ROOT_PROXIED: &str = "location / {
    proxy_pass http://vikunja_{{upstream_id}}_backend;
}";

// Before 0.23 the frontend was a separate static build; the API binary still served CalDAV, the
// well-known redirects and /health, which must not fall through to index.html.
const ROOT_STATIC: &str = "location / {
    root {{static_frontend}};
    try_files $uri $uri/ /index.html;
}

location ~ ^/(dav/|\\.well-known/|health$) {
    proxy_pass http://vikunja_{{upstream_id}}_backend;
}";

// Setting any proxy_set_header here drops all inherited ones, hence the full set.
const MCP_LOCATION: &str = "
location /mcp {
    # 401 unless the request carries the instance's bearer token (a 0600 file only root reads).
    include {{mcp_auth}};
    proxy_pass http://vikunja_{{upstream_id}}_mcp;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection \"upgrade\";
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    # MCP streams its responses; buffering would hold them back and the default 60 s read
    # timeout would cut idle sessions.
    proxy_buffering off;
    proxy_read_timeout 1h;
}";

const MCP_UPSTREAM: &str = "
upstream vikunja_{{upstream_id}}_mcp {
    server 127.0.0.1:{{mcp_port}};
    keepalive 16;
}";

pub fn render_site(template: &str, s: &SiteSpec) -> Result<String, RenderError> {
    let t = SITE_TEMPLATE;
    let upstream_id = upstream_id(t, &s.instance)?;
    let domain = nginx_token(t, "domain", &s.domain)?;
    if let Some(c) = domain.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*'))) {
        return Err(invalid(t, "domain", format!("contains {c:?}, which is not valid in a server name")));
    }
    let listen = match s.listen_addr.as_str() {
        "" => String::new(),
        a => match a.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => format!("{ip}:"),
            Ok(IpAddr::V6(ip)) => format!("[{ip}]:"),
            Err(_) => return Err(invalid(t, "listen", format!("is {a:?}, neither empty nor an IP address"))),
        },
    };
    let http_port = port(t, "http_port", s.http_port)?;
    let https_port = port(t, "https_port", s.https_port)?;
    let https_port_suffix = if s.https_port == 443 { String::new() } else { format!(":{https_port}") };

    let mut vars = vec![
        ("instance", Value::Line(s.instance.clone())),
        ("upstream_id", Value::Line(upstream_id)),
        ("domain", Value::Line(domain.to_owned())),
        ("listen", Value::Line(listen)),
        ("http_port", Value::Line(http_port)),
        ("https_port", Value::Line(https_port)),
        ("https_port_suffix", Value::Line(https_port_suffix)),
        ("cert", Value::Line(nginx_path(t, "cert", &s.cert)?.to_owned())),
        ("key", Value::Line(nginx_path(t, "key", &s.key)?.to_owned())),
        ("max_body_mb", Value::Line(s.max_body_mb.to_string())),
        ("upstream_include", Value::Line(nginx_path(t, "upstream_include", &s.upstream_include)?.to_owned())),
        ("freeze_flag", Value::Line(nginx_path(t, "freeze_flag", &s.freeze_flag)?.to_owned())),
        ("access_log", Value::Line(nginx_path(t, "access_log", &s.access_log)?.to_owned())),
        ("error_log", Value::Line(nginx_path(t, "error_log", &s.error_log)?.to_owned())),
        ("acme_challenge_dir", Value::Line(nginx_path(t, "acme_challenge_dir", &s.acme_challenge_dir)?.to_owned())),
    ];
    let root_snippet = match &s.static_frontend {
        Some(dir) => {
            vars.push(("static_frontend", Value::Line(nginx_path(t, "static_frontend", dir)?.to_owned())));
            ROOT_STATIC
        }
        None => ROOT_PROXIED,
    };
    let root_location = fill(t, root_snippet, &vars)?;
    let mcp_location = if s.mcp {
        vars.push(("mcp_auth", Value::Line(nginx_path(t, "mcp_auth", &s.mcp_auth)?.to_owned())));
        fill(t, MCP_LOCATION, &vars)?
    } else {
        String::new()
    };
    vars.push(("root_location", Value::Block(root_location)));
    vars.push(("mcp_location", Value::Block(mcp_location)));
    fill(t, template, &vars)
}

pub fn render_upstreams(template: &str, u: &Upstreams) -> Result<String, RenderError> {
    let t = UPSTREAM_TEMPLATE;
    let mut vars = vec![
        ("instance", Value::Line(u.instance.clone())),
        ("upstream_id", Value::Line(upstream_id(t, &u.instance)?)),
        ("backend_port", Value::Line(port(t, "backend_port", u.backend_port)?)),
    ];
    let mcp_upstream = match u.mcp_port {
        Some(p) => {
            vars.push(("mcp_port", Value::Line(port(t, "mcp_port", p)?)));
            fill(t, MCP_UPSTREAM, &vars)?
        }
        None => String::new(),
    };
    vars.push(("mcp_upstream", Value::Block(mcp_upstream)));
    fill(t, template, &vars)
}

pub fn render_nginx_main(template: &str, m: &MainSpec) -> Result<String, RenderError> {
    let t = MAIN_TEMPLATE;
    let user_directive = match &m.user {
        Some(u) => {
            let names: Vec<&str> = u.split(' ').collect();
            if names.len() > 2 {
                return Err(invalid(t, "user_directive", format!("is {u:?}, not \"user\" or \"user group\"")));
            }
            for name in &names {
                account_name(t, "user_directive", name)?;
            }
            format!("user {};", names.join(" "))
        }
        None => String::new(),
    };
    fill(
        t,
        template,
        &[
            ("user_directive", Value::Line(user_directive)),
            ("prefix", Value::Line(nginx_path(t, "prefix", &m.prefix)?.trim_end_matches('/').to_owned())),
            ("temp_dir", Value::Line(nginx_path(t, "temp_dir", &m.temp_dir)?.trim_end_matches('/').to_owned())),
            ("site", Value::Line(nginx_path(t, "site", &m.site)?.to_owned())),
            ("error_log", Value::Line(nginx_path(t, "error_log", &m.error_log)?.to_owned())),
        ],
    )
}

/// A checked value. `Block`s are built by this module from checked parts, may span lines and
/// must stand alone on their template line; they take that line's indentation.
enum Value {
    Line(String),
    Block(String),
}

impl Value {
    fn text(&self) -> &str {
        match self {
            Value::Line(s) | Value::Block(s) => s,
        }
    }
}

/// Substitutes `{{name}}` placeholders. A line holding only a placeholder whose value is empty is
/// dropped, so optional parts leave no blank lines behind.
fn fill(t: &str, template: &str, vars: &[(&str, Value)]) -> Result<String, RenderError> {
    let lookup = |name: &str| -> Result<&Value, RenderError> {
        let v = vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
            .ok_or_else(|| RenderError::Missing { template: t.to_owned(), placeholder: name.to_owned() })?;
        // The renderers check values against their target syntax; this is the last line of defence.
        if let Value::Line(s) = v {
            if s.contains(['\n', '\r']) {
                return Err(invalid(t, name, "contains a line break"));
            }
        }
        if v.text().contains("{{") {
            return Err(invalid(t, name, "contains `{{`"));
        }
        Ok(v)
    };
    let syntax =
        |line: usize, reason: &str| RenderError::Syntax { template: t.to_owned(), line, reason: reason.to_owned() };

    let mut out = String::with_capacity(template.len() + 512);
    for (i, raw) in template.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let (body, eol) = match raw.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (raw, ""),
        };
        let trimmed = body.trim();
        if let Some(name) = trimmed.strip_prefix("{{").and_then(|r| r.strip_suffix("}}")) {
            if !name.contains("{{") && !name.contains("}}") {
                let name = placeholder_name(name).ok_or_else(|| syntax(line_no, "bad placeholder name"))?;
                let text = lookup(name)?.text();
                if text.is_empty() {
                    continue;
                }
                let indent = &body[..body.len() - body.trim_start().len()];
                for (j, l) in text.lines().enumerate() {
                    if j > 0 {
                        out.push('\n');
                    }
                    if !l.is_empty() {
                        out.push_str(indent);
                        out.push_str(l);
                    }
                }
                out.push_str(eol);
                continue;
            }
        }
        let mut rest = body;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find("}}").ok_or_else(|| syntax(line_no, "`{{` without a closing `}}`"))?;
            let name = placeholder_name(&after[..end]).ok_or_else(|| syntax(line_no, "bad placeholder name"))?;
            match lookup(name)? {
                Value::Line(s) => out.push_str(s),
                Value::Block(_) => {
                    return Err(syntax(line_no, "a multi-line placeholder must stand alone on its line"));
                }
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out.push_str(eol);
    }
    if let Some(pos) = out.find("{{") {
        return Err(syntax(out[..pos].matches('\n').count() + 1, "`{{` left in the output"));
    }
    Ok(out)
}

fn placeholder_name(raw: &str) -> Option<&str> {
    let name = raw.trim();
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    ok.then_some(name)
}

fn invalid(t: &str, placeholder: &str, reason: impl Into<String>) -> RenderError {
    RenderError::Invalid { template: t.to_owned(), placeholder: placeholder.to_owned(), reason: reason.into() }
}

fn control_char(s: &str) -> Option<&'static str> {
    if s.contains(['\n', '\r']) {
        Some("contains a line break")
    } else if s.chars().any(char::is_control) {
        Some("contains a control character")
    } else {
        None
    }
}

/// A free-text systemd value: one line, with `%` escaped because systemd expands specifiers
/// in nearly every setting.
fn systemd_text(t: &str, placeholder: &str, s: &str) -> Result<String, RenderError> {
    match control_char(s) {
        Some(reason) => Err(invalid(t, placeholder, reason)),
        None => Ok(s.replace('%', "%%")),
    }
}

/// One word of a systemd list setting. Quoted only when it has to be, to keep units readable;
/// `$` is escaped only where systemd expands variables (command lines).
fn systemd_word(s: &str, expands_env: bool) -> String {
    let mut w = s.replace('%', "%%");
    if expands_env {
        w = w.replace('$', "$$");
    }
    // A bare `;` would separate commands in ExecStart; `'` and `\` would be unquoted or unescaped.
    let needs_quotes = w.is_empty() || w.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';'));
    if needs_quotes {
        format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        w
    }
}

fn unit_name<'a>(t: &str, placeholder: &str, s: &'a str) -> Result<&'a str, RenderError> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-' | '@')) {
        return Err(invalid(t, placeholder, format!("is {s:?}, not a unit name ([A-Za-z0-9:_.@-]+)")));
    }
    if s.ends_with(".service") {
        return Err(invalid(t, placeholder, "must not end in \".service\""));
    }
    Ok(s)
}

/// A POSIX-portable account name, the form useradd(8) and systemd both accept.
fn account_name<'a>(t: &str, placeholder: &str, s: &'a str) -> Result<&'a str, RenderError> {
    let ok = s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
    if ok {
        Ok(s)
    } else {
        Err(invalid(t, placeholder, format!("is {s:?}, not an account name ([a-z_][a-z0-9_-]*)")))
    }
}

fn abs_path<'a>(t: &str, placeholder: &str, p: &'a Path) -> Result<&'a str, RenderError> {
    let s = p.to_str().ok_or_else(|| invalid(t, placeholder, format!("{p:?} is not valid UTF-8")))?;
    if !p.is_absolute() {
        return Err(invalid(t, placeholder, format!("{s:?} is not an absolute path")));
    }
    Ok(s)
}

/// One bare nginx token: anything else could end the directive, open a block, start a comment
/// or a variable, or split into two arguments.
fn nginx_token<'a>(t: &str, placeholder: &str, s: &'a str) -> Result<&'a str, RenderError> {
    if s.is_empty() {
        return Err(invalid(t, placeholder, "is empty"));
    }
    if let Some(reason) = control_char(s) {
        return Err(invalid(t, placeholder, reason));
    }
    if let Some(c) =
        s.chars().find(|c| c.is_whitespace() || matches!(c, ';' | '{' | '}' | '"' | '\'' | '\\' | '$' | '#'))
    {
        return Err(invalid(t, placeholder, format!("contains {c:?}, which would break the nginx syntax")));
    }
    Ok(s)
}

/// Absolute, because nginx resolves relative paths against its prefix, which differs between
/// the system nginx and a private one.
fn nginx_path<'a>(t: &str, placeholder: &str, p: &'a Path) -> Result<&'a str, RenderError> {
    let s = abs_path(t, placeholder, p)?;
    nginx_token(t, placeholder, s)
}

fn port(t: &str, placeholder: &str, p: u16) -> Result<String, RenderError> {
    if p == 0 {
        return Err(invalid(t, placeholder, "is 0"));
    }
    Ok(p.to_string())
}

/// Upstream and zone names are global to one nginx, so they carry the instance. `_` instead of
/// `-` means a name can never also be a valid host name that proxy_pass might resolve instead.
fn upstream_id(t: &str, instance: &str) -> Result<String, RenderError> {
    let ok = !instance.is_empty() && instance.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(invalid(t, "instance", format!("is {instance:?}, not [a-z0-9-]+")));
    }
    Ok(instance.replace('-', "_"))
}
