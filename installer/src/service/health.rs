//! Health of every component, judged by what answers rather than by exit codes or unit states
//! (Vikunja stays "active" when it cannot bind its port): backend `/health` and `/api/v1/info`
//! with the expected version, the frontend's HTML, the MCP port, the database, nginx. A failing
//! component comes with the seed's remediation list, with this instance's real unit names and paths.

use std::time::Duration;

use serde::Serialize;

use crate::instance::config::{DbType, Deployment};
use crate::instance::layout::Layout;
use crate::instance::state::Colour;
use crate::service::init::Init;
use crate::service::probe;
use crate::service::sockets::{self, Listen};
use crate::service::units::{backend_port, mcp_port};

#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub name: &'static str,
    pub healthy: bool,
    pub detail: String,
    pub port: Option<u16>,
    pub unit: Option<String>,
    pub remediation: Vec<String>,
}

pub struct Target<'a> {
    pub l: &'a Layout,
    pub d: &'a Deployment,
    pub init: Init,
    pub colour: Colour,
    pub version: &'a str,
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn check_backend(port: u16, expected_version: &str) -> Result<String, String> {
    let h = probe::get(port, "/health", PROBE_TIMEOUT)?;
    if h.status != 200 {
        return Err(format!("/health answered {} {}", h.status, h.text().trim()));
    }
    let info = probe::get(port, "/api/v1/info", PROBE_TIMEOUT)?;
    if info.status != 200 {
        return Err(format!("/api/v1/info answered {}", info.status));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&info.body).map_err(|e| format!("/api/v1/info is not JSON: {e}"))?;
    let got = v.get("version").and_then(|x| x.as_str()).unwrap_or("");
    if got != expected_version {
        return Err(format!(
            "/api/v1/info reports version {got:?}, expected {expected_version:?} (another process on the port?)"
        ));
    }
    Ok(format!("version {got}"))
}

/// Proves that what answers on `port` is `unit`'s own process: another instance's backend on the
/// same port, or one left running without its supervisor, answers health checks just as well.
fn identity(t: &Target, unit: &str, port: u16) -> Result<(), String> {
    match sockets::holders(port) {
        Listen::Held(h) if h.iter().any(|h| t.init.owns(t.l, unit, h.pid)) => Ok(()),
        Listen::Held(h) => Err(format!(
            "port {port} is answered by {}, which is not {unit}'s process (another instance, or a service left \
             without its supervisor)",
            h[0].describe()
        )),
        // Nothing to compare with: the probe itself decides.
        Listen::Free | Listen::Unknown => Ok(()),
    }
}

fn remediation(t: &Target, unit: Option<&str>, what: &str) -> Vec<String> {
    let l = t.l;
    let mut r = Vec::new();
    match (t.init, unit) {
        (Init::Systemd, Some(u)) => {
            r.push(format!("Check service status: systemctl status {u}"));
            r.push(format!("View logs: journalctl -u {u} -n 50"));
            r.push(format!("Restart service: systemctl restart {u}"));
        }
        (Init::Process, Some(u)) => {
            r.push(format!("View logs: tail -n 50 {}", crate::service::init::log_file(l, u).display()));
            r.push(format!("Check the process: cat {}", crate::service::init::pid_file(l, u).display()));
        }
        (_, None) => {}
    }
    if what == "nginx" {
        r.push(format!("Check the configuration: nginx -t; logs in {}", l.logs_dir().join("nginx").display()));
    }
    r.push(format!("Check disk space: df -h {}", l.base.display()));
    r.push(format!("Check database connection: {}", l.scripts_dir().join("health-check.sh").display()));
    r
}

fn component(
    t: &Target,
    name: &'static str,
    port: Option<u16>,
    unit: Option<String>,
    res: Result<String, String>,
) -> Component {
    let (healthy, detail) = match res {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    let remediation = if healthy { Vec::new() } else { remediation(t, unit.as_deref(), name) };
    Component { name, healthy, detail, port, unit, remediation }
}

pub fn check_all(t: &Target) -> Vec<Component> {
    let (l, d) = (t.l, t.d);
    let bport = backend_port(d, t.colour);
    let bunit = l.unit_name("backend", t.colour.name());
    let backend = check_backend(bport, t.version).and_then(|v| identity(t, &bunit, bport).map(|()| v));
    let mut out = vec![component(t, "Backend API", Some(bport), Some(bunit.clone()), backend)];
    let frontend = match &d.components.frontend_dir {
        Some(dir) => {
            if dir.join("index.html").is_file() {
                Ok(format!("static files in {}", dir.display()))
            } else {
                Err(format!("{} has no index.html", dir.display()))
            }
        }
        None => probe::get(bport, "/", PROBE_TIMEOUT).and_then(|r| {
            let body = r.text().to_ascii_lowercase();
            if r.status == 200 && body.contains("<html") {
                Ok("HTML served by the backend (embedded frontend)".into())
            } else {
                Err(format!("/ answered {} without HTML", r.status))
            }
        }),
    };
    out.push(component(t, "Frontend", Some(bport), Some(bunit), frontend));
    if d.components.mcp {
        let port = mcp_port(d, t.colour);
        let unit = l.unit_name("mcp", t.colour.name());
        out.push(component(
            t,
            "MCP Server",
            Some(port),
            Some(unit),
            crate::service::mcp_probe::round_trip(port, PROBE_TIMEOUT)
                .and_then(|ok| identity(t, &l.unit_name("mcp", t.colour.name()), port).map(|()| ok)),
        ));
    }
    let pw = crate::instance::secrets::db_password(l);
    let db = crate::service::dbcheck::check(l, d, pw.as_deref(), PROBE_TIMEOUT).map(|()| match d.database.kind {
        DbType::Sqlite => format!("SQLite {}", l.sqlite_path().display()),
        DbType::Postgres => format!("PostgreSQL {}:{}", d.database.host, d.database.port),
        DbType::Mysql => format!("MySQL {}:{}", d.database.host, d.database.port),
    });
    out.push(component(t, "Database", None, None, db));
    let nginx = if !crate::service::nginx::is_running(l, t.init) {
        Err("nginx is not running".to_string())
    } else {
        let listen = &d.network.listen_address;
        probe::tcp_open_at(probe::reach(listen, d.network.https_port), PROBE_TIMEOUT)
            .and_then(|()| probe::get_at(probe::reach(listen, d.network.http_port), "/", PROBE_TIMEOUT))
            .and_then(|r| match r.status {
                301 | 308 => Ok(format!("HTTPS on {}, HTTP redirects", d.network.https_port)),
                s => Err(format!("port {} answered {s} instead of a redirect to HTTPS", d.network.http_port)),
            })
    };
    let nginx_unit = (t.init == Init::Systemd).then(|| "nginx".to_string());
    out.push(component(t, "Nginx", Some(d.network.https_port), nginx_unit, nginx));
    out
}

pub fn print_report(components: &[Component]) {
    for c in components {
        let mark = if c.healthy { "OK  " } else { "FAIL" };
        println!("{mark} {:<12} {}", c.name, c.detail);
        if !c.healthy {
            if let Some(p) = c.port {
                println!("       Port: {p}");
            }
            println!("       Suggested actions:");
            for (i, r) in c.remediation.iter().enumerate() {
                println!("         {}. {r}", i + 1);
            }
        }
    }
}
