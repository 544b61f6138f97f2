//! `status`: the seed's screen (instance, container, active colour, version, each component with
//! state, port, uptime and health, resources, last operation), `--json` with the same data, and
//! `--watch`. Health results are cached for 10 s in `state/health-cache.json` so a watching
//! terminal and a monitoring script do not hammer the services.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::instance::config::Deployment;
use crate::instance::layout::Layout;
use crate::instance::state;
use crate::service::health::{self, Component};
use crate::service::init::Init;

/// The `schema` of every `--json` output: raised when a field is renamed or removed.
pub const JSON_SCHEMA: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Status {
    pub schema: u32,
    pub instance: String,
    pub container: Option<u32>,
    pub init: &'static str,
    /// "serving", "stopped" (by `stop`) or "not installed".
    pub state: &'static str,
    /// The serving colour (the same name in `health`, `backup` and the host's `list`).
    pub colour: Option<String>,
    pub version: Option<String>,
    pub url: String,
    pub deployed_at: Option<String>,
    pub components: Vec<ComponentStatus>,
    pub resources: Resources,
    pub last_operation: Option<LastOp>,
    pub backup_schedule: crate::service::schedule::Shown,
    pub auto_update: crate::instance::update_state::Shown,
    pub healthy: bool,
}

#[derive(Debug, Serialize)]
pub struct ComponentStatus {
    pub name: String,
    pub running: bool,
    pub port: Option<u16>,
    pub uptime_s: Option<u64>,
    pub healthy: bool,
    pub detail: String,
}

#[derive(Debug, Serialize, Default)]
pub struct Resources {
    pub cpu_percent: Option<f64>,
    pub cores: Option<usize>,
    pub memory_used_mb: Option<u64>,
    pub memory_total_mb: Option<u64>,
    pub disk_used_gb: Option<f64>,
    pub disk_total_gb: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct LastOp {
    pub operation: String,
    pub started: String,
    pub duration_s: f64,
    pub result: String,
}

#[derive(Serialize, Deserialize)]
struct Cached {
    at: u64,
    colour: String,
    version: String,
    /// Which units ran when the result was cached: a unit that stopped or started since makes the
    /// cached result stale at once, whatever its age.
    running: Vec<bool>,
    components: Vec<CachedComponent>,
}

#[derive(Serialize, Deserialize)]
struct CachedComponent {
    name: String,
    healthy: bool,
    detail: String,
}

const CACHE_TTL: Duration = Duration::from_secs(10);

fn now_s() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn running_now(t: &health::Target) -> Vec<bool> {
    let mut units = vec![t.l.unit_name("backend", t.colour.name())];
    if t.d.components.mcp {
        units.push(t.l.unit_name("mcp", t.colour.name()));
    }
    let mut v: Vec<bool> = units.iter().map(|u| t.init.is_active(t.l, u)).collect();
    v.push(crate::service::nginx::is_running(t.l, t.init));
    v
}

fn cached_health(t: &health::Target) -> Vec<(String, bool, String)> {
    let path = t.l.state_dir().join("health-cache.json");
    let running = running_now(t);
    if let Some(c) = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Cached>(&b).ok()) {
        let fresh = now_s().saturating_sub(c.at) < CACHE_TTL.as_secs();
        if fresh && c.colour == t.colour.name() && c.version == t.version && c.running == running {
            return c.components.into_iter().map(|c| (c.name, c.healthy, c.detail)).collect();
        }
    }
    let fresh: Vec<Component> = health::report(t);
    let cache = Cached {
        at: now_s(),
        colour: t.colour.name().into(),
        version: t.version.into(),
        running,
        components: fresh
            .iter()
            .map(|c| CachedComponent { name: c.name.into(), healthy: c.healthy, detail: c.detail.clone() })
            .collect(),
    };
    if let Ok(bytes) = serde_json::to_vec(&cache) {
        let _ = manifests::atomic::write_atomic(&path, &bytes, 0o644);
    }
    fresh.into_iter().map(|c| (c.name.to_string(), c.healthy, c.detail)).collect()
}

fn cpu_percent() -> Option<f64> {
    let read = || -> Option<(u64, u64)> {
        let s = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<u64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((v.iter().sum(), idle))
    };
    let (t1, i1) = read()?;
    std::thread::sleep(Duration::from_millis(200));
    let (t2, i2) = read()?;
    let dt = (t2 - t1) as f64;
    (dt > 0.0).then(|| 100.0 * (1.0 - (i2 - i1) as f64 / dt))
}

fn memory_mb() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |k: &str| -> Option<u64> {
        s.lines().find(|l| l.starts_with(k))?.split_whitespace().nth(1)?.parse::<u64>().ok()
    };
    let total = field("MemTotal:")?;
    let avail = field("MemAvailable:")?;
    Some(((total - avail) / 1024, total / 1024))
}

fn disk_gb(path: &std::path::Path) -> Option<(f64, f64)> {
    let out = std::process::Command::new("df").arg("-P").arg("-k").arg(path).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.lines().nth(1)?.split_whitespace().collect();
    let gb = |k: &str| k.parse::<f64>().ok().map(|v| v / 1024.0 / 1024.0);
    Some((gb(f.get(2)?)?, gb(f.get(1)?)?))
}

pub fn gather(l: &Layout, d: &Deployment, init: Init) -> Status {
    let deployed = state::deployed(l);
    let colour = state::active_colour(l).or(deployed.as_ref().map(|x| x.colour));
    let mut components = Vec::new();
    let mut healthy = false;
    if let (Some(c), Some(dep)) = (colour, &deployed) {
        let t = health::Target { l, d, init, colour: c, version: &dep.version };
        let results = cached_health(&t);
        healthy = results.iter().all(|(_, h, _)| *h);
        for (name, ok, detail) in results {
            let (unit, port) = match name.as_str() {
                "Backend API" | "Frontend" => {
                    (Some(l.unit_name("backend", c.name())), Some(crate::service::units::backend_port(d, c)))
                }
                "MCP Server" => (Some(l.unit_name("mcp", c.name())), Some(crate::service::units::mcp_port(d, c))),
                "Nginx" => (None, Some(d.network.https_port)),
                _ => (None, None),
            };
            let running = match (&unit, name.as_str()) {
                (Some(u), _) => init.is_active(l, u),
                (None, "Nginx") => crate::service::nginx::is_running(l, init),
                _ => ok,
            };
            let uptime_s = unit.as_ref().and_then(|u| init.uptime(l, u)).map(|u| u.as_secs());
            components.push(ComponentStatus { name, running, port, uptime_s, healthy: ok, detail });
        }
    }
    let mem = memory_mb();
    let disk = disk_gb(&l.base);
    Status {
        schema: JSON_SCHEMA,
        instance: d.instance.name.clone(),
        container: (d.container.id != 0).then_some(d.container.id),
        init: init.name(),
        state: match (&deployed, crate::instance::state::is_stopped(l)) {
            (None, _) => "not installed",
            (Some(_), true) => "stopped",
            (Some(_), false) => "serving",
        },
        colour: colour.map(|c| c.name().to_string()),
        version: deployed.as_ref().map(|x| x.version.clone()),
        url: d.public_url(),
        deployed_at: deployed.as_ref().map(|x| x.timestamp.clone()),
        components,
        resources: Resources {
            cpu_percent: cpu_percent(),
            cores: std::thread::available_parallelism().ok().map(|n| n.get()),
            memory_used_mb: mem.map(|m| m.0),
            memory_total_mb: mem.map(|m| m.1),
            disk_used_gb: disk.map(|x| x.0),
            disk_total_gb: disk.map(|x| x.1),
        },
        last_operation: state::last_operation(l).map(|o| LastOp {
            operation: o.operation,
            started: o.started,
            duration_s: o.duration_ms as f64 / 1000.0,
            result: o.result,
        }),
        backup_schedule: crate::service::schedule::shown(l, init),
        auto_update: crate::instance::update_state::shown(l),
        healthy,
    }
}

fn uptime_text(s: Option<u64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s >= 86400 => format!("{}d {}h", s / 86400, s % 86400 / 3600),
        Some(s) if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        Some(s) if s >= 60 => format!("{}m {}s", s / 60, s % 60),
        Some(s) => format!("{s}s"),
    }
}

/// The seed's boxed screen; ✓/✗ become OK/FAIL when NO_COLOR is set or the terminal cannot show them.
pub fn render(s: &Status, fancy: bool) -> String {
    const W: usize = 62;
    let (ok, bad) = if fancy { ("✓", "✗") } else { ("OK", "FAIL") };
    let line = |text: &str| {
        let n = text.chars().count();
        format!("║ {text}{} ║\n", " ".repeat(W.saturating_sub(n + 2)))
    };
    let rule = |l: char, m: char, r: char| format!("{l}{}{r}\n", m.to_string().repeat(W));
    let mut o = String::new();
    o += &rule('╔', '═', '╗');
    o += &line(&format!("{:^58}", "Vikunja Deployment Status"));
    o += &rule('╠', '═', '╣');
    o += &line(&format!("Instance:       {}", s.instance));
    o += &line(&format!(
        "Container:      {} (init: {})",
        s.container.map(|c| c.to_string()).unwrap_or("-".into()),
        s.init
    ));
    o += &line(&format!("Active Color:   {}", s.colour.as_deref().unwrap_or("none (not installed)")));
    if s.state == "stopped" {
        o += &line(&format!("State:          {bad} STOPPED (`vikunja-installer start` starts it)"));
    }
    o += &line(&format!(
        "Version:        {} ({})",
        s.version.as_deref().unwrap_or("-"),
        s.deployed_at.as_deref().unwrap_or("-")
    ));
    o += &rule('╠', '═', '╣');
    o += &line(&format!("{:<15} {:<12} {:<7} {:<9} {}", "Component", "Status", "Port", "Uptime", "Health"));
    o += &rule('╟', '─', '╢');
    for c in s.components.iter().filter(|c| c.name != "Certificate") {
        let state = if c.name == "Database" {
            format!("{} {}", if c.healthy { ok } else { bad }, if c.healthy { "Connected" } else { "Down" })
        } else {
            format!("{} {}", if c.running { ok } else { bad }, if c.running { "Running" } else { "Stopped" })
        };
        let health =
            format!("{} {}", if c.healthy { ok } else { bad }, if c.healthy { "Healthy" } else { "Unhealthy" });
        let port = c.port.map(|p| p.to_string()).unwrap_or("-".into());
        o += &line(&format!("{:<15} {:<12} {:<7} {:<9} {}", c.name, state, port, uptime_text(c.uptime_s), health));
    }
    // The ACME certificate (`health::report`): its verdict, shortened to the box (`health` and
    // `--json` carry the whole text).
    if let Some(c) = s.components.iter().find(|c| c.name == "Certificate") {
        let text = format!("Certificate:    {} {}", if c.healthy { ok } else { bad }, c.detail);
        let short: String = text.chars().take(W - 2).collect();
        o += &rule('╟', '─', '╢');
        o += &line(&short);
    }
    o += &rule('╠', '═', '╣');
    o += &line(&format!("{:<15} Used / Total", "Resources"));
    o += &rule('╟', '─', '╢');
    let r = &s.resources;
    o += &line(&format!(
        "{:<15} {} / {} cores",
        "CPU",
        r.cpu_percent.map(|c| format!("{c:.0}%")).unwrap_or("-".into()),
        r.cores.map(|c| c.to_string()).unwrap_or("-".into())
    ));
    if let (Some(u), Some(t)) = (r.memory_used_mb, r.memory_total_mb) {
        o += &line(&format!(
            "{:<15} {:.1}GB / {:.1}GB ({}%)",
            "Memory",
            u as f64 / 1024.0,
            t as f64 / 1024.0,
            u * 100 / t.max(1)
        ));
    }
    if let (Some(u), Some(t)) = (r.disk_used_gb, r.disk_total_gb) {
        o += &line(&format!("{:<15} {u:.1}GB / {t:.1}GB ({:.0}%)", "Disk", u * 100.0 / t.max(0.001)));
    }
    o += &rule('╠', '═', '╣');
    match &s.last_operation {
        Some(op) => {
            o += &line(&format!("Last Operation: {}", op.operation));
            o += &line(&format!("Timestamp:      {}", op.started));
            o += &line(&format!("Duration:       {}", uptime_text(Some(op.duration_s.round() as u64))));
            let mark = if op.result == "success" { ok } else { bad };
            o += &line(&format!("Result:         {mark} {}", op.result));
        }
        None => o += &line("Last Operation: none"),
    }
    o += &rule('╠', '═', '╣');
    for text in crate::service::schedule::lines(&s.backup_schedule) {
        o += &line(&text);
    }
    for text in crate::instance::update_state::lines(&s.auto_update) {
        o += &line(&text);
    }
    o += &rule('╚', '═', '╝');
    o
}
