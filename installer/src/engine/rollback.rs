//! `rollback`: back to the release of the rollback point on the idle colour, with the database
//! copy taken before the update when the schema changed, through the blue-green steps of `switch`.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use manifests::Exit;

use crate::data::dbbackup;
use crate::engine::journal::{Journal, Step};
use crate::engine::lifecycle::{Op, RollbackPoint};
use crate::engine::recovery;
use crate::engine::switch::{admit, detect_active, operation_id, other, settle, target_deployment, Ctx, Progress};
use crate::error::fail;
use crate::instance::Instance;
use crate::report::say;
use crate::service::{health, nginx};

/// `confirm` is asked before a rollback that restores the database copy changes anything; `false`
/// cancels. The engine never prompts: the command answers (`--yes`, or the terminal).
pub fn rollback(inst: &Instance, confirm: &dyn Fn(&str) -> Result<bool>) -> Result<()> {
    let p = Progress::new(false);
    let begun = recovery::begin(inst, "rollback")?;
    let inst = &begun.inst;
    if !admit(Op::Rollback, inst)? {
        return Ok(());
    }
    let (l, d) = (&inst.layout, &inst.deployment);
    let ctx = Ctx::new(l, d, inst.init);
    let started = Instant::now();
    let (from, from_version) = detect_active(&ctx, &p)?;
    let point = RollbackPoint::load(l).context("the rollback point vanished while locked")?;
    let now_migrations = dbbackup::migrations(l, d);
    let restore_db = point.needs_database(&now_migrations);
    if restore_db {
        say!(
            "Rolling back to Vikunja {v} restores the database copy taken before the update to {from_version} ({b}): {v} \
             cannot use the schema {from_version} migrated to. Every change made since that update is lost; the database \
             as it is now is saved first (backups/pre-rollback-*).",
            v = point.version,
            b = point.backup
        );
        if !confirm("Roll back and restore the database?")? {
            return Err(fail(Exit::Error, "rollback cancelled; nothing was changed"));
        }
    }
    let to = other(from);
    let target_version = point.version.clone();
    let target = target_deployment(d, &target_version);
    let id = operation_id(&d.instance.name);
    let safety = l.backups_dir().join(dbbackup::file_name(d, &format!("pre-rollback-{id}")));
    let mut j = Journal::new("rollback", id, (from, &from_version), (to, &target_version), &safety, now_migrations);
    p.say(&format!(
        "rolling back instance {} from {from_version} ({}) to {target_version} ({})",
        d.instance.name,
        from.name(),
        to.name()
    ));
    j.advance(l, Step::Started)?;
    let gate = (|| -> Result<(bool, Vec<health::Component>)> {
        j.advance(l, Step::Frozen)?;
        ctx.route(from, true)?;
        p.say(&format!("writes frozen (reads still served by {})", from.name()));
        let nginx_check = nginx::spawn_check(l, inst.init)?;
        dbbackup::backup(l, d, &safety)?;
        j.advance(l, Step::BackedUp)?;
        p.say(&format!("current database backed up to {}", safety.display()));
        j.advance(l, Step::Starting)?;
        let ctx_to = Ctx::new(l, &target, inst.init);
        // First on the current schema, so the current colour keeps serving reads: Vikunja, like
        // its migration library, ignores migrations it does not know.
        ctx_to.colours.start(to, &target_version)?;
        p.say(&format!("{} started with {target_version}; health gate", to.name()));
        let mut r = ctx_to.colours.gate(to, &target_version);
        p.say(&format!("health gate: {}", if r.0 { "passed" } else { "FAILED" }));
        if restore_db && r.0 {
            j.pending_restore = point.backup.clone();
            j.save(l)?;
        } else if restore_db {
            p.say(&format!(
                "{target_version} does not run on {from_version}'s schema: restoring the database first \
                 (reads fail until the switch)"
            ));
            ctx_to.colours.kill(to)?;
            dbbackup::restore(l, d, Path::new(&point.backup))?;
            p.say(&format!("database restored from {}", point.backup));
            ctx_to.colours.start(to, &target_version)?;
            r = ctx_to.colours.gate(to, &target_version);
            p.say(&format!("health gate: {}", if r.0 { "passed" } else { "FAILED" }));
        }
        nginx::checked(nginx_check)?;
        Ok(r)
    })();
    let ctx_to = Ctx::new(l, &target, inst.init);
    settle(&ctx, &ctx_to, &mut j, gate, started, &p)?;
    if restore_db {
        say!(
            "Rolled instance {} back to Vikunja {target_version}; the database was restored to the copy taken before the \
             update, and the database as it was before this rollback is kept in {}.",
            d.instance.name,
            safety.display()
        );
    } else {
        say!(
            "Rolled instance {} back to Vikunja {target_version}; the database was kept as it was (same schema).",
            d.instance.name
        );
    }
    Ok(())
}
