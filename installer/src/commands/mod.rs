//! Command adapters: parsed argv in, output and prompts out. They may use every layer; nothing
//! below them uses them (issue 14). The older commands are still dispatched from `main` and the
//! engine's own `command` functions.

pub mod logs;
pub mod schedule;
pub mod uninstall;
