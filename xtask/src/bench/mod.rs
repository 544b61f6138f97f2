//! `cargo xtask bench`: measures the figures the project promises and writes BENCHMARKS.md. Every
//! figure is measured against a reference in the same run on the same machine, so the ratio means
//! something even where the absolute numbers depend on the hardware.

mod backup;
mod deploy;
mod host;
mod size;
mod update;
mod upgrade;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use argh::FromArgs;
use manifests::manifest::names;

use crate::serve::{build_and_serve_with, Served, OWNER, REPO};

const REPRODUCE: &str = "`cargo xtask bench`";
const MIB: f64 = 1024.0 * 1024.0;
const SIZE_GOAL_MIB: f64 = 1.5;
const SIZE_STRETCH_MIB: f64 = 1.25;
const HANDOFF_GOAL_RATIO: f64 = 1.5;
/// Random bytes do not compress, so the bundle really is this big on the wire.
const PADDING_BYTES: u64 = 10 * 1024 * 1024;

/// Measure the project's figures against references taken in the same run; write BENCHMARKS.md.
#[derive(FromArgs)]
#[argh(subcommand, name = "bench")]
pub struct Bench {
    /// timed runs of each command (default 10), after one warm-up run each
    #[argh(option, default = "10")]
    runs: usize,
    /// regenerate only these groups of rows, comma-separated (size, handoff, deploy, update,
    /// backup, host, upgrade, soak) and keep the other rows of BENCHMARKS.md as they are
    #[argh(option)]
    only: Option<String>,
    /// steps of the soak row (the lifecycle sequence test), default 40
    #[argh(option, default = "40")]
    soak_steps: usize,
}

/// The groups of rows, in the order of BENCHMARKS.md; `--only` takes these names.
const GROUPS: &[&str] = &["size", "handoff", "deploy", "update", "backup", "host", "upgrade", "soak"];

/// One line of BENCHMARKS.md. Later figures only need to build one of these.
pub(crate) struct Figure {
    pub name: String,
    pub value: String,
    pub reference: String,
    pub ratio: Option<f64>,
    pub goal: String,
    pub met: bool,
    pub notes: Vec<String>,
}

pub fn run(root: &Path, b: &Bench) -> Result<()> {
    ensure!(b.runs >= 1, "--runs must be at least 1");
    let only = match &b.only {
        None => None,
        Some(list) => {
            let groups: Vec<&str> = list.split(',').map(str::trim).filter(|g| !g.is_empty()).collect();
            if let Some(bad) = groups.iter().find(|g| !GROUPS.contains(g)) {
                bail!("--only: unknown group {bad:?}; the groups are {}", GROUPS.join(", "));
            }
            ensure!(!groups.is_empty(), "--only needs at least one of {}", GROUPS.join(", "));
            Some(groups)
        }
    };
    let want = |g: &str| only.as_ref().is_none_or(|o| o.contains(&g));
    crate::prereq::ensure(crate::prereq::BENCH_TOOLS)?;
    // Taken before the runs: the load average is the machine's, not ours.
    let head = header()?;
    let mut figures: Vec<(&str, Figure)> = Vec::new();
    if GROUPS.iter().any(|g| *g != "soak" && want(g)) {
        let input = vikunja_e2e::scratch_dir("bench-input")?;
        let padding = input.join("bench-padding.bin");
        write_random(&padding, PADDING_BYTES)?;
        // One throw-away signing key for every bench run: its public half is compiled into the
        // binaries, so a fresh key (the demo's way) would rebuild them on every `--only` run.
        let keys = root.join("target/bench-keys");
        release::signing::SigningKey::throwaway_in(&keys).context("the bench's throw-away signing key")?;
        let served = build_and_serve_with(root, "bench", vec![padding], Some(keys.join("minisign.key")))?;
        if want("size") || want("handoff") {
            // Today's glibc bootstrap, built in the same run with the same key, as the reference.
            let glibc = glibc_bootstrap(root, &served)?;
            if want("size") {
                figures.push(("size", bootstrap_size(root, &served, &glibc)?));
            }
            if want("handoff") {
                figures.push(("handoff", start_to_handoff(&served, &glibc, b.runs)?));
            }
        }
        let installer = root
            .join("target/dist")
            .join(served.spec.version.to_string())
            .join(&served.spec.target)
            .join("release/vikunja-installer");
        type Group = fn(&Path, usize) -> Result<Vec<Figure>>;
        let groups: [(&str, Group); 4] = [
            ("deploy", crate::bench::deploy::figures),
            ("update", crate::bench::update::figures),
            ("backup", crate::bench::backup::figures),
            ("host", crate::bench::host::figures),
        ];
        for (g, f) in groups {
            if want(g) {
                figures.extend(f(&installer, b.runs)?.into_iter().map(|x| (g, x)));
            }
        }
        if want("upgrade") {
            figures.extend(crate::bench::upgrade::figures(root, &served, b.runs)?.into_iter().map(|x| ("upgrade", x)));
        }
    }
    if want("soak") {
        figures.push(("soak", crate::soak::figure(root, b.soak_steps)?));
    }
    let out = root.join("BENCHMARKS.md");
    let text = match &only {
        None => render(&head, &figures),
        Some(groups) => {
            let old =
                fs::read_to_string(&out).with_context(|| format!("reading {} to update its rows", out.display()))?;
            merge(&old, &head, groups, &figures)
        }
    };
    print!("{text}");
    fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("bench: wrote {}", out.display());
    Ok(())
}

fn write_random(path: &Path, bytes: u64) -> Result<()> {
    let mut src = fs::File::open("/dev/urandom").context("open /dev/urandom")?.take(bytes);
    let mut dst = fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    let n = std::io::copy(&mut src, &mut dst).with_context(|| format!("write {}", path.display()))?;
    ensure!(n == bytes, "/dev/urandom gave {n} of {bytes} bytes");
    Ok(())
}

fn header() -> Result<String> {
    let date = manifests::time::format_rfc3339(manifests::time::now_unix());
    let nproc = String::from_utf8(Command::new("nproc").output().context("run nproc")?.stdout)?;
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim()))
        .unwrap_or("unknown");
    // The machine is shared: its load when the run began says how far absolute figures can be trusted.
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("unknown");
    Ok(format!(
        "Generated by {REPRODUCE} on {date} (UTC), nproc {}, CPU: {cpu}, load average {load} at the start.",
        nproc.trim()
    ))
}

/// The command that reproduces a row: the whole bench, or only its group.
fn reproduce(group: Option<&str>) -> String {
    group.map_or(REPRODUCE.to_string(), |g| format!("`cargo xtask bench --only {g}`"))
}

fn row(f: &Figure, group: Option<&str>) -> String {
    let ratio = f.ratio.map_or("n/a".to_string(), |r| format!("{r:.2}"));
    let met = if f.met { "yes" } else { "**no**" };
    format!("| {} | {} | {} | {ratio} | {} | {met} | {} |\n", f.name, f.value, f.reference, f.goal, reproduce(group))
}

fn section(f: &Figure) -> String {
    let mut s = format!("\n## {}\n\n", f.name);
    for n in &f.notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}

const TABLE_HEAD: &str =
    "| Figure | Value | Reference | Ratio | Goal | Goal met | Reproduce |\n|---|---|---|---|---|---|---|\n";

/// The whole file; each row names `--only GROUP`, the least that reproduces it.
fn render(header: &str, figures: &[(&str, Figure)]) -> String {
    let mut s = format!("{header}\n\n# Benchmarks\n\n{TABLE_HEAD}");
    for (g, f) in figures {
        s.push_str(&row(f, Some(g)));
    }
    for (_, f) in figures {
        s.push_str(&section(f));
    }
    s
}

/// BENCHMARKS.md with the rows of `groups` replaced by `figures` (matched by name; new ones
/// appended) and the other rows kept. A kept row that says it is reproduced by `--only G` for a
/// regenerated G, but was not produced again, is dropped: its figure no longer exists. The header
/// gets one line per regenerated group, so every row's date is known.
fn merge(old: &str, header: &str, groups: &[&str], figures: &[(&str, Figure)]) -> String {
    let (head, body) = old.split_once("\n# Benchmarks\n").unwrap_or(("", old));
    // (figure name, its table row) and (figure name, its section's notes), in file order.
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut sections: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in body.lines() {
        if let Some(name) = line.strip_prefix("## ") {
            sections.extend(current.take());
            current = Some((name.trim().to_string(), String::new()));
        } else if let Some((_, text)) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        } else if line.starts_with("| ") && !line.starts_with("| Figure |") {
            let name = line[2..].split(" | ").next().unwrap_or("").trim().to_string();
            rows.push((name, format!("{line}\n")));
        }
    }
    sections.extend(current);
    for (_, text) in sections.iter_mut() {
        *text = text.trim().to_string();
    }
    let stale = |line: &str| groups.iter().any(|g| line.contains(&format!("--only {g}`")));
    for (g, f) in figures {
        let (r, sec) = (row(f, Some(g)), section(f));
        match rows.iter().position(|(n, _)| *n == f.name) {
            Some(i) => rows[i].1 = r,
            // A new figure goes after the last row of its group, so groups stay together.
            None => match rows.iter().rposition(|(_, line)| line.contains(&format!("--only {g}`"))) {
                Some(i) => rows.insert(i + 1, (f.name.clone(), r)),
                None => rows.push((f.name.clone(), r)),
            },
        }
        let sec_body = sec.split_once("\n\n").map_or(String::new(), |(_, b)| b.trim().to_string());
        if let Some(i) = sections.iter().position(|(n, _)| *n == f.name) {
            sections[i].1 = sec_body;
        } else {
            sections.push((f.name.clone(), sec_body));
        }
    }
    let produced = |name: &str| figures.iter().any(|(_, f)| f.name == name);
    let dropped: Vec<String> = rows.iter().filter(|(n, r)| stale(r) && !produced(n)).map(|(n, _)| n.clone()).collect();
    rows.retain(|(n, _)| !dropped.contains(n));
    sections.retain(|(n, _)| !dropped.contains(n));
    let mut lines: Vec<String> = head.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    for g in groups {
        let prefix = format!("Rows `--only {g}`:");
        lines.retain(|l| !l.starts_with(&prefix));
        let by = format!("regenerated by `cargo xtask bench --only {g}`");
        lines.push(format!("{prefix} {}", header.replacen(&format!("Generated by {REPRODUCE}"), &by, 1)));
    }
    let mut s = format!("{}\n\n# Benchmarks\n\n{TABLE_HEAD}", lines.join("\n\n"));
    for (_, r) in &rows {
        s.push_str(r);
    }
    // Sections follow the table's order; one without a row (hand-written) stays at the end.
    sections.sort_by_key(|(n, _)| rows.iter().position(|(r, _)| r == n).unwrap_or(usize::MAX));
    for (n, text) in &sections {
        s.push_str(&format!("\n## {n}\n\n{text}\n"));
    }
    s
}

/// The bootstrap as `cargo xtask dist` built it until musl: static glibc, rustup's toolchain, with
/// the release's own key so it can hand off to the same release.
fn glibc_bootstrap(root: &Path, s: &Served) -> Result<PathBuf> {
    // The bench's one throw-away key, which signed the served release: the reference must hand
    // off to the same bundle.
    let key = release::SigningKey::throwaway_in(&root.join("target/bench-keys"))?;
    let keys = key.public_b64();
    let version = s.spec.version.to_string();
    let env = crate::dist::BuildEnv {
        trusted_keys: &keys,
        version: &version,
        channel: &s.spec.channel,
        owner: &s.spec.owner,
        repo: &s.spec.repo,
    };
    let dir = root.join("target/bench-glibc").join(&version);
    Ok(crate::dist::build_glibc(root, &dir, &["vikunja-bootstrap"], &env)?.join("vikunja-bootstrap"))
}

fn file_b(bin: &Path) -> Result<String> {
    let out = Command::new("file").arg("-b").arg(bin).output().context("run file")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn bootstrap_size(root: &Path, s: &Served, glibc: &Path) -> Result<Figure> {
    let name = names::bootstrap(&s.spec.target);
    let bin = s.assets.join(&name);
    let size = fs::metadata(&bin).with_context(|| format!("stat {}", bin.display()))?.len();
    let desc = file_b(&bin)?;
    let is_static = desc.contains("statically linked") || desc.contains("static-pie linked");
    // `file` says "not stripped" for unstripped binaries, so match the whole word after a comma.
    let stripped = desc.split(", ").any(|w| w == "stripped");
    let mib = size as f64 / MIB;
    let g = fs::metadata(glibc).with_context(|| format!("stat {}", glibc.display()))?.len();
    let mut notes = vec![
        format!(
            "Asset `{name}` as produced by `cargo xtask dist`: {size} bytes ({mib:.2} MiB), musl with std built for \
             size (pinned toolchain and flags: README, `xtask/src/dist.rs`)."
        ),
        format!("`file -b`: {desc}"),
        format!(
            "Goal: at most {SIZE_GOAL_MIB:.2} MiB (stretch {SIZE_STRETCH_MIB:.2} MiB), statically linked and stripped \
             (static: {}, stripped: {}, stretch met: {}).",
            yes_no(is_static),
            yes_no(stripped),
            yes_no(mib <= SIZE_STRETCH_MIB)
        ),
        format!(
            "Reference, built in the same run with the same key: today's glibc build (rustup's rustc, \
             `+crt-static`, `--icf=all`, prebuilt std), `{}`: {g} bytes; `file -b`: {}.",
            glibc.display(),
            file_b(glibc)?
        ),
    ];
    let map = root.join("target/dist-musl").join(s.spec.version.to_string()).join("bootstrap.map");
    match crate::bench::size::parts(&map) {
        Ok(parts) if !parts.is_empty() => {
            let total: u64 = parts.iter().map(|(_, n)| n).sum();
            let list: Vec<String> = parts.iter().map(|(p, n)| format!("{p} {n}")).collect();
            notes.push(format!(
                "Parts, bytes of the sections in the file by origin, from the linker map (`bench::size`; {total} \
                 in all, the rest is ELF and section headers): {}.",
                list.join(", ")
            ));
        }
        Ok(_) => notes.push(format!("Parts: the linker map {} lists no sections.", map.display())),
        Err(e) => notes.push(format!("Parts: no linker map ({e:#}).")),
    }
    if let Some((r, p)) = rustup_binary().and_then(|p| Some((fs::metadata(&p).ok()?.len(), p))) {
        notes.push(format!("For scale: `{}` is {r} bytes.", p.display()));
    }
    Ok(Figure {
        name: "Bootstrap size (static musl, stripped)".into(),
        value: format!("{size} B ({mib:.2} MiB)"),
        reference: format!("glibc build {g} B ({:.2} MiB)", g as f64 / MIB),
        ratio: Some(size as f64 / g as f64),
        goal: format!("≤ {SIZE_GOAL_MIB:.1} MiB (stretch ≤ {SIZE_STRETCH_MIB:.2} MiB)"),
        met: mib <= SIZE_GOAL_MIB && is_static && stripped,
        notes,
    })
}

/// rustup installs its proxies (cargo, rustc, …) as symlinks to itself, so resolve to the real file.
fn rustup_binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/rustup"));
    let on_path = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("rustup")).find(|p| p.is_file()));
    home.filter(|p| p.is_file()).or(on_path).and_then(|p| fs::canonicalize(p).ok())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn start_to_handoff(s: &Served, glibc: &Path, runs: usize) -> Result<Figure> {
    let version = s.spec.version.to_string();
    let bundle = names::bundle(&version, &s.spec.target);
    let bundle_bytes = fs::metadata(s.assets.join(&bundle)).context("stat bundle")?.len();
    let url = format!("{}/{OWNER}/{REPO}/releases/download/v{version}/{bundle}", s.server.base_url());
    let bootstrap = s.assets.join(names::bootstrap(&s.spec.target));
    let work = vikunja_e2e::scratch_dir("bench-runs")?;
    let (mut ours, mut reference, mut old) = (Vec::new(), Vec::new(), Vec::new());
    // Interleaved so that drift in machine load hits all alike; run 0 is the warm-up.
    for i in 0..=runs {
        let o = time_bootstrap(s, &bootstrap, &work.join(format!("ours-{i}")))?;
        let r = time_reference(s, &url, &work.join(format!("ref-{i}")))?;
        let g = time_bootstrap(s, glibc, &work.join(format!("glibc-{i}")))?;
        let warm = if i == 0 { " (warm-up)" } else { "" };
        eprintln!("bench: run {i}{warm}: ours {} ref {} glibc {}", ms(o), ms(r), ms(g));
        if i > 0 {
            ours.push(o);
            reference.push(r);
            old.push(g);
        }
    }
    let (o, r, g) = (Stats::of(&mut ours), Stats::of(&mut reference), Stats::of(&mut old));
    let ratio = o.median.as_secs_f64() / r.median.as_secs_f64();
    Ok(Figure {
        name: "Start to hand-off, 10 MiB bundle, loopback HTTPS".into(),
        value: o.to_string(),
        reference: format!("`curl -o` + `sha256sum` + `tar xzf`: {r}"),
        ratio: Some(ratio),
        goal: format!("ratio ≤ {HANDOFF_GOAL_RATIO:.1}"),
        met: ratio <= HANDOFF_GOAL_RATIO,
        notes: vec![
            format!("Bundle `{bundle}`: {bundle_bytes} bytes (10 MiB of random bytes under lib/ plus the installer)."),
            format!(
                "{runs} timed runs of each, interleaved, after one warm-up run of each; wall time from spawn to exit."
            ),
            "Ours: `vikunja-bootstrap -- --version` with a clean environment and fresh TMPDIR and state directory: \
             fetches and verifies release.toml (following the `latest` redirect), downloads and checks the \
             bundle, unpacks it and runs `bin/vikunja-installer --version`."
                .into(),
            "Reference: `sh -c 'curl -fsS --cacert CA -o DIR/b.tar.gz URL && sha256sum DIR/b.tar.gz >/dev/null && \
             mkdir DIR/x && tar xzf DIR/b.tar.gz -C DIR/x'` with the pinned bundle URL and a fresh DIR."
                .into(),
            format!("Ratio of medians (ours / reference): {ratio:.2}."),
            format!(
                "The glibc build of the bootstrap (see the size figure), same runs, interleaved: {g}; ratio of \
                 medians musl / glibc: {:.2}.",
                o.median.as_secs_f64() / g.median.as_secs_f64()
            ),
        ],
    })
}

/// A fresh directory per run: the developer's environment, proxies and earlier state must not count.
fn clean_command(program: &Path, dir: &Path) -> Result<Command> {
    let tmp = dir.join("tmp");
    fs::create_dir_all(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null());
    Ok(c)
}

fn time_bootstrap(s: &Served, bootstrap: &Path, dir: &Path) -> Result<Duration> {
    let mut c = clean_command(bootstrap, dir)?;
    c.args(["--", "--version"]).envs(s.env(&dir.join("state")));
    let (elapsed, out) = timed(c)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.contains("vikunja-installer") {
        bail!(
            "bootstrap run failed ({}):\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(elapsed)
}

fn time_reference(s: &Served, url: &str, dir: &Path) -> Result<Duration> {
    let d = dir.to_string_lossy();
    let script = format!(
        "curl -fsS --cacert '{}' -o '{d}/b.tar.gz' '{url}' && sha256sum '{d}/b.tar.gz' >/dev/null && \
         mkdir '{d}/x' && tar xzf '{d}/b.tar.gz' -C '{d}/x'",
        s.ca.ca_pem.display()
    );
    let mut c = clean_command(Path::new("sh"), dir)?;
    c.args(["-c", &script]);
    let (elapsed, out) = timed(c)?;
    if !out.status.success() {
        bail!("reference run failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    Ok(elapsed)
}

/// Runs and times `c`; a failure is an error naming `what` with the command's output.
pub(crate) fn timed_ok(c: Command, what: &str) -> Result<(Duration, std::process::Output)> {
    let (d, out) = timed(c)?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((d, out))
}

pub(crate) fn timed(mut c: Command) -> Result<(Duration, std::process::Output)> {
    let start = Instant::now();
    let out = c.output().with_context(|| format!("run {:?}", c.get_program()))?;
    Ok((start.elapsed(), out))
}

pub(crate) struct Stats {
    pub median: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn of(v: &mut [Duration]) -> Stats {
        v.sort();
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2 };
        Stats { median, min: v[0], max: v[n - 1] }
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "median {} (min {}, max {})", ms(self.median), ms(self.min), ms(self.max))
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(name: &str, value: &str) -> Figure {
        Figure {
            name: name.into(),
            value: value.into(),
            reference: "ref".into(),
            ratio: Some(0.5),
            goal: "goal".into(),
            met: true,
            notes: vec![format!("note of {name} {value}")],
        }
    }

    #[test]
    fn only_replaces_its_groups_rows_and_keeps_the_others() {
        let old = render(
            "Generated by `cargo xtask bench` on then.",
            &[("size", fig("A", "old")), ("update", fig("B", "gone")), ("backup", fig("C", "kept"))],
        );
        let new = merge(&old, "Generated by `cargo xtask bench` on now.", &["update"], &[("update", fig("D", "new"))]);
        // B said it came from `--only update` and was not produced again: dropped with its notes.
        assert!(!new.contains("| B |") && !new.contains("## B") && !new.contains("note of B"), "{new}");
        assert!(new.contains("| C | kept |") && new.contains("- note of C kept"), "{new}");
        assert!(new.contains("| D | new |") && new.contains("## D\n\n- note of D new\n"), "{new}");
        assert!(new.starts_with("Generated by `cargo xtask bench` on then."), "{new}");
        assert!(new.contains("Rows `--only update`: regenerated by `cargo xtask bench --only update` on now."));
        // A row regenerated again replaces itself in place, and its date line is not repeated.
        let again = merge(
            &new,
            "Generated by `cargo xtask bench` on later.",
            &["update", "size"],
            &[("size", fig("A", "newer")), ("update", fig("D", "newer"))],
        );
        let rows: Vec<&str> = again.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| Figure")).collect();
        assert_eq!(rows.len(), 3, "{again}");
        // D took the place of B, the last row of its group, so groups stay together.
        assert!(rows[0].starts_with("| A | newer |") && rows[1].starts_with("| D | newer |"), "{again}");
        assert!(again.find("## D").unwrap() < again.find("## C").unwrap(), "{again}");
        assert_eq!(again.matches("Rows `--only update`").count(), 1, "{again}");
        assert!(again.contains("on later.") && !again.contains("on now."), "{again}");
        assert_eq!(again.matches("## ").count(), 3, "{again}");
    }
}
