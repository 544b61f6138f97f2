//! What automatic updates remember: `state/auto-update` (last check, last update, result, next
//! window) and `state/auto-update-skip` (versions whose automatic update failed and was undone;
//! they are not tried again until a person clears them). Both are `key: value` files written
//! atomically, read by `status`.

use std::io;
use std::path::PathBuf;

use serde::Serialize;

use crate::instance::layout::Layout;
use crate::instance::state::{get, read_kv, write_kv};

pub fn state_file(l: &Layout) -> PathBuf {
    l.state_dir().join("auto-update")
}

pub fn skip_file(l: &Layout) -> PathBuf {
    l.state_dir().join("auto-update-skip")
}

/// Base name of the timer and its service for instance `l`.
pub fn unit(l: &Layout) -> String {
    format!("vikunja-{}-autoupdate", l.instance)
}

/// The timer's unit file as installed.
pub fn timer_path(l: &Layout) -> PathBuf {
    l.system(&format!("/etc/systemd/system/{}.timer", unit(l)))
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Skipped {
    pub version: String,
    pub since: String,
    pub reason: String,
}

/// What `status` shows of automatic updates.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Shown {
    /// "on" when the timer is installed, else "off".
    pub timer: &'static str,
    pub last_check: Option<String>,
    pub last_update: Option<String>,
    pub result: Option<String>,
    pub next_window: Option<String>,
    pub skipped: Vec<Skipped>,
}

/// The record of one `update --auto` run.
pub struct Record<'a> {
    pub checked: &'a str,
    /// Set when this run updated (its time); otherwise the previous last update stays.
    pub updated: Option<&'a str>,
    pub result: &'a str,
    pub next_window: &'a str,
}

pub fn record(l: &Layout, r: &Record) -> io::Result<()> {
    let old = read_kv(&state_file(l)).unwrap_or_default();
    let last_update = r.updated.map(str::to_string).or_else(|| get(&old, "last_update").map(str::to_string));
    let mut f = vec![("last_check", r.checked.to_string()), ("result", r.result.replace('\n', " "))];
    f.extend(last_update.map(|u| ("last_update", u)));
    f.push(("next_window", r.next_window.to_string()));
    write_kv(&state_file(l), &f)
}

pub fn skipped(l: &Layout) -> Vec<Skipped> {
    read_kv(&skip_file(l))
        .unwrap_or_default()
        .into_iter()
        .map(|(version, rest)| {
            let (since, reason) = rest.split_once(' ').unwrap_or((rest.as_str(), ""));
            Skipped { version, since: since.to_string(), reason: reason.to_string() }
        })
        .collect()
}

/// Adds `version` to the skipped versions (kept once, with the newest reason).
pub fn add_skip(l: &Layout, version: &str, since: &str, reason: &str) -> io::Result<()> {
    let mut all = skipped(l);
    all.retain(|s| s.version != version);
    all.push(Skipped { version: version.into(), since: since.into(), reason: reason.replace('\n', " ") });
    let f: Vec<(&str, String)> =
        all.iter().map(|s| (s.version.as_str(), format!("{} {}", s.since, s.reason))).collect();
    write_kv(&skip_file(l), &f)
}

/// Forgets every skipped version; returns them.
pub fn clear_skips(l: &Layout) -> io::Result<Vec<Skipped>> {
    let all = skipped(l);
    manifests::atomic::remove_if_present(&skip_file(l))?;
    Ok(all)
}

pub fn shown(l: &Layout) -> Shown {
    let kv = read_kv(&state_file(l)).unwrap_or_default();
    let s = |k: &str| get(&kv, k).map(str::to_string);
    Shown {
        timer: if timer_path(l).is_file() { "on" } else { "off" },
        last_check: s("last_check"),
        last_update: s("last_update"),
        result: s("result"),
        next_window: s("next_window"),
        skipped: skipped(l),
    }
}

/// The status screen's lines (each cut to the screen's width; `--json` has them whole).
pub fn lines(s: &Shown) -> Vec<String> {
    if s.timer == "off" && s.last_check.is_none() && s.skipped.is_empty() {
        return vec!["Auto-update:    off (`update --auto --schedule on`)".into()];
    }
    let mut v = vec![
        format!("Auto-update:    {}", if s.timer == "on" { "scheduled" } else { "not scheduled" }),
        format!("Last check:     {}", s.last_check.as_deref().unwrap_or("never")),
        format!("Result:         {}", s.result.as_deref().unwrap_or("-")),
        format!("Last update:    {}", s.last_update.as_deref().unwrap_or("never")),
        format!("Next window:    {}", s.next_window.as_deref().unwrap_or("-")),
    ];
    for k in &s.skipped {
        v.push(format!("Skipped:        {} (`update --auto --clear-skip`)", k.version));
    }
    v.into_iter()
        .map(|l| if l.chars().count() > 58 { format!("{}…", l.chars().take(57).collect::<String>()) } else { l })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_skips_round_trip_and_the_last_update_survives_a_check() {
        let dir = std::env::temp_dir().join(format!("update-state-{}", std::process::id()));
        let l = Layout::new(&dir, "t");
        std::fs::create_dir_all(l.state_dir()).unwrap();
        let r = Record { checked: "c1", updated: Some("u1"), result: "updated v1 -> v2", next_window: "Sun 03:00" };
        record(&l, &r).unwrap();
        record(&l, &Record { checked: "c2", updated: None, result: "up to date", next_window: "-" }).unwrap();
        add_skip(&l, "v2.5.0", "2026-11-27T00:00:00Z", "health gate failed:\nexit 11").unwrap();
        add_skip(&l, "v2.5.0", "2026-11-28T00:00:00Z", "again").unwrap();
        let s = shown(&l);
        assert_eq!(
            (s.last_check.as_deref(), s.last_update.as_deref(), s.result.as_deref()),
            (Some("c2"), Some("u1"), Some("up to date"))
        );
        assert_eq!(
            s.skipped,
            [Skipped { version: "v2.5.0".into(), since: "2026-11-28T00:00:00Z".into(), reason: "again".into() }]
        );
        assert!(lines(&s).iter().any(|x| x.starts_with("Skipped:        v2.5.0")));
        assert_eq!(clear_skips(&l).unwrap().len(), 1);
        assert!(shown(&l).skipped.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
