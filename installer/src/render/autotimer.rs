//! The timer and oneshot service of unattended updates (`update --auto`, `upgrade --auto`): like
//! the scheduled backup's, plus the environment the schedule was made with and one `OnCalendar=`
//! per maintenance window.

use super::{exec_start, fill, invalid, systemd_text, systemd_word, unit_name, RenderError, Value};

pub const SERVICE_TEMPLATE: &str = "systemd/autoupdate.service.tmpl";
pub const TIMER_TEMPLATE: &str = "systemd/autoupdate.timer.tmpl";

pub struct AutoTimerSpec {
    /// Base name of both units without suffix, e.g. "vikunja-main-autoupdate".
    pub unit: String,
    pub description: String,
    /// The command as a person types it ("update --auto"), for the comments.
    pub command: String,
    /// argv, absolute program path first.
    pub exec: Vec<String>,
    /// `Environment=` entries (no secrets: unit files are world-readable).
    pub env: Vec<(String, String)>,
    /// systemd calendar expressions, one `OnCalendar=` each; at least one.
    pub on_calendar: Vec<String>,
    pub randomized_delay_s: u32,
}

/// Renders (service, timer).
pub fn render(
    service_template: &str,
    timer_template: &str,
    s: &AutoTimerSpec,
) -> Result<(String, String), RenderError> {
    let ts = SERVICE_TEMPLATE;
    let unit = unit_name(ts, "unit", &s.unit)?;
    let description = systemd_text(ts, "description", &s.description)?;
    let command = systemd_text(ts, "command", &s.command)?;
    let mut env = String::new();
    for (k, v) in &s.env {
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(ts, "environment", format!("has the variable name {k:?}")));
        }
        systemd_text(ts, "environment", v)?;
        env.push_str(&format!("Environment={}\n", systemd_word(&format!("{k}={v}"), false)));
    }
    let service = fill(
        ts,
        service_template,
        &[
            ("unit", Value::Line(unit.to_owned())),
            ("description", Value::Line(description.clone())),
            ("command", Value::Line(command.clone())),
            ("environment", Value::Block(env)),
            ("exec_start", Value::Line(exec_start(ts, &s.exec)?)),
        ],
    )?;
    let tt = TIMER_TEMPLATE;
    if s.on_calendar.is_empty() {
        return Err(invalid(tt, "on_calendar", "is empty: a timer needs at least one OnCalendar="));
    }
    let mut cal = String::new();
    for c in &s.on_calendar {
        let c = systemd_text(tt, "on_calendar", c)?;
        if c.trim().is_empty() {
            return Err(invalid(tt, "on_calendar", "holds an empty expression"));
        }
        cal.push_str(&format!("OnCalendar={c}\n"));
    }
    let timer = fill(
        tt,
        timer_template,
        &[
            ("unit", Value::Line(unit.to_owned())),
            ("description", Value::Line(description)),
            ("command", Value::Line(command)),
            ("on_calendar", Value::Block(cal)),
            ("randomized_delay_s", Value::Line(s.randomized_delay_s.to_string())),
        ],
    )?;
    Ok((service, timer))
}
