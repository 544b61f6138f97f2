//! What `cargo xtask dist` compiled into this binary: release version and channel. Plain
//! `cargo build` gives the crate version on channel "dev".

pub fn version() -> &'static str {
    option_env!("VIKUNJA_RELEASE_VERSION").unwrap_or(env!("CARGO_PKG_VERSION"))
}

pub fn channel() -> &'static str {
    option_env!("VIKUNJA_RELEASE_CHANNEL").unwrap_or("dev")
}

/// The target triple the release assets are named after.
pub const TARGET: &str = crate::manifest::names::TARGET;
