//! The Prometheus text format of one instance's facts: facts in, text out, nothing read here
//! (`commands::observe` gathers them). Names follow Prometheus' conventions: `vikunja_pve_` first,
//! base units (`_seconds`, `_bytes`), `_total` counters, an `_info` metric whose labels carry the
//! serving version and colour. Every series carries `vikunja_instance`, since node_exporter merges
//! the textfiles of all instances in a container (and `instance` is Prometheus' own target label).

use std::fmt::Write;

/// What an instance looks like now, as far as metrics go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    pub instance: String,
    pub installer_version: String,
    /// "serving", "stopped" or "not installed".
    pub state: String,
    pub colour: Option<String>,
    pub version: Option<String>,
    /// (component, healthy): backend, frontend, mcp, database, nginx.
    pub components: Vec<(String, bool)>,
    /// How long the health check of all components took.
    pub health_seconds: Option<f64>,
    pub last_operation: Option<Operation>,
    pub updates_succeeded: u64,
    pub updates_failed: u64,
    pub updates_rolled_back: u64,
    pub rollbacks: u64,
    pub notifications_sent: u64,
    pub notifications_failed: u64,
    /// (Unix time, bytes) of the newest backup in backups/.
    pub last_backup: Option<(i64, u64)>,
    /// The end of the served certificate (Unix time).
    pub certificate_expiry: Option<i64>,
    /// (what, bytes): data and backups.
    pub disk: Vec<(String, u64)>,
    pub generated: i64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Operation {
    pub operation: String,
    pub result: String,
    pub started: Option<i64>,
    pub duration_seconds: f64,
}

/// A label value as the text format needs it: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Out {
    text: String,
    instance: String,
}

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let mut l = format!("vikunja_instance=\"{}\"", escape(&self.instance));
        for (k, v) in labels {
            let _ = write!(l, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(self.text, "{name}{{{l}}} {value}");
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

fn bit(b: bool) -> u8 {
    u8::from(b)
}

pub fn render(f: &Facts) -> String {
    let mut o = Out { text: String::new(), instance: f.instance.clone() };
    o.family(
        "vikunja_pve_info",
        "gauge",
        "The instance: serving Vikunja version and colour, state, installer version.",
    );
    o.sample(
        "vikunja_pve_info",
        &[
            ("version", f.version.as_deref().unwrap_or("")),
            ("colour", f.colour.as_deref().unwrap_or("")),
            ("state", &f.state),
            ("installer_version", &f.installer_version),
        ],
        1,
    );
    if !f.components.is_empty() {
        o.family("vikunja_pve_up", "gauge", "Whether a component answered its health check (1) or not (0).");
        for (c, up) in &f.components {
            o.sample("vikunja_pve_up", &[("component", c)], bit(*up));
        }
        o.one(
            "vikunja_pve_healthy",
            "gauge",
            "Whether every component is healthy.",
            bit(f.components.iter().all(|(_, up)| *up)),
        );
    }
    if let Some(s) = f.health_seconds {
        o.one(
            "vikunja_pve_health_check_duration_seconds",
            "gauge",
            "How long the health check of all components took.",
            s,
        );
    }
    if let Some(op) = &f.last_operation {
        o.family("vikunja_pve_last_operation_info", "gauge", "The last operation and its result.");
        o.sample("vikunja_pve_last_operation_info", &[("operation", &op.operation), ("result", &op.result)], 1);
        o.one(
            "vikunja_pve_last_operation_duration_seconds",
            "gauge",
            "How long the last operation took.",
            op.duration_seconds,
        );
        if let Some(t) = op.started {
            o.one("vikunja_pve_last_operation_timestamp_seconds", "gauge", "When the last operation started.", t);
        }
    }
    o.family(
        "vikunja_pve_updates_total",
        "counter",
        "Updates by result (rolled_back: failed and undone automatically).",
    );
    for (r, n) in
        [("succeeded", f.updates_succeeded), ("failed", f.updates_failed), ("rolled_back", f.updates_rolled_back)]
    {
        o.sample("vikunja_pve_updates_total", &[("result", r)], n);
    }
    o.family("vikunja_pve_rollbacks_total", "counter", "Rollbacks to the previous release, by what started them.");
    o.sample("vikunja_pve_rollbacks_total", &[("trigger", "command")], f.rollbacks);
    o.sample("vikunja_pve_rollbacks_total", &[("trigger", "failed_update")], f.updates_rolled_back);
    o.one(
        "vikunja_pve_notifications_sent_total",
        "counter",
        "Notifications the receiver accepted.",
        f.notifications_sent,
    );
    o.one(
        "vikunja_pve_notifications_failed_total",
        "counter",
        "Notifications that could not be delivered (logged; the operation went on).",
        f.notifications_failed,
    );
    if let Some((t, size)) = f.last_backup {
        o.one("vikunja_pve_last_backup_timestamp_seconds", "gauge", "When the newest backup was made.", t);
        o.one("vikunja_pve_last_backup_size_bytes", "gauge", "The size of the newest backup.", size);
    }
    if let Some(t) = f.certificate_expiry {
        o.one("vikunja_pve_certificate_expiry_timestamp_seconds", "gauge", "When the served TLS certificate ends.", t);
    }
    if !f.disk.is_empty() {
        o.family("vikunja_pve_disk_used_bytes", "gauge", "Bytes used by the instance's data and its backups.");
        for (what, bytes) in &f.disk {
            o.sample("vikunja_pve_disk_used_bytes", &[("dir", what)], bytes);
        }
    }
    o.one(
        "vikunja_pve_metrics_generated_timestamp_seconds",
        "gauge",
        "When these metrics were written (a stale file shows the timer stopped).",
        f.generated,
    );
    o.text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            instance: "main".into(),
            installer_version: "0.9.0".into(),
            state: "serving".into(),
            colour: Some("green".into()),
            version: Some("v2.5.0".into()),
            components: vec![("backend".into(), true), ("database".into(), false)],
            health_seconds: Some(0.25),
            last_operation: Some(Operation {
                operation: "update".into(),
                result: "success".into(),
                started: Some(1_800_000_000),
                duration_seconds: 12.5,
            }),
            updates_succeeded: 3,
            updates_failed: 1,
            updates_rolled_back: 2,
            rollbacks: 1,
            notifications_sent: 4,
            notifications_failed: 5,
            last_backup: Some((1_800_000_100, 4096)),
            certificate_expiry: Some(1_900_000_000),
            disk: vec![("data".into(), 1000), ("backups".into(), 2000)],
            generated: 1_800_000_200,
        }
    }

    #[test]
    fn every_fact_becomes_its_sample() {
        let t = render(&facts());
        for line in [
            "vikunja_pve_info{vikunja_instance=\"main\",version=\"v2.5.0\",colour=\"green\",state=\"serving\",installer_version=\"0.9.0\"} 1",
            "vikunja_pve_up{vikunja_instance=\"main\",component=\"backend\"} 1",
            "vikunja_pve_up{vikunja_instance=\"main\",component=\"database\"} 0",
            "vikunja_pve_healthy{vikunja_instance=\"main\"} 0",
            "vikunja_pve_health_check_duration_seconds{vikunja_instance=\"main\"} 0.25",
            "vikunja_pve_last_operation_info{vikunja_instance=\"main\",operation=\"update\",result=\"success\"} 1",
            "vikunja_pve_last_operation_duration_seconds{vikunja_instance=\"main\"} 12.5",
            "vikunja_pve_last_operation_timestamp_seconds{vikunja_instance=\"main\"} 1800000000",
            "vikunja_pve_updates_total{vikunja_instance=\"main\",result=\"succeeded\"} 3",
            "vikunja_pve_updates_total{vikunja_instance=\"main\",result=\"failed\"} 1",
            "vikunja_pve_updates_total{vikunja_instance=\"main\",result=\"rolled_back\"} 2",
            "vikunja_pve_rollbacks_total{vikunja_instance=\"main\",trigger=\"command\"} 1",
            "vikunja_pve_rollbacks_total{vikunja_instance=\"main\",trigger=\"failed_update\"} 2",
            "vikunja_pve_notifications_sent_total{vikunja_instance=\"main\"} 4",
            "vikunja_pve_notifications_failed_total{vikunja_instance=\"main\"} 5",
            "vikunja_pve_last_backup_timestamp_seconds{vikunja_instance=\"main\"} 1800000100",
            "vikunja_pve_last_backup_size_bytes{vikunja_instance=\"main\"} 4096",
            "vikunja_pve_certificate_expiry_timestamp_seconds{vikunja_instance=\"main\"} 1900000000",
            "vikunja_pve_disk_used_bytes{vikunja_instance=\"main\",dir=\"data\"} 1000",
            "vikunja_pve_disk_used_bytes{vikunja_instance=\"main\",dir=\"backups\"} 2000",
            "vikunja_pve_metrics_generated_timestamp_seconds{vikunja_instance=\"main\"} 1800000200",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line}\n{t}");
        }
        // One HELP and one TYPE per family, before its first sample.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split('{').next().unwrap();
            let ty = t.find(&format!("# TYPE {name} ")).unwrap_or_else(|| panic!("no TYPE for {name}"));
            assert!(ty < t.find(l).unwrap());
            assert_eq!(t.matches(&format!("# TYPE {name} ")).count(), 1, "{name}");
        }
    }

    #[test]
    fn label_values_are_escaped_and_unknown_facts_left_out() {
        let f = Facts { instance: "a\"b\\c\nd".into(), state: "not installed".into(), ..Facts::default() };
        let t = render(&f);
        assert!(t.contains("vikunja_instance=\"a\\\"b\\\\c\\nd\""), "{t}");
        for absent in
            ["vikunja_pve_up{", "vikunja_pve_last_backup", "vikunja_pve_certificate", "vikunja_pve_last_operation"]
        {
            assert!(!t.contains(absent), "{absent} without a fact:\n{t}");
        }
    }
}
