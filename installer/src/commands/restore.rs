//! `restore FILE`: argv → `engine::restore`'s options, the question before live data is replaced,
//! and what it prints.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use manifests::Exit;

use crate::cli::Restore;
use crate::data::crypt::Unlock;
use crate::engine::restore;
use crate::error::fail;

const NO_TERMINAL: &str = "restore replaces the instance's database, attachments, settings and state: confirm with \
                           --yes (no terminal to ask on); nothing was changed";

pub fn command(r: Restore) -> Result<ExitCode> {
    let inst = crate::instance::open(&r.root, r.instance.as_deref())?;
    // Refused before anything starts (also before an interrupted operation is recovered), not
    // only when the question comes.
    if !r.yes && !std::io::stdin().is_terminal() {
        return Err(fail(Exit::Usage, NO_TERMINAL));
    }
    let confirm = super::confirm(r.yes, NO_TERMINAL);
    let o = restore::Options {
        file: r.file,
        unlock: Unlock { passphrase_file: r.passphrase_file, identity: r.identity, ask: Some(crate::ui::secret) },
        confirm: &confirm,
    };
    let done = restore::run(&inst, &o)?;
    let h = &done.manifest.header;
    println!(
        "Restored instance {} from the backup of {} (Vikunja {}, {} files); {} serves it and is healthy.",
        h.instance,
        h.created,
        h.vikunja_version,
        done.manifest.files(),
        done.colour.name()
    );
    renew_restored_certificate(&r.root, &h.instance);
    Ok(ExitCode::SUCCESS)
}

/// A restored ACME certificate is as old as the backup: when it is due (or past its end) it is
/// renewed now, not at the timer's next run up to 18 hours later. A failure is a warning; the
/// restore stands and the timer tries again.
fn renew_restored_certificate(root: &std::path::Path, instance: &str) {
    let Ok(inst) = crate::instance::open(root, Some(instance)) else { return };
    let (l, d) = (&inst.layout, &inst.deployment);
    if !d.ssl.acme {
        return;
    }
    let Ok(_lock) = crate::instance::lock::take(l, "cert renew") else { return };
    match crate::service::acme::renew(l, d, inst.init, false) {
        Ok(crate::service::acme::Renewal::Renewed { not_after }) => println!(
            "The restored certificate of {} was due: a new one serves, valid until {}.",
            d.network.domain,
            manifests::time::format_rfc3339(not_after)
        ),
        Ok(_) => {}
        Err(e) => eprintln!(
            "warning: the restored certificate of {} is due and could not be renewed ({e}); `vikunja-installer \
             cert renew` tries again (its timer does so twice a day)",
            d.network.domain
        ),
    }
}
