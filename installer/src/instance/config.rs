//! `deployment.toml`: everything one Vikunja instance is made of. The seed's deployment.yaml
//! fields (instance, container, node, database, network, resources, ssl, admin, metadata) plus the
//! Vikunja version and source, ports, components and retention. Unknown keys are refused (a typo
//! must not silently fall back to a default) and every value is checked before anything changes.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Deployment {
    pub instance: InstanceSection,
    pub container: Container,
    pub vikunja: VikunjaSource,
    pub database: Database,
    pub network: Network,
    pub ports: Ports,
    pub resources: Resources,
    pub ssl: Ssl,
    pub admin: Admin,
    pub components: Components,
    pub files: Files,
    pub health: Health,
    pub retention: Retention,
    pub mail: Mail,
    pub auth: Auth,
    pub metadata: Metadata,
    pub metrics: crate::instance::observe::Metrics,
    pub notify: crate::instance::observe::Notify,
    /// Automatic updates (`update --auto`): channel, windows, pins, skips.
    pub updates: crate::instance::update_policy::Updates,
}

/// `[instance]` of deployment.toml (its name and number); not `instance::Instance`, which is an
/// installed instance opened with its layout and settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InstanceSection {
    /// `[a-z][a-z0-9-]*`: names directories, units and upstreams.
    pub name: String,
    /// 1 for the first instance on a host, 2 for the next: chooses the default ports.
    pub number: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Container {
    /// Proxmox CT id; 0 = not in a Proxmox container (or not known yet).
    pub id: u32,
    pub hostname: String,
    pub node: String,
    /// The rest is used on the Proxmox host (`vikunja-installer create`): see `crate::host`.
    /// OS template: a file name from `pveam available`, or a prefix like "debian-12" (newest match);
    /// "debian" is the newest Debian offered (the current stable).
    pub template: String,
    /// Storage for the root disk (empty: the first active one holding `rootdir`).
    pub storage: String,
    /// Storage holding templates (empty: the first active one holding `vztmpl`).
    pub template_storage: String,
    pub bridge: String,
    pub vlan: Option<u16>,
    /// "" (none), "auto" (SLAAC), "dhcp", or an address with prefix like fd00::10/64.
    pub ipv6: String,
    pub gateway6: String,
    /// DNS server for the container (empty: the host's, as pct does by default).
    pub nameserver: String,
    pub searchdomain: String,
    /// File with SSH public keys for root in the container.
    pub ssh_public_keys: Option<PathBuf>,
    /// Proxmox tags, separated by ';'.
    pub tags: String,
    pub onboot: bool,
    pub swap_mb: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VikunjaSource {
    /// Release to install, as Vikunja names it: `v2.5.0`.
    pub version: String,
    /// Base URL of the release directories: `{base}/{version}/vikunja-{version}-linux-{arch}-full.zip`.
    pub download_base: String,
    /// A local zip for offline installs; overrides the download.
    pub artifact: Option<PathBuf>,
    /// Expected sha256 of the zip itself, when pinned.
    pub sha256: Option<String>,
    /// Whether anyone who reaches the site may create an account (Vikunja's
    /// `service.enableregistration`); without it the admin creates users.
    pub registration: bool,
    /// Vikunja's `service.timezone`, a tz database name like Europe/Berlin; empty: the
    /// container's (/etc/timezone or the /etc/localtime link).
    pub timezone: String,
    /// Any other `config.yml` key, passed through (dotted keys or nested tables); keys the
    /// installer owns are refused, secrets only as `<key>.file`. See `crate::instance::settings`.
    pub settings: toml::Table,
}

/// Vikunja's mailer (`mailer.*`); no host: Vikunja sends no mail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Mail {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// File holding the SMTP password (owner-only); copied to `config/.mail-password`.
    pub password_file: Option<PathBuf>,
    /// The sender address (`mailer.fromemail`).
    pub from: String,
    /// "starttls": upgrade when the server offers it (Vikunja's default); "tls": TLS from the
    /// first byte, usually port 465 (`mailer.forcessl`).
    pub tls: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// OpenID Connect providers (`[[auth.openid]]`, Vikunja's `auth.openid.providers`).
    pub openid: Vec<OpenId>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OpenId {
    /// Shown on the login page.
    pub name: String,
    /// The provider key, which ends the redirect URL (`<public url>auth/openid/<key>`); empty:
    /// the name's letters and digits, lowercased.
    pub key: String,
    /// The provider's issuer URL (its `/.well-known/openid-configuration` must answer).
    pub auth_url: String,
    pub client_id: String,
    /// File holding the client secret (owner-only); copied into the config directory.
    pub client_secret_file: Option<PathBuf>,
    /// Empty: Vikunja's default, "openid email profile".
    pub scope: String,
    pub logout_url: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DbType {
    Sqlite,
    Postgres,
    Mysql,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    #[serde(rename = "type")]
    pub kind: DbType,
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    /// File holding the password (read once, then kept in `config/.db-password`, mode 0600).
    /// Never the password itself: it would end up in a world-readable config.
    pub password_file: Option<PathBuf>,
    pub sslmode: String,
    /// PostgreSQL on this machine, set up by `install`: the distribution's server (installed when
    /// missing), a role with a generated password (`config/.db-password`) and the database.
    pub provision: bool,
    /// The server's local socket directory, where `provision` connects as the `postgres` account.
    pub socket_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    pub domain: String,
    /// Container address in CIDR form (`192.168.1.100/24`) or "dhcp"; used on the Proxmox host.
    pub ip_address: String,
    pub gateway: String,
    /// Address nginx listens on; empty = all.
    pub listen_address: String,
    pub http_port: u16,
    pub https_port: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ports {
    pub backend_blue: u16,
    pub backend_green: u16,
    pub frontend_blue: u16,
    pub frontend_green: u16,
    pub mcp_blue: u16,
    pub mcp_green: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Resources {
    pub cores: u32,
    pub memory_mb: u32,
    pub disk_gb: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ssl {
    /// Both set: the user's certificate; both unset: a self-signed one is generated.
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    /// A certificate from an ACME CA (HTTP-01 on `network.http_port`), renewed by a timer.
    pub acme: bool,
    pub acme_email: String,
    /// Let's Encrypt production by default; `ACME_STAGING` for trials (untrusted certificates).
    pub acme_directory: String,
    /// When obtaining one fails: serve the self-signed certificate instead of failing.
    pub acme_fallback_self_signed: bool,
}

pub const ACME_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
pub const ACME_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    pub email: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Components {
    pub mcp: bool,
    /// The MCP service's command line; `{port}`, `{api_url}` and `{venv}` (the environment the
    /// pinned packages below are installed into) are filled in. It must serve MCP over streamable
    /// HTTP at `/mcp` on 127.0.0.1:{port}; the Vikunja API token arrives as `VIKUNJA_TOKEN`.
    pub mcp_command: Vec<String>,
    /// The Python that makes the MCP server's virtual environment (needs Debian's python3-venv).
    pub mcp_python: PathBuf,
    /// The Vikunja MCP server from PyPI as `name==version`, and the sha256 of its wheel.
    pub mcp_server: String,
    pub mcp_server_sha256: String,
    /// The stdio ↔ streamable-HTTP bridge from PyPI as `name==version`, and its wheel's sha256.
    pub mcp_bridge: String,
    pub mcp_bridge_sha256: String,
    /// A file whose first line is a Vikunja API token for the MCP server (Settings → API
    /// Tokens); required with `mcp = true`. It is copied into the instance (0600).
    pub mcp_api_token_file: Option<PathBuf>,
    /// Serve a separately built frontend from this directory instead of the embedded one.
    pub frontend_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Files {
    /// Attachment size limit: Vikunja's files.maxsize and nginx's client_max_body_size.
    pub max_size_mb: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Health {
    pub interval_s: u64,
    pub timeout_s: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    pub backups: u32,
    pub releases: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Metadata {
    pub created_at: String,
    pub created_by: String,
    pub installer_version: String,
}

pub const DEFAULT_VIKUNJA_VERSION: &str = "v2.5.0";
pub const DEFAULT_DOWNLOAD_BASE: &str = "https://dl.vikunja.io/vikunja";
/// PyPI's rmc-vikunja-mcp: a stdio server (VIKUNJA_URL, VIKUNJA_TOKEN) on the reference SDK `mcp`
/// 1.x. npm has no Vikunja MCP server at all; PyPI's vikunja-mcp pulls in fastmcp and its web
/// stack, altiplano needs `mcp` 2.x, which the bridge cannot share a venv with.
pub const DEFAULT_MCP_SERVER: (&str, &str) =
    ("rmc-vikunja-mcp==0.4.6", "06feef3d12a29e9d3276de67e822ce28ba611a65f6f8140502a39a0b4a414fa7");
/// PyPI's mcp-proxy: runs a stdio server as a child and serves it over streamable HTTP at /mcp.
pub const DEFAULT_MCP_BRIDGE: (&str, &str) =
    ("mcp-proxy==0.13.0", "4058835aa81db752e9601011c36028eb387405f628222bb48c729ee734c44536");
pub const DEFAULT_MCP_COMMAND: [&str; 6] = [
    "{venv}/bin/mcp-proxy",
    "--host=127.0.0.1",
    "--port={port}",
    "--pass-environment",
    "--",
    "{venv}/bin/rmc-vikunja-mcp",
];

impl Ports {
    /// The seed's pattern: instance n gets backend/frontend ports 8080+10(n-1) and MCP 3456+2(n-1).
    pub fn for_instance(number: u16) -> Ports {
        let n = number.max(1) - 1;
        let (b, m) = (8080 + 10 * n, 3456 + 2 * n);
        Ports {
            backend_blue: b,
            backend_green: b + 1,
            frontend_blue: b + 2,
            frontend_green: b + 3,
            mcp_blue: m,
            mcp_green: m + 1,
        }
    }
}

macro_rules! defaults {
    ($($t:ty => $e:expr),* $(,)?) => { $(impl Default for $t { fn default() -> Self { $e } })* };
}

defaults! {
    Deployment => Deployment::for_instance("main", 1),
    InstanceSection => InstanceSection { name: "main".into(), number: 1 },
    Container => Container {
        id: 0,
        hostname: String::new(),
        node: String::new(),
        template: "debian".into(),
        storage: String::new(),
        template_storage: String::new(),
        bridge: "vmbr0".into(),
        vlan: None,
        ipv6: String::new(),
        gateway6: String::new(),
        nameserver: String::new(),
        searchdomain: String::new(),
        ssh_public_keys: None,
        tags: "vikunja-pve;vikunja".into(),
        onboot: true,
        swap_mb: 512,
    },
    VikunjaSource => VikunjaSource {
        version: DEFAULT_VIKUNJA_VERSION.into(),
        download_base: DEFAULT_DOWNLOAD_BASE.into(),
        artifact: None,
        sha256: None,
        registration: true,
        timezone: String::new(),
        settings: toml::Table::new(),
    },
    Database => Database {
        kind: DbType::Sqlite,
        host: String::new(),
        port: 0,
        name: "vikunja".into(),
        user: "vikunja".into(),
        password_file: None,
        sslmode: "disable".into(),
        provision: false,
        socket_dir: "/var/run/postgresql".into(),
    },
    Network => Network {
        domain: "vikunja.local".into(),
        ip_address: "dhcp".into(),
        gateway: String::new(),
        listen_address: String::new(),
        http_port: 80,
        https_port: 443,
    },
    Ports => Ports::for_instance(1),
    Resources => Resources { cores: 2, memory_mb: 2048, disk_gb: 8 },
    Ssl => Ssl {
        cert_path: None,
        key_path: None,
        acme: false,
        acme_email: String::new(),
        acme_directory: ACME_PRODUCTION.into(),
        acme_fallback_self_signed: false,
    },
    Admin => Admin { email: String::new() },
    Components => Components {
        mcp: false,
        mcp_command: DEFAULT_MCP_COMMAND.iter().map(|s| s.to_string()).collect(),
        mcp_python: "/usr/bin/python3".into(),
        mcp_server: DEFAULT_MCP_SERVER.0.into(),
        mcp_server_sha256: DEFAULT_MCP_SERVER.1.into(),
        mcp_bridge: DEFAULT_MCP_BRIDGE.0.into(),
        mcp_bridge_sha256: DEFAULT_MCP_BRIDGE.1.into(),
        mcp_api_token_file: None,
        frontend_dir: None,
    },
    Files => Files { max_size_mb: 20 },
    Health => Health { interval_s: 5, timeout_s: 60 },
    Retention => Retention { backups: 7, releases: 3 },
    Mail => Mail {
        host: String::new(),
        port: 587,
        user: String::new(),
        password_file: None,
        from: String::new(),
        tls: "starttls".into(),
    },
}

impl Deployment {
    pub fn for_instance(name: &str, number: u16) -> Deployment {
        Deployment {
            instance: InstanceSection { name: name.into(), number },
            container: Container::default(),
            vikunja: VikunjaSource::default(),
            database: Database::default(),
            network: Network::default(),
            ports: Ports::for_instance(number),
            resources: Resources::default(),
            ssl: Ssl::default(),
            admin: Admin::default(),
            components: Components::default(),
            files: Files::default(),
            health: Health::default(),
            retention: Retention::default(),
            mail: Mail::default(),
            auth: Auth::default(),
            metadata: Metadata::default(),
            metrics: Default::default(),
            notify: Default::default(),
            updates: Default::default(),
        }
    }

    /// Parses a config file. When `[instance] number` is given but `[ports]` is not, the ports follow
    /// the instance number's pattern.
    pub fn parse(text: &str, origin: &Path) -> Result<Deployment, ConfigError> {
        let mut d: Deployment = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            file: origin.to_path_buf(),
            message: e.message().to_string(),
            span: e.span().map(|s| line_of(text, s.start)),
        })?;
        let raw: toml::Table = toml::from_str(text).unwrap_or_default();
        if !raw.contains_key("ports") {
            d.ports = Ports::for_instance(d.instance.number);
        }
        Ok(d)
    }

    pub fn load(path: &Path) -> Result<Deployment, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::Read { file: path.to_path_buf(), message: e.to_string() })?;
        Deployment::parse(&text, path)
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!("# vikunja-pve deployment of instance {}. Written by vikunja-installer.\n{body}", self.instance.name)
    }

    /// The zip to fetch: `vikunja-v2.5.0-linux-amd64-full.zip`.
    pub fn artifact_name(&self) -> String {
        format!("vikunja-{}-linux-{}-full.zip", self.vikunja.version, arch())
    }

    pub fn artifact_url(&self) -> String {
        format!(
            "{}/{}/{}",
            self.vikunja.download_base.trim_end_matches('/'),
            self.vikunja.version,
            self.artifact_name()
        )
    }

    /// The URL users reach Vikunja at (Vikunja's `service.publicurl`).
    pub fn public_url(&self) -> String {
        match self.network.https_port {
            443 => format!("https://{}/", self.network.domain),
            p => format!("https://{}:{p}/", self.network.domain),
        }
    }

    /// Every problem at once, so one edit fixes them all.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        let mut bad = |field: &str, value: &dyn fmt::Display, allowed: &str| {
            errs.push(FieldError { field: field.into(), value: value.to_string(), allowed: allowed.into() });
        };
        let d = self;
        if !is_name(&d.instance.name, 31) {
            bad("instance.name", &d.instance.name, "1-31 characters: a-z, 0-9 and '-', starting with a letter");
        }
        if !(1..=50).contains(&d.instance.number) {
            bad("instance.number", &d.instance.number, "1 to 50");
        }
        if d.container.id != 0 && !(100..=999_999_999).contains(&d.container.id) {
            bad("container.id", &d.container.id, "a Proxmox CT id from 100 to 999999999 (or 0 for none)");
        }
        if !d.container.hostname.is_empty() && !is_hostname(&d.container.hostname) {
            bad("container.hostname", &d.container.hostname, "a host name: letters, digits, '-' and '.'");
        }
        if !is_vikunja_version(&d.vikunja.version) {
            bad("vikunja.version", &d.vikunja.version, "a Vikunja release like v2.5.0");
        } else if let Err(why) = supported_vikunja(&d.vikunja.version) {
            bad("vikunja.version", &d.vikunja.version, &why);
        }
        if !d.vikunja.download_base.starts_with("https://") {
            bad("vikunja.download_base", &d.vikunja.download_base, "an https:// URL (plain http is refused)");
        }
        if let Some(a) = &d.vikunja.artifact {
            if !a.is_file() {
                bad("vikunja.artifact", &a.display(), "an existing zip file");
            }
        }
        if let Some(s) = &d.vikunja.sha256 {
            if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                bad("vikunja.sha256", s, "64 hex digits");
            }
        }
        match d.database.kind {
            DbType::Sqlite => {}
            DbType::Postgres | DbType::Mysql => {
                if !is_hostname(&d.database.host) && d.database.host.parse::<std::net::IpAddr>().is_err() {
                    bad("database.host", &d.database.host, "the database server's host name or IP address");
                }
                if d.database.port == 0 {
                    bad("database.port", &d.database.port, "1 to 65535 (5432 for PostgreSQL, 3306 for MySQL)");
                }
                if d.database.password_file.as_ref().is_some_and(|p| !p.is_file()) {
                    bad(
                        "database.password_file",
                        &d.database.password_file.as_ref().unwrap().display(),
                        "an existing file",
                    );
                }
            }
        }
        if d.database.provision {
            if d.database.kind != DbType::Postgres {
                bad("database.provision", &true, "only with type = \"postgres\" (a server on this machine)");
            }
            if !["127.0.0.1", "::1", "localhost"].contains(&d.database.host.as_str()) {
                bad(
                    "database.host",
                    &d.database.host,
                    "127.0.0.1, ::1 or localhost with provision = true (a local server)",
                );
            }
            if d.database.password_file.is_some() {
                bad("database.password_file", &"(set)", "none with provision = true (the password is generated)");
            }
        }
        for (f, v) in [("database.name", &d.database.name), ("database.user", &d.database.user)] {
            if v.is_empty() || v.len() > 63 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                bad(f, v, "1-63 characters: letters, digits, '_' and '-'");
            }
        }
        if !["disable", "require", "verify-ca", "verify-full"].contains(&d.database.sslmode.as_str()) {
            bad("database.sslmode", &d.database.sslmode, "disable, require, verify-ca or verify-full");
        }
        if !is_hostname(&d.network.domain) {
            bad("network.domain", &d.network.domain, "a host name like vikunja.example.com");
        }
        if d.network.ip_address != "dhcp" && !is_cidr(&d.network.ip_address) {
            bad(
                "network.ip_address",
                &d.network.ip_address,
                "dhcp or an IPv4 address with prefix, like 192.168.1.100/24",
            );
        }
        if !d.network.gateway.is_empty() && d.network.gateway.parse::<std::net::Ipv4Addr>().is_err() {
            bad("network.gateway", &d.network.gateway, "an IPv4 address");
        }
        if !d.network.listen_address.is_empty() && d.network.listen_address.parse::<std::net::IpAddr>().is_err() {
            bad("network.listen_address", &d.network.listen_address, "an IP address, or empty for all");
        }
        let p = &d.ports;
        let all = [
            ("network.http_port", d.network.http_port),
            ("network.https_port", d.network.https_port),
            ("ports.backend_blue", p.backend_blue),
            ("ports.backend_green", p.backend_green),
            ("ports.frontend_blue", p.frontend_blue),
            ("ports.frontend_green", p.frontend_green),
            ("ports.mcp_blue", p.mcp_blue),
            ("ports.mcp_green", p.mcp_green),
        ];
        for (i, (f, v)) in all.iter().enumerate() {
            if *v == 0 {
                bad(f, v, "1 to 65535");
            } else if let Some((g, _)) = all[..i].iter().find(|(_, w)| w == v) {
                bad(f, v, &format!("a port not already used by {g}"));
            }
        }
        if !(1..=256).contains(&d.resources.cores) {
            bad("resources.cores", &d.resources.cores, "1 to 256");
        }
        if !(512..=1_048_576).contains(&d.resources.memory_mb) {
            bad("resources.memory_mb", &d.resources.memory_mb, "512 to 1048576 (MiB)");
        }
        if !(4..=65_536).contains(&d.resources.disk_gb) {
            bad("resources.disk_gb", &d.resources.disk_gb, "4 to 65536 (GiB)");
        }
        match (&d.ssl.cert_path, &d.ssl.key_path) {
            (None, None) => {}
            (Some(c), Some(k)) => {
                for (f, path) in [("ssl.cert_path", c), ("ssl.key_path", k)] {
                    if !path.is_file() {
                        bad(f, &path.display(), "an existing PEM file");
                    }
                }
            }
            _ => bad("ssl", &"only one of cert_path and key_path", "both (your certificate) or neither (self-signed)"),
        }
        if d.ssl.acme {
            if d.ssl.cert_path.is_some() {
                bad("ssl.acme", &true, "false while cert_path and key_path name your own certificate");
            }
            if !is_email(&d.ssl.acme_email) {
                bad("ssl.acme_email", &d.ssl.acme_email, "the e-mail address the CA sends expiry notices to");
            }
            if !d.ssl.acme_directory.starts_with("https://") {
                bad(
                    "ssl.acme_directory",
                    &d.ssl.acme_directory,
                    &format!("an https:// directory URL, like {ACME_PRODUCTION} (staging: {ACME_STAGING})"),
                );
            }
            if !is_hostname(&d.network.domain) || d.network.domain.parse::<std::net::IpAddr>().is_ok() {
                bad("network.domain", &d.network.domain, "a DNS name that resolves to this container, for ACME");
            }
        }
        if !d.admin.email.is_empty() && !is_email(&d.admin.email) {
            bad("admin.email", &d.admin.email, "an e-mail address like admin@example.com");
        }
        if d.components.mcp {
            crate::instance::mcp::validate(&d.components, &mut bad);
        }
        if let Some(f) = &d.components.frontend_dir {
            if !f.is_dir() {
                bad("components.frontend_dir", &f.display(), "an existing directory");
            }
        }
        if !(1..=10_240).contains(&d.files.max_size_mb) {
            bad("files.max_size_mb", &d.files.max_size_mb, "1 to 10240");
        }
        if d.health.interval_s == 0 || d.health.timeout_s < d.health.interval_s {
            bad(
                "health",
                &format!("interval_s={} timeout_s={}", d.health.interval_s, d.health.timeout_s),
                "interval_s ≥ 1 and timeout_s ≥ interval_s",
            );
        }
        if d.retention.backups == 0 {
            bad("retention.backups", &d.retention.backups, "1 or more");
        }
        if d.retention.releases < 2 {
            bad("retention.releases", &d.retention.releases, "2 or more (the active and the previous release)");
        }
        crate::instance::settings::validate(d, &mut bad);
        crate::instance::observe::validate(&d.metrics, &d.notify, &mut bad);
        crate::instance::update_policy::validate(&d.updates, &mut bad);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errs))
        }
    }
}

pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

pub fn is_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_cidr(s: &str) -> bool {
    s.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| (1..=32).contains(&l))
    })
}

pub fn is_email(s: &str) -> bool {
    s.split_once('@')
        .is_some_and(|(user, host)| !user.is_empty() && !user.contains(char::is_whitespace) && is_hostname(host))
}

/// The oldest Vikunja this installer deploys (shared/reference/vikunja.md, corrections).
pub const MIN_VIKUNJA: &str = "v2.3.0";

/// Refuses releases below `MIN_VIKUNJA`, with the reason: blue-green needs one secret shared by
/// both colours, and before v2.3.0 there is no `service.secret` to share.
pub fn supported_vikunja(version: &str) -> Result<(), String> {
    let parse = |v: &str| manifests::Version::parse(v.trim_start_matches('v')).ok();
    match (parse(version), parse(MIN_VIKUNJA)) {
        (Some(v), Some(m)) if (v.major, v.minor, v.patch) < (m.major, m.minor, m.patch) => Err(format!(
            "{MIN_VIKUNJA} or newer: Vikunja {version} has no service.secret (added in {MIN_VIKUNJA}), so each colour \
             would sign logins with its own random secret and every switch would log everyone out"
        )),
        _ => Ok(()),
    }
}

fn is_vikunja_version(s: &str) -> bool {
    s.strip_prefix('v').is_some_and(|v| manifests::Version::parse(v).is_ok())
}

#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub value: String,
    pub allowed: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {message}")]
    Read { file: PathBuf, message: String },
    #[error("{file}{}: {message}", span.map(|l| format!(" line {l}")).unwrap_or_default())]
    Syntax { file: PathBuf, message: String, span: Option<usize> },
    #[error("invalid deployment settings:\n{}", .0.iter().map(|e| format!("  {} = {:?}: allowed: {}", e.field, e.value, e.allowed)).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldError>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vikunja_below_v2_3_0_is_refused_with_the_reason() {
        for ok in ["v2.3.0", "v2.3.0-rc1", "v2.5.0", "v3.0.0"] {
            assert_eq!(supported_vikunja(ok), Ok(()), "{ok}");
        }
        for old in ["v2.2.9", "v1.0.0", "v0.24.6"] {
            let why = supported_vikunja(old).unwrap_err();
            assert!(why.contains("no service.secret") && why.contains("log everyone out"), "{why}");
        }
        let mut d = Deployment::default();
        d.vikunja.version = "v0.24.6".into();
        let e = d.validate().unwrap_err().to_string();
        assert!(e.contains("vikunja.version = \"v0.24.6\": allowed: v2.3.0 or newer"), "{e}");
    }

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let d = Deployment::default();
        d.validate().unwrap();
        assert_eq!(Deployment::parse(&d.to_toml(), Path::new("x")).unwrap(), d);
    }

    #[test]
    fn ports_follow_the_instance_number_unless_given() {
        let d = Deployment::parse("[instance]\nname = \"team\"\nnumber = 2\n", Path::new("x")).unwrap();
        assert_eq!((d.ports.backend_blue, d.ports.backend_green, d.ports.mcp_blue), (8090, 8091, 3458));
        let d = Deployment::parse("[instance]\nnumber = 2\n[ports]\nbackend_blue = 9000\n", Path::new("x")).unwrap();
        assert_eq!(d.ports.backend_blue, 9000);
    }

    #[test]
    fn a_typo_is_an_error_with_its_line() {
        let e = Deployment::parse("[database]\ntyp = \"sqlite\"\n", Path::new("d.toml")).unwrap_err().to_string();
        assert!(e.contains("d.toml line 2") && e.contains("typ"), "{e}");
        let e = Deployment::parse("[database]\ntype = \"oracle\"\n", Path::new("d.toml")).unwrap_err().to_string();
        assert!(e.contains("oracle"), "{e}");
    }

    #[test]
    fn validation_names_field_value_and_what_is_allowed() {
        let mut d = Deployment::default();
        d.instance.name = "Main".into();
        d.database.kind = DbType::Postgres;
        d.network.https_port = d.ports.backend_blue;
        d.vikunja.download_base = "http://dl.example".into();
        let ConfigError::Invalid(errs) = d.validate().unwrap_err() else { panic!() };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["instance.name", "vikunja.download_base", "database.host", "database.port", "ports.backend_blue"]
        );
        assert!(errs[4].allowed.contains("network.https_port"));
        assert_eq!(errs[0].value, "Main");
    }

    #[test]
    fn acme_needs_an_email_an_https_directory_a_dns_name_and_no_own_certificate() {
        let acme = |extra: &str| {
            Deployment::parse(
                &format!("[network]\ndomain = \"tasks.example.org\"\n[ssl]\nacme = true\n{extra}"),
                Path::new("d.toml"),
            )
            .unwrap()
        };
        let ok = acme("acme_email = \"admin@example.org\"\n");
        ok.validate().unwrap();
        assert_eq!(ok.ssl.acme_directory, ACME_PRODUCTION);
        assert!(!ok.ssl.acme_fallback_self_signed);
        let fields = |d: Deployment| match d.validate().unwrap_err() {
            ConfigError::Invalid(errs) => errs.into_iter().map(|e| (e.field, e.allowed)).collect::<Vec<_>>(),
            e => panic!("{e}"),
        };
        let f = fields(acme(""));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].0, "ssl.acme_email");
        let f = fields(acme("acme_email = \"admin@example.org\"\nacme_directory = \"http://ca.example/dir\"\n"));
        assert_eq!(f[0].0, "ssl.acme_directory");
        assert!(f[0].1.contains(ACME_STAGING), "the staging URL is offered: {}", f[0].1);
        let mut d = ok.clone();
        d.network.domain = "192.0.2.7".into();
        assert_eq!(fields(d)[0].0, "network.domain");
        let mut d = ok;
        d.ssl.cert_path = Some("/nonexistent/c.pem".into());
        d.ssl.key_path = Some("/nonexistent/k.pem".into());
        assert!(fields(d).iter().any(|(f, a)| f == "ssl.acme" && a.contains("cert_path")));
    }
}
