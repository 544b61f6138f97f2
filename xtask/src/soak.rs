//! `cargo xtask soak`: the lifecycle sequence test (`installer/tests/sequence_e2e.rs`) for longer
//! than CI runs it. The test binary reads its seed and step count from the environment, so a
//! failing seed from CI or a soak replays with `--seed`. The bench's soak row runs the same thing
//! with a fixed seed and reads its progress lines.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use argh::FromArgs;

use crate::bench::Figure;

/// The bench's seed: fixed, so that the row is reproduced step for step by the command it names.
pub const BENCH_SEED: u64 = 20261127;

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

fn command(root: &Path, seed: u64, steps: usize) -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root)
        .args(["test", "--locked", "-p", "vikunja-installer", "--test", "sequence_e2e", "--", "--nocapture"])
        .env("VIKUNJA_SEQ_SEED", seed.to_string())
        .env("VIKUNJA_SEQ_STEPS", steps.to_string());
    c
}

pub fn run(root: &Path, s: &Soak) -> Result<()> {
    let seed = match s.seed {
        Some(seed) => seed,
        None => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64,
    };
    eprintln!("soak: {} steps, VIKUNJA_SEQ_SEED={seed}", s.steps);
    let status = command(root, seed, s.steps)
        .env("VIKUNJA_SEQ_WITHOUT", s.without.as_deref().unwrap_or(""))
        .status()
        .context("run cargo test --test sequence_e2e")?;
    if !status.success() {
        let without = s.without.as_deref().map(|w| format!(" --without {w}")).unwrap_or_default();
        bail!("the soak failed ({status}); replay it with cargo xtask soak --steps {} --seed {seed}{without}", s.steps);
    }
    Ok(())
}

/// What one soak said on stderr, with the time each step began as the lines arrived.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    /// When each `=== … step i/N` line arrived, since the first one.
    step_starts: Vec<Duration>,
    /// The test's own closing line, present only when every step kept the invariants.
    summary: Option<String>,
    /// The first broken invariant: the panic message naming the seed and step.
    violation: Option<String>,
    /// From the first step line to the end of the output.
    elapsed: Duration,
    /// Lines of the violation's message still to take.
    detail_lines: usize,
}

impl Seen {
    fn line(&mut self, line: &str, at: Instant, first: &mut Option<Instant>) {
        if line.starts_with("=== VIKUNJA_SEQ_SEED=") && line.contains(" step ") {
            let t0 = *first.get_or_insert(at);
            self.step_starts.push(at - t0);
        } else if line.starts_with("sequence VIKUNJA_SEQ_SEED=") && line.contains("invariant violations") {
            self.summary = Some(line.trim().to_string());
        } else if self.violation.is_none() && line.contains("panicked at") {
            self.violation = Some(String::new());
        } else if self.violation.as_ref().is_some_and(String::is_empty) && line.starts_with("VIKUNJA_SEQ_SEED=") {
            self.violation = Some(line.trim().to_string());
            self.detail_lines = 8;
        } else if self.detail_lines > 0 {
            // The message goes on until the steps so far (the command's own output, for one).
            if line.starts_with("steps so far") {
                self.detail_lines = 0;
            } else if let Some(v) = self.violation.as_mut() {
                self.detail_lines -= 1;
                if !line.trim().is_empty() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            }
        }
    }
}

/// One number after `key` in the test's summary line, e.g. `(12.3 operations/min)`.
fn number_before(summary: &str, key: &str) -> Option<f64> {
    let head = &summary[..summary.find(key)?];
    head.trim_end().rsplit([' ', '(', ',']).next()?.parse().ok()
}

/// The bench row: `steps` steps from [`BENCH_SEED`]; a broken invariant is a row that misses its
/// goal (with the step and message), not an error, so the other rows are still written.
pub fn figure(root: &Path, steps: usize) -> Result<Figure> {
    let seed = BENCH_SEED;
    eprintln!("bench: soak, {steps} steps of the lifecycle sequence test, VIKUNJA_SEQ_SEED={seed}");
    let mut child = command(root, seed, steps)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run cargo test --test sequence_e2e")?;
    let err = child.stderr.take().context("the soak's stderr")?;
    let (mut seen, mut first) = (Seen::default(), None);
    let mut tail: Vec<String> = Vec::new();
    for line in BufReader::new(err).lines() {
        let line = line.context("reading the soak's output")?;
        seen.line(&line, Instant::now(), &mut first);
        // Progress for whoever watches the bench: one line per step.
        if line.starts_with("=== ") {
            eprintln!("bench: soak {}", line.trim_start_matches("=== "));
        }
        tail.push(line);
        if tail.len() > 40 {
            tail.remove(0);
        }
    }
    let status = child.wait().context("wait for cargo test")?;
    seen.elapsed = first.map(|t| t.elapsed()).unwrap_or_default();
    figure_of(&seen, status.success(), steps, seed, &tail.join("\n"))
}

fn figure_of(seen: &Seen, ok: bool, steps: usize, seed: u64, tail: &str) -> Result<Figure> {
    let started = seen.step_starts.len();
    if seen.summary.is_none() && seen.violation.is_none() {
        bail!("the soak ended ({}) without its summary or a violation; its last lines:\n{tail}", ok_word(ok));
    }
    let (completed, violations) = match &seen.summary {
        Some(_) if ok => (started, 0),
        _ => (started.saturating_sub(1), 1),
    };
    let minutes = seen.elapsed.as_secs_f64() / 60.0;
    let per_min = seen
        .summary
        .as_deref()
        .and_then(|s| number_before(s, "operations/min"))
        .unwrap_or(if minutes > 0.0 { completed as f64 / minutes } else { 0.0 });
    let cmd = format!("cargo xtask soak --steps {steps} --seed {seed}");
    let mut notes = vec![
        format!(
            "`{cmd}` runs the lifecycle sequence test (`installer/tests/sequence_e2e.rs`, the debug build): one \
             sandbox instance (stand-in v2.4.0/v2.5.0, --init process) under a read/write load through nginx, and \
             seeded random steps: install, update, rollback, backup, restore, status, kill -9 of the installer at a \
             named point, kill -9 of a supervisor or backend, a competing second operation."
        ),
        "After every step it checks the invariants: exactly one colour serves, the one state names, under a live \
         supervisor; the served version is state's; every acknowledged write is present unless a rollback or \
         restore said it undid it; no two commands in a row exit 1; a write through nginx after the step succeeds. \
         The test stops at the first violation, so the count is 0 or 1."
            .into(),
        format!(
            "{completed} of {steps} steps completed in {:.0} s of steps (compiling the test is not counted).",
            seen.elapsed.as_secs_f64()
        ),
        "No reference measurement: the goal is an absolute 0, and CI runs the same test for 30 steps with a seed \
         from the clock."
            .into(),
    ];
    if let Some(s) = &seen.summary {
        notes.push(format!("The test's summary: {}", s.lines().next().unwrap_or(s)));
    }
    if let Some(v) = &seen.violation {
        notes.push(format!("Violation: {v}"));
    }
    Ok(Figure {
        name: "Soak: random lifecycle sequence under load".into(),
        value: format!(
            "{completed} of {steps} steps, {per_min:.1} operations/min, {violations} invariant violations (seed {seed})"
        ),
        reference: "n/a (goal is absolute)".into(),
        ratio: None,
        goal: "0 violations".into(),
        met: violations == 0 && completed == steps,
        notes,
    })
}

fn ok_word(ok: bool) -> &'static str {
    if ok {
        "passed"
    } else {
        "failed"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> Seen {
        let (mut s, mut first) = (Seen::default(), None);
        let t = Instant::now();
        for (i, l) in lines.iter().enumerate() {
            s.line(l, t + Duration::from_secs(i as u64), &mut first);
        }
        s.elapsed = Duration::from_secs(lines.len() as u64);
        s
    }

    #[test]
    fn a_clean_soak_reports_its_own_rate_and_no_violation() {
        let s = feed(&[
            "=== VIKUNJA_SEQ_SEED=7 step 1/2: Update",
            "=== VIKUNJA_SEQ_SEED=7 step 2/2: Status",
            "sequence VIKUNJA_SEQ_SEED=7: 2 steps in 20 s (6.0 operations/min), 9 writes acknowledged, 0 invariant \
             violations",
        ]);
        let f = figure_of(&s, true, 2, 7, "").unwrap();
        assert_eq!(f.value, "2 of 2 steps, 6.0 operations/min, 0 invariant violations (seed 7)");
        assert!(f.met);
    }

    #[test]
    fn a_violation_is_a_missed_goal_naming_the_step() {
        let s = feed(&[
            "=== VIKUNJA_SEQ_SEED=7 step 1/3: Update",
            "=== VIKUNJA_SEQ_SEED=7 step 2/3: Rollback",
            "thread 'random_lifecycle_sequences_keep_the_invariants' panicked at installer/tests/sequence_e2e.rs:223:9:",
            "VIKUNJA_SEQ_SEED=7 step 2: 1 acknowledged writes are missing",
            "  [\"w-1\"]",
            "steps so far:",
            "  install v2.4.0",
        ]);
        let f = figure_of(&s, false, 3, 7, "").unwrap();
        assert!(f.value.starts_with("1 of 3 steps, ") && f.value.contains("1 invariant violations"), "{}", f.value);
        assert!(!f.met);
        assert!(
            f.notes.iter().any(|n| n.ends_with("step 2: 1 acknowledged writes are missing [\"w-1\"]")),
            "{:?}",
            f.notes
        );
    }

    #[test]
    fn output_without_summary_or_violation_is_an_error() {
        let s = feed(&["error[E0425]: cannot find value"]);
        assert!(figure_of(&s, false, 3, 7, "error[E0425]").is_err());
    }
}
