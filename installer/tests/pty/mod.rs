//! The pseudo-terminal driver lives in the harness (vikunja_e2e::pty), shared with `cargo xtask
//! demo --containers`; this keeps the test files' `mod pty` path.

// Each test crate that includes this uses a part of it.
#![allow(unused_imports)]

pub use vikunja_e2e::pty::Pty;
