//! `cargo xtask ci`: everything a change must pass. The README's test command and `.ci/run` call it.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    eprintln!("xtask ci: cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        // The tests that need a PostgreSQL server fail instead of skipping: prereq installed one.
        .env("STANDIN_REQUIRE_POSTGRES", "1")
        .args(args)
        .status()
        .with_context(|| format!("run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

pub fn run(root: &Path) -> Result<()> {
    crate::prereq::ensure(crate::prereq::TEST_TOOLS)?;
    cargo(root, &["fmt", "--all", "--", "--check"])?;
    cargo(root, &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"])?;
    cargo(root, &["test", "--workspace", "--locked"])
}
