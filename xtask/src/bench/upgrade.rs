//! Figure of `vikunja-installer upgrade`: the time of a self-upgrade excluding the download (from a
//! bundle file: verification, unpacking, the `--version` check of the new binary, the atomic
//! switch), next to copying the same files with `cp` in the same run.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use manifests::manifest::names;

use crate::bench::{ms, timed_ok, Figure, Stats};

fn ok(c: Command, what: &str) -> Result<std::time::Duration> {
    timed_ok(c, what).map(|(d, _)| d)
}
use crate::serve::Served;

fn installer_cmd(bin: &Path, args: &[&str], root: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args(args).arg("--root").arg(root).stdin(Stdio::null());
    c
}

pub fn figures(root: &Path, first: &Served, runs: usize) -> Result<Vec<Figure>> {
    let v1 = first.spec.version.to_string();
    let v2 = "0.2.0";
    let second = crate::serve::second_release(root, first, "bench-upgrade-release", v2)?;
    let b1 = first.assets.join(names::bundle(&v1, &first.spec.target));
    let b2 = second.join(names::bundle(v2, &first.spec.target));
    let work = vikunja_e2e::scratch_dir("bench-upgrade")?;
    let unpacked = work.join("v1-unpacked");
    std::fs::create_dir_all(&unpacked)?;
    let mut t = Command::new("tar");
    t.arg("xzf").arg(&b1).arg("-C").arg(&unpacked);
    ok(t, "tar xzf")?;
    let v2_unpacked = work.join("v2-unpacked");
    std::fs::create_dir_all(&v2_unpacked)?;
    let mut t = Command::new("tar");
    t.arg("xzf").arg(&b2).arg("-C").arg(&v2_unpacked);
    ok(t, "tar xzf")?;
    let runs = runs.clamp(1, 5);
    let (mut ours, mut reference) = (Vec::new(), Vec::new());
    for i in 0..=runs {
        let r = work.join(format!("root-{i}"));
        let b1s = b1.to_str().context("bundle path")?;
        ok(installer_cmd(&unpacked.join("bin/vikunja-installer"), &["upgrade", "--bundle", b1s], &r), "install 0.1.0")?;
        let installed = r.join("usr/local/bin/vikunja-installer");
        let o = ok(
            installer_cmd(&installed, &["upgrade", "--bundle", b2.to_str().context("bundle path")?], &r),
            "upgrade",
        )?;
        let mut cp = Command::new("cp");
        cp.arg("-a").arg(&v2_unpacked).arg(work.join(format!("cp-{i}")));
        let c = ok(cp, "cp -a")?;
        eprintln!("bench: upgrade run {i}: ours {} cp {}", ms(o), ms(c));
        if i > 0 {
            ours.push(o);
            reference.push(c);
        }
    }
    let (o, c) = (Stats::of(&mut ours), Stats::of(&mut reference));
    let ratio = o.median.as_secs_f64() / c.median.as_secs_f64();
    Ok(vec![Figure {
        name: "Self-upgrade of the installer, excluding the download".into(),
        value: o.to_string(),
        reference: format!("`cp -a` of the same unpacked files: {c}"),
        ratio: Some(ratio),
        goal: "report (issue: time next to cp)".into(),
        met: true,
        notes: vec![
            format!("{runs} timed runs after one warm-up, each into a fresh root with {v1} installed from its bundle."),
            format!(
                "Ours: `vikunja-installer upgrade --bundle {}`: minisign and sha256 checks of release.toml and the \
                 bundle, serial and expiry, unpacking into a staging directory, `--version` check of the new \
                 binary, receipt, atomic switch of `current`, pruning.",
                names::bundle(v2, &first.spec.target)
            ),
            "Reference: `cp -a` of the already unpacked bundle (no verification, no switch).".into(),
        ],
    }])
}
