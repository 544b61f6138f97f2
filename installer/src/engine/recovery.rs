//! The one recovery entry. Every command that changes an instance calls `begin`: it takes the
//! operation lock, finishes or undoes whatever operation a killed run left in the journal
//! (update, rollback, restore or backup, whichever it was), and reopens the instance with the
//! settings now on disk. `status` and `health` call `recover_if_interrupted`, which does the same
//! unless another operation runs right now. A recovery that cannot complete ends in exit 12 with
//! the state and the manual steps, never in a plain error that the next command would repeat.

use anyhow::Result;
use manifests::Exit;

use crate::engine::journal;
use crate::error::{fail, Failed};
use crate::instance::layout::Layout;
use crate::instance::lock::{LockError, OperationLock};
use crate::instance::Instance;
use crate::report::note;

/// The lock and the instance as it is after recovery.
pub struct Begun {
    pub _lock: OperationLock,
    pub inst: Instance,
}

/// Lock, recover, reopen: the start of every changing command.
pub fn begin(inst: &Instance, op: &str) -> Result<Begun> {
    let lock = crate::instance::lock::take(&inst.layout, op)?;
    recover_locked(inst)?;
    let inst = crate::instance::open(&inst.layout.root, Some(&inst.layout.instance))?;
    Ok(Begun { _lock: lock, inst })
}

/// For commands that only read (status, health, backup list): recovers unless another operation
/// runs now (then it is left alone and the command just reports).
pub fn recover_if_interrupted(inst: &Instance) -> Result<()> {
    if !matches!(journal::pending(&inst.layout), Ok(Some(_))) && !crate::service::freeze::is_frozen(&inst.layout) {
        return Ok(());
    }
    let _lock = match OperationLock::acquire(&inst.layout, "recover") {
        Ok(l) => l,
        Err(LockError::Held { .. }) => return Ok(()),
        Err(e) => return Err(fail(Exit::Error, e.to_string())),
    };
    recover_locked(inst)
}

/// Under `--init process` nothing restarts a service whose supervisor died (systemd would): the
/// next `status` or `health` starts the serving colour again, unless another operation runs. A
/// supervisor that was stopped on purpose removed its pid file and is left stopped, as
/// `systemctl stop` would leave it.
pub fn revive(inst: &Instance) -> Result<()> {
    if inst.init != crate::service::init::Init::Process || crate::instance::state::is_stopped(&inst.layout) {
        return Ok(());
    }
    let Some(d) = crate::instance::state::deployed(&inst.layout) else { return Ok(()) };
    let colour = crate::instance::state::active_colour(&inst.layout).unwrap_or(d.colour);
    let colours = crate::service::colour::Colours { l: &inst.layout, d: &inst.deployment, init: inst.init };
    let units = colours.units(colour)?;
    if !units.iter().any(|u| crate::service::init::crashed(&inst.layout, &u.name)) {
        return Ok(());
    }
    let _lock = match OperationLock::acquire(&inst.layout, "revive") {
        Ok(l) => l,
        Err(LockError::Held { .. }) => return Ok(()),
        Err(e) => return Err(fail(Exit::Error, e.to_string())),
    };
    note!("{} ({}) was not running (its supervisor is gone): starting it again", colour.name(), d.version);
    colours.start(colour, &d.version)
}

/// Finishes or undoes every journaled operation. Call under the lock.
pub fn recover_locked(inst: &Instance) -> Result<()> {
    let l = &inst.layout;
    // At most one journal exists; a legacy file beside the current one is handled in turn.
    for _ in 0..=journal::LEGACY.len() {
        let Some((op, path)) = journal::pending(l).map_err(|e| stuck(l, "operation", &e.into()))? else {
            // Writes are frozen only while an operation is pending; each one lifts its freeze
            // before it removes its journal, so a flag alone is left over (and nothing to keep).
            if crate::service::freeze::is_frozen(l) {
                crate::service::freeze::thaw(l).map_err(|e| stuck(l, "write freeze", &e.into()))?;
                note!("writes were still frozen with no operation pending: the freeze was lifted");
            }
            return Ok(());
        };
        let result = match op.as_str() {
            "backup" => {
                crate::engine::backup::cleanup_interrupted(l, &path);
                Ok(())
            }
            "restore" => adopt(l, &path).and_then(|()| crate::engine::restore::recover(l, inst.init)),
            "update" | "rollback" | "restart" => {
                let fresh = crate::instance::open(&l.root, Some(&l.instance))?;
                crate::engine::switch::recover(&fresh)
            }
            other => {
                Err(anyhow::anyhow!("{} names an operation this installer does not know: {other:?}", path.display()))
            }
        };
        result.map_err(|e| stuck(l, &op, &e))?;
    }
    Err(stuck(l, "operation", &anyhow::anyhow!("the journal is still there after recovering it")))
}

/// A legacy restore journal is the same format: it moves to the one journal's name.
fn adopt(l: &Layout, path: &std::path::Path) -> Result<()> {
    if path != journal::path(l) {
        std::fs::rename(path, journal::path(l))?;
    }
    Ok(())
}

/// A recovery that failed: exit 12 with the state and what to do (an undo's own message, which
/// already says that, is kept).
fn stuck(l: &Layout, op: &str, e: &anyhow::Error) -> anyhow::Error {
    if let Some(f) = e.downcast_ref::<Failed>() {
        if f.code == Exit::RollbackFailed {
            return fail(Exit::RollbackFailed, f.message.clone());
        }
    }
    fail(
        Exit::RollbackFailed,
        format!(
            "finishing or undoing the interrupted {op} of instance {} failed: {e:#}\nState: {} records it; \
             state/active-color names the colour that should serve.\nWhat to do: fix the cause above, then run \
             `vikunja-installer status` to retry. If it keeps failing: stop both colours, move {} aside, and run \
             `vikunja-installer install` with the same settings (it starts the colour state/active-color names)",
            l.instance,
            journal::path(l).display(),
            journal::path(l).display()
        ),
    )
}
