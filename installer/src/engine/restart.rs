//! `restart`: the serving version and settings on the other colour, without downtime.

use anyhow::Result;

use crate::engine::recovery;
use crate::engine::switch::{switch_locked, Offline};
use crate::instance::Instance;

/// A zero-downtime restart: the same version and settings on the other colour, through the same
/// steps as an update (freeze, backup, start, health gate, switch, drain). The rollback point is
/// left as it was.
pub fn restart(inst: &Instance) -> Result<()> {
    let begun = recovery::begin(inst, "restart")?;
    switch_locked(&begun.inst, None, "restart", Offline::default(), None)
}
