//! `vikunja-installer create` on the Proxmox host: prerequisites, settings (wizard or
//! deployment.toml), template, `pct create` (always unprivileged with nesting), start, wait for
//! running and an address, push the installer into the container and run the deployment engine
//! there. A failure once the container exists reports what was done and offers keep, remove or
//! retry.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use manifests::{build_info, Exit};

use super::pve::{self, strings, PveError, Runner};
use super::registry::{Entry, Registry};
use super::{fail, HOST_TOOLS};
use crate::instance::config::{Deployment, FieldError, Ports};
use crate::report::{note, say};
use crate::ui::Terminal;

#[derive(Default)]
pub struct Options {
    pub config: Option<PathBuf>,
    /// `--yes` or VIKUNJA_YES: the defaults, no questions.
    pub yes: bool,
    pub dry_run: bool,
    pub root: PathBuf,
    /// The cluster node to create on (None: this one; "auto": the one with the most room).
    pub node: Option<String>,
    /// Register the container with the HA manager, in this HA group if one is given.
    pub ha: bool,
    pub ha_group: Option<String>,
}

/// Inside every container: where the installer, its settings and pushed files live.
pub const CT_HOME: &str = "/opt/vikunja-pve";
pub const CT_ETC: &str = "/etc/vikunja-pve";
pub const CT_BIN: &str = "/usr/local/bin/vikunja-installer";
pub const CT_CA: &str = "/etc/vikunja-pve/ca-bundle.pem";
const PACKAGES: &str = "nginx ca-certificates";

/// The container settings `Deployment::validate` does not know about.
pub fn container_errors(d: &Deployment) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut bad = |field: &str, value: String, allowed: &str| {
        errs.push(FieldError { field: field.into(), value, allowed: allowed.into() })
    };
    let c = &d.container;
    if c.id == 0 {
        // 0 = take `pvesh get /cluster/nextid`.
    } else if !(100..=999_999_999).contains(&c.id) {
        bad("container.id", c.id.to_string(), "a Proxmox CT id from 100 to 999999999 (or 0: the next free one)");
    }
    if c.template.is_empty() || c.template.contains('/') {
        bad("container.template", c.template.clone(), "a template file name or a prefix like debian-12");
    }
    let ifname =
        |s: &str| !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ifname(&c.bridge) {
        bad("container.bridge", c.bridge.clone(), "a bridge name like vmbr0");
    }
    if c.vlan.is_some_and(|v| !(1..=4094).contains(&v)) {
        bad("container.vlan", format!("{:?}", c.vlan), "1 to 4094, or leave it out");
    }
    let v6 = |s: &str| {
        s.split_once('/').is_some_and(|(a, l)| {
            a.parse::<std::net::Ipv6Addr>().is_ok() && l.parse::<u8>().is_ok_and(|l| (1..=128).contains(&l))
        })
    };
    if !(c.ipv6.is_empty() || c.ipv6 == "auto" || c.ipv6 == "dhcp" || v6(&c.ipv6)) {
        bad("container.ipv6", c.ipv6.clone(), "empty (none), auto, dhcp or an address with prefix like fd00::10/64");
    }
    if !c.gateway6.is_empty() && (c.gateway6.parse::<std::net::Ipv6Addr>().is_err() || !v6(&c.ipv6)) {
        bad("container.gateway6", c.gateway6.clone(), "an IPv6 address, with a static container.ipv6");
    }
    if !c.nameserver.is_empty() && c.nameserver.split([' ', ',']).any(|n| n.parse::<std::net::IpAddr>().is_err()) {
        bad("container.nameserver", c.nameserver.clone(), "IP addresses, or empty for the host's");
    }
    if !c.searchdomain.is_empty() && !crate::instance::config::is_hostname(&c.searchdomain) {
        bad("container.searchdomain", c.searchdomain.clone(), "a domain name");
    }
    if let Some(k) = &c.ssh_public_keys {
        if !k.is_file() {
            bad("container.ssh_public_keys", k.display().to_string(), "an existing file of SSH public keys");
        }
    }
    if !c.tags.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.;+".contains(&b)) {
        bad("container.tags", c.tags.clone(), "lower-case letters, digits, '-', '_', '.', '+', separated by ';'");
    }
    if c.swap_mb > 1_048_576 {
        bad("container.swap_mb", c.swap_mb.to_string(), "0 to 1048576 (MiB)");
    }
    if d.network.ip_address == "dhcp" && !d.network.gateway.is_empty() {
        bad("network.gateway", d.network.gateway.clone(), "empty with DHCP (the DHCP server gives the gateway)");
    }
    errs
}

fn invalid(errs: Vec<FieldError>) -> anyhow::Error {
    fail(Exit::Usage, crate::instance::config::ConfigError::Invalid(errs).to_string())
}

/// Instance numbers choose the default ports (the seed's +10 pattern): the lowest free one.
fn assign_number(d: &mut Deployment, existing: &[Entry]) {
    if !existing.iter().any(|e| e.number == d.instance.number) {
        return;
    }
    let defaults = d.ports == Ports::for_instance(d.instance.number);
    let n = (1..=50).find(|n| !existing.iter().any(|e| e.number == *n)).unwrap_or(50);
    d.instance.number = n;
    if defaults {
        d.ports = Ports::for_instance(n);
    }
}

/// The built-in name and domain when this host has none of that name yet; `main2` and
/// `main2.vikunja.local` for the second, so the defaults never clash with an instance.
fn fresh_name(d: &mut Deployment, existing: &[Entry]) {
    let taken = |name: &str, domain: &str| existing.iter().any(|e| e.name == name || e.domain == domain);
    if !taken(&d.instance.name, &d.network.domain) {
        return;
    }
    let base = d.instance.name.clone();
    if let Some(n) = (2..100).find(|n| !taken(&format!("{base}{n}"), &format!("{base}{n}.{}", d.network.domain))) {
        d.network.domain = format!("{base}{n}.{}", d.network.domain);
        d.instance.name = format!("{base}{n}");
    }
}

fn uniqueness(d: &Deployment, existing: &[Entry]) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for e in existing {
        let mut clash = |field: &str, value: String, what: &str| {
            errs.push(FieldError {
                field: field.into(),
                value,
                allowed: format!(
                    "a {what} not used by instance {} (CT {}); see vikunja-installer list",
                    e.name, e.ctid
                ),
            })
        };
        if e.name == d.instance.name {
            clash("instance.name", e.name.clone(), "name");
        }
        if e.domain == d.network.domain {
            clash("network.domain", e.domain.clone(), "domain");
        }
        if d.container.id != 0 && e.ctid == d.container.id {
            clash("container.id", e.ctid.to_string(), "CT id");
        }
        let addr = d.network.ip_address.split('/').next().unwrap_or_default();
        if d.network.ip_address != "dhcp" && e.address == addr {
            clash("network.ip_address", d.network.ip_address.clone(), "address");
        }
    }
    errs
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

pub fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// Root, a Proxmox VE host, and the commands we call; the PVE version on success.
pub fn check_host(r: &Runner) -> Result<String> {
    if !is_root() {
        return Err(fail(
            Exit::Prerequisite,
            "run this as root on the Proxmox VE host (pct needs root): sudo -i, then run it again",
        ));
    }
    if !on_path("pveversion") {
        return Err(fail(
            Exit::Prerequisite,
            "pveversion was not found: this is not a Proxmox VE host. Run `create` on the Proxmox host; inside a \
             container or on another machine use `vikunja-installer install`",
        ));
    }
    let missing: Vec<&str> = HOST_TOOLS.iter().copied().filter(|c| !on_path(c)).collect();
    if !missing.is_empty() {
        return Err(fail(
            Exit::Prerequisite,
            format!(
                "missing Proxmox commands: {} (package pve-container / pve-manager); is the installation complete?",
                missing.join(", ")
            ),
        ));
    }
    let out = r.query(&["pveversion"]).map_err(|e| fail(Exit::Prerequisite, e.to_string()))?;
    let v = pve::parse_pveversion(&out).ok_or_else(|| {
        fail(
            Exit::Prerequisite,
            format!("pveversion printed {:?}, not pve-manager/<version>/…: not a Proxmox VE host?", out.trim()),
        )
    })?;
    if v.split('.').next().and_then(|m| m.parse::<u32>().ok()).unwrap_or(0) < 7 {
        return Err(fail(Exit::Prerequisite, format!("Proxmox VE {v} is too old: 7.0 or newer is needed")));
    }
    Ok(v)
}

fn storages(r: &Runner, content: &str) -> Result<Vec<pve::Storage>> {
    let out = r.query(&["pvesm", "status", "--content", content])?;
    Ok(pve::parse_pvesm_status(&out).into_iter().filter(|s| s.active).collect())
}

fn choose_storage(r: &Runner, want: &str, content: &str, field: &str) -> Result<pve::Storage> {
    let all = storages(r, content)?;
    let names = || all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    if want.is_empty() {
        return all.first().cloned().ok_or_else(|| {
            fail(Exit::Prerequisite, format!("no active storage holds {content} (pvesm status --content {content}); add one in Datacenter → Storage"))
        });
    }
    all.iter().find(|s| s.name == want).cloned().ok_or_else(|| {
        fail(Exit::Usage, format!("{field} = {want:?}: not an active storage for {content}; active ones: {}", names()))
    })
}

fn mem_available_mb() -> Option<u64> {
    let m = std::fs::read_to_string("/proc/meminfo").ok()?;
    let l = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
    l.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb / 1024)
}

/// The template file on `ts` for this node's architecture, downloaded first when only `pveam
/// available` has it. A family like "debian" takes the newest offered: a newer Debian than the one
/// already on the storage is downloaded.
fn ensure_template(r: &mut Runner, ts: &str, want: &str) -> Result<String> {
    let arch = pve::node_arch();
    let list = |r: &Runner| -> Result<Vec<String>> {
        Ok(pve::for_arch(pve::parse_pveam_list(&r.query(&["pveam", "list", ts])?), arch))
    };
    let available = |r: &Runner| -> Result<Vec<String>> {
        let out = r.query(&["pveam", "available", "--section", "system"])?;
        Ok(pve::parse_pveam_available(&out, arch))
    };
    let local = pve::pick_template(&list(r)?, want);
    if let Some(t) = &local {
        if !pve::is_family(want) {
            say!("  template {ts}:vztmpl/{t} is already there");
            return Ok(t.clone());
        }
    }
    let mut avail = available(r)?;
    if pve::pick_template(&avail, want).is_none() {
        // `pveam update` exits 0 even when it fails: only its output tells.
        let up = r.change_judged(&strings(&["pveam", "update"]))?;
        if !r.dry_run && !up.0.contains("update successful") {
            say!(
                "  warning: `pveam update` did not report success ({}); using the template list it already has",
                up.1.trim()
            );
        }
        avail = available(r)?;
    }
    let found = pve::pick_template(&avail, want);
    if let Some(l) = &local {
        let mut both = vec![l.clone()];
        both.extend(found.clone());
        if pve::pick_template(&both, want).as_ref() == Some(l) {
            say!("  template {ts}:vztmpl/{l} is already there");
            return Ok(l.clone());
        }
    }
    if found.is_none() && r.dry_run {
        // The list `pveam update` would fetch is not here yet in a dry run.
        let t = format!("<the newest {want}-standard template for {arch} after pveam update>");
        r.change(&strings(&["pveam", "download", ts, &t]))?;
        return Ok(t);
    }
    let t = found.ok_or_else(|| {
        fail(
            Exit::Prerequisite,
            format!(
                "no {arch} template matches container.template = {want:?}; `pveam available --section system` offers: {}",
                if avail.is_empty() {
                    "nothing for this architecture (did `pveam update` fail? see /var/log/pveam.log)".to_string()
                } else {
                    avail.join(", ")
                }
            ),
        )
    })?;
    r.change(&strings(&["pveam", "download", ts, &t])).map_err(|e| fail(Exit::Download, e.to_string()))?;
    if !r.dry_run {
        // The download runs as a task whose failure may not reach the exit code: confirm it.
        if !list(r)?.contains(&t) {
            return Err(fail(
                Exit::Download,
                format!("`pveam download {ts} {t}` finished but {t} is not in `pveam list {ts}`: the download failed (see its output, /var/log/pveam.log); try again"),
            ));
        }
    }
    Ok(t)
}

fn description(d: &Deployment) -> String {
    format!(
        "Vikunja instance {name}, managed by vikunja-pve (vikunja-installer {v}).\n\
         Operate it from the host: vikunja-installer status|health|update|rollback|backup --instance {name}\n\
         Remove it with: vikunja-installer destroy --instance {name} (keeps its backups)\n\
         URL: {url}",
        name = d.instance.name,
        v = build_info::version(),
        url = d.public_url()
    )
}

fn net0(d: &Deployment) -> String {
    let c = &d.container;
    let mut n = format!("name=eth0,bridge={},ip={}", c.bridge, d.network.ip_address);
    if !d.network.gateway.is_empty() {
        n.push_str(&format!(",gw={}", d.network.gateway));
    }
    if let Some(t) = c.vlan {
        n.push_str(&format!(",tag={t}"));
    }
    if !c.ipv6.is_empty() {
        n.push_str(&format!(",ip6={}", c.ipv6));
    }
    if !c.gateway6.is_empty() {
        n.push_str(&format!(",gw6={}", c.gateway6));
    }
    n
}

/// `pct create`: always unprivileged with nesting (systemd needs it), never `--password` (a bare
/// one prompts on the terminal): root logs in with the SSH keys given, or with `pct enter`.
pub fn pct_create(d: &Deployment, id: u32, template: &str) -> Vec<String> {
    let c = &d.container;
    let mut a = strings(&["pct", "create"]);
    a.push(id.to_string());
    a.push(format!("{}:vztmpl/{template}", c.template_storage));
    let mut opt = |k: &str, v: String| {
        a.push(format!("--{k}"));
        a.push(v);
    };
    opt("hostname", c.hostname.clone());
    opt("cores", d.resources.cores.to_string());
    opt("memory", d.resources.memory_mb.to_string());
    opt("swap", c.swap_mb.to_string());
    opt("rootfs", format!("{}:{}", c.storage, d.resources.disk_gb));
    opt("net0", net0(d));
    opt("unprivileged", "1".into());
    opt("features", "nesting=1".into());
    opt("onboot", if c.onboot { "1" } else { "0" }.into());
    opt("timezone", "host".into());
    if !c.tags.is_empty() {
        opt("tags", c.tags.clone());
    }
    if !c.nameserver.is_empty() {
        opt("nameserver", c.nameserver.clone());
    }
    if !c.searchdomain.is_empty() {
        opt("searchdomain", c.searchdomain.clone());
    }
    if let Some(k) = &c.ssh_public_keys {
        opt("ssh-public-keys", k.display().to_string());
    }
    opt("description", description(d));
    a
}

/// `pct exec` with a clean environment: `--keep-env 0` from pve-container 5.0.9 on; before it the
/// option does not exist (a usage error) and the host's environment is kept, so `env -i` clears it
/// inside (shared/reference/proxmox-cli.md, corrections).
pub fn pct_exec(id: u32, cmd: &[&str]) -> Vec<String> {
    static KEEP_ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let keep_env = *KEEP_ENV.get_or_init(|| {
        std::process::Command::new("pveversion")
            .arg("-v")
            .stdin(std::process::Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success() && pve::has_keep_env(&String::from_utf8_lossy(&o.stdout)))
    });
    pct_exec_with(id, cmd, keep_env)
}

pub const CLEAN_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn pct_exec_with(id: u32, cmd: &[&str], keep_env: bool) -> Vec<String> {
    let mut a = strings(&["pct", "exec", &id.to_string()]);
    if keep_env {
        a.extend(strings(&["--keep-env", "0", "--"]));
    } else {
        a.extend(strings(&["--", "env", "-i", CLEAN_PATH]));
    }
    a.extend(cmd.iter().map(|s| s.to_string()));
    a
}

fn push(id: u32, src: &Path, dst: &str, perms: &str) -> Vec<String> {
    let mut a = strings(&["pct", "push", &id.to_string()]);
    a.push(src.display().to_string());
    a.extend(strings(&[dst, "--perms", perms]));
    a
}

/// Environment for the engine inside: the CA bundle and proxy the host was given, if any.
pub fn engine_env(e: &Entry) -> Vec<String> {
    let mut v = vec!["env".to_string()];
    if !e.ca_bundle.is_empty() {
        v.push(format!("SSL_CERT_FILE={}", e.ca_bundle));
    }
    v.extend(proxy_env());
    v
}

/// The host's proxy settings, for commands in the container (`pct exec --keep-env 0` passes none):
/// apt-get reads http_proxy for Debian's http mirrors, the engine HTTPS_PROXY.
pub fn proxy_env() -> Vec<String> {
    PROXY_VARS.iter().filter_map(|k| std::env::var(k).ok().map(|v| format!("{k}={v}"))).collect()
}

const PROXY_VARS: [&str; 6] = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"];

struct Timer {
    start: Instant,
    packages: Duration,
}

fn cancelled(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        fail(Exit::Interrupted, "cancelled at the questions (input closed): nothing was changed")
    } else {
        anyhow!(e).context("asking the questions on the terminal")
    }
}

/// The host's facts the questions offer: queries only.
fn choices(r: &Runner) -> Result<super::wizard::Choices> {
    let next_id = pve::parse_nextid(&r.query(&["pvesh", "get", "/cluster/nextid"])?).unwrap_or(100);
    let storages = storages(r, "rootdir")?.into_iter().map(|s| s.name).collect();
    let bridges = bridges(r).unwrap_or_default();
    let mut templates = Vec::new();
    for ts in storages_or_empty(r, "vztmpl") {
        if let Ok(out) = r.query(&["pveam", "list", &ts]) {
            templates.extend(pve::for_arch(pve::parse_pveam_list(&out), pve::node_arch()));
        }
    }
    let available = r
        .query(&["pveam", "available", "--section", "system"])
        .map(|out| pve::parse_pveam_available(&out, pve::node_arch()))
        .unwrap_or_default();
    if available.is_empty() {
        // No list yet (`pveam update` never ran): an answer is checked when the template is fetched.
        templates.clear();
    }
    templates.extend(available);
    templates.sort();
    templates.dedup();
    Ok(super::wizard::Choices { next_id, storages, bridges, templates })
}

fn storages_or_empty(r: &Runner, content: &str) -> Vec<String> {
    storages(r, content).map(|v| v.into_iter().map(|s| s.name).collect()).unwrap_or_default()
}

/// The node's Linux bridges (`pvesh get /nodes/localhost/network --type any_bridge`); None when
/// the API did not answer, so a missing answer never blocks and a wrong bridge always does.
fn bridges(r: &Runner) -> Option<Vec<String>> {
    let path = format!("/nodes/{}/network", r.node.as_deref().unwrap_or("localhost"));
    let out = r.query(&["pvesh", "get", &path, "--type", "any_bridge", "--output-format", "json"]).ok()?;
    pve::parse_bridges(&out)
}

/// `term`: where the questions are asked (the command's adapter opens it), None without one.
pub fn run(o: &Options, mut term: Option<Terminal>) -> Result<std::process::ExitCode> {
    let reg = Registry::open(&o.root);
    let existing = reg.all()?;
    let mut d = match &o.config {
        Some(p) => Deployment::load(p).map_err(|e| fail(Exit::Usage, e.to_string()))?,
        None => Deployment::default(),
    };
    assign_number(&mut d, &existing);
    if o.config.is_none() {
        fresh_name(&mut d, &existing);
    }
    let r = Runner::new(o.dry_run);
    if term.is_none() && !o.yes && o.config.is_none() {
        return Err(fail(
            Exit::Usage,
            "no terminal to ask the questions on (neither stdin nor /dev/tty is one): take the defaults with --yes \
             (or VIKUNJA_YES=1), set any of them with VIKUNJA_* variables (see the README), or give --config FILE; \
             nothing was changed",
        ));
    }
    let pve_version = check_host(&r)?;
    if let Some(g) = &o.ha_group {
        let major = pve_version.split('.').next().and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
        if !o.ha {
            return Err(fail(Exit::Usage, format!("--ha-group {g} goes with --ha; nothing was changed")));
        }
        if major >= 9 {
            // pve-ha-manager 5 (PVE 9) migrated groups to rules and refuses `--group`.
            return Err(fail(
                Exit::Usage,
                format!(
                    "--ha-group {g}: Proxmox VE {pve_version} has HA rules instead of groups (ha-manager refuses --group); \
                     leave out --ha-group and give the container a node-affinity rule (ha-manager rules add); nothing was changed"
                ),
            ));
        }
    }
    say!(
        "Proxmox VE {pve_version}: creating a Vikunja container{}",
        if o.dry_run { " (dry run: nothing is changed)" } else { "" }
    );
    let c = choices(&r)?;
    super::wizard::from_env(&mut d, &c, |k| std::env::var(k).ok()).map_err(|errs| {
        fail(Exit::Usage, format!("{}\nnothing was changed", crate::instance::config::ConfigError::Invalid(errs)))
    })?;
    let mut save = None;
    if let Some(t) = term.as_mut() {
        let mut p = t.prompter();
        // With --config, Default takes the file as it is and Advanced asks with its values as defaults.
        if super::wizard::ask_mode(&mut p).map_err(cancelled)? {
            d = super::wizard::ask_all(d, &c, &mut p).map_err(cancelled)?;
        }
        assign_number(&mut d, &existing);
        super::wizard::host_defaults(&mut d, &c);
        check_all(&d, &existing)?;
        let resolved = pve::pick_template(&c.templates, &d.container.template);
        write!(p.output, "{}", super::wizard::summary(&d, resolved.as_deref(), c.next_id))?;
        if !o.dry_run {
            let default = o.root.join("root").join(format!("vikunja-{}.toml", d.instance.name));
            let file = p
                .ask(
                    "Save these settings, to repeat this install with --config? File, or - for no",
                    &default.display().to_string(),
                    |v| if v == "-" || v.starts_with('/') { Ok(()) } else { Err("an absolute path, or -".into()) },
                )
                .map_err(cancelled)?;
            if !p.yes_no("Create the container and install Vikunja now?", true).map_err(cancelled)? {
                return Err(fail(Exit::Interrupted, "cancelled at the confirmation: nothing was changed"));
            }
            save = (file != "-").then(|| PathBuf::from(file));
        }
    } else {
        super::wizard::host_defaults(&mut d, &c);
        check_all(&d, &existing)?;
        // Unattended, the same summary goes to the log: what this run used.
        let resolved = pve::pick_template(&c.templates, &d.container.template);
        crate::report::text(&super::wizard::summary(&d, resolved.as_deref(), c.next_id));
    }
    if let Some(path) = save {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        manifests::atomic::write_atomic(&path, d.to_toml().as_bytes(), 0o600)
            .with_context(|| format!("save the settings to {}", path.display()))?;
        say!(
            "Settings saved to {}: `vikunja-installer create --config {} --yes` repeats this install.",
            path.display(),
            path.display()
        );
    }
    loop {
        match attempt(o, &reg, d.clone(), term.as_mut())? {
            Attempt::Done => return Ok(std::process::ExitCode::SUCCESS),
            Attempt::Retry => say!("\nRetrying from the start."),
        }
    }
}

/// Every problem of the settings at once, before anything changes.
fn check_all(d: &Deployment, existing: &[Entry]) -> Result<()> {
    let mut errs = match d.validate() {
        Ok(()) => Vec::new(),
        Err(crate::instance::config::ConfigError::Invalid(e)) => e,
        Err(e) => return Err(fail(Exit::Usage, e.to_string())),
    };
    errs.extend(container_errors(d));
    errs.extend(uniqueness(d, existing));
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid(errs))
    }
}

enum Attempt {
    Done,
    Retry,
}

fn attempt(o: &Options, reg: &Registry, mut d: Deployment, term: Option<&mut Terminal>) -> Result<Attempt> {
    let mut r = Runner::new(o.dry_run);
    let mut t = Timer { start: Instant::now(), packages: Duration::ZERO };
    // ---- checks: nothing changes until all pass ----
    let local = super::cluster::local_node(&r);
    let (node, node_free_mem) = choose_node(&r, o.node.as_deref(), &local, &d)?;
    if node != local {
        say!("  creating on cluster node {node} (this is {local}): through the API, then ssh root@{node}");
        r.node = Some(node.clone());
    }
    d.container.node = node.clone();
    let st = choose_storage(&r, &d.container.storage, "rootdir", "container.storage")?;
    let need_kib = u64::from(d.resources.disk_gb) * 1024 * 1024;
    if st.avail_kib < need_kib {
        return Err(fail(
            Exit::Prerequisite,
            format!(
                "storage {} has {:.1} GiB free, the container needs resources.disk_gb = {}: free space or choose another container.storage",
                st.name,
                st.avail_kib as f64 / 1048576.0,
                d.resources.disk_gb
            ),
        ));
    }
    d.container.storage = st.name.clone();
    let ts = choose_storage(&r, &d.container.template_storage, "vztmpl", "container.template_storage")?;
    d.container.template_storage = ts.name.clone();
    if let Some(all) = bridges(&r) {
        if !all.contains(&d.container.bridge) {
            return Err(fail(
                Exit::Usage,
                format!(
                    "container.bridge = {:?}: no such bridge on this node (pvesh get /nodes/localhost/network); bridges: {}",
                    d.container.bridge,
                    if all.is_empty() { "none (create one in System → Network)".to_string() } else { all.join(", ") }
                ),
            ));
        }
    }
    if let Some(free) = node_free_mem.or_else(mem_available_mb) {
        if free < u64::from(d.resources.memory_mb) {
            return Err(fail(
                Exit::Prerequisite,
                format!(
                    "node {node} has {free} MiB of memory available, the container asks for resources.memory_mb = {}: lower it, free memory or choose another node (--node)",
                    d.resources.memory_mb
                ),
            ));
        }
    }
    if d.container.hostname.is_empty() {
        d.container.hostname = format!("vikunja-{}", d.instance.name);
    }
    let fixed_id = d.container.id != 0;
    let mut id = if fixed_id {
        r.query(&["pvesh", "get", "/cluster/nextid", "--vmid", &d.container.id.to_string()]).map_err(|e| {
            fail(
                Exit::Usage,
                format!(
                    "container.id = {}: {}; choose a free id or 0 for the next free one",
                    d.container.id,
                    e.detail()
                ),
            )
        })?;
        d.container.id
    } else {
        next_id(&r)?
    };
    if o.dry_run {
        say!("Dry run: these commands would run, in order (the queries above already ran; they change nothing):");
    } else if let Some(bin) = crate::selfinstall::install_running(&o.root, templates_dir().as_deref())? {
        // The first change, before any container: the README's day-2 commands must work once
        // this run ends, and `upgrade` must find the installer in its layout.
        say!("Installed vikunja-installer {} as {}", build_info::version(), bin.display());
    }
    let template = ensure_template(&mut r, &ts.name, &d.container.template)?;

    // ---- create, retrying on an id taken meanwhile (nextid is no reservation) ----
    let mut tries = 0;
    loop {
        d.container.id = id;
        let create = match &r.node {
            None => pct_create(&d, id, &template),
            Some(n) => {
                let keys = match &d.container.ssh_public_keys {
                    Some(k) => Some(std::fs::read_to_string(k).with_context(|| format!("read {}", k.display()))?),
                    None => None,
                };
                super::cluster::api_create(&pct_create(&d, id, &template), n, keys.as_deref())
            }
        };
        match r.change(&create) {
            Ok(out) => {
                if !out.trim().is_empty() {
                    say!("{}", out.trim_end());
                }
                break;
            }
            Err(e) if !fixed_id && tries < 5 && e.detail().contains("already exists") => {
                tries += 1;
                let next = next_id(&r)?;
                say!("  CT {id} was taken meanwhile; trying CT {next}");
                id = next;
            }
            Err(e) => return Err(fail(Exit::Error, format!("{e}; nothing was created"))),
        }
    }
    let mut entry = Entry {
        name: d.instance.name.clone(),
        number: d.instance.number,
        ctid: id,
        node: d.container.node.clone(),
        hostname: d.container.hostname.clone(),
        address: d.network.ip_address.split('/').next().unwrap_or_default().to_string(),
        domain: d.network.domain.clone(),
        https_port: d.network.https_port,
        storage: d.container.storage.clone(),
        template: template.clone(),
        state: "creating".into(),
        created_at: manifests::time::format_rfc3339(manifests::time::now_unix()),
        installer_version: build_info::version().into(),
        ca_bundle: String::new(),
    };
    if !o.dry_run {
        reg.save(&entry, &d)?;
    }
    match provision(&mut r, &mut t, &d, &mut entry).and_then(|()| ha_add(&mut r, o, id, &d.container.storage)) {
        Ok(()) => {
            if o.dry_run {
                say!("Dry run: nothing was changed.");
                return Ok(Attempt::Done);
            }
            entry.state = "ready".into();
            reg.save(&entry, &d)?;
            let total = t.start.elapsed();
            // Only a self-signed certificate needs its fingerprint checked by eye (an ACME one is
            // verified by the browser).
            let fingerprint = if d.ssl.cert_path.is_none() && !d.ssl.acme {
                let pem =
                    crate::instance::layout::Layout::new(Path::new("/"), &d.instance.name).ssl_dir().join("cert.pem");
                let args = pct_exec(id, &["cat", &pem.to_string_lossy()]);
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                r.query(&a).ok().and_then(|p| crate::instance::tls::fingerprint(&p))
            } else {
                None
            };
            crate::report::text(&last_screen(&d, &entry, fingerprint.as_deref(), &reg.backups));
            say!(
                "Done in {:.1} s (of which {:.1} s installing packages with apt-get).",
                total.as_secs_f64(),
                t.packages.as_secs_f64()
            );
            Ok(Attempt::Done)
        }
        Err(e) if o.dry_run => Err(e),
        Err(e) => recover(o, reg, &r, &mut entry, &d, e, term),
    }
}

/// What a person needs next: where Vikunja answers, how to trust its certificate, how the first
/// account comes about, where backups go, and the day-2 commands.
pub fn last_screen(d: &Deployment, e: &Entry, fingerprint: Option<&str>, host_backups: &Path) -> String {
    let port = match d.network.https_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let name = &d.instance.name;
    let mut s = format!(
        "\n==================================================================\n\
         Vikunja {} is ready in CT {} ({}) on node {}.\n\n\
         Open it:  {}\n\
         \x20         https://{}{port}/   (by the container's address; point {} at {} in your DNS)\n",
        d.vikunja.version,
        e.ctid,
        e.hostname,
        e.node,
        d.public_url(),
        e.address,
        d.network.domain,
        e.address
    );
    if let Some(f) = fingerprint {
        s.push_str(&format!(
            "\nThe certificate is self-signed: the browser warns once. Accept it only if it shows\n  SHA-256 {f}\n"
        ));
    }
    if d.vikunja.registration {
        s.push_str(
            "\nFirst user: open the page and choose \"Create account\". Registration is open: anyone who\n\
             \x20 reaches the site can sign up (answer no at \"Open registration\", or VIKUNJA_REGISTRATION=no,\n\
             \x20 to create the accounts yourself).\n",
        );
    } else {
        let l = crate::instance::layout::Layout::new(Path::new("/"), name);
        let bin = crate::instance::artifact::binary_path(&l, &d.vikunja.version);
        s.push_str(&format!(
            "\nFirst user (registration is closed): create it in the container as the service user:\n  \
             pct exec {} -- runuser -u vikunja -- env VIKUNJA_SERVICE_ROOTPATH={} VIKUNJA_SERVICE_SECRET_FILE={}{} {} user create -u admin -e admin@{} -p 'CHOOSE-A-PASSWORD'\n",
            e.ctid,
            l.config_dir().display(),
            // The service's own secret, as its unit passes it: without it Vikunja warns that it
            // made up a random one.
            l.service_secret_file().display(),
            if d.database.kind == crate::instance::config::DbType::Sqlite {
                String::new()
            } else {
                format!(" VIKUNJA_DATABASE_PASSWORD_FILE={}", l.db_password_file().display())
            },
            bin.display(),
            d.network.domain
        ));
    }
    s.push_str(&format!(
        "\nBackups: made in the container under /opt/vikunja-{name}/backups (the newest {} kept); each\n\
         \x20 `backup --instance {name}` run here also copies its archive to {}.\n\n\
         Day-2, from this host:\n  \
         vikunja-installer status --instance {name}\n  \
         vikunja-installer update --instance {name}\n  \
         vikunja-installer backup --instance {name}\n\
         ==================================================================\n",
        d.retention.backups,
        host_backups.join(name).display()
    ));
    s
}

fn next_id(r: &Runner) -> Result<u32> {
    let out = r.query(&["pvesh", "get", "/cluster/nextid"])?;
    pve::parse_nextid(&out).ok_or_else(|| {
        anyhow!(PveError::Parse { cmd: "pvesh get /cluster/nextid".into(), what: "an id".into(), output: out })
    })
}

/// After the container exists: report, then keep (the default without a terminal), remove or retry.
fn recover(
    o: &Options,
    reg: &Registry,
    r: &Runner,
    entry: &mut Entry,
    d: &Deployment,
    e: anyhow::Error,
    term: Option<&mut Terminal>,
) -> Result<Attempt> {
    let id = entry.ctid;
    note!("\nvikunja-installer: creating instance {} failed after CT {id} was created: {e:#}", entry.name);
    note!("Done so far:");
    for c in &r.done {
        note!("  {}", c.lines().next().unwrap_or_default());
    }
    entry.state = "failed".into();
    reg.save(entry, d)?;
    let cfg = reg.deployment_file(&entry.name);
    let remove = format!(
        "vikunja-installer destroy --instance {} --yes   (or: pct stop {id}; pct destroy {id} --purge)",
        entry.name
    );
    let retry = format!(
        "vikunja-installer destroy --instance {} --yes && vikunja-installer create --config {} --yes",
        entry.name,
        cfg.display()
    );
    let choice = if let Some(t) = term {
        let mut p = t.prompter();
        p.ask("keep it for debugging, remove it, or retry? (keep/remove/retry)", "keep", |v| {
            if ["keep", "remove", "retry"].contains(&v) {
                Ok(())
            } else {
                Err("keep, remove or retry".into())
            }
        })?
    } else {
        "keep".to_string()
    };
    match choice.as_str() {
        "remove" | "retry" => {
            super::manage::remove_container(&mut Runner::on(false, r.node.clone()), id)?;
            reg.remove(&entry.name)?;
            say!("CT {id} removed.");
            if choice == "retry" {
                return Ok(Attempt::Retry);
            }
        }
        _ => {
            note!(
                "CT {id} is kept for debugging (pct enter {id}; the engine's log is in /opt/vikunja-{}/logs).",
                entry.name
            );
            note!("To remove it: {remove}");
            note!("To retry:     {retry}");
        }
    }
    let _ = o;
    Err(fail(Exit::Error, format!("instance {} was not created", entry.name)))
}

/// The node to create on and, for another node, its free memory in MiB (this node's is read
/// from /proc/meminfo). `auto`: the online node with the most free memory, then storage, that
/// has room for the container (`pvesh get /cluster/resources`).
fn choose_node(r: &Runner, want: Option<&str>, local: &str, d: &Deployment) -> Result<(String, Option<u64>)> {
    let Some(want) = want.filter(|w| !w.is_empty() && *w != local) else { return Ok((local.to_string(), None)) };
    let nodes = super::cluster::resources(r, "node")
        .ok()
        .and_then(|o| super::cluster::parse_nodes(&o))
        .ok_or_else(|| fail(Exit::Prerequisite, "`pvesh get /cluster/resources --type node` did not answer: is this node in a quorate cluster (pvecm status)?"))?;
    let names = || nodes.iter().map(|n| n.name.as_str()).collect::<Vec<_>>().join(", ");
    let name = if want == "auto" {
        let storage = if d.container.storage.is_empty() { "local" } else { &d.container.storage };
        let st = super::cluster::resources(r, "storage")
            .ok()
            .and_then(|o| super::cluster::parse_storage(&o, storage))
            .unwrap_or_default();
        let need_mem = u64::from(d.resources.memory_mb) * 1024 * 1024;
        let need_disk = u64::from(d.resources.disk_gb) * 1024 * 1024 * 1024;
        let n = super::cluster::pick(&nodes, &st, need_mem, need_disk).ok_or_else(|| {
            fail(
                Exit::Prerequisite,
                format!(
                    "--node auto: no online node has {} MiB of memory and {} GiB on storage {storage} free (nodes: {}); lower resources.memory_mb or resources.disk_gb, or free room",
                    d.resources.memory_mb,
                    d.resources.disk_gb,
                    names()
                ),
            )
        })?;
        say!("  --node auto: {n} has the most free memory and room on storage {storage}");
        n
    } else {
        want.to_string()
    };
    if name == local {
        return Ok((name, None));
    }
    let n = nodes.iter().find(|n| n.name == name).ok_or_else(|| {
        fail(Exit::Usage, format!("--node {name}: no such node in this cluster; its nodes: {}", names()))
    })?;
    if !n.online {
        return Err(fail(
            Exit::Prerequisite,
            format!("--node {name}: the node is offline; choose another: {}", names()),
        ));
    }
    Ok((name, Some(n.free_mem / 1024 / 1024)))
}

/// `--ha`: the HA manager restarts the container, and recovers it on another node when its node
/// fails, which needs its volumes on shared storage.
fn ha_add(r: &mut Runner, o: &Options, id: u32, storage: &str) -> Result<()> {
    if !o.ha {
        return Ok(());
    }
    let shared = super::cluster::resources(r, "storage")
        .ok()
        .and_then(|out| super::cluster::parse_storage(&out, storage))
        .is_some_and(|s| !s.is_empty() && s.iter().all(|x| x.2));
    if !shared {
        say!(
            "  note: HA recovers a container on another node only when its volumes are on shared storage \
             (Ceph, NFS, …); storage {storage} is local to the node, so HA can restart CT {id} but not move it \
             when the node fails. HA also needs a quorate cluster of three votes or more."
        );
    }
    let mut a = strings(&["ha-manager", "add", &format!("ct:{id}"), "--state", "started"]);
    if let Some(g) = &o.ha_group {
        a.extend(strings(&["--group", g]));
    }
    r.change(&a).map_err(|e| anyhow!(e).context("registering the container with the HA manager"))?;
    Ok(())
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> Option<String>) -> Result<String> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(anyhow!("timed out after {} s waiting for {what}", limit.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Puts this installer (binary and templates) into the container's versioned layout and makes it
/// the active one there: at creation, and whenever the host manages an instance whose installer
/// is at another version than the host's.
pub fn push_installer(r: &mut Runner, id: u32) -> Result<()> {
    let v = build_info::version();
    let vdir = format!("{CT_HOME}/versions/{v}");
    r.change(&pct_exec(id, &["mkdir", "-p", &format!("{vdir}/bin"), &format!("{CT_ETC}/files")]))?;
    let mut exe = std::env::current_exe().context("find this installer's own binary to push into the container")?;
    if !exe.is_file() {
        // Replaced on disk while we run (an upgrade, a rebuild): our own image is still readable here.
        exe = PathBuf::from(format!("/proc/{}/exe", std::process::id()));
    }
    r.change(&push(id, &exe, &format!("{vdir}/bin/vikunja-installer"), "0755"))?;
    let work = tempdir()?;
    if let Some(tpl) = templates_dir() {
        let tar = work.path.join("templates.tar");
        pack(&tpl, &tar)?;
        let dst = format!("{CT_HOME}/templates-{v}.tar");
        r.change(&push(id, &tar, &dst, "0600"))?;
        r.change(&pct_exec(id, &["tar", "-xf", &dst, "-C", &vdir]))?;
        r.change(&pct_exec(id, &["rm", "-f", &dst]))?;
    } else {
        say!("  no templates directory beside this installer: the container uses the copies compiled into it");
    }
    r.change(&pct_exec(id, &["ln", "-sfn", &format!("versions/{v}"), &format!("{CT_HOME}/current")]))?;
    r.change(&pct_exec(id, &["ln", "-sfn", &format!("{CT_HOME}/current/bin/vikunja-installer"), CT_BIN]))?;
    Ok(())
}

fn provision(r: &mut Runner, t: &mut Timer, d: &Deployment, entry: &mut Entry) -> Result<()> {
    let id = entry.ctid;
    let ids = id.to_string();
    step("start the container");
    r.change(&strings(&["pct", "start", &ids]))?;
    if !r.dry_run {
        wait_for(&format!("CT {id} to run (pct status {id})"), Duration::from_secs(60), || {
            r.query(&["pct", "status", &ids]).ok().filter(|o| pve::parse_status(o) == Some("running"))
        })?;
        // systemd must have finished booting before units are installed and started.
        wait_for(&format!("systemd in CT {id} to finish booting"), Duration::from_secs(120), || {
            let args = pct_exec(id, &["sh", "-c", "systemctl is-system-running 2>/dev/null || true"]);
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            r.query(&a).ok().filter(|o| matches!(o.trim(), "running" | "degraded"))
        })?;
        if d.network.ip_address == "dhcp" {
            let args = pct_exec(id, &["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            entry.address = wait_for(
                &format!("an IPv4 address in CT {id} (DHCP on {})", d.container.bridge),
                Duration::from_secs(90),
                || r.query(&a).ok().and_then(|o| pve::parse_inet(&o)),
            )?;
        }
        say!("  CT {id} runs, address {}", entry.address);
    }

    step("install packages in the container (apt-get)");
    let p0 = Instant::now();
    // The MCP server runs in a venv of Debian's python3 (instance::mcp).
    let packages = if d.components.mcp { format!("{PACKAGES} python3-venv") } else { PACKAGES.to_string() };
    let apt = format!(
        "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q --no-install-recommends {packages} || \
         {{ apt-get update -q && apt-get install -y -q --no-install-recommends {packages}; }}"
    );
    let mut cmd = vec!["env".to_string()];
    cmd.extend(proxy_env());
    cmd.extend(strings(&["sh", "-c", &apt]));
    let c: Vec<&str> = cmd.iter().map(String::as_str).collect();
    r.change_streamed(&pct_exec(id, &c))
        .map_err(|e| anyhow!(e).context("installing nginx in the container; does it reach its Debian mirror?"))?;
    t.packages = p0.elapsed();

    step("push the installer into the container");
    push_installer(r, id)?;
    let work = tempdir()?;

    // Files the settings point at live on the host: they go in beside the settings.
    let mut inner = d.clone();
    inner.container.id = id;
    if let Some(ca) = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from).filter(|p| p.is_file()) {
        r.change(&push(id, &ca, CT_CA, "0644"))?;
        entry.ca_bundle = CT_CA.into();
    }
    let mut files: Vec<(&str, &mut Option<PathBuf>, &str)> = vec![
        ("artifact", &mut inner.vikunja.artifact, "0600"),
        ("cert", &mut inner.ssl.cert_path, "0644"),
        ("key", &mut inner.ssl.key_path, "0600"),
        ("db-password", &mut inner.database.password_file, "0600"),
        ("mail-password", &mut inner.mail.password_file, "0600"),
        ("mcp-api-token", &mut inner.components.mcp_api_token_file, "0600"),
    ];
    for o in inner.auth.openid.iter_mut() {
        files.push(("openid-secret", &mut o.client_secret_file, "0600"));
    }
    for (what, path, perms) in files.iter_mut() {
        if let Some(p) = path.as_ref() {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| what.to_string());
            let dst = format!("{CT_ETC}/files/{what}-{name}");
            r.change(&push(id, p, &dst, perms))?;
            **path = Some(PathBuf::from(dst));
        }
    }
    drop(files);
    push_setting_files(r, id, &mut inner.vikunja.settings)?;
    let cfg = work.path.join("deployment.toml");
    std::fs::write(&cfg, inner.to_toml()).with_context(|| format!("write {}", cfg.display()))?;
    let ct_cfg = format!("{CT_ETC}/{}.toml", d.instance.name);
    r.change(&push(id, &cfg, &ct_cfg, "0600"))?;

    step("deploy Vikunja inside the container");
    let mut cmd = engine_env(entry);
    cmd.extend(strings(&[CT_BIN, "install", "--config", &ct_cfg, "--yes"]));
    let c: Vec<&str> = cmd.iter().map(String::as_str).collect();
    r.change_streamed(&pct_exec(id, &c))
        .map_err(|e| anyhow!(e).context("the deployment engine failed inside the container"))?;
    Ok(())
}

/// The secret files `[vikunja.settings]` names (`<key>.file`) go into the container like the
/// others, and the settings then name the copies.
fn push_setting_files(r: &mut Runner, id: u32, t: &mut toml::Table) -> Result<()> {
    for (k, v) in t.iter_mut() {
        match v {
            toml::Value::Table(sub) => push_setting_files(r, id, sub)?,
            toml::Value::String(p) if k == "file" || k.ends_with(".file") => {
                let src = PathBuf::from(&*p);
                let name = src.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let dst = format!("{CT_ETC}/files/setting-{}-{name}", k.replace('.', "-"));
                r.change(&push(id, &src, &dst, "0600"))?;
                *p = dst;
            }
            _ => {}
        }
    }
    Ok(())
}

fn step(what: &str) {
    // The sink flushes each line, before the commands of the step write to the same stdout.
    say!("==> {what}");
}

/// The templates the container's installer needs: the bundle's (from the bootstrap) or the
/// installed layout's.
fn templates_dir() -> Option<PathBuf> {
    let mut c = Vec::new();
    if let Some(b) = std::env::var_os("VIKUNJA_BUNDLE_DIR") {
        c.push(PathBuf::from(b).join("templates"));
    }
    if let Some(p) = std::env::current_exe().ok().and_then(|e| e.parent().map(|p| p.join("../templates"))) {
        c.push(p);
    }
    c.into_iter().find(|p| p.is_dir())
}

fn pack(dir: &Path, out: &Path) -> Result<()> {
    let f = std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut b = tar::Builder::new(f);
    b.follow_symlinks(false);
    b.append_dir_all("templates", dir).with_context(|| format!("pack {}", dir.display()))?;
    b.into_inner()?.sync_all()?;
    Ok(())
}

/// A private temporary directory, removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

pub fn tempdir() -> Result<TempDir> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for n in 0..100u32 {
        let p = base.join(format!("vikunja-host-{}-{n}", std::process::id()));
        if std::fs::DirBuilder::new().mode(0o700).create(&p).is_ok() {
            return Ok(TempDir { path: p });
        }
    }
    Err(anyhow!("cannot create a private directory in {}; is TMPDIR writable?", base.display()))
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_create_is_unprivileged_with_nesting_and_never_has_a_password() {
        let mut d = Deployment::default();
        d.container.template_storage = "local".into();
        d.container.storage = "local-lvm".into();
        d.container.hostname = "vikunja-main".into();
        d.container.vlan = Some(20);
        d.network.ip_address = "192.168.1.50/24".into();
        d.network.gateway = "192.168.1.1".into();
        let a = pct_create(&d, 120, "debian-12-standard_12.7-1_amd64.tar.zst");
        let line = a.join(" ");
        assert!(line.starts_with("pct create 120 local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst "), "{line}");
        assert!(line.contains("--unprivileged 1 --features nesting=1"), "{line}");
        assert!(line.contains("--rootfs local-lvm:8"), "{line}");
        assert!(line.contains("--net0 name=eth0,bridge=vmbr0,ip=192.168.1.50/24,gw=192.168.1.1,tag=20"), "{line}");
        assert!(!a.iter().any(|x| x == "--password"));
        assert!(a.iter().any(|x| x.contains("managed by vikunja-pve")));
    }

    #[test]
    fn container_settings_are_checked_and_instances_get_free_numbers() {
        let mut d = Deployment::default();
        d.container.vlan = Some(5000);
        d.container.ipv6 = "yes".into();
        d.network.gateway = "10.0.0.1".into();
        let f: Vec<String> = container_errors(&d).into_iter().map(|e| e.field).collect();
        assert_eq!(f, ["container.vlan", "container.ipv6", "network.gateway"]);
        let e = |n: &str, number| Entry {
            name: n.into(),
            number,
            ctid: 100 + u32::from(number),
            node: "pve".into(),
            hostname: n.into(),
            address: "10.0.0.9".into(),
            domain: format!("{n}.test"),
            https_port: 443,
            storage: "local".into(),
            template: "t".into(),
            state: "ready".into(),
            created_at: String::new(),
            installer_version: String::new(),
            ca_bundle: String::new(),
        };
        let mut d = Deployment::default();
        fresh_name(&mut d, &[e("other", 1)]);
        assert_eq!((d.instance.name.as_str(), d.network.domain.as_str()), ("main", "vikunja.local"), "free: kept");
        let mut taken = e("main", 1);
        taken.domain = "vikunja.local".into();
        fresh_name(&mut d, &[taken]);
        assert_eq!((d.instance.name.as_str(), d.network.domain.as_str()), ("main2", "main2.vikunja.local"));
        let mut d = Deployment::for_instance("team", 1);
        assign_number(&mut d, &[e("main", 1)]);
        assert_eq!((d.instance.number, d.ports.backend_blue), (2, 8090));
        d.network.domain = "main.test".into();
        d.network.ip_address = "10.0.0.9/24".into();
        let f: Vec<String> = uniqueness(&d, &[e("main", 1)]).into_iter().map(|e| e.field).collect();
        assert_eq!(f, ["network.domain", "network.ip_address"]);
    }
}
