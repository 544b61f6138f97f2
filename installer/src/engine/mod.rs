//! The operations, one module per command that changes an instance, and what they share: the
//! state model (`lifecycle`), the journal (`journal`), the blue-green steps (`switch`) and the one
//! recovery entry (`recovery`).

pub mod backup;
pub mod install;
pub mod journal;
pub mod lifecycle;
pub mod recovery;
pub mod restart;
pub mod restore;
pub mod rollback;
pub mod stopstart;
pub mod switch;
pub mod update;
pub mod upgrade;
