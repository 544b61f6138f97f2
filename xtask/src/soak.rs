//! `cargo xtask soak`: the lifecycle sequence test (`installer/tests/sequence_e2e.rs`) for longer
//! than CI runs it. The test binary reads its seed and step count from the environment, so a
//! failing seed from CI or a soak replays with `--seed`.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use argh::FromArgs;

/// Run the random lifecycle sequence test for N steps (default 200) from seed S (default: the clock).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "soak")]
pub struct Soak {
    /// how many random steps to run
    #[argh(option, default = "200")]
    pub steps: usize,
    /// the seed to start from (printed by every run; replays a failure)
    #[argh(option)]
    pub seed: Option<u64>,
    /// step kinds to leave out, comma-separated (e.g. kill-supervisor), to look past a known bug
    #[argh(option)]
    pub without: Option<String>,
}

pub fn run(root: &Path, s: &Soak) -> Result<()> {
    let seed = match s.seed {
        Some(seed) => seed,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64,
    };
    eprintln!("soak: {} steps, VIKUNJA_SEQ_SEED={seed}", s.steps);
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["test", "--locked", "-p", "vikunja-installer", "--test", "sequence_e2e", "--", "--nocapture"])
        .env("VIKUNJA_SEQ_SEED", seed.to_string())
        .env("VIKUNJA_SEQ_STEPS", s.steps.to_string())
        .env("VIKUNJA_SEQ_WITHOUT", s.without.as_deref().unwrap_or(""))
        .status()
        .context("run cargo test --test sequence_e2e")?;
    if !status.success() {
        let without = s.without.as_deref().map(|w| format!(" --without {w}")).unwrap_or_default();
        bail!("the soak failed ({status}); replay it with cargo xtask soak --steps {} --seed {seed}{without}", s.steps);
    }
    Ok(())
}
