//! The first run as an admin meets it, on a real pseudo-terminal (util-linux `script`): the
//! installer's stdin is a pipe, as under `curl … | sh`, and it must ask on the terminal. The
//! Proxmox tools are the test doubles (tests/pve-doubles); these tests stop before a container
//! would be built, so they need no LXC (host_e2e builds containers). Every "nothing changed" is
//! checked on the doubles' command log (queries only) and on the host root (no files).
//!
//! Needs root (create checks it) and `script`; without them the tests fail under CI=true and are
//! skipped elsewhere.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "pty/mod.rs"]
mod pty;
use pty::Pty;

/// `true | vikunja-installer ARGS` on its own pseudo-terminal: what is typed goes to the terminal,
/// never to the installer's stdin (an empty pipe).
fn on_pty(h: &Host, args: &str, env: &[(&str, &str)]) -> Pty {
    Pty::start(&format!("true | {} {args}", env!("CARGO_BIN_EXE_vikunja-installer")), |c| {
        h.env(c);
        c.envs(env.iter().copied());
    })
}

fn skip() -> bool {
    use std::os::unix::fs::MetadataExt;
    let why = if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        "not root (create checks for root)"
    } else if Command::new("script").arg("--version").output().is_err() {
        "no `script` (util-linux)"
    } else {
        return false;
    };
    vikunja_e2e::skip(&format!("the first-run tests: {why}"));
    true
}

fn doubles() -> PathBuf {
    vikunja_e2e::workspace_root().join("tests/pve-doubles")
}

/// A fake node: the doubles' state, a host root for the registry and the installed installer.
struct Host {
    dir: vikunja_e2e::TestDir,
}

impl Host {
    fn new(name: &str) -> Host {
        let dir = vikunja_e2e::TestDir::new(name).unwrap();
        std::fs::create_dir_all(dir.join("root")).unwrap();
        Host { dir }
    }
    fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    fn env(&self, c: &mut Command) {
        c.env("PATH", format!("{}:{}", doubles().display(), std::env::var("PATH").unwrap_or_default()))
            .env("PVE_DOUBLE_DIR", self.dir.join("pve"))
            .env("VIKUNJA_STATE_DIR", self.dir.join("state"))
            .env("TMPDIR", &self.dir)
            .env("NO_COLOR", "1")
            .env_remove("VIKUNJA_YES");
    }
    /// The logged commands that change something (everything but the documented queries).
    fn changes(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("pve/commands.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\x1f').collect::<Vec<_>>())
            .filter(|c| {
                !matches!(
                    (c[0], c.get(1).copied()),
                    ("pveversion", _) | ("pvesm", _) | ("pvesh", _) | ("pveam", Some("list" | "available"))
                )
            })
            .map(|c| c.join(" "))
            .collect()
    }
    /// Nothing on the node, nothing under the host root, nothing in the registry.
    fn assert_untouched(&self) {
        assert_eq!(self.changes(), Vec::<String>::new(), "a command changed the node");
        let mut files = Vec::new();
        walk(&self.root(), &mut files);
        walk(&self.dir.join("state"), &mut files);
        assert!(files.is_empty(), "files were written: {files:?}");
    }
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vikunja-installer"));
        c.args(args);
        self.env(&mut c);
        c.envs(env.iter().copied()).stdin(Stdio::null());
        let o = c.output().unwrap();
        eprintln!("$ vikunja-installer {} ({:?})\n{}", args.join(" "), o.status, text(&o));
        o
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            walk(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn default_settings_on_the_terminal_show_what_is_used_and_no_at_the_confirmation_changes_nothing() {
    if skip() {
        return;
    }
    let h = Host::new("firstrun-default");
    // No command at all, as the README's one-liner runs it on a Proxmox host.
    let mut t = on_pty(&h, "", &[]);
    t.answer("Settings: 1) Default  2) Advanced [1]: ", "");
    t.expect("The container and Vikunja will be set up with:");
    t.expect("vikunja.local");
    t.expect("the next free one (100 now)");
    t.expect("Bridge                     vmbr0");
    t.expect("Template                   debian (the newest offered for amd64 after pveam update)");
    t.expect("Open registration          yes");
    t.answer("Save these settings, to repeat this install with --config?", "");
    t.answer("Create the container and install Vikunja now? (Y/n)", "n");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(130), "{screen}");
    assert!(screen.contains("cancelled at the confirmation: nothing was changed"), "{screen}");
    h.assert_untouched();
}

#[test]
fn ctrl_c_or_ctrl_d_at_a_question_leaves_nothing_behind() {
    if skip() {
        return;
    }
    let h = Host::new("firstrun-ctrlc");
    let root = h.root().display().to_string();
    let mut t = on_pty(&h, &format!("create --root {root}"), &[]);
    t.answer("Settings: 1) Default  2) Advanced [1]: ", "2");
    t.answer("Instance name [main]: ", "team");
    t.expect("Domain (the address users type) [vikunja.local]: ");
    t.send("\x03");
    let (code, screen) = t.finish();
    assert_ne!(code, Some(0), "{screen}");
    h.assert_untouched();

    let mut t = on_pty(&h, &format!("create --root {root}"), &[]);
    t.answer("Settings: 1) Default  2) Advanced [1]: ", "2");
    t.expect("Instance name [main]: ");
    t.send("\x04");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(130), "{screen}");
    assert!(screen.contains("cancelled at the questions (input closed): nothing was changed"), "{screen}");
    h.assert_untouched();
}

#[test]
fn advanced_answers_typed_on_the_terminal_reach_the_plan_and_bad_ones_are_asked_again() {
    if skip() {
        return;
    }
    let h = Host::new("firstrun-advanced");
    let root = h.root().display().to_string();
    let bridges = [("PVE_DOUBLE_BRIDGES", "vmbr0 vmbr1")];
    let mut t = on_pty(&h, &format!("create --dry-run --root {root}"), &bridges);
    t.answer("Settings: 1) Default  2) Advanced [1]: ", "2");
    for (q, a) in [
        ("Instance name [main]: ", "team"),
        ("Domain (the address users type) [vikunja.local]: ", "tasks.example.org"),
        ("CT id (0 = the next free one, now 100) [0]: ", ""),
        ("Hostname [vikunja-team]: ", ""),
        ("Storage for the root disk (local, local-lvm) [local]: ", "local-lvm"),
        ("CPU cores [2]: ", "1"),
        ("Memory (MiB) [2048]: ", "lots"),
        ("a whole number", "3072"),
        ("Disk (GiB) [8]: ", ""),
        ("Bridge (vmbr0, vmbr1) [vmbr0]: ", "vmbr9"),
        ("choose one of vmbr0, vmbr1", "vmbr1"),
        ("IPv4: dhcp or address/prefix [dhcp]: ", "10.0.0.5/24"),
        ("IPv4 gateway []: ", "10.0.0.1"),
        ("VLAN tag (empty: none) []: ", ""),
        ("IPv6: empty, auto, dhcp or address/prefix []: ", ""),
        ("DNS server (empty: the host's) []: ", ""),
        ("SSH public key file for root (empty: none) []: ", ""),
        ("Tags (';' between them) [vikunja-pve;vikunja]: ", ""),
        ("Start on boot (yes/no) [yes]: ", ""),
        ("Template (debian = the newest Debian offered) [debian]: ", ""),
        ("Vikunja version [v2.5.0]: ", "v2.4.0"),
        ("Offline Vikunja zip (empty: download it) []: ", ""),
        ("Database: sqlite, postgres or mysql [sqlite]: ", ""),
        ("TLS certificate: self-signed, or a PEM file [self-signed]: ", ""),
        ("Open registration: anyone reaching the site may sign up (yes/no) [yes]: ", "no"),
    ] {
        t.answer(q, a);
    }
    t.expect("Memory");
    t.expect("3072");
    let (code, screen) = t.finish();
    assert_eq!(code, Some(0), "{screen}");
    assert!(screen.contains("Dry run: nothing was changed."), "{screen}");
    let plan = screen.lines().find(|l| l.contains("pct create 100 ")).unwrap_or_default();
    for part in ["--hostname vikunja-team", "--cores 1", "--memory 3072", "--rootfs local-lvm:8"] {
        assert!(plan.contains(part), "{part} not in {plan}");
    }
    assert!(plan.contains("name=eth0,bridge=vmbr1,ip=10.0.0.5/24,gw=10.0.0.1"), "{plan}");
    h.assert_untouched();
}

#[test]
fn without_any_terminal_create_needs_yes_or_a_config_and_variables_set_the_answers() {
    if skip() {
        return;
    }
    let h = Host::new("firstrun-unattended");
    let root = h.root().display().to_string();
    // No terminal: refused, nothing done, the way out named.
    let o = h.run(&["create", "--root", &root], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("no terminal to ask the questions on") && text(&o).contains("VIKUNJA_YES=1"),
        "{}",
        text(&o)
    );
    h.assert_untouched();
    // A bad variable is named, before anything happens.
    let o = h.run(
        &["create", "--root", &root],
        &[("VIKUNJA_YES", "1"), ("VIKUNJA_CT_MEMORY", "lots"), ("VIKUNJA_CT_BRIDGE", "vmbr7")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("VIKUNJA_CT_MEMORY") && text(&o).contains("VIKUNJA_CT_BRIDGE"), "{}", text(&o));
    h.assert_untouched();
    // Good ones reach the plan.
    let o = h.run(
        &["create", "--dry-run", "--root", &root],
        &[
            ("VIKUNJA_YES", "1"),
            ("VIKUNJA_CT_MEMORY", "3072"),
            ("VIKUNJA_CT_CORES", "3"),
            ("VIKUNJA_INSTANCE", "ops"),
            ("http_proxy", "http://proxy.lan:3128"),
        ],
    );
    // The host's proxy reaches apt-get in the container (pct exec passes no environment).
    let apt = text(&o).lines().find(|l| l.contains("apt-get install")).unwrap_or_default().to_string();
    assert!(apt.contains("--keep-env 0 -- env http_proxy=http://proxy.lan:3128 sh -c"), "{apt}");
    assert!(o.status.success());
    // pve-container before 5.0.9 has no --keep-env: the environment is cleared inside instead.
    let old = h.run(
        &["create", "--dry-run", "--root", &root],
        &[("VIKUNJA_YES", "1"), ("PVE_DOUBLE_PVE_CONTAINER", "5.0.8"), ("http_proxy", "http://proxy.lan:3128")],
    );
    assert!(old.status.success(), "{}", text(&old));
    let apt = text(&old).lines().find(|l| l.contains("apt-get install")).unwrap_or_default().to_string();
    assert!(
        apt.contains("pct exec 100 -- env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin env http_proxy=http://proxy.lan:3128 sh -c"),
        "{apt}"
    );
    assert!(!text(&old).contains("--keep-env"), "{}", text(&old));
    assert!(
        text(&o).contains("--memory 3072")
            && text(&o).contains("--cores 3 ")
            && text(&o).contains("--hostname vikunja-ops"),
        "{}",
        text(&o)
    );
    h.assert_untouched();
    // A bridge the node lacks is refused before the first change.
    let cfg = h.dir.join("bridge.toml");
    std::fs::write(&cfg, "[container]\nbridge = \"vmbr7\"\n").unwrap();
    let o = h.run(&["create", "--config", cfg.to_str().unwrap(), "--root", &root], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("container.bridge = \"vmbr7\": no such bridge on this node")
            && text(&o).contains("bridges: vmbr0"),
        "{}",
        text(&o)
    );
    h.assert_untouched();
}

#[test]
fn the_installer_installs_itself_on_the_host_before_the_first_container() {
    if skip() {
        return;
    }
    let h = Host::new("firstrun-self");
    let root = h.root().display().to_string();
    // A template the node cannot download: the run stops there, after the installer is installed.
    let o = h.run(
        &["create", "--root", &root],
        &[
            ("VIKUNJA_YES", "1"),
            ("VIKUNJA_CT_TEMPLATE", "debian-11"),
            ("VIKUNJA_CT_MEMORY", "512"),
            ("VIKUNJA_CT_DISK", "4"),
        ],
    );
    assert_eq!(o.status.code(), Some(6), "the download fails");
    assert!(text(&o).contains("Installed vikunja-installer"), "{}", text(&o));
    assert!(!h.changes().iter().any(|c| c.starts_with("pct create")), "{:?}", h.changes());
    let bin = h.root().join("usr/local/bin/vikunja-installer");
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(v.status.success(), "{}", text(&v));
    let mine = Command::new(env!("CARGO_BIN_EXE_vikunja-installer")).arg("--version").output().unwrap();
    assert_eq!(text(&v), text(&mine));
    let version = text(&v).split_whitespace().nth(1).unwrap().to_string();
    let receipt =
        std::fs::read_to_string(h.root().join(format!("opt/vikunja-pve/versions/{version}/receipt.toml"))).unwrap();
    assert!(receipt.contains(&format!("version = \"{version}\"")), "{receipt}");
    // The installed command manages instances; a typo says where the names are.
    let mut c = Command::new(&bin);
    c.args(["status", "--instance", "typo", "--root", &root]);
    h.env(&mut c);
    let o = c.stdin(Stdio::null()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("no instance named typo; `vikunja-installer list` shows them"), "{}", text(&o));
    // A second run finds it installed and leaves it.
    let o = h.run(
        &["create", "--root", &root],
        &[
            ("VIKUNJA_YES", "1"),
            ("VIKUNJA_CT_TEMPLATE", "debian-11"),
            ("VIKUNJA_CT_MEMORY", "512"),
            ("VIKUNJA_CT_DISK", "4"),
        ],
    );
    assert!(!text(&o).contains("Installed vikunja-installer"), "{}", text(&o));
}

#[test]
fn off_proxmox_no_command_explains_help_is_h_and_a_closed_stdout_ends_quietly() {
    let bin = env!("CARGO_BIN_EXE_vikunja-installer");
    let o = Command::new(bin).env("PATH", "/usr/bin:/bin").stdin(Stdio::null()).output().unwrap();
    if Path::new("/etc/pve").is_dir() {
        vikunja_e2e::skip("the off-Proxmox part: this machine has /etc/pve");
    } else {
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let t = text(&o);
        assert!(
            t.contains("not a Proxmox VE host")
                && t.contains("vikunja-installer install")
                && t.contains("vikunja-installer create"),
            "{t}"
        );
    }
    let h = Command::new(bin).arg("-h").output().unwrap();
    let help = Command::new(bin).arg("--help").output().unwrap();
    assert_eq!((h.status.code(), &h.stdout), (Some(0), &help.stdout));
    assert!(String::from_utf8_lossy(&h.stdout).contains("create"));

    // The reader is gone before the installer writes: SIGPIPE ends it, no panic, no backtrace.
    let mut c = Command::new("sh")
        .args(["-c", &format!("sleep 0.3; exec {bin} --help")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(c.stdout.take());
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let st = c.wait().unwrap();
    assert_eq!(st.signal(), Some(13), "ended by SIGPIPE, not {st:?}: {err}");
    assert!(err.is_empty(), "quietly: {err}");
}

/// The operator's script, rendered for a real install: clean under shellcheck, healthy when
/// `health` is, and failing on the database and on HTTPS when those fail, as `health` does.
#[test]
fn the_health_script_passes_shellcheck_and_judges_the_database_and_https_like_health() {
    use vikunja_e2e::sandbox::{DownloadSite, Sandbox};
    let site = DownloadSite::start(&vikunja_e2e::scratch_dir("firstrun-health-site").unwrap(), &["v2.5.0"]).unwrap();
    let sb = Sandbox::new("firstrun-health").unwrap();
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config("hc", "v2.5.0", &site.base(), "")).unwrap();
    let installer = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_vikunja-installer"))
            .args(args)
            .arg("--root")
            .arg(&sb.root)
            .env("SSL_CERT_FILE", &site.ca.ca_pem)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        eprintln!("$ vikunja-installer {} ({:?})\n{}", args.join(" "), o.status, text(&o));
        o
    };
    assert!(installer(&["install", "--init", "process", "--config", cfg.to_str().unwrap()]).status.success());
    // Inside a container (no Proxmox tools), a mistyped instance says which ones exist.
    let o = installer(&["status", "--instance", "typo"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("no instance named typo under")
            && text(&o).contains("use --instance hc, or leave --instance out"),
        "{}",
        text(&o)
    );
    let script = sb.instance_dir("hc").join("scripts/health-check.sh");
    match Command::new("shellcheck").arg(&script).output() {
        Ok(o) => assert!(o.status.success(), "shellcheck:\n{}", text(&o)),
        Err(_) => vikunja_e2e::skip("shellcheck: not installed (apt-get install -y shellcheck)"),
    }
    let run = || Command::new(&script).output().unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(0), "healthy, as `health` says: {}", text(&o));
    assert!(text(&o).contains("OK: All components healthy"));

    // HTTPS: the script reads https_port from deployment.toml; a port nginx does not serve fails.
    let settings = sb.instance_dir("hc").join("config/deployment.toml");
    let good = std::fs::read_to_string(&settings).unwrap();
    let https = format!("https_port = {}", sb.ports.https);
    assert!(good.contains(&https), "{good}");
    std::fs::write(&settings, good.replace(&https, "https_port = 9")).unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(10));
    assert!(text(&o).contains("Nginx HTTPS unhealthy (port 9"), "{}", text(&o));
    std::fs::write(&settings, &good).unwrap();

    // The database: a file that is no SQLite database fails both the script and `health`.
    let db = sb.instance_dir("hc").join("data/vikunja.db");
    let saved = std::fs::read(&db).unwrap();
    std::fs::write(&db, b"not a database at all").unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(10));
    assert!(text(&o).contains("Database unhealthy"), "{}", text(&o));
    let h = installer(&["health"]);
    assert_eq!(h.status.code(), Some(10), "health agrees");
    std::fs::write(&db, saved).unwrap();
    assert_eq!(run().status.code(), Some(0));
}
