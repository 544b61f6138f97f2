//! What is watched of an instance: the `[metrics]` and `[notify]` settings of deployment.toml, and
//! `state/observe`, the few facts that must outlive one run (counters for `_total` metrics, the
//! last health seen by the timer, what was already announced so it is not announced every minute).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::instance::layout::Layout;
use crate::instance::state::{get, read_kv, write_kv};

/// `[metrics]`: where the Prometheus textfile goes and how often the timer refreshes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// The textfile (`*.prom`) node_exporter's textfile collector reads; empty: `state/metrics.prom`.
    pub textfile: Option<PathBuf>,
    /// Minutes between the timer's runs (`metrics --enable-timer`).
    pub every_minutes: u32,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics { textfile: None, every_minutes: 1 }
    }
}

/// `[notify]`: one receiver. `format` chooses the request: "json" (a generic webhook), "ntfy"
/// (its publish API: body and Title/Priority/Tags headers), "gotify" (POST /message?token=…).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Notify {
    /// Empty: no notifications. https://, or http:// to a loopback address only.
    pub url: String,
    pub format: String,
    /// An owner-only file with the Gotify application token or the ntfy access token.
    pub token_file: Option<PathBuf>,
    /// Announce a certificate that ends within this many days.
    pub certificate_days: u32,
    /// Announce a newer Vikunja release on the download site (the timer asks at most daily).
    pub releases: bool,
}

impl Default for Notify {
    fn default() -> Notify {
        Notify { url: String::new(), format: "json".into(), token_file: None, certificate_days: 14, releases: true }
    }
}

pub const FORMATS: &[&str] = &["json", "ntfy", "gotify"];

/// Whether `url` may carry notifications: https anywhere, plain http only to this machine (a
/// local relay or a test receiver), since the messages name the instance and what failed.
pub fn url_allowed(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        // `http://localhost:1@remote/` goes to `remote`: userinfo never counts as the host.
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The settings' refusals as (field, value, what is allowed), for `Deployment::validate`.
pub fn validate(m: &Metrics, n: &Notify, bad: &mut dyn FnMut(&str, &dyn std::fmt::Display, &str)) {
    if let Some(t) = &m.textfile {
        if !t.is_absolute() || t.extension().is_none_or(|e| e != "prom") {
            bad("metrics.textfile", &t.display(), "an absolute path ending in .prom (node_exporter reads only those)");
        }
    }
    // What a systemd calendar step can say: minutes within an hour, or whole hours.
    if !((1..60).contains(&m.every_minutes)
        || (60..=1440).contains(&m.every_minutes) && m.every_minutes.is_multiple_of(60))
    {
        bad("metrics.every_minutes", &m.every_minutes, "1 to 59, or whole hours (60, 120, … 1440)");
    }
    if !n.url.is_empty() && !url_allowed(&n.url) {
        bad("notify.url", &n.url, "an https:// URL (plain http:// only to 127.0.0.1, ::1 or localhost)");
    }
    if !FORMATS.contains(&n.format.as_str()) {
        bad("notify.format", &n.format, "json, ntfy or gotify");
    }
    if n.format == "gotify" && !n.url.is_empty() && n.token_file.is_none() {
        bad("notify.token_file", &"(none)", "a file holding the Gotify application token (Gotify needs one)");
    }
    if let Some(t) = &n.token_file {
        if !t.is_file() {
            bad("notify.token_file", &t.display(), "an existing file (owner-only, mode 0600)");
        }
    }
    if !(1..=365).contains(&n.certificate_days) {
        bad("notify.certificate_days", &n.certificate_days, "1 to 365");
    }
}

/// Reads a secret from an owner-only file: a file others may read is refused, so a token never
/// ends up readable by every account in the container.
pub fn read_secret(path: &Path) -> Result<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} may be read by others (mode {:o}); make it owner-only: chmod 600 {}",
            path.display(),
            meta.permissions().mode() & 0o777,
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or("").trim().to_string())
}

/// `state/observe`: counters and what the timer last saw or announced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub updates_succeeded: u64,
    pub updates_failed: u64,
    pub updates_rolled_back: u64,
    pub rollbacks: u64,
    pub notifications_sent: u64,
    pub notifications_failed: u64,
    /// "healthy" or "unhealthy", as the timer saw it last.
    pub health: String,
    /// The release last announced as available.
    pub release_announced: String,
    /// The certificate end (Unix time) last announced as near.
    pub certificate_announced: i64,
    /// When the download site was last asked for releases (Unix time).
    pub release_checked: i64,
}

fn path(l: &Layout) -> PathBuf {
    l.state_dir().join("observe")
}

pub fn load(l: &Layout) -> Observed {
    let kv = read_kv(&path(l)).unwrap_or_default();
    let n = |k: &str| get(&kv, k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let i = |k: &str| get(&kv, k).and_then(|v| v.parse().ok()).unwrap_or(0);
    let s = |k: &str| get(&kv, k).unwrap_or("").to_string();
    Observed {
        updates_succeeded: n("updates_succeeded"),
        updates_failed: n("updates_failed"),
        updates_rolled_back: n("updates_rolled_back"),
        rollbacks: n("rollbacks"),
        notifications_sent: n("notifications_sent"),
        notifications_failed: n("notifications_failed"),
        health: s("health"),
        release_announced: s("release_announced"),
        certificate_announced: i("certificate_announced"),
        release_checked: i("release_checked"),
    }
}

pub fn save(l: &Layout, o: &Observed) -> io::Result<()> {
    write_kv(
        &path(l),
        &[
            ("updates_succeeded", o.updates_succeeded.to_string()),
            ("updates_failed", o.updates_failed.to_string()),
            ("updates_rolled_back", o.updates_rolled_back.to_string()),
            ("rollbacks", o.rollbacks.to_string()),
            ("notifications_sent", o.notifications_sent.to_string()),
            ("notifications_failed", o.notifications_failed.to_string()),
            ("health", o.health.clone()),
            ("release_announced", o.release_announced.clone()),
            ("certificate_announced", o.certificate_announced.to_string()),
            ("release_checked", o.release_checked.to_string()),
        ],
    )
}

/// Read, change, write back under a lock of its own (the timer and an operation may both count),
/// never the operation lock: counting must not wait for an update to finish.
pub fn update(l: &Layout, change: impl FnOnce(&mut Observed)) -> io::Result<Observed> {
    use std::os::fd::AsRawFd;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(l.locks_dir().join("observe.lock"))?;
    // SAFETY: flock on a descriptor this function owns for its whole use; the lock ends with `lock`.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut o = load(l);
    change(&mut o);
    save(l, &o)?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_allowed_to_loopback_only() {
        for ok in ["https://ntfy.sh/x", "http://127.0.0.1:8080/hook", "http://[::1]:9/x", "http://localhost/x"] {
            assert!(url_allowed(ok), "{ok}");
        }
        for no in
            ["http://example.com/hook", "http://10.0.0.1/x", "http://127.0.0.1.evil.com/x", "ftp://127.0.0.1/", ""]
                .into_iter()
                // Userinfo that looks like a loopback host: the request would go to the remote one.
                .chain([
                    "http://localhost:1@hooks.example.com/x",
                    "http://127.0.0.1@evil.com/",
                    "http://u:p@[::1]@evil/",
                ])
        {
            assert!(!url_allowed(no), "{no}");
        }
    }

    #[test]
    fn a_token_others_may_read_is_refused_and_an_owner_only_one_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("observe-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("token");
        std::fs::write(&f, "AbC123\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_secret(&f).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret(&f).unwrap(), "AbC123");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
