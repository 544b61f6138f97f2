//! Command adapters: parsed argv in, output and prompts out. They may use every layer; nothing
//! below them uses them (issue 14). The engine never prompts: a question it asks mid-way reaches it
//! as a callback (`confirm`). The older commands are still dispatched from `main` itself.

pub mod autoupdate;
pub mod backup;
pub mod logs;
pub mod restore;
pub mod schedule;
pub mod uninstall;

use anyhow::Result;

/// The answer to an operation's mid-way question (the `confirm` of `restore::Options` and `rollback`): yes with `--yes`, else asked
/// on the terminal; with no terminal to ask on, a usage error `no_terminal` (which names `--yes`).
pub fn confirm(yes: bool, no_terminal: &'static str) -> impl Fn(&str) -> Result<bool> {
    move |question| {
        if yes {
            return Ok(true);
        }
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(crate::error::fail(manifests::Exit::Usage, no_terminal));
        }
        Ok(crate::ui::confirm(question)?)
    }
}
