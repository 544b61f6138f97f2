//! The seed's state files under `state/`, written atomically: `active-color`, `deployed-version`
//! (key: value lines) and `last-operation`, read back by status and the other commands.

use std::io;
use std::path::Path;

use manifests::atomic::write_atomic;

use crate::instance::layout::Layout;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Blue,
    Green,
}

impl Colour {
    pub fn name(self) -> &'static str {
        match self {
            Colour::Blue => "blue",
            Colour::Green => "green",
        }
    }
    pub fn parse(s: &str) -> Option<Colour> {
        match s.trim() {
            "blue" => Some(Colour::Blue),
            "green" => Some(Colour::Green),
            _ => None,
        }
    }
}

/// `key: value` lines, the seed's format for state files.
pub fn read_kv(path: &Path) -> io::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect())
}

pub fn write_kv(path: &Path, fields: &[(&str, String)]) -> io::Result<()> {
    let text: String = fields.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    write_atomic(path, text.as_bytes(), 0o644)
}

pub fn get<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub fn active_colour(l: &Layout) -> Option<Colour> {
    std::fs::read_to_string(l.state_dir().join("active-color")).ok().and_then(|s| Colour::parse(&s))
}

pub fn set_active_colour(l: &Layout, c: Colour) -> io::Result<()> {
    write_atomic(&l.state_dir().join("active-color"), format!("{}\n", c.name()).as_bytes(), 0o644)
}

/// The seed's deployment id, `vikunja-<instance>-YYYYMMDD-HHMMSS`, from an RFC 3339 time.
pub fn deployment_id(instance: &str, rfc3339: &str) -> String {
    format!("vikunja-{instance}-{}", rfc3339.replace(['-', ':'], "").trim_end_matches('Z').replace('T', "-"))
}

#[derive(Debug, Clone, PartialEq)]
pub struct Deployed {
    pub version: String,
    pub timestamp: String,
    pub colour: Colour,
    pub deployment_id: String,
}

pub fn deployed(l: &Layout) -> Option<Deployed> {
    let kv = read_kv(&l.state_dir().join("deployed-version")).ok()?;
    Some(Deployed {
        version: get(&kv, "version")?.to_string(),
        timestamp: get(&kv, "timestamp").unwrap_or("").to_string(),
        colour: Colour::parse(get(&kv, "color")?)?,
        deployment_id: get(&kv, "deployment_id").unwrap_or("").to_string(),
    })
}

pub fn set_deployed(l: &Layout, d: &Deployed) -> io::Result<()> {
    write_kv(
        &l.state_dir().join("deployed-version"),
        &[
            ("version", d.version.clone()),
            ("timestamp", d.timestamp.clone()),
            ("color", d.colour.name().to_string()),
            ("deployment_id", d.deployment_id.clone()),
        ],
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct LastOperation {
    pub operation: String,
    pub started: String,
    pub duration_ms: u64,
    pub result: String,
}

pub fn last_operation(l: &Layout) -> Option<LastOperation> {
    let kv = read_kv(&l.state_dir().join("last-operation")).ok()?;
    Some(LastOperation {
        operation: get(&kv, "operation")?.to_string(),
        started: get(&kv, "started").unwrap_or("").to_string(),
        duration_ms: get(&kv, "duration_ms").and_then(|v| v.parse().ok()).unwrap_or(0),
        result: get(&kv, "result").unwrap_or("").to_string(),
    })
}

pub fn record_operation(l: &Layout, op: &LastOperation) -> io::Result<()> {
    write_kv(
        &l.state_dir().join("last-operation"),
        &[
            ("operation", op.operation.clone()),
            ("started", op.started.clone()),
            ("duration_ms", op.duration_ms.to_string()),
            ("result", op.result.clone()),
        ],
    )
}

/// `state/stopped`: written by `stop`, so nothing that revives or re-routes a colour (recovery's
/// revive, `update`, `restart`, `rollback`) starts the instance again behind the admin's back.
pub fn stopped_flag(l: &Layout) -> std::path::PathBuf {
    l.state_dir().join("stopped")
}

/// Whether the admin stopped the instance (`stop`) and has not started it since.
pub fn is_stopped(l: &Layout) -> bool {
    stopped_flag(l).is_file()
}

/// Forgets a stop: after `start`, an `install` or a `restore`, which start everything anyway.
pub fn clear_stopped(l: &Layout) -> io::Result<()> {
    manifests::atomic::remove_if_present(&stopped_flag(l))
}
