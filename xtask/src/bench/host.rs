//! Figures of the Proxmox host driver: from `vikunja-installer create` on the "host" to a healthy
//! instance in a new container, first and second instance, with the LXC-backed TEST DOUBLES of
//! Proxmox's tools (tests/pve-doubles). Package downloads are excluded: the doubles' image holds
//! the .debs in apt's cache, and the time apt-get takes is reported by the driver and subtracted.
//! Needs root and LXC; without them it returns no figures and says why.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vikunja_e2e::sandbox::{standin_zips, Sandbox};

use crate::bench::{Figure, Stats};

const VIKUNJA: &str = "v2.5.0";
const GOAL: Duration = Duration::from_secs(60);
const SC_001: Duration = Duration::from_secs(600);

struct Node {
    dir: PathBuf,
}

impl Node {
    fn command(&self, program: &Path) -> Command {
        let root = crate::workspace_root();
        let doubles = root.join("tests/pve-doubles");
        let mut c = Command::new(program);
        c.env("PATH", format!("{}:{}", doubles.display(), std::env::var("PATH").unwrap_or_default()))
            .env("PVE_DOUBLE_DIR", self.dir.join("pve"))
            .env("PVE_DOUBLE_CACHE", root.join("target/pve-doubles/cache"))
            .env("TMPDIR", &self.dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let lxc = self.dir.join("pve/lxc");
        for e in std::fs::read_dir(&lxc).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let _ = Command::new("lxc-stop").arg("-P").arg(&lxc).args(["-n", &n, "-k"]).output();
        }
    }
}

fn config(node: &Node, name: &str, n: u8, zip: &Path) -> Result<PathBuf> {
    let p = Sandbox::new(&format!("bench-host-ports-{name}"))?.ports;
    let text = vikunja_e2e::sandbox::container_config(
        name,
        &format!("version = \"{VIKUNJA}\"\nartifact = \"{}\"", zip.display()),
        &format!("127.0.20.{n}/8"),
        &p,
        "",
    );
    let path = node.dir.join(format!("{name}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

/// One `create`: (wall time, time apt-get took), from the driver's closing line.
fn create(node: &Node, installer: &Path, cfg: &Path) -> Result<(Duration, Duration)> {
    let mut c = node.command(installer);
    c.args(["create", "--yes", "--config"]).arg(cfg).arg("--root").arg(node.dir.join("host-root"));
    let (d, out) = crate::bench::timed(c)?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("vikunja-installer create failed ({}):\n{text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let apt = text
        .lines()
        .find_map(|l| l.split("(of which ").nth(1))
        .and_then(|r| r.split(" s installing packages").next())
        .and_then(|s| s.parse::<f64>().ok())
        .context("the driver's closing line (time spent in apt-get) is missing")?;
    Ok((d, Duration::from_secs_f64(apt)))
}

/// `runs` rounds of two instances on a fresh fake node each; one warm-up round (which also
/// builds the container image into the cache when it is missing).
pub fn figures(installer: &Path, runs: usize) -> Result<Vec<Figure>> {
    if let Some(why) = crate::prereq::lxc_unavailable() {
        eprintln!("bench: host figures skipped: {why}");
        return Ok(Vec::new());
    }
    let zips = standin_zips(&[VIKUNJA])?;
    let zip = zips.join(VIKUNJA).join(format!("vikunja-{VIKUNJA}-linux-amd64-full.zip"));
    let rounds = runs.clamp(1, 3);
    let (mut first, mut second, mut apt) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=rounds {
        let node = Node { dir: vikunja_e2e::scratch_dir("bench-host")? };
        // The template "download" (the image build, once) is a download: outside the timing.
        let mut c = node.command(&crate::workspace_root().join("tests/pve-doubles/pveam"));
        c.args(["download", "local", "debian-12-standard_12.7-1_amd64.tar.zst"]);
        let o = c.output().context("run the pveam test double")?;
        if !String::from_utf8_lossy(&o.stdout).contains("TASK OK") {
            bail!("building the container image failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        let (d1, a1) = create(&node, installer, &config(&node, "first", 1, &zip)?)?;
        let (d2, a2) = create(&node, installer, &config(&node, "second", 2, &zip)?)?;
        eprintln!(
            "bench: host round {i}: first {:.1} s (apt {:.1} s), second {:.1} s (apt {:.1} s)",
            d1.as_secs_f64(),
            a1.as_secs_f64(),
            d2.as_secs_f64(),
            a2.as_secs_f64()
        );
        if i > 0 {
            first.push(d1.saturating_sub(a1));
            second.push(d2.saturating_sub(a2));
            apt.push(a1);
            apt.push(a2);
        }
    }
    let (f, s, a) = (Stats::of(&mut first), Stats::of(&mut second), Stats::of(&mut apt));
    let notes = |which: &str| {
        vec![
            format!("{rounds} timed rounds after one warm-up, each on a fresh fake node; this is the {which} instance of the round."),
            "From `vikunja-installer create --config … --yes` on the host to a healthy instance: checks, `pct create`, start, \
             systemd booted, `pct push` of the installer, the deployment engine inside (systemd units, nginx, TLS, health)."
                .into(),
            format!("apt-get installing nginx from the image's cache is subtracted (median {a}); the template download is not timed."),
            "The containers are the LXC-backed TEST DOUBLES of Proxmox's tools (tests/pve-doubles): overlay over a cached \
             Debian 12 image, systemd as PID 1, host network; real Proxmox adds its own storage allocation time."
                .into(),
        ]
    };
    Ok(vec![
        Figure {
            name: "Host: create to a healthy instance in a new container (no downloads), first instance".into(),
            value: f.to_string(),
            reference: format!("seed SC-001: {} s", SC_001.as_secs()),
            ratio: Some(f.median.as_secs_f64() / SC_001.as_secs_f64()),
            goal: format!("< {} s (seed SC-001: < 10 min)", GOAL.as_secs()),
            met: f.median < GOAL,
            notes: notes("first"),
        },
        Figure {
            name: "Host: create to a healthy instance in a new container (no downloads), second instance".into(),
            value: s.to_string(),
            reference: format!("the first instance: {f}"),
            ratio: Some(s.median.as_secs_f64() / f.median.as_secs_f64()),
            goal: format!("< {} s (seed SC-001: < 10 min)", GOAL.as_secs()),
            met: s.median < GOAL,
            notes: notes("second"),
        },
    ])
}
