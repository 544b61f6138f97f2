//! The installer's error with the exit code it ends the process with (the table in
//! `manifests::exit`). Everything below the commands returns it (or a plain error, exit 1).

/// An error with the exit code it should end the process with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failed {
    pub code: manifests::Exit,
    pub message: String,
}

pub fn fail(code: manifests::Exit, message: impl Into<String>) -> anyhow::Error {
    Failed { code, message: message.into() }.into()
}
