//! The automatic update policy (`[updates]` in deployment.toml) and the pure decisions made from
//! it: which of the listed releases an unattended update may go to, and whether the clock is
//! inside one of the maintenance windows. No I/O here, so every rule is unit-tested.
//!
//! Rules, in the order they exclude a release: pre-releases are never chosen; the channel keeps
//! the major (`minor`) or the major and minor (`patch`) of the running version (`any` keeps
//! nothing); every `pin` is a ceiling (`v2.5` allows up to every v2.5.x, never v2.6.0); a `skip`
//! entry (config) or a version whose automatic update failed (state) is passed over. Of what is
//! left, the newest newer than the running version wins. A channel or pin boundary is never
//! crossed: with channel `patch` on v2.4.0, v2.4.3 is chosen even when v2.5.0 exists.

use std::fmt;

use manifests::Version;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Only x.y.Z of the running x.y.
    #[default]
    Patch,
    /// Only x.Y.Z of the running x.
    Minor,
    /// Any newer release.
    Any,
}

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Patch => "patch",
            Channel::Minor => "minor",
            Channel::Any => "any",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        [Channel::Patch, Channel::Minor, Channel::Any].into_iter().find(|c| c.name() == s)
    }

    /// Whether going from `from` to `to` stays inside the channel.
    pub fn allows(self, from: &Version, to: &Version) -> bool {
        match self {
            Channel::Patch => (to.major, to.minor) == (from.major, from.minor),
            Channel::Minor => to.major == from.major,
            Channel::Any => true,
        }
    }
}

/// A version or prefix (`v2`, `v2.5`, `v2.5.3`) with the reason a person gave for it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    pub version: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Updates {
    pub channel: Channel,
    /// Maintenance windows like "Sun 03:00-05:00" in the container's local time; none: any time.
    pub window: Vec<String>,
    /// Ceilings: an automatic update never goes past any of them.
    pub pin: Vec<Rule>,
    /// Releases (or prefixes) an automatic update passes over.
    pub skip: Vec<Rule>,
    /// Take a full backup (`backup`, with its retention) before an automatic update.
    pub backup_first: bool,
}

impl Default for Updates {
    fn default() -> Updates {
        Updates { channel: Channel::Patch, window: Vec::new(), pin: Vec::new(), skip: Vec::new(), backup_first: true }
    }
}

/// `v2`, `v2.5` or `v2.5.3` (the `v` optional): the numbers given, 1 to 3 of them.
pub fn parse_prefix(s: &str) -> Option<Vec<u64>> {
    let s = s.trim().trim_start_matches('v');
    let parts: Vec<u64> = s
        .split('.')
        .map(|p| (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())).then(|| p.parse().ok()).flatten())
        .collect::<Option<_>>()?;
    (1..=3).contains(&parts.len()).then_some(parts)
}

fn numbers(v: &Version) -> [u64; 3] {
    [v.major, v.minor, v.patch]
}

/// Whether `v` lies within `prefix` (v2.5.1 within v2.5, and within v2.5.1 itself).
fn within(v: &Version, prefix: &[u64]) -> bool {
    numbers(v)[..prefix.len()] == *prefix
}

/// Whether `v` is at or below the ceiling `pin` (a pre-release of the pinned version counts as it).
fn below_pin(v: &Version, pin: &[u64]) -> bool {
    numbers(v)[..pin.len()] <= *pin
}

/// One maintenance window: the days it opens on and its times in minutes after midnight. An end
/// at or before the start runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    pub days: [bool; 7],
    pub start: u32,
    pub end: u32,
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// What a window looks like, for error messages.
pub const WINDOW_FORMAT: &str =
    "\"DAYS HH:MM-HH:MM\" in the container's local time, DAYS like Sun, Mon-Fri or Sat,Sun \
     (or left out for every day), e.g. \"Sun 03:00-05:00\" or \"Sat 23:00-01:00\" (past midnight)";

impl Window {
    pub fn parse(s: &str) -> Result<Window, String> {
        let s = s.trim();
        let (days, times) = match s.rsplit_once(' ') {
            Some((d, t)) => (Some(d.trim()), t),
            None => (None, s),
        };
        let day = |n: &str| DAYS.iter().position(|d| d.eq_ignore_ascii_case(n)).ok_or(format!("unknown day {n:?}"));
        let mut set = [days.is_none(); 7];
        for part in days.into_iter().flat_map(|d| d.split(',')) {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (day(a.trim())?, day(b.trim())?);
                    // Fri-Mon wraps around the week end.
                    let mut i = a;
                    loop {
                        set[i] = true;
                        if i == b {
                            break;
                        }
                        i = (i + 1) % 7;
                    }
                }
                None => set[day(part.trim())?] = true,
            }
        }
        let (a, b) = times.split_once('-').ok_or(format!("no time range in {times:?}"))?;
        let time = |t: &str| -> Result<u32, String> {
            let (h, m) = t.split_once(':').ok_or(format!("{t:?} is not HH:MM"))?;
            let num = |x: &str| {
                (x.len() == 2 && x.bytes().all(|c| c.is_ascii_digit())).then(|| x.parse::<u32>().ok()).flatten()
            };
            match (num(h), num(m)) {
                (Some(h), Some(m)) if m < 60 && (h < 24 || (h == 24 && m == 0)) => Ok(h * 60 + m),
                _ => Err(format!("{t:?} is not a time from 00:00 to 24:00")),
            }
        };
        let (start, end) = (time(a)?, time(b)?);
        if start == 1440 {
            return Err("a window cannot start at 24:00 (use 00:00)".into());
        }
        if start == end {
            return Err(format!("{times:?} is empty (start and end are the same)"));
        }
        Ok(Window { days: set, start, end })
    }

    /// Whether the window is open at `minute` after midnight on `weekday` (0 = Monday).
    pub fn contains(&self, weekday: usize, minute: u32) -> bool {
        if self.start < self.end {
            self.days[weekday] && (self.start..self.end).contains(&minute)
        } else {
            (self.days[weekday] && minute >= self.start) || (self.days[(weekday + 6) % 7] && minute < self.end)
        }
    }

    /// Minutes from (`weekday`, `minute`) until this window next opens (later than now, within a week).
    pub fn opens_in(&self, weekday: usize, minute: u32) -> u32 {
        (0..=7u32)
            .filter(|off| self.days[(weekday + *off as usize) % 7])
            .map(|off| off * 1440 + self.start)
            .filter(|at| *at > minute)
            .map(|at| at - minute)
            .min()
            .unwrap_or(7 * 1440)
    }

    /// The systemd calendar expression of the window's openings.
    pub fn on_calendar(&self) -> String {
        let days: Vec<&str> = (0..7).filter(|d| self.days[*d]).map(|d| DAYS[d]).collect();
        let days = if days.len() == 7 { String::new() } else { format!("{} ", days.join(",")) };
        format!("{days}*-*-* {:02}:{:02}:00", self.start / 60, self.start % 60)
    }
}

/// Where the clock stands against the windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowState {
    /// Inside a window (or none is configured).
    Open,
    /// Outside every window: the next opens in this many minutes, on this day at this time.
    Closed { opens_in_min: u32, label: String },
}

pub fn window_state(windows: &[Window], weekday: usize, minute: u32) -> WindowState {
    if windows.is_empty() || windows.iter().any(|w| w.contains(weekday, minute)) {
        return WindowState::Open;
    }
    let (opens_in_min, label) = next_opening(windows, weekday, minute).expect("not empty");
    WindowState::Closed { opens_in_min, label }
}

/// When the next window opens after (`weekday`, `minute`): minutes from now and "Sun 03:00".
pub fn next_opening(windows: &[Window], weekday: usize, minute: u32) -> Option<(u32, String)> {
    let (mins, w) = windows.iter().map(|w| (w.opens_in(weekday, minute), w)).min_by_key(|x| x.0)?;
    let day = (weekday + ((minute + mins) / 1440) as usize) % 7;
    Some((mins, format!("{} {:02}:{:02}", DAYS[day], w.start / 60, w.start % 60)))
}

/// Why a listed release was not chosen (the newest few are reported).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub version: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// The release to update to, if any.
    pub to: Option<String>,
    /// Newer releases passed over, newest first, with the rule that excluded each.
    pub held: Vec<Held>,
}

impl fmt::Display for Held {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.version, self.why)
    }
}

fn parse_v(s: &str) -> Option<Version> {
    Version::parse(s.trim().trim_end_matches('/').trim_start_matches('v')).ok()
}

/// The newest release in `available` that the policy allows from `current`; `failed` are the
/// versions whose automatic update failed and were not cleared.
pub fn choose(current: &str, available: &[String], p: &Updates, failed: &[String]) -> Decision {
    let Some(cur) = parse_v(current) else { return Decision::default() };
    let mut listed: Vec<Version> = available.iter().filter_map(|s| parse_v(s)).filter(|v| *v > cur).collect();
    listed.sort_by(|a, b| b.cmp(a));
    listed.dedup();
    let mut d = Decision::default();
    for v in listed {
        let name = format!("v{v}");
        let why = if v.pre.is_some() {
            Some("a pre-release".to_string())
        } else if !p.channel.allows(&cur, &v) {
            Some(format!("outside channel {} from {current}", p.channel.name()))
        } else if let Some(r) = p.pin.iter().find(|r| parse_prefix(&r.version).is_some_and(|pin| !below_pin(&v, &pin)))
        {
            Some(format!("above pin {}: {}", r.version, r.reason))
        } else if let Some(r) = p.skip.iter().find(|r| parse_prefix(&r.version).is_some_and(|s| within(&v, &s))) {
            Some(format!("skipped: {}", r.reason))
        } else if failed.iter().any(|f| parse_v(f).as_ref() == Some(&v)) {
            Some("its automatic update failed; `update --auto --clear-skip` allows it again".to_string())
        } else {
            None
        };
        match why {
            Some(why) => d.held.push(Held { version: name, why }),
            None => {
                d.to = Some(name);
                break;
            }
        }
    }
    d
}

/// Every version named in the download site's JSON listing (`{download_base}/.json`): each string
/// anywhere in it that is a version, with or without `v` and a trailing `/`. Pre-releases are
/// kept; the callers decide.
pub fn listed_versions(listing: &serde_json::Value) -> Vec<(Version, String)> {
    let mut found = Vec::new();
    let mut stack = vec![listing];
    while let Some(x) = stack.pop() {
        match x {
            serde_json::Value::String(s) => {
                let name = s.trim_end_matches('/').trim_start_matches('v');
                if let Ok(ver) = Version::parse(name) {
                    found.push((ver, format!("v{name}")));
                }
            }
            serde_json::Value::Array(a) => stack.extend(a),
            serde_json::Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    found
}

/// Checks `[updates]`, naming field, value and what is allowed.
pub fn validate(u: &Updates, bad: &mut dyn FnMut(&str, &dyn fmt::Display, &str)) {
    for w in &u.window {
        if let Err(why) = Window::parse(w) {
            bad("updates.window", &format!("{w} ({why})"), WINDOW_FORMAT);
        }
    }
    for (field, rules) in [("updates.pin", &u.pin), ("updates.skip", &u.skip)] {
        for r in rules {
            if parse_prefix(&r.version).is_none() {
                bad(
                    &format!("{field}.version"),
                    &r.version,
                    "a release or prefix: v2, v2.5 or v2.5.3 (pre-releases are never chosen anyway)",
                );
            }
            if r.reason.trim().is_empty() {
                bad(
                    &format!("{field}.reason"),
                    &r.version,
                    "a reason, so the next person knows why (reason = \"...\")",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn rule(v: &str) -> Rule {
        Rule { version: v.into(), reason: "test".into() }
    }

    fn policy(channel: Channel) -> Updates {
        Updates { channel, ..Updates::default() }
    }

    const ALL: &[&str] = &[
        "v2.3.0",
        "v2.4.0",
        "v2.4.1",
        "v2.4.2",
        "v2.5.0-rc1",
        "v2.5.0",
        "v2.5.1",
        "v2.6.0",
        "v3.0.0",
        "v3.1.0-beta.1",
    ];

    #[test]
    fn the_channel_is_a_boundary_never_crossed() {
        let a = list(ALL);
        assert_eq!(choose("v2.4.0", &a, &policy(Channel::Patch), &[]).to.as_deref(), Some("v2.4.2"));
        assert_eq!(choose("v2.4.0", &a, &policy(Channel::Minor), &[]).to.as_deref(), Some("v2.6.0"));
        assert_eq!(choose("v2.4.0", &a, &policy(Channel::Any), &[]).to.as_deref(), Some("v3.0.0"));
        // At the top of its minor line, patch has nothing even though newer minors exist.
        let d = choose("v2.4.2", &a, &policy(Channel::Patch), &[]);
        assert_eq!(d.to, None);
        assert!(d.held.iter().any(|h| h.version == "v2.5.0" && h.why.contains("outside channel patch")), "{d:?}");
        // What the running version is, or older, is never chosen (no downgrade, no same version).
        assert_eq!(choose("v3.0.0", &a, &policy(Channel::Any), &[]).to, None);
    }

    #[test]
    fn pre_releases_are_never_chosen_even_as_the_newest() {
        let a = list(&["v2.4.0", "v2.5.0-rc1", "v2.5.0-rc2"]);
        let d = choose("v2.4.0", &a, &policy(Channel::Any), &[]);
        assert_eq!(d.to, None);
        assert_eq!(d.held.len(), 2);
        assert!(d.held.iter().all(|h| h.why == "a pre-release"));
        // From a pre-release, its final release is newer and allowed.
        assert_eq!(
            choose("v2.5.0-rc1", &list(&["v2.5.0"]), &policy(Channel::Patch), &[]).to.as_deref(),
            Some("v2.5.0")
        );
        // A version string with a trailing slash (the listing's directories) or without `v`.
        assert_eq!(choose("2.4.0", &list(&["v2.4.1/"]), &policy(Channel::Patch), &[]).to.as_deref(), Some("v2.4.1"));
    }

    #[test]
    fn a_pin_is_a_ceiling_by_prefix_or_exact_version() {
        let a = list(ALL);
        let mut p = policy(Channel::Any);
        p.pin = vec![rule("v2.5")];
        let d = choose("v2.4.0", &a, &p, &[]);
        assert_eq!(d.to.as_deref(), Some("v2.5.1"));
        assert!(d.held.iter().any(|h| h.version == "v2.6.0" && h.why.contains("above pin v2.5: test")), "{d:?}");
        p.pin = vec![rule("v2.5.0")];
        assert_eq!(choose("v2.4.0", &a, &p, &[]).to.as_deref(), Some("v2.5.0"));
        p.pin = vec![rule("2")];
        assert_eq!(choose("v2.4.0", &a, &p, &[]).to.as_deref(), Some("v2.6.0"));
        // Several pins: the lowest wins.
        p.pin = vec![rule("v2"), rule("v2.4")];
        assert_eq!(choose("v2.4.0", &a, &p, &[]).to.as_deref(), Some("v2.4.2"));
        // Already at or above the pin: nothing.
        p.pin = vec![rule("v2.4.0")];
        assert_eq!(choose("v2.4.0", &a, &p, &[]).to, None);
    }

    #[test]
    fn skipped_and_failed_versions_are_passed_over_for_the_next_allowed_one() {
        let a = list(ALL);
        let mut p = policy(Channel::Minor);
        p.skip = vec![rule("v2.6.0")];
        let d = choose("v2.4.0", &a, &p, &[]);
        assert_eq!(d.to.as_deref(), Some("v2.5.1"));
        assert!(d.held.contains(&Held { version: "v2.6.0".into(), why: "skipped: test".into() }), "{d:?}");
        // A prefix skips the whole line.
        p.skip = vec![rule("v2.5"), rule("v2.6")];
        assert_eq!(choose("v2.4.0", &a, &p, &[]).to.as_deref(), Some("v2.4.2"));
        // A failed automatic update is not retried; the next release is.
        let p = policy(Channel::Minor);
        let d = choose("v2.4.0", &list(&["v2.4.0", "v2.5.0"]), &p, &list(&["v2.5.0"]));
        assert_eq!(d.to, None);
        assert!(d.held[0].why.contains("--clear-skip"), "{d:?}");
        assert_eq!(
            choose("v2.4.0", &list(&["v2.5.0", "v2.5.1"]), &p, &list(&["v2.5.0"])).to.as_deref(),
            Some("v2.5.1")
        );
        // An unparsable running version decides nothing.
        assert_eq!(choose("latest", &a, &p, &[]), Decision::default());
    }

    #[test]
    fn windows_parse_and_open_on_their_days_also_across_midnight() {
        let w = Window::parse("Sun 03:00-05:00").unwrap();
        assert!(w.contains(6, 3 * 60) && w.contains(6, 4 * 60 + 59));
        assert!(!w.contains(6, 5 * 60) && !w.contains(6, 2 * 60 + 59) && !w.contains(0, 4 * 60));
        assert_eq!(w.on_calendar(), "Sun *-*-* 03:00:00");
        // Saturday 23:00 to Sunday 01:00.
        let w = Window::parse("Sat 23:00-01:00").unwrap();
        assert!(w.contains(5, 23 * 60 + 30) && w.contains(6, 30));
        assert!(!w.contains(6, 23 * 60 + 30) && !w.contains(5, 30) && !w.contains(6, 60));
        // Sunday night runs into Monday: the week wraps.
        let w = Window::parse("Sun 23:00-02:00").unwrap();
        assert!(w.contains(0, 90) && !w.contains(1, 90));
        let w = Window::parse("Mon-Fri 01:00-02:00").unwrap();
        assert!((0..5).all(|d| w.contains(d, 61)) && !w.contains(5, 61) && !w.contains(6, 61));
        assert_eq!(w.on_calendar(), "Mon,Tue,Wed,Thu,Fri *-*-* 01:00:00");
        let w = Window::parse("Fri-Mon 00:00-24:00").unwrap();
        assert_eq!(w.days, [true, false, false, false, true, true, true]);
        assert!(w.contains(0, 1439) && !w.contains(1, 0));
        let w = Window::parse("04:00-04:30").unwrap();
        assert!((0..7).all(|d| w.contains(d, 4 * 60 + 10)));
        assert_eq!(w.on_calendar(), "*-*-* 04:00:00");
        for (bad, says) in [
            ("Sun 03:00", "no time range"),
            ("Sun 3:00-05:00", "not a time"),
            ("Sun 03:00-03:00", "empty"),
            ("Sun 25:00-26:00", "not a time"),
            ("Sunday 03:00-05:00", "unknown day"),
            ("Sun 24:00-01:00", "cannot start at 24:00"),
        ] {
            let e = Window::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn outside_every_window_says_when_the_next_one_opens() {
        let ws = vec![Window::parse("Sun 03:00-05:00").unwrap(), Window::parse("Wed 01:00-02:00").unwrap()];
        // Monday 12:00: Wednesday 01:00 is next, 37 hours away.
        assert_eq!(window_state(&ws, 0, 720), WindowState::Closed { opens_in_min: 37 * 60, label: "Wed 01:00".into() });
        // Sunday 05:00 (just closed): Wednesday 01:00.
        assert_eq!(
            window_state(&ws, 6, 300),
            WindowState::Closed { opens_in_min: (2 * 24 + 20) * 60, label: "Wed 01:00".into() }
        );
        // Sunday 02:59: a minute to go.
        assert_eq!(window_state(&ws, 6, 179), WindowState::Closed { opens_in_min: 1, label: "Sun 03:00".into() });
        assert_eq!(window_state(&ws, 6, 180), WindowState::Open);
        // A window past midnight is open after midnight, and next opens a week later.
        let ws = vec![Window::parse("Sat 23:00-01:00").unwrap()];
        assert_eq!(window_state(&ws, 6, 30), WindowState::Open);
        assert_eq!(
            window_state(&ws, 6, 60),
            WindowState::Closed { opens_in_min: 6 * 1440 + 23 * 60 - 60, label: "Sat 23:00".into() }
        );
        assert_eq!(window_state(&[], 3, 3), WindowState::Open);
    }

    #[test]
    fn the_listing_yields_every_version_string_anywhere_in_it() {
        let j =
            serde_json::json!([{"name": "v2.4.0/", "type": "directory"}, {"name": "unstable/"}, {"x": ["2.5.0-rc1"]}]);
        let mut v: Vec<String> = listed_versions(&j).into_iter().map(|x| x.1).collect();
        v.sort();
        assert_eq!(v, ["v2.4.0", "v2.5.0-rc1"]);
    }

    #[test]
    fn validation_names_field_value_and_what_is_allowed() {
        use crate::instance::config::{ConfigError, Deployment};
        let text = "[updates]\nchannel = \"minor\"\nwindow = [\"Sun 03:00-05:00\", \"Sunday\"]\n\
                    [[updates.pin]]\nversion = \"latest\"\nreason = \"x\"\n\
                    [[updates.skip]]\nversion = \"v2.5.1\"\nreason = \" \"\n";
        let d = Deployment::parse(text, std::path::Path::new("d.toml")).unwrap();
        assert_eq!(d.updates.channel, Channel::Minor);
        let ConfigError::Invalid(errs) = d.validate().unwrap_err() else { panic!() };
        let errs: Vec<_> = errs.iter().map(|e| (e.field.as_str(), e.value.as_str(), e.allowed.as_str())).collect();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert_eq!(errs[0].0, "updates.window");
        assert!(errs[0].1.starts_with("Sunday") && errs[0].2.contains("Sun 03:00-05:00"), "{errs:?}");
        assert_eq!((errs[1].0, errs[1].1), ("updates.pin.version", "latest"));
        assert_eq!((errs[2].0, errs[2].1), ("updates.skip.reason", "v2.5.1"));
        assert!(errs[2].2.contains("a reason"));
        // An unknown channel or key is refused when the file is read.
        let e = Deployment::parse("[updates]\nchannel = \"major\"\n", std::path::Path::new("d.toml")).unwrap_err();
        assert!(e.to_string().contains("major"), "{e}");
        let e = Deployment::parse("[updates]\nwindows = []\n", std::path::Path::new("d.toml")).unwrap_err();
        assert!(e.to_string().contains("windows"), "{e}");
        // Without [updates]: patch, any time, backup first.
        let d = Deployment::parse("", std::path::Path::new("d.toml")).unwrap();
        assert_eq!(d.updates, Updates::default());
        assert!(d.updates.backup_first && d.updates.channel == Channel::Patch);
    }
}
