//! The instance's journal, `state/journal`, rewritten atomically at every step of an operation;
//! here the steps of a blue-green one (`update` or `rollback`; `restore` and `backup` keep their
//! own fields in the same file). If the installer dies (SIGKILL, power cut), the next command's
//! `recovery` reads it and finishes the operation (once traffic was switched to the new colour) or
//! undoes it (before that).

use std::io;

use crate::fault::kill_point;
use crate::instance::layout::Layout;
use crate::instance::state::{get, read_kv, write_kv, Colour};

/// The steps in order. Everything before `Switched` is undone by recovery; from `Switched` on,
/// recovery finishes the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Lock taken, journal written; nothing changed yet.
    Started,
    /// nginx answers writes with 503; reads still go to the old colour.
    Frozen,
    /// The database backup is complete (and, for a rollback, restored).
    BackedUp,
    /// The new colour's services were started (and may have migrated the database).
    Starting,
    /// The new colour was healthy and is (being) given the traffic: the point of no return.
    Switched,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::Frozen => "frozen",
            Step::BackedUp => "backed-up",
            Step::Starting => "starting",
            Step::Switched => "switched",
        }
    }
    fn parse(s: &str) -> Option<Step> {
        [Step::Started, Step::Frozen, Step::BackedUp, Step::Starting, Step::Switched]
            .into_iter()
            .find(|x| x.name() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Journal {
    pub operation: String,
    pub id: String,
    pub started: String,
    pub step: Step,
    pub from_colour: Colour,
    pub from_version: String,
    pub to_colour: Colour,
    pub to_version: String,
    /// The database backup that undoing this operation restores, if the schema changed.
    pub undo_backup: String,
    /// Migration ids before the operation touched the database; `None` if they could not be read,
    /// in which case undoing always restores `undo_backup`.
    pub migrations_before: Option<Vec<String>>,
    /// A rollback's database backup still to be restored once traffic is on the old colour
    /// (writes stay frozen until it is); empty when there is none.
    pub pending_restore: String,
}

/// The instance's one journal: whichever operation runs (update, rollback, restore, backup)
/// records its steps here, with its name in `operation`, so one recovery finds it.
pub fn path(l: &Layout) -> std::path::PathBuf {
    l.state_dir().join("journal")
}

/// Journal names of installers before there was one journal; recovery moves them to `path`.
pub const LEGACY: [&str; 2] = ["restore-journal", "backup-journal"];

/// The operation journaled, if any, and the file it is in (the one journal, or a legacy name).
pub fn pending(l: &Layout) -> io::Result<Option<(String, std::path::PathBuf)>> {
    for p in std::iter::once(path(l)).chain(LEGACY.iter().map(|n| l.state_dir().join(n))) {
        match read_kv(&p) {
            Ok(kv) => {
                let legacy_backup = p.ends_with("backup-journal");
                let op = get(&kv, "operation").unwrap_or(if legacy_backup { "backup" } else { "unknown" });
                return Ok(Some((op.to_string(), p)));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

impl Journal {
    /// A journal at its first step, for `operation` moving from one colour and version to the other.
    pub fn new(
        operation: &str,
        id: String,
        from: (Colour, &str),
        to: (Colour, &str),
        undo_backup: &std::path::Path,
        migrations_before: Option<Vec<String>>,
    ) -> Journal {
        Journal {
            operation: operation.into(),
            id,
            started: manifests::time::format_rfc3339(manifests::time::now_unix()),
            step: Step::Started,
            from_colour: from.0,
            from_version: from.1.into(),
            to_colour: to.0,
            to_version: to.1.into(),
            undo_backup: undo_backup.to_string_lossy().into_owned(),
            migrations_before,
            pending_restore: String::new(),
        }
    }

    pub fn load(l: &Layout) -> io::Result<Option<Journal>> {
        let kv = match read_kv(&path(l)) {
            Ok(kv) => kv,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {what}", path(l).display()));
        let field = |k: &str| get(&kv, k).map(str::to_string).ok_or_else(|| bad(&format!("no {k}")));
        let colour = |k: &str| get(&kv, k).and_then(Colour::parse).ok_or_else(|| bad(&format!("bad {k}")));
        let migrations_before = match field("migrations_before")?.as_str() {
            "unknown" => None,
            "" => Some(Vec::new()),
            list => Some(list.split(',').map(str::to_string).collect()),
        };
        Ok(Some(Journal {
            operation: field("operation")?,
            id: field("id")?,
            started: field("started")?,
            step: get(&kv, "step").and_then(Step::parse).ok_or_else(|| bad("bad step"))?,
            from_colour: colour("from_color")?,
            from_version: field("from_version")?,
            to_colour: colour("to_color")?,
            to_version: field("to_version")?,
            undo_backup: field("undo_backup")?,
            migrations_before,
            pending_restore: get(&kv, "pending_restore").unwrap_or("").to_string(),
        }))
    }

    /// Records `step` durably before the caller does what it names.
    pub fn advance(&mut self, l: &Layout, step: Step) -> io::Result<()> {
        self.step = step;
        self.save(l)?;
        kill_point(step.name());
        Ok(())
    }

    pub fn save(&self, l: &Layout) -> io::Result<()> {
        let migrations = match &self.migrations_before {
            None => "unknown".to_string(),
            Some(m) => m.join(","),
        };
        write_kv(
            &path(l),
            &[
                ("operation", self.operation.clone()),
                ("id", self.id.clone()),
                ("started", self.started.clone()),
                ("step", self.step.name().to_string()),
                ("from_color", self.from_colour.name().to_string()),
                ("from_version", self.from_version.clone()),
                ("to_color", self.to_colour.name().to_string()),
                ("to_version", self.to_version.clone()),
                ("undo_backup", self.undo_backup.clone()),
                ("migrations_before", migrations),
                ("pending_restore", self.pending_restore.clone()),
            ],
        )
    }

    pub fn remove(l: &Layout) -> io::Result<()> {
        manifests::atomic::remove_if_present(&path(l))
    }
}
