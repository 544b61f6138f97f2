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
    Ok(ExitCode::SUCCESS)
}
