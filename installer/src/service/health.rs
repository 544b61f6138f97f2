//! Health of every component, judged by what answers rather than by exit codes or unit states
//! (Vikunja stays "active" when it cannot bind its port): backend `/health` and `/api/v1/info`
//! with the expected version, the frontend's HTML, the MCP port, the database, nginx. A failing
//! component comes with the seed's remediation list, with this instance's real unit names and paths.

use std::time::Duration;

use serde::Serialize;

use crate::instance::config::{DbType, Deployment};
use crate::instance::layout::Layout;
use crate::instance::state::Colour;
use crate::report::say;
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
        DbType::Postgres if d.database.provision => {
            format!("PostgreSQL {}:{} (on this machine, provisioned)", d.database.host, d.database.port)
        }
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

/// What `health` and `status` show: [`check_all`] and, with `[ssl] acme`, the certificate. The
/// colour's health gate uses `check_all` alone: a renewal problem must not undo an update.
pub fn report(t: &Target) -> Vec<Component> {
    let mut out = check_all(t);
    if t.d.ssl.acme {
        let l = t.l;
        let now = manifests::time::now_unix();
        let timer = crate::service::acme::timer_unit(l);
        let [_, (_, timer_file)] = crate::service::schedule::timer_files(l, &timer);
        let res = certificate_verdict(
            crate::service::acme::days_left(l, now),
            crate::service::acme::last_attempt(l),
            crate::service::acme::RENEW_DAYS,
        )
        .and_then(|ok| match t.init == Init::Systemd && !timer_file.is_file() {
            true => Err(format!("{ok}, but nothing renews it: {timer}.timer is missing (run install again)")),
            false => Ok(ok),
        });
        let remediation = if res.is_ok() {
            Vec::new()
        } else {
            vec![
                format!("Renew now and read the error: vikunja-installer cert renew --instance {}", l.instance),
                format!("Check the renewal timer: systemctl list-timers {timer}.timer; journalctl -u {timer} -n 50"),
            ]
        };
        let (healthy, detail) = match res {
            Ok(d) => (true, d),
            Err(e) => (false, e),
        };
        out.push(Component { name: "Certificate", healthy, detail, port: None, unit: None, remediation });
    }
    out
}

/// The ACME certificate's verdict from its days left and the last renewal attempt (time, error).
fn certificate_verdict(
    days: Option<i64>,
    last: Option<(i64, Option<String>)>,
    renew_days: i64,
) -> Result<String, String> {
    let failed = last.as_ref().and_then(|(at, e)| {
        e.as_ref().map(|e| format!("the last attempt ({}) failed: {e}", manifests::time::format_rfc3339(*at)))
    });
    match (days, failed) {
        (None, f) => Err(format!(
            "no ACME certificate yet, a self-signed one serves{}",
            f.map(|f| format!("; {f}")).unwrap_or_default()
        )),
        (Some(d), _) if d < 0 => Err(format!("the ACME certificate expired {} days ago", -d)),
        (Some(d), Some(f)) if d < renew_days => Err(format!("ACME certificate: {d} days left and not renewed; {f}")),
        (Some(d), f) => {
            Ok(format!("ACME certificate: {d} days left{}", f.map(|f| format!(" ({f})")).unwrap_or_default()))
        }
    }
}

pub fn print_report(components: &[Component]) {
    for c in components {
        let mark = if c.healthy { "OK  " } else { "FAIL" };
        say!("{mark} {:<12} {}", c.name, c.detail);
        if !c.healthy {
            if let Some(p) = c.port {
                say!("       Port: {p}");
            }
            say!("       Suggested actions:");
            for (i, r) in c.remediation.iter().enumerate() {
                say!("         {}. {r}", i + 1);
            }
        }
    }
}

#[cfg(test)]
mod certificate_tests {
    use super::certificate_verdict;

    #[test]
    fn the_certificate_is_unhealthy_when_missing_expired_or_due_with_a_failed_renewal() {
        let failed = Some((0, Some("the CA could not validate x".to_string())));
        let fine = Some((0, None));
        assert!(certificate_verdict(None, None, 30).unwrap_err().contains("self-signed"));
        assert!(certificate_verdict(None, failed.clone(), 30).unwrap_err().contains("could not validate"));
        assert!(certificate_verdict(Some(-2), fine.clone(), 30).unwrap_err().contains("expired 2 days ago"));
        let e = certificate_verdict(Some(12), failed.clone(), 30).unwrap_err();
        assert!(
            e.contains("12 days left") && e.contains("1970-01-01T00:00:00Z") && e.contains("could not validate"),
            "{e}"
        );
        // Controls: due but not tried yet (the timer runs twice a day), or plenty left after a
        // failed forced renewal, are healthy and say so.
        assert_eq!(certificate_verdict(Some(12), fine, 30).unwrap(), "ACME certificate: 12 days left");
        assert!(certificate_verdict(Some(80), failed, 30).unwrap().contains("80 days left (the last attempt"));
    }
}
