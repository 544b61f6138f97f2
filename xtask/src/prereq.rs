//! System tools the tests, the demo and the benchmarks use. Missing ones are installed with apt-get
//! when we are root on Debian (CI, a fresh machine); otherwise the exact command is printed.

use std::process::Command;

use anyhow::{bail, Context, Result};

/// (command, Debian package)
pub const TEST_TOOLS: &[(&str, &str)] = &[
    ("nginx", "nginx"),
    ("openssl", "openssl"),
    ("curl", "curl"),
    ("wget", "wget"),
    ("minisign", "minisign"),
    ("shellcheck", "shellcheck"),
    ("dash", "dash"),
    ("file", "file"),
    ("bash", "bash"),
    ("zip", "zip"),
    ("unzip", "unzip"),
    ("systemd-analyze", "systemd"),
    ("useradd", "passwd"),
    ("initdb", "postgresql"),
    // Metrics (issue 17): promtool checks the text format, a real Prometheus scrapes it through
    // node_exporter's textfile collector.
    ("promtool", "prometheus"),
    ("prometheus", "prometheus"),
    ("prometheus-node-exporter", "prometheus-node-exporter"),
    // The Proxmox host tests: LXC containers behind the pct/pveam doubles, image from debootstrap.
    ("lxc-start", "lxc"),
    ("debootstrap", "debootstrap"),
    ("rsync", "rsync"),
    ("debian-distro-info", "distro-info"),
    // ACME (issue 16): Let's Encrypt's test CA and its DNS stand-in, both in the one package.
    ("pebble", "pebble"),
    ("pebble-challtestsrv", "pebble"),
    // The MCP tests: the installer makes a venv with Debian's python3 (its default mcp_python) and
    // the test fills target/mcp-wheels with `python3 -m pip download`. Neither has a command.
    ("/usr/share/doc/python3-venv/copyright", "python3-venv"),
    ("/usr/lib/python3/dist-packages/pip/__init__.py", "python3-pip"),
];

pub const DEMO_TOOLS: &[(&str, &str)] =
    &[("nginx", "nginx"), ("openssl", "openssl"), ("curl", "curl"), ("file", "file")];

pub const BENCH_TOOLS: &[(&str, &str)] = &[
    ("nginx", "nginx"),
    ("openssl", "openssl"),
    ("curl", "curl"),
    ("wget", "wget"),
    ("file", "file"),
    ("tar", "tar"),
    ("sha256sum", "coreutils"),
    ("unzip", "unzip"),
    ("time", "time"),
    // The backup rows' references: what an admin would reach for instead (vzdump uses zstd).
    ("pigz", "pigz"),
    ("zstd", "zstd"),
];

/// `cmd` on PATH (or in /usr/sbin, /sbin); an absolute path must exist as it is.
pub fn have(cmd: &str) -> bool {
    if cmd.starts_with('/') {
        return std::path::Path::new(cmd).is_file();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).chain(["/usr/sbin".into(), "/sbin".into()]).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

/// PostgreSQL's server binaries live outside PATH, in /usr/lib/postgresql/<major>/bin.
pub fn have_postgres_server() -> bool {
    std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.path().join("bin/initdb").is_file())
}

pub fn ensure(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(c, _)| if *c == "initdb" { !have_postgres_server() } else { !have(c) })
        .map(|(_, p)| *p)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let cmd = format!("apt-get update && apt-get install -y {}", missing.join(" "));
    if !(is_root() && have("apt-get")) {
        bail!("missing system packages: {}; install them with: sudo sh -c '{cmd}'", missing.join(", "));
    }
    eprintln!("xtask: installing missing system packages: {cmd}");
    let ok = Command::new("sh")
        .args(["-c", &cmd])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("run apt-get")?
        .success();
    if !ok {
        bail!("`{cmd}` failed");
    }
    Ok(())
}

/// Why LXC containers cannot be run here (the host figures, `demo --containers`), if they cannot.
pub fn lxc_unavailable() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        return Some("not root: LXC containers need root".into());
    }
    if !have("lxc-start") || !have("debootstrap") {
        return Some("LXC is not installed: apt-get install -y lxc debootstrap".into());
    }
    None
}
