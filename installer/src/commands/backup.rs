//! `backup` and its `list`, `verify` and `schedule` subcommands: argv → `engine::backup`'s options
//! and calls, and what they print.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use manifests::Exit;

use crate::cli::{Backup, BackupCommand};
use crate::data::crypt::{Seal, Unlock};
use crate::engine::backup;
use crate::error::fail;

fn usage(msg: impl Into<String>) -> anyhow::Error {
    fail(Exit::Usage, msg)
}

pub fn command(b: Backup) -> Result<ExitCode> {
    match b.cmd {
        Some(BackupCommand::List(ls)) => {
            let inst = crate::instance::open(&ls.root, ls.instance.as_deref())?;
            crate::engine::recovery::recover_if_interrupted(&inst)?;
            let dir = ls.output.unwrap_or_else(|| inst.layout.backups_dir());
            backup::list(&dir, &inst.layout.instance, ls.json)?;
        }
        Some(BackupCommand::Schedule(s)) => super::schedule::command(s)?,
        Some(BackupCommand::Verify(v)) => {
            // The instance is only needed to find a bare file name in its backups/.
            let inst = crate::instance::open(&v.root, v.instance.as_deref()).ok();
            let path = crate::data::contents::resolve(&v.file, inst.as_ref().map(|i| &i.layout));
            let unlock =
                Unlock { passphrase_file: v.passphrase_file, identity: v.identity, ask: Some(crate::ui::secret) };
            let started = Instant::now();
            let (m, encrypted) = backup::verify(&path, &unlock)?;
            let h = &m.header;
            println!(
                "OK {}: a complete, unchanged backup of instance {} (Vikunja {}, {}) made {}; {} files, {}{} checked in {:.1} s",
                path.display(),
                h.instance,
                h.vikunja_version,
                h.database,
                h.created,
                m.files(),
                backup::mib(m.data_bytes()),
                if encrypted { ", decrypted" } else { "" },
                started.elapsed().as_secs_f64()
            );
        }
        None => {
            if b.passphrase_file.is_some() && !b.encrypt {
                return Err(usage("--passphrase-file is for --encrypt; add --encrypt (or leave the file out)"));
            }
            if b.encrypt && !b.recipient.is_empty() {
                return Err(usage(
                    "--encrypt (a passphrase) and --recipient (keys) exclude each other: age encrypts to one or the other",
                ));
            }
            let seal = if !b.recipient.is_empty() {
                Some(Seal::Recipients(crate::data::crypt::recipients(&b.recipient).map_err(|e| usage(e.to_string()))?))
            } else if b.encrypt {
                let p = crate::data::crypt::passphrase(b.passphrase_file.as_deref(), true, Some(crate::ui::secret))
                    .map_err(|e| usage(e.to_string()))?;
                Some(Seal::Passphrase(p))
            } else {
                None
            };
            let inst = crate::instance::open(&b.root, b.instance.as_deref())?;
            let started = Instant::now();
            let o = backup::Options { seal, include_logs: b.include_logs, output: b.output };
            let made = backup::run(&inst, &o)?;
            if b.json {
                println!("{}", backup::made_json(&made, o.seal.is_some()));
            } else {
                backup::print_made(&made, o.seal.as_ref(), started.elapsed().as_secs_f64());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
