//! The instance's lifecycle as one model: what state an instance is in (serving colour and
//! version, the rollback point and whether what it needs is still there, an operation still
//! journaled) and which operation may run in it. Every command takes the lock, runs `recovery`,
//! reads a `Snapshot` and asks `check` before it changes anything; the answer is to go ahead, that
//! there is nothing to do (exit 0, nothing changed), or a refusal with its exit code and what to
//! do. ARCHITECTURE.md draws the state diagram.

use std::path::{Path, PathBuf};

use manifests::Exit;

use crate::instance::layout::Layout;
use crate::instance::state::{self, Colour};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Install,
    Update,
    Rollback,
    Backup,
    Restore,
}

/// Where a rollback goes: written when an update completes, cleared when a rollback or a restore
/// completes (neither can be rolled back: the rollback point of a restored instance would name a
/// database copy the backup does not hold).
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackPoint {
    /// The colour the update left (informational: a rollback starts on whichever colour is idle).
    pub colour: Colour,
    pub version: String,
    /// The database copy taken before the update, with writes frozen.
    pub backup: String,
    /// The `migration` ids of that copy; `None` if they could not be read.
    pub migrations: Option<Vec<String>>,
}

fn point_path(l: &Layout) -> PathBuf {
    l.state_dir().join("rollback-point")
}

impl RollbackPoint {
    pub fn load(l: &Layout) -> Option<RollbackPoint> {
        let kv = state::read_kv(&point_path(l)).ok()?;
        let migrations = match state::get(&kv, "migrations")? {
            "unknown" => None,
            "" => Some(Vec::new()),
            m => Some(m.split(',').map(str::to_string).collect()),
        };
        Some(RollbackPoint {
            colour: Colour::parse(state::get(&kv, "color")?)?,
            version: state::get(&kv, "version")?.to_string(),
            backup: state::get(&kv, "backup")?.to_string(),
            migrations,
        })
    }

    pub fn save(&self, l: &Layout) -> std::io::Result<()> {
        let m = self.migrations.as_ref().map(|m| m.join(",")).unwrap_or_else(|| "unknown".into());
        state::write_kv(
            &point_path(l),
            &[
                ("color", self.colour.name().into()),
                ("version", self.version.clone()),
                ("backup", self.backup.clone()),
                ("migrations", m),
            ],
        )
    }

    pub fn clear(l: &Layout) -> std::io::Result<()> {
        manifests::atomic::remove_if_present(&point_path(l))
    }

    /// Whether going back needs the database copy: the schema changed since it was taken (or
    /// either list of migrations is unknown).
    pub fn needs_database(&self, now: &Option<Vec<String>>) -> bool {
        schema_differs(&self.migrations, now)
    }
}

/// Whether two lists of applied migrations differ; unknown counts as different, so a database
/// copy is restored whenever it cannot be proven unnecessary.
pub fn schema_differs(before: &Option<Vec<String>>, now: &Option<Vec<String>>) -> bool {
    match (before, now) {
        (Some(a), Some(b)) => a != b,
        _ => true,
    }
}

/// What the model needs to know about an instance, read after recovery.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The serving colour and version (`state/active-color`, `state/deployed-version`).
    pub serving: Option<(Colour, String)>,
    /// An operation still journaled (recovery should have left none).
    pub journaled: Option<String>,
    pub rollback: Option<RollbackPoint>,
    /// The rollback point's release is still in `releases/`.
    pub rollback_release: bool,
    /// The rollback point's database copy exists.
    pub rollback_dump: bool,
    /// Going back needs that copy (the schema changed since).
    pub rollback_needs_dump: bool,
    /// Stopped by `stop` and not started since.
    pub stopped: bool,
}

impl Snapshot {
    pub fn read(l: &Layout, migrations_now: impl FnOnce() -> Option<Vec<String>>) -> Snapshot {
        let serving = state::deployed(l).map(|d| (state::active_colour(l).unwrap_or(d.colour), d.version));
        let rollback = RollbackPoint::load(l);
        let (rollback_release, rollback_dump, rollback_needs_dump) = match &rollback {
            Some(p) => (
                crate::instance::artifact::binary_path(l, &p.version).is_file(),
                Path::new(&p.backup).is_file(),
                p.needs_database(&migrations_now()),
            ),
            None => (false, false, false),
        };
        Snapshot {
            serving,
            journaled: crate::engine::journal::pending(l).ok().flatten().map(|(op, _)| op),
            rollback,
            rollback_release,
            rollback_dump,
            rollback_needs_dump,
            stopped: crate::instance::state::is_stopped(l),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Go,
    /// Nothing to do: say so, change nothing, exit 0.
    Nothing(String),
    Refuse(Exit, String),
}

/// May `op` run on instance `name` in state `s`?
pub fn check(op: Op, name: &str, s: &Snapshot) -> Verdict {
    if let Some(j) = &s.journaled {
        return Verdict::Refuse(
            Exit::RollbackFailed,
            format!(
                "an interrupted {j} of instance {name} is still journaled after recovery: the instance is in a state \
                 the installer does not know. Nothing was changed. What to do: run `vikunja-installer status` and read \
                 its messages; if it cannot finish the {j}, check which colour serves (state/active-color), move \
                 state/journal aside and run `vikunja-installer install` with the same settings"
            ),
        );
    }
    if op == Op::Install {
        return Verdict::Go;
    }
    let Some((colour, version)) = &s.serving else {
        return Verdict::Refuse(
            Exit::Error,
            format!("instance {name} has no deployed version yet; run vikunja-installer install first"),
        );
    };
    if s.stopped && matches!(op, Op::Update | Op::Rollback) {
        return Verdict::Refuse(
            Exit::Error,
            format!(
                "instance {name} is stopped (`vikunja-installer stop`); nothing was changed. Start it first with                  `vikunja-installer start`"
            ),
        );
    }
    if op != Op::Rollback {
        return Verdict::Go;
    }
    // Only the version counts: a restart since the update may have moved the serving colour
    // onto the one the point recorded, and a rollback always starts on the idle colour.
    let Some(p) = s.rollback.as_ref().filter(|p| p.version != *version) else {
        return Verdict::Nothing(format!(
            "Nothing to roll back: instance {name} runs Vikunja {version} on {} and no update was made since the last \
             install, restore or rollback. Another version is `vikunja-installer update --version vX.Y.Z`; older data \
             is `vikunja-installer restore FILE` (`backup list` shows the backups).",
            colour.name()
        ));
    };
    if !s.rollback_release {
        return Verdict::Refuse(
            Exit::Error,
            format!(
                "release {v} is no longer in releases/; nothing was changed. Go back with `vikunja-installer update \
                 --version {v}` (if {v} runs on the current database) or restore a backup made with {v}",
                v = p.version
            ),
        );
    }
    if s.rollback_needs_dump && !s.rollback_dump {
        return Verdict::Refuse(
            Exit::Error,
            format!(
                "rolling back to {v} needs the database as it was before the update ({dump}), and that copy is gone; \
                 nothing was changed. Go back with a backup made with {v} (`vikunja-installer backup list`, then \
                 `restore FILE`)",
                v = p.version,
                dump = p.backup
            ),
        );
    }
    Verdict::Go
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serving() -> Snapshot {
        Snapshot { serving: Some((Colour::Green, "v2.5.0".into())), ..Snapshot::default() }
    }

    fn with_point(needs: bool, dump: bool, release: bool) -> Snapshot {
        Snapshot {
            rollback: Some(RollbackPoint {
                colour: Colour::Blue,
                version: "v2.4.0".into(),
                backup: "/x/pre-update-1.sqlite".into(),
                migrations: Some(vec!["a".into()]),
            }),
            rollback_needs_dump: needs,
            rollback_dump: dump,
            rollback_release: release,
            ..serving()
        }
    }

    #[test]
    fn nothing_runs_but_install_before_an_install() {
        let fresh = Snapshot::default();
        assert_eq!(check(Op::Install, "a", &fresh), Verdict::Go);
        for op in [Op::Update, Op::Rollback, Op::Backup, Op::Restore] {
            assert!(matches!(check(op, "a", &fresh), Verdict::Refuse(Exit::Error, m) if m.contains("install")));
        }
    }

    #[test]
    fn a_journal_left_after_recovery_stops_everything_with_manual_steps() {
        let s = Snapshot { journaled: Some("update".into()), ..serving() };
        for op in [Op::Install, Op::Update, Op::Rollback, Op::Backup, Op::Restore] {
            assert!(
                matches!(check(op, "a", &s), Verdict::Refuse(Exit::RollbackFailed, m) if m.contains("What to do")),
                "{op:?}"
            );
        }
    }

    #[test]
    fn a_stopped_instance_is_neither_updated_nor_rolled_back_but_backed_up_and_restored() {
        let s = Snapshot { stopped: true, ..with_point(false, false, true) };
        for op in [Op::Update, Op::Rollback] {
            assert!(
                matches!(check(op, "a", &s), Verdict::Refuse(Exit::Error, m) if m.contains("vikunja-installer start")),
                "{op:?}"
            );
        }
        for op in [Op::Backup, Op::Restore, Op::Install] {
            assert_eq!(check(op, "a", &s), Verdict::Go, "{op:?}");
        }
    }

    #[test]
    fn rollback_without_a_point_or_onto_what_serves_changes_nothing() {
        assert!(
            matches!(check(Op::Rollback, "a", &serving()), Verdict::Nothing(m) if m.contains("Nothing to roll back"))
        );
        let mut s = with_point(false, false, true);
        s.rollback.as_mut().unwrap().version = "v2.5.0".into();
        assert!(matches!(check(Op::Rollback, "a", &s), Verdict::Nothing(_)));
    }

    #[test]
    fn rollback_is_refused_before_any_change_when_what_it_needs_is_gone() {
        assert!(matches!(check(Op::Rollback, "a", &with_point(true, false, true)),
            Verdict::Refuse(Exit::Error, m) if m.contains("/x/pre-update-1.sqlite") && m.contains("restore")));
        assert!(matches!(check(Op::Rollback, "a", &with_point(false, true, false)),
            Verdict::Refuse(Exit::Error, m) if m.contains("update --version v2.4.0")));
    }

    #[test]
    fn a_restart_that_moved_the_serving_colour_onto_the_points_colour_still_rolls_back() {
        let mut s = with_point(false, false, true);
        s.rollback.as_mut().unwrap().colour = Colour::Green;
        assert_eq!(check(Op::Rollback, "a", &s), Verdict::Go);
    }

    #[test]
    fn rollback_goes_when_its_release_and_needed_copy_are_there() {
        assert_eq!(check(Op::Rollback, "a", &with_point(true, true, true)), Verdict::Go);
        // Same schema: the copy is not needed, so its absence does not matter.
        assert_eq!(check(Op::Rollback, "a", &with_point(false, false, true)), Verdict::Go);
    }

    #[test]
    fn the_point_needs_the_copy_unless_both_schemas_are_known_and_equal() {
        let p = with_point(false, false, true).rollback.unwrap();
        assert!(!p.needs_database(&Some(vec!["a".into()])));
        assert!(p.needs_database(&Some(vec!["a".into(), "b".into()])));
        assert!(p.needs_database(&None));
    }
}
