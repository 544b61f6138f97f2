//! Figures of the deployment engine: install time excluding downloads, and a health check of every
//! component, each next to a reference measured in the same run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Result;
use vikunja_e2e::sandbox::{standin_zips, Sandbox};

use crate::bench::{ms, timed_ok, Figure, Stats};

fn run_ok(c: Command, what: &str) -> Result<Duration> {
    timed_ok(c, what).map(|(d, _)| d)
}

const VIKUNJA: &str = "v2.5.0";
const HEALTH_GOAL: Duration = Duration::from_millis(100);

fn install_cmd(installer: &Path, sb: &Sandbox, zip: &Path) -> Result<Command> {
    let cfg = sb.root.join("deployment.toml");
    let text = sb.config("bench", VIKUNJA, "https://127.0.0.1:1/unused", "").replacen(
        "download_base",
        &format!("artifact = \"{}\"\ndownload_base", zip.display()),
        1,
    );
    std::fs::write(&cfg, text)?;
    let mut c = Command::new(installer);
    c.args(["install", "--init", "process", "--yes", "--root"])
        .arg(&sb.root)
        .arg("--config")
        .arg(&cfg)
        .stdin(Stdio::null());
    Ok(c)
}

pub fn figures(installer: &Path, runs: usize) -> Result<Vec<Figure>> {
    let zips = standin_zips(&[VIKUNJA])?;
    let zip = zips.join(VIKUNJA).join(format!("vikunja-{VIKUNJA}-linux-amd64-full.zip"));
    let install_runs = runs.clamp(1, 5);
    let (mut ours, mut reference) = (Vec::new(), Vec::new());
    for i in 0..=install_runs {
        let sb = Sandbox::new("bench-install")?;
        let o = run_ok(install_cmd(installer, &sb, &zip)?, "install")?;
        drop(sb);
        let dir = vikunja_e2e::scratch_dir("bench-unzip")?;
        let mut u = Command::new("unzip");
        u.arg("-q").arg(&zip).arg("-d").arg(&dir);
        let r = run_ok(u, "unzip")?;
        eprintln!("bench: install run {i}: ours {} ref {}", ms(o), ms(r));
        if i > 0 {
            ours.push(o);
            reference.push(r);
        }
    }
    let (o, r) = (Stats::of(&mut ours), Stats::of(&mut reference));
    let install = Figure {
        name: "Install from a local Vikunja zip (no download), sandbox root, --init process".into(),
        value: o.to_string(),
        reference: format!("`unzip` of the same zip: {r}"),
        ratio: Some(o.median.as_secs_f64() / r.median.as_secs_f64()),
        goal: "seed: initial deployment 8-12 min".into(),
        met: o.median < Duration::from_secs(600),
        notes: vec![
            format!("{install_runs} timed runs after one warm-up, each into a fresh sandbox root with free loopback ports."),
            "Ours: verify the zip's sha256, unpack into releases/, secrets, config.yml, self-signed certificate, units, \
             nginx site checked with `nginx -t`, start backend and nginx, wait until healthy, full health check."
                .into(),
            "The stand-in (a test double) starts in milliseconds; the real Vikunja's start and migrations add to this.".into(),
        ],
    };

    let sb = Sandbox::new("bench-health")?;
    run_ok(install_cmd(installer, &sb, &zip)?, "install")?;
    let script = sb.instance_dir("bench").join("scripts/health-check.sh");
    let (mut ours, mut reference) = (Vec::new(), Vec::new());
    for i in 0..=runs {
        let mut c = Command::new(installer);
        c.args(["health", "--root"]).arg(&sb.root);
        let o = run_ok(c, "health")?;
        let r = run_ok(Command::new(&script), "health-check.sh")?;
        if i > 0 {
            ours.push(o);
            reference.push(r);
        }
    }
    let (o, r) = (Stats::of(&mut ours), Stats::of(&mut reference));
    let health = Figure {
        name: "Health check of all components, healthy instance".into(),
        value: o.to_string(),
        reference: format!("the seed's curl checks (`scripts/health-check.sh`): {r}"),
        ratio: Some(o.median.as_secs_f64() / r.median.as_secs_f64()),
        goal: format!("< {} ms (seed: target < 10 s, measured 2-5 s)", HEALTH_GOAL.as_millis()),
        met: o.median < HEALTH_GOAL,
        notes: vec![
            format!(
                "{runs} timed runs each after one warm-up: `vikunja-installer health --root R` (backend /health and \
                     /api/v1/info version, frontend HTML, SQLite query, nginx TLS port and HTTP redirect)."
            ),
            "Reference: the curl-based script the installer writes for operators, the seed's method.".into(),
        ],
    };
    drop(sb);
    Ok(vec![install, health])
}
