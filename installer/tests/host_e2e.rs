//! The Proxmox host driver for real, with TEST DOUBLES of pct, pveam, pvesm, pvesh and pveversion
//! (tests/pve-doubles) backed by real LXC containers: systemd as PID 1, apt installing nginx,
//! the deployment engine running unchanged inside, Vikunja (the stand-in) answering over TLS.
//! The doubles log every command line they get; the tests check those against the contract
//! (shared/reference/proxmox-cli.md).
//!
//! Needs root and LXC (apt-get install lxc debootstrap). Without them the tests fail under CI=true
//! and are skipped elsewhere, saying why. The container image is built once (about a minute) into
//! target/pve-doubles/cache and reused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "pty/mod.rs"]
mod pty;

use vikunja_e2e::ca::TestCa;
use vikunja_e2e::nginx::ReleaseServer;

const V1: &str = "v2.4.0";
const V2: &str = "v2.5.0";
const RELEASE: &str = "0.6.0";
const OWNER: &str = "vikunja-pve";
const REPO: &str = "vikunja-pve";

fn doubles() -> PathBuf {
    vikunja_e2e::workspace_root().join("tests/pve-doubles")
}

/// None when the tests can run here; otherwise why not.
fn lxc_missing() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        return Some("not root (LXC containers need root)".into());
    }
    // lxc-usernsexec shifts the image for unprivileged CTs, as pve-container unpacks templates.
    for c in ["lxc-start", "lxc-create", "lxc-usernsexec", "debootstrap"] {
        if !["/usr/bin", "/usr/sbin", "/bin", "/sbin"].iter().any(|d| Path::new(d).join(c).exists()) {
            return Some(format!("{c} is missing: apt-get install -y lxc debootstrap"));
        }
    }
    None
}

fn skip_or_fail() -> bool {
    match lxc_missing() {
        None => false,
        Some(why) => {
            vikunja_e2e::skip(&format!("the Proxmox host tests need LXC: {why}"));
            true
        }
    }
}

/// A fake Proxmox node: the doubles' state, the host's root for the registry, and a Drop that
/// stops and removes every container it holds.
struct Node {
    dir: vikunja_e2e::TestDir,
    root: PathBuf,
    /// Which Proxmox VE the doubles pose as (PVE_DOUBLE_POSE, tests/pve-doubles/lib.sh).
    pose: Pose,
}

/// The newest PVE (9.2), or the oldest the installer supports with the floors of
/// shared/reference/proxmox-cli.md below it (8.1: pve-container 5.0.8, no `pct exec --keep-env`,
/// privileged by default, `pveam available` without the architecture column).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Pose {
    Newest,
    Oldest,
}

impl Node {
    fn new(name: &str) -> Node {
        Node::posing(name, Pose::Newest)
    }

    fn posing(name: &str, pose: Pose) -> Node {
        stop_dead_runs();
        let dir = vikunja_e2e::TestDir::new(name).unwrap();
        let root = dir.join("host-root");
        std::fs::create_dir_all(&root).unwrap();
        Node { dir, root, pose }
    }

    fn pve_dir(&self) -> PathBuf {
        self.dir.join("pve")
    }

    fn env(&self, c: &mut Command) {
        let path = format!("{}:{}", doubles().display(), std::env::var("PATH").unwrap_or_default());
        c.env("PATH", path)
            .env("PVE_DOUBLE_DIR", self.pve_dir())
            .env("PVE_DOUBLE_CACHE", vikunja_e2e::workspace_root().join("target/pve-doubles/cache"))
            .env("PVE_DOUBLE_POSE", if self.pose == Pose::Oldest { "old" } else { "new" })
            .env("NO_COLOR", "1")
            .env("TMPDIR", &self.dir)
            .stdin(Stdio::null());
    }

    fn tool(&self, args: &[&str]) -> Output {
        let mut c = Command::new(doubles().join(args[0]));
        c.args(&args[1..]);
        self.env(&mut c);
        c.output().unwrap()
    }

    /// The logged command lines, each split into its arguments.
    fn commands(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.pve_dir().join("commands.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\x1f').map(str::to_string).collect())
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        stop_containers(&self.pve_dir().join("lxc"));
    }
}

fn stop_containers(lxcpath: &Path) {
    for e in std::fs::read_dir(lxcpath).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let _ = Command::new("lxc-stop").arg("-P").arg(lxcpath).args(["-n", &n, "-k"]).output();
    }
}

/// Containers of runs that were killed (no Drop ran) would keep ports and memory.
fn stop_dead_runs() {
    let base = vikunja_e2e::workspace_root().join("target/e2e");
    for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.rsplitn(3, '-');
        let (_, Some(pid), Some(stem)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if stem.starts_with("host-") && !Path::new(&format!("/proc/{pid}")).exists() {
            stop_containers(&e.path().join("pve/lxc"));
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn show(what: &str, o: &Output) {
    eprintln!("$ {what} ({:?})\n{}", o.status, text(o));
}

/// A release built by `cargo xtask dist` (static binaries) with a key kept under target/, so a
/// second run reuses the build; served with the Vikunja stand-in zips by one HTTPS server.
struct Site {
    ca: TestCa,
    server: ReleaseServer,
    installer: PathBuf,
}

fn site(dir: &Path) -> Site {
    let root = vikunja_e2e::workspace_root();
    let out = root.join("target/host-e2e-dist/release");
    // Built once per test binary: the host tests run in parallel, and two `cargo xtask dist` into
    // the same directory at once remove each other's files.
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let o = Command::new(cargo)
            .current_dir(&root)
            .args(["xtask", "dist", "--out"])
            .arg(&out)
            .args(["--version", RELEASE])
            .env_remove("RUSTFLAGS")
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    });
    assert!(built.is_ok(), "cargo xtask dist failed:\n{}", built.as_ref().err().map(String::as_str).unwrap_or(""));
    let ca = TestCa::create(&dir.join("ca")).unwrap();
    let server = ReleaseServer::start(&dir.join("nginx"), &ca).unwrap();
    server.publish(OWNER, REPO, &format!("v{RELEASE}"), &out).unwrap();
    server.set_latest(&format!("v{RELEASE}")).unwrap();
    let zips = vikunja_e2e::sandbox::standin_zips(&[V1, V2]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for v in [V1, V2] {
        let d = server.www.join("vikunja").join(vikunja_e2e::sandbox::release_dir(v));
        std::fs::create_dir_all(&d).unwrap();
        let zip = format!("vikunja-{v}-linux-amd64-full.zip");
        std::fs::copy(zips.join(v).join(&zip), d.join(&zip)).unwrap();
        std::fs::set_permissions(d.join(&zip), std::fs::Permissions::from_mode(0o644)).unwrap();
        for p in [d.as_path(), d.parent().unwrap()] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let installer = root.join(format!("target/dist/{RELEASE}/x86_64-unknown-linux-gnu/release/vikunja-installer"));
    Site { ca, server, installer }
}

struct Inst {
    name: &'static str,
    domain: String,
    ports: vikunja_e2e::sandbox::Ports,
}

fn instance(node: &Node, s: &Site, name: &'static str, n: u8, storage: &str) -> (Inst, PathBuf) {
    let p = vikunja_e2e::sandbox::Sandbox::new(&format!("host-ports-{name}")).unwrap().ports;
    let domain = format!("{name}.vikunja.test");
    let cfg = vikunja_e2e::sandbox::container_config(
        name,
        &format!("version = \"{V1}\"\ndownload_base = \"{}/vikunja\"", s.server.base_url()),
        &format!("127.0.10.{n}/8"),
        &p,
        &format!("\n[container]\nstorage = \"{storage}\"\n"),
    );
    let path = node.dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).unwrap();
    (Inst { name, domain, ports: p }, path)
}

fn one_liner_line(s: &Site, args: &str) -> String {
    format!(
        "curl -fsSL {}/{OWNER}/{REPO}/releases/latest/download/install.sh | sh -s -- -- {args}",
        s.server.base_url()
    )
}

/// What the one-liner needs to reach the test release site, and the doubles.
fn one_liner_env(node: &Node, s: &Site, c: &mut Command) {
    node.env(c);
    let ca = s.ca.ca_pem.to_string_lossy().into_owned();
    c.env("CURL_CA_BUNDLE", &ca)
        .env("SSL_CERT_FILE", &ca)
        .env("VIKUNJA_INSTALLER_BASE_URL", s.server.base_url())
        .env("VIKUNJA_STATE_DIR", node.dir.join("bootstrap-state"));
}

/// The README's one-liner on the "host": install.sh, bootstrap, then the installer's `create`.
fn one_liner(node: &Node, s: &Site, args: &str, env: &[(&str, &str)]) -> Output {
    let line = one_liner_line(s, args);
    let mut c = Command::new("bash");
    c.args(["-o", "pipefail", "-c", &line]);
    one_liner_env(node, s, &mut c);
    c.envs(env.iter().copied());
    let o = c.output().unwrap();
    show(&line, &o);
    o
}

fn host(node: &Node, s: &Site, args: &[&str]) -> Output {
    host_env(node, s, args, &[])
}

fn host_env(node: &Node, s: &Site, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(&s.installer);
    c.args(args).arg("--root").arg(&node.root);
    node.env(&mut c);
    c.env("SSL_CERT_FILE", &s.ca.ca_pem).envs(env.iter().copied());
    let o = c.output().unwrap();
    show(&format!("vikunja-installer {}", args.join(" ")), &o);
    o
}

fn cert(node: &Node, ctid: &str, i: &Inst) -> PathBuf {
    let dest = node.dir.join(format!("{}-cert.pem", i.name));
    let o = node.tool(&[
        "pct",
        "pull",
        ctid,
        &format!("/opt/vikunja-{}/config/ssl/cert.pem", i.name),
        dest.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    dest
}

fn version_over_tls(node: &Node, ctid: &str, i: &Inst) -> String {
    let c = cert(node, ctid, i);
    let t = vikunja_e2e::load::Target::new(&i.domain, i.ports.https, c);
    let (code, body) = t.request("GET", "/api/v1/info", None);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["version"].as_str().unwrap().to_string()
}

fn list(node: &Node, s: &Site) -> Vec<serde_json::Value> {
    let o = host(node, s, &["list", "--json"]);
    assert!(o.status.success());
    let v = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();
    assert_eq!(v["schema"], 1, "{v}");
    v["instances"].as_array().unwrap().clone()
}

/// Checks every logged command line against the contract.
fn assert_contract(cmds: &[Vec<String>]) {
    let tools = ["pct", "pveam", "pvesm", "pvesh", "pveversion"];
    for c in cmds {
        let line = c.join(" ");
        assert!(tools.contains(&c[0].as_str()), "unknown tool: {line}");
        match (c[0].as_str(), c.get(1).map(String::as_str)) {
            ("pct", Some("create")) => {
                assert!(c[2].parse::<u32>().is_ok_and(|id| id >= 100), "{line}");
                assert!(c[3].contains(":vztmpl/"), "{line}");
                let w: Vec<&str> = c.iter().map(String::as_str).collect();
                assert!(w.windows(2).any(|p| p == ["--unprivileged", "1"]), "not unprivileged: {line}");
                assert!(w.windows(2).any(|p| p == ["--features", "nesting=1"]), "no nesting: {line}");
                assert!(!w.contains(&"--password"), "a password on the command line: {line}");
                assert!(
                    w.windows(2).any(|p| p[0] == "--description" && p[1].contains("managed by vikunja-pve")),
                    "{line}"
                );
                assert!(w.windows(2).any(|p| p[0] == "--rootfs" && p[1].contains(':')), "{line}");
            }
            ("pct", Some("exec")) => {
                // --keep-env 0 where pct has it (pve-container >= 5.0.9), `env -i` inside where not.
                let clean = c[3..6] == ["--keep-env", "0", "--"]
                    || (c[3] == "--" && c[4..6] == ["env", "-i"] && c[6].starts_with("PATH="));
                assert!(clean, "exec without a clean environment: {line}");
            }
            ("pct", Some("push")) => {
                assert!(c.len() >= 5 && c[4].starts_with('/'), "{line}");
                assert_eq!(&c[5..7], ["--perms".to_string(), c[6].clone()], "{line}");
                assert!(c[6].len() == 4 && c[6].starts_with('0'), "perms in octal: {line}");
            }
            ("pct", Some(sub)) => {
                let known =
                    ["start", "stop", "status", "snapshot", "listsnapshot", "destroy", "config", "pull", "list"];
                assert!(known.contains(&sub), "unexpected pct {sub}: {line}");
            }
            ("pveam", Some(sub)) => assert!(["list", "update", "available", "download"].contains(&sub), "{line}"),
            ("pvesm", Some(sub)) => assert_eq!(sub, "status", "{line}"),
            ("pvesh", Some(sub)) => {
                let paths = ["/cluster/nextid", "/nodes/localhost/network", "/cluster/status", "/cluster/resources"];
                assert!(sub == "get" && paths.contains(&c[2].as_str()), "{line}")
            }
            ("pveversion", None) => {}
            ("pveversion", Some("-v")) => assert_eq!(c.len(), 2, "{line}"),
            _ => panic!("unexpected: {line}"),
        }
    }
    // `pveam download` is confirmed with `pveam list` (its task may fail with exit 0).
    for (i, c) in cmds.iter().enumerate() {
        if c[0] == "pveam" && c[1] == "download" {
            assert!(
                cmds[i + 1..].iter().any(|n| n[0] == "pveam" && n[1] == "list" && n[2] == c[2]),
                "download not confirmed"
            );
        }
    }
}

#[test]
fn one_liner_creates_containers_that_serve_vikunja_then_update_rollback_backup_restore_destroy() {
    if skip_or_fail() {
        return;
    }
    let node = Node::new("host-e2e");
    let s = site(&node.dir);
    let (one, cfg1) = instance(&node, &s, "one", 11, "local-lvm");
    let (two, cfg2) = instance(&node, &s, "two", 12, "local");

    // Dry run first: queries only, nothing created.
    let o = one_liner(
        &node,
        &s,
        &format!("create --config {} --yes --dry-run --root {}", cfg1.display(), node.root.display()),
        &[],
    );
    assert!(o.status.success());
    assert!(text(&o).contains("pveam download local") && text(&o).contains("pct create 100 "), "{}", text(&o));
    let changes: Vec<String> = node
        .commands()
        .iter()
        .filter(|c| {
            !matches!(
                (c[0].as_str(), c.get(1).map(String::as_str)),
                ("pveversion", _) | ("pvesm", _) | ("pvesh", _) | ("pveam", Some("list" | "available"))
            )
        })
        .map(|c| c.join(" "))
        .collect();
    assert!(changes.is_empty(), "the dry run changed something: {changes:?}");

    // The first create: another admin takes CT 100 meanwhile, so the driver moves on to 101.
    let t0 = std::time::Instant::now();
    let o = one_liner(
        &node,
        &s,
        &format!("create --config {} --yes --root {}", cfg1.display(), node.root.display()),
        &[("PVE_DOUBLE_RACE_VMID", "100")],
    );
    assert!(o.status.success(), "create failed");
    eprintln!("first instance healthy after {:.1} s", t0.elapsed().as_secs_f64());
    assert!(text(&o).contains("CT 100 was taken meanwhile; trying CT 101"), "{}", text(&o));
    assert_eq!(version_over_tls(&node, "101", &one), V1);
    let conf = text(&node.tool(&["pct", "config", "101"]));
    assert!(conf.contains("unprivileged: 1") && conf.contains("features: nesting=1"), "{conf}");
    assert!(conf.contains("managed by vikunja-pve"), "{conf}");
    let o = node.tool(&[
        "pct",
        "exec",
        "101",
        "--keep-env",
        "0",
        "--",
        "sh",
        "-c",
        "ps -p 1 -o comm=; systemctl is-active vikunja-one-backend-blue nginx; id vikunja",
    ]);
    let t = text(&o);
    assert!(t.starts_with("systemd") && t.matches("active").count() >= 2 && t.contains("uid="), "{t}");
    assert_sandboxed_unprivileged(&node, "101", "vikunja-one-backend-blue");

    // A second instance in its own container, id, address, domain and ports; unattended with no
    // terminal, by environment variables passed through install.sh and the bootstrap.
    let o = one_liner(
        &node,
        &s,
        &format!("create --config {} --root {}", cfg2.display(), node.root.display()),
        &[("VIKUNJA_YES", "1"), ("VIKUNJA_CT_CORES", "1"), ("VIKUNJA_CT_HOSTNAME", "tasks-two")],
    );
    assert!(o.status.success(), "second create failed");
    assert_eq!(version_over_tls(&node, "102", &two), V1);
    let conf = text(&node.tool(&["pct", "config", "102"]));
    assert!(conf.contains("cores: 1") && conf.contains("hostname: tasks-two"), "{conf}");
    let l = list(&node, &s);
    assert_eq!(l.len(), 2);
    assert_eq!((l[0]["ctid"].as_u64(), l[1]["ctid"].as_u64()), (Some(101), Some(102)));
    assert_eq!((l[0]["number"].as_u64(), l[1]["number"].as_u64()), (Some(1), Some(2)));
    assert_ne!(l[0]["address"], l[1]["address"]);
    assert_ne!(l[0]["domain"], l[1]["domain"]);
    assert_eq!(l[1]["container_status"], "running");
    // A third with a name, domain or address in use is refused before anything happens.
    let o = host(&node, &s, &["create", "--config", cfg2.to_str().unwrap(), "--yes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("instance.name") && text(&o).contains("network.domain"), "{}", text(&o));

    // Update instance one under load: a snapshot first (local-lvm can), then blue-green inside.
    let c1 = cert(&node, "101", &one);
    let target = vikunja_e2e::load::Target::new(&one.domain, one.ports.https, c1);
    let load = vikunja_e2e::load::Load::start(&target, 2, 1);
    load.warm_up(10);
    let o = host(&node, &s, &["update", "--instance", "one", "--version", V2]);
    let r = load.stop();
    assert!(o.status.success(), "update failed");
    assert!(
        text(&o).contains("Snapshot vikunja-pre-update-") && text(&o).contains("traffic switched to green"),
        "{}",
        text(&o)
    );
    assert!(r.reads_failed.is_empty(), "reads failed during the update: {:?}", r.reads_failed);
    let titles = target.task_titles().unwrap();
    assert!(r.writes_acked.iter().all(|w| titles.contains(w)), "acknowledged writes lost");
    assert_eq!(version_over_tls(&node, "101", &one), V2);
    let snaps = text(&node.tool(&["pct", "listsnapshot", "101"]));
    assert!(snaps.contains("vikunja-pre-update-"), "{snaps}");
    // Instance two lives on dir storage: no snapshot, and the update says so and carries on.
    let o = host(&node, &s, &["update", "--instance", "two", "--version", V2]);
    assert!(o.status.success());
    assert!(text(&o).contains("cannot take snapshots"), "{}", text(&o));

    // Rollback and status, routed into the container.
    let o = host(&node, &s, &["rollback", "--instance", "one", "--yes"]);
    assert!(o.status.success(), "rollback failed");
    assert_eq!(version_over_tls(&node, "101", &one), V1);
    let o = host(&node, &s, &["status", "--instance", "one", "--json"]);
    assert!(o.status.success());
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (st["version"].as_str(), st["healthy"].as_bool(), st["init"].as_str()),
        (Some(V1), Some(true), Some("systemd"))
    );

    // `list` asks each container: version, colour, health and URL, in the shared field names.
    let l = list(&node, &s);
    let fields = |j: &serde_json::Value| {
        (j["instance"].as_str().map(str::to_string), j["version"].as_str().map(str::to_string), j["healthy"].as_bool())
    };
    assert_eq!(fields(&l[0]), (Some("one".into()), Some(V1.into()), Some(true)), "{l:?}");
    assert_eq!(fields(&l[1]), (Some("two".into()), Some(V2.into()), Some(true)), "{l:?}");
    assert!(["blue", "green"].contains(&l[0]["colour"].as_str().unwrap_or("")), "{l:?}");
    assert_eq!(l[0]["url"], format!("https://{}:{}/", one.domain, one.ports.https));
    let o = host(&node, &s, &["list"]);
    assert!(text(&o).contains(V1) && text(&o).contains("healthy") && text(&o).contains(&one.domain), "{}", text(&o));

    // pve-container before 5.0.9: its pct has no --keep-env (the double refuses it, as pct does),
    // and routed commands still run, with the environment cleared inside instead.
    let before = node.commands().len();
    let o = host_env(&node, &s, &["status", "--instance", "one"], &[("PVE_DOUBLE_PVE_CONTAINER", "5.0.8")]);
    assert!(o.status.success(), "{}", text(&o));
    let execs: Vec<Vec<String>> =
        node.commands()[before..].iter().filter(|c| c.get(1).is_some_and(|s| s == "exec")).cloned().collect();
    assert!(!execs.is_empty() && execs.iter().all(|c| c[3..6] == ["--", "env", "-i"]), "{execs:?}");

    // update --all: a version below the floor is refused at the first instance, before any
    // snapshot, and the rest is named as not attempted.
    let snapshots = |id: &str| text(&node.tool(&["pct", "listsnapshot", id])).matches("vikunja-pre-update-").count();
    let snaps_before = snapshots("101");
    let o = host(&node, &s, &["update", "--all", "--version", "v2.2.0"]);
    // The first instance's own code: the refusal is a usage error (2), as with --instance one.
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("no service.secret") && t.contains("every switch would log everyone out"), "{t}");
    assert!(t.contains("update --all stopped at instance one (CT 101)") && t.contains("not attempted: two"), "{t}");
    assert_eq!(snapshots("101"), snaps_before, "a refused version took a snapshot");
    // Then for real: one is updated (blue-green, health-gated), two is already there.
    let o = host(&node, &s, &["update", "--all", "--version", V2]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("every instance updated and healthy (one, two)"), "{}", text(&o));
    assert!(text(&o).contains("1 of 2: instance one") && text(&o).contains("2 of 2: instance two"), "{}", text(&o));
    assert_eq!(version_over_tls(&node, "101", &one), V2);
    // An installer in the container older than the host's is brought to the host's version the
    // next time the host manages the instance.
    let fake = "mkdir -p /opt/vikunja-pve/versions/0.0.1/bin && \
                printf '#!/bin/sh\\necho vikunja-installer 0.0.1 stable\\n' > /opt/vikunja-pve/versions/0.0.1/bin/vikunja-installer && \
                chmod 755 /opt/vikunja-pve/versions/0.0.1/bin/vikunja-installer && ln -sfn versions/0.0.1 /opt/vikunja-pve/current";
    let o = node.tool(&["pct", "exec", "102", "--keep-env", "0", "--", "sh", "-c", fake]);
    assert!(o.status.success(), "{}", text(&o));
    let inside = |node: &Node| {
        text(&node.tool(&[
            "pct",
            "exec",
            "102",
            "--keep-env",
            "0",
            "--",
            "/usr/local/bin/vikunja-installer",
            "--version",
        ]))
    };
    assert!(inside(&node).contains("0.0.1"), "{}", inside(&node));
    let o = host(&node, &s, &["health", "--instance", "two"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is 0.0.1; bringing it to the host's"), "{}", text(&o));
    let host_version = text(&Command::new(&s.installer).arg("--version").output().unwrap())
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    assert!(inside(&node).contains(&format!("vikunja-installer {host_version} ")), "{}", inside(&node));

    // Backup (copied out to the host), then a restore from that host copy.
    let (code, _) = target.create_task("before-backup");
    assert!((200..300).contains(&code));
    // Encrypted, with the passphrase in a file on the host: it is pushed in for the command only.
    let pass = node.dir.join("passphrase");
    std::fs::write(&pass, "host-side passphrase of several words\n").unwrap();
    let o = host(&node, &s, &["backup", "--instance", "one", "--encrypt", "--passphrase-file", pass.to_str().unwrap()]);
    assert!(o.status.success(), "backup failed");
    let kept = node.root.join("var/lib/vikunja-pve/backups/one");
    let file = std::fs::read_dir(&kept)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vikunja-backup-")))
        .expect("backup copied out");
    let (code, _) = target.create_task("after-backup");
    assert!((200..300).contains(&code));
    assert!(file.to_string_lossy().ends_with(".age"), "{file:?}");
    let o = host(
        &node,
        &s,
        &["restore", file.to_str().unwrap(), "--instance", "one", "--yes", "--passphrase-file", pass.to_str().unwrap()],
    );
    assert!(o.status.success(), "restore failed");
    let titles = target.task_titles().unwrap();
    assert!(
        titles.contains(&"before-backup".to_string()) && !titles.contains(&"after-backup".to_string()),
        "{titles:?}"
    );

    // Destroy: refused without confirmation, then done with --yes; backups stay on the host.
    let o = host(&node, &s, &["destroy", "--instance", "two"]);
    assert_eq!(o.status.code(), Some(2));
    let o = host(&node, &s, &["destroy", "--instance", "two", "--dry-run"]);
    assert!(o.status.success() && text(&o).contains("pct destroy 102 --purge"));
    for (n, id) in [("two", "102"), ("one", "101")] {
        let o = host(&node, &s, &["destroy", "--instance", n, "--yes"]);
        assert!(o.status.success(), "destroy {n} failed");
        assert_eq!(node.tool(&["pct", "status", id]).status.code(), Some(255));
        let kept = node.root.join(format!("var/lib/vikunja-pve/backups/{n}"));
        assert!(std::fs::read_dir(&kept).unwrap().count() >= 1, "no backup kept for {n}");
    }
    assert!(list(&node, &s).is_empty());
    let pct_list = node.tool(&["pct", "list"]);
    assert!(pct_list.stdout.is_empty() || String::from_utf8_lossy(&pct_list.stdout).contains("someone-else"));

    assert_contract(&node.commands());
}

/// The one-liner as an admin meets it: the real `curl … | sh` on a terminal, stdin the pipe, the
/// questions answered on the terminal, a container made, and the last screen true: its URL answers
/// through nginx with the certificate whose fingerprint it printed, and the installer it put on the
/// host's PATH manages the instance.
#[test]
fn the_one_liner_on_a_terminal_asks_creates_and_its_last_screen_is_true() {
    if skip_or_fail() {
        return;
    }
    let node = Node::new("host-firstrun");
    let s = site(&node.dir);
    let (one, cfg) = instance(&node, &s, "first", 13, "local-lvm");
    let root = node.root.display().to_string();
    // `trap : INT`: like the admin's interactive shell, the shell `script` runs survives Ctrl-C and
    // waits for the pipeline; otherwise its death would close the terminal under the bootstrap
    // while it still cleans up (SIGHUP, EIO), which no real terminal does.
    let line =
        format!("trap : INT; {}", one_liner_line(&s, &format!("create --config {} --root {root}", cfg.display())));

    // Ctrl-C at the first question, through install.sh and the bootstrap: nothing on the node,
    // nothing on the host. (The bootstrap's own cleanup of its bundle directory races its signal
    // thread under load and is left to the bootstrap's tests.)
    let mut t = pty::Pty::start(&line, |c| one_liner_env(&node, &s, c));
    t.expect_within("Settings: 1) Default  2) Advanced [1]: ", std::time::Duration::from_secs(120));
    t.send("\x03");
    let (code, screen) = t.finish();
    assert_ne!(code, Some(0), "{screen}");
    let changes: Vec<String> = node
        .commands()
        .iter()
        .filter(|c| {
            !matches!(
                (c[0].as_str(), c.get(1).map(String::as_str)),
                ("pveversion", _) | ("pvesm", _) | ("pvesh", _) | ("pveam", Some("list" | "available"))
            )
        })
        .map(|c| c.join(" "))
        .collect();
    assert!(changes.is_empty(), "Ctrl-C changed the node: {changes:?}");
    assert!(std::fs::read_dir(&node.root).unwrap().next().is_none(), "Ctrl-C left files on the host");

    let t0 = std::time::Instant::now();
    let mut t = pty::Pty::start(&line, |c| one_liner_env(&node, &s, c));
    t.expect_within("Settings: 1) Default  2) Advanced [1]: ", std::time::Duration::from_secs(120));
    t.send("2\r");
    t.answer("Instance name [first]: ", "");
    t.answer("Domain (the address users type) [first.vikunja.test]: ", "");
    for _ in 0..3 {
        t.answer("]: ", ""); // CT id, hostname, storage
    }
    t.answer("CPU cores [2]: ", "1");
    t.answer("Memory (MiB) [1024]: ", "1536");
    for _ in 0..15 {
        t.answer("]: ", ""); // disk, bridge, IPv4, gateway, VLAN, IPv6, DNS, SSH, tags, boot, template, version, zip, database, TLS
    }
    t.answer("Open registration: anyone reaching the site may sign up (yes/no) [yes]: ", "no");
    t.expect("CPU cores                  1");
    t.answer("Save these settings, to repeat this install with --config? File, or - for no", "");
    t.answer("Create the container and install Vikunja now? (Y/n)", "y");
    t.expect_within("Day-2, from this host:", std::time::Duration::from_secs(900));
    let (code, screen) = t.finish();
    assert_eq!(code, Some(0), "{screen}");
    eprintln!("first run with the wizard: {:.1} s", t0.elapsed().as_secs_f64());

    // The saved answers repeat the install unattended.
    let saved = std::fs::read_to_string(node.root.join("root/vikunja-first.toml")).unwrap();
    assert!(saved.contains("cores = 1") && saved.contains("memory_mb = 1536"), "{saved}");
    // The container got what was answered.
    let conf = text(&node.tool(&["pct", "config", "100"]));
    assert!(conf.contains("cores: 1") && conf.contains("memory: 1536"), "{conf}");

    // The last screen: both URLs, the fingerprint, the first user, backups, day-2 commands.
    let url = format!("https://{}:{}/", one.domain, one.ports.https);
    assert!(screen.contains(&format!("Open it:  {url}")), "{screen}");
    assert!(screen.contains(&format!("https://127.0.10.13:{}/", one.ports.https)), "{screen}");
    // Registration closed, as answered: Vikunja says so, and the screen gives the command instead.
    assert!(
        screen.contains("First user (registration is closed)") && screen.contains("pct exec 100 -- runuser -u vikunja")
    );
    assert!(screen.contains(&format!("/opt/vikunja-first/releases/{V1}/")) && screen.contains(" user create -u admin"));
    // That command, run as printed (a password chosen), creates the user (the stand-in keeps
    // Vikunja's `user create` contract); a second time the name is taken.
    let line = screen.lines().map(str::trim).find(|l| l.contains(" user create -u admin ")).unwrap();
    let line = line.replace("CHOOSE-A-PASSWORD", "first admin password");
    // The admin's own pct lines (portable to every pve-container, so without --keep-env) are not
    // the installer's, whose contract is checked at the end.
    let admin_from = node.commands().len();
    let user = || {
        let mut c = Command::new("sh");
        c.args(["-c", &line]);
        node.env(&mut c);
        let o = c.output().unwrap();
        show(&line, &o);
        o
    };
    let o = user();
    assert!(o.status.success() && text(&o).contains("User was created successfully."), "{}", text(&o));
    assert!(!text(&o).contains("service.secret is not set"), "the printed line passes the secret: {}", text(&o));
    let o = user();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("A user with this username already exists."), "{}", text(&o));
    let admin = admin_from..node.commands().len();
    assert!(screen.contains("vikunja-installer status --instance first"), "{screen}");
    assert!(screen.contains("vikunja-installer update --instance first") && screen.contains("backup --instance first"));
    let printed = screen
        .lines()
        .find_map(|l| l.trim().strip_prefix("SHA-256 "))
        .unwrap_or_else(|| panic!("no fingerprint on the last screen:\n{screen}"))
        .trim()
        .to_string();
    // What nginx serves for the URL is the certificate of that fingerprint.
    let served = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{} -servername {} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256",
            one.ports.https, one.domain
        ))
        .output()
        .unwrap();
    assert_eq!(text(&served).trim().split('=').nth(1), Some(printed.as_str()), "{}", text(&served));
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-k", "--resolve"])
        .arg(format!("{}:{}:127.0.0.1", one.domain, one.ports.https))
        .arg(format!("{url}api/v1/info"))
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(info.contains(&format!("\"version\":\"{V1}\"")), "{info}");
    assert!(info.contains("\"registration_enabled\":false"), "{info}");

    // The installer is on the host's PATH now, in upgrade's layout, and manages the instance.
    let bin = node.root.join("usr/local/bin/vikunja-installer");
    assert!(node.root.join("opt/vikunja-pve/current/bin/vikunja-installer").is_file());
    assert!(node.root.join("opt/vikunja-pve/current/templates/nginx").is_dir(), "the bundle's templates came along");
    // Its receipt carries what the bootstrap verified, so `upgrade` and `--version` know the key.
    let receipt = std::fs::read_to_string(node.root.join("opt/vikunja-pve/current/receipt.toml")).unwrap();
    assert!(receipt.contains(&format!("version = \"{RELEASE}\"")) && !receipt.contains("key_id = \"\""), "{receipt}");
    let mut c = Command::new(&bin);
    c.args(["status", "--instance", "first", "--json", "--root", &root]);
    node.env(&mut c);
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((st["version"].as_str(), st["healthy"].as_bool()), (Some(V1), Some(true)));
    let installer_cmds: Vec<Vec<String>> =
        node.commands().into_iter().enumerate().filter(|(i, _)| !admin.contains(i)).map(|(_, c)| c).collect();
    assert_contract(&installer_cmds);
}

#[test]
fn outside_proxmox_or_without_root_create_says_what_is_missing_and_the_doubles_keep_the_contract() {
    // Not a Proxmox host: no pveversion on PATH.
    let dir = vikunja_e2e::TestDir::new("host-prereq").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_vikunja-installer"))
        .args(["create", "--yes", "--root"])
        .arg(&dir)
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("pveversion was not found") || t.contains("run this as root"), "{t}");

    // The doubles' documented behaviour, which needs no container.
    let node = Node { root: dir.join("host-root"), dir, pose: Pose::Newest };
    let o = node.tool(&["pveversion"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("pve-manager/9.2.11/"), "{}", text(&o));
    assert_eq!(node.tool(&["pveversion", "--bogus"]).status.code(), Some(255));
    assert_eq!(text(&node.tool(&["pvesh", "get", "/cluster/nextid"])), "100\n");
    let o = node.tool(&["pvesm", "status"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("Name ") && text(&o).contains("local-lvm"));
    let o = node.tool(&["pveam", "update"]);
    assert!(o.status.success() && text(&o).contains("update successful"));
    let mut c = Command::new(doubles().join("pveam"));
    c.arg("update");
    node.env(&mut c);
    let o = c.env("PVE_DOUBLE_PVEAM_UPDATE_FAIL", "1").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "pveam update exits 0 even on failure");
    assert!(String::from_utf8_lossy(&o.stderr).contains("update failed"));
    let o = node.tool(&["pveam", "download", "local", "debian-11-standard_11.7-1_amd64.tar.zst"]);
    assert!(o.status.success() && text(&o).contains("TASK ERROR"), "worker failures exit 0: {}", text(&o));
    assert!(!text(&node.tool(&["pveam", "list", "local"])).contains("debian-11"));
    let o = node.tool(&["pvesh", "get", "/nodes/localhost/network", "--type", "any_bridge", "--output-format", "json"]);
    assert_eq!(text(&o).matches("\"iface\"").count(), 1, "{}", text(&o));
    assert_eq!(node.tool(&["pveam", "download", "nope", "x"]).status.code(), Some(255));
    assert_eq!(node.tool(&["pct", "status", "100"]).status.code(), Some(255));
    assert!(text(&node.tool(&["pct", "status", "100"]))
        .contains("Configuration file 'nodes/pve/lxc/100.conf' does not exist"));
    assert!(node.tool(&["pct", "list"]).stdout.is_empty(), "pct list prints nothing without CTs");
    let o = node.tool(&["pct", "create", "100", "local:vztmpl/x.tar.zst", "--password"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o).contains("password"), "{}", text(&o));
    let log = node.commands();
    assert!(log.iter().any(|c| c == &["pct", "create", "100", "local:vztmpl/x.tar.zst", "--password"]), "{log:?}");

    // The poses differ where the versions do. The newest pveam prints the architecture as a third
    // column, sorted by section and template like pveam; the oldest prints two columns.
    let o = node.tool(&["pveam", "available", "--section", "system"]);
    let rows: Vec<Vec<String>> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert!(rows.len() >= 2 && rows.iter().all(|r| r.len() == 3 && r[0] == "system"), "{rows:?}");
    assert!(rows.iter().any(|r| r[2] == "arm64") && rows.iter().any(|r| r[2] == "amd64"), "{rows:?}");
    assert!(rows.windows(2).all(|w| w[0][1] < w[1][1]), "sorted by template: {rows:?}");
    let old = Node {
        root: node.root.clone(),
        dir: vikunja_e2e::TestDir::new("host-prereq-old").unwrap(),
        pose: Pose::Oldest,
    };
    assert!(old.tool(&["pveam", "update"]).status.success());
    let o = old.tool(&["pveam", "available"]);
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!t.is_empty() && t.lines().all(|l| l.split_whitespace().count() == 2), "two columns before 9.2.9: {t}");
    let o = old.tool(&["pveversion"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("pve-manager/8.1.4/"), "{}", text(&o));
    assert!(text(&old.tool(&["pveversion", "-v"])).contains("\npve-container: 5.0.8\n"));
    // pct before pve-container 5.0.9 has no --keep-env: a usage error, exit 255, checked before the
    // CT is even looked up; the newest pct gets past the option to the missing CT.
    let o = old.tool(&["pct", "exec", "100", "--keep-env", "0", "--", "true"]);
    assert_eq!(o.status.code(), Some(255));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "Unknown option: keep-env\n400 unable to parse option\npct exec <vmid> [<extra-args>]\n"
    );
    let o = node.tool(&["pct", "exec", "100", "--keep-env", "0", "--", "true"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o).contains("Configuration file 'nodes/pve/lxc/100.conf' does not exist"), "{}", text(&o));
}

/// CT `ct` is id-mapped as Proxmox maps an unprivileged CT (its root is host uid 100000), and
/// `unit` runs there with its sandbox in force: its own user namespace (PrivateUsers: only root
/// and its user mapped, one id each), no new privileges, a read-only root (ProtectSystem=strict)
/// and a private /dev without the host's devices (PrivateDevices). Proxmox's seccomp rules for
/// unprivileged CTs hold too: keyctl() (250 on x86_64) fails with ENOSYS, which is what systemd's
/// KeyringMode= meets there.
fn assert_sandboxed_unprivileged(node: &Node, ct: &str, unit: &str) {
    let o = in_ct(
        node,
        ct,
        &format!(
            "set -e; echo ct-map $(cat /proc/self/uid_map); p=$(systemctl show -p MainPID --value {unit}); \
             test \"$p\" -gt 0; sed 's/^/unit-map /' /proc/$p/uid_map; grep '^NoNewPrivs' /proc/$p/status; \
             awk '$5 == \"/\" {{ print \"root-opts\", $6 }}' /proc/$p/mountinfo; \
             echo devices $(ls /proc/$p/root/dev | tr '\\n' ' '); \
             perl -e 'syscall(250, 0, 0, 0, 0); print \"keyctl: $!\\n\"'"
        ),
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(t.contains("ct-map 0 100000 65536\n"), "the CT is not id-mapped as Proxmox maps it: {t}");
    let maps: Vec<Vec<&str>> =
        t.lines().filter_map(|l| l.strip_prefix("unit-map ")).map(|l| l.split_whitespace().collect()).collect();
    assert!(
        !maps.is_empty() && maps.len() <= 2 && maps.iter().all(|m| m.len() == 3 && m[2] == "1"),
        "PrivateUsers: {t}"
    );
    assert!(t.contains("NoNewPrivs:\t1"), "{t}");
    assert!(t.lines().any(|l| l.starts_with("root-opts ro")), "ProtectSystem=strict: {t}");
    let devices = t.lines().find_map(|l| l.strip_prefix("devices ")).unwrap_or("");
    assert!(
        devices.contains("null") && !devices.contains("tty1") && !devices.contains("console"),
        "PrivateDevices: {t}"
    );
    assert!(t.contains("keyctl: Function not implemented"), "pve-container's seccomp rules: {t}");
}

/// A shell script run as root inside container `ct`, as the installer itself runs commands there.
fn in_ct(node: &Node, ct: &str, script: &str) -> Output {
    let o = match node.pose {
        Pose::Newest => node.tool(&["pct", "exec", ct, "--keep-env", "0", "--", "sh", "-c", script]),
        Pose::Oldest => {
            node.tool(&["pct", "exec", ct, "--", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "sh", "-c", script])
        }
    };
    show(&format!("pct exec {ct} -- sh -c {script:?}"), &o);
    o
}

/// Day two (issue 13) in a real container with systemd as PID 1, driven from the host: a backup
/// timer that exists, is enabled and whose service makes a backup when started; `logs` from the
/// journal; `stop` (nginx and both colours inactive, status says stopped) and `start`; `--off`;
/// and `uninstall` inside, which keeps the backups and data, after which an install serves again.
#[test]
fn day_two_in_a_container_schedule_backups_logs_stop_start_uninstall() {
    if skip_or_fail() {
        return;
    }
    let node = Node::new("host-daytwo");
    let s = site(&node.dir);
    let (three, cfg) = instance(&node, &s, "three", 13, "local");
    let o =
        one_liner(&node, &s, &format!("create --config {} --yes --root {}", cfg.display(), node.root.display()), &[]);
    assert!(o.status.success(), "create failed");
    let ct = "100";
    assert_eq!(version_over_tls(&node, ct, &three), V1);
    let backups = "ls /opt/vikunja-three/backups | grep -c '^vikunja-backup-three-' || true";
    let count = |node: &Node| text(&in_ct(node, ct, backups)).trim().parse::<u32>().unwrap();

    let o = host(&node, &s, &["backup", "schedule", "--daily", "--instance", "three"]);
    assert!(o.status.success(), "backup schedule --daily");
    let unit = "/etc/systemd/system/vikunja-three-backup";
    let o = in_ct(
        &node,
        ct,
        &format!(
            "systemctl is-enabled vikunja-three-backup.timer && systemctl is-active vikunja-three-backup.timer && \
             systemd-analyze verify --man=no {unit}.timer {unit}.service && echo VERIFIED"
        ),
    );
    assert!(o.status.success() && text(&o).trim_end().ends_with("VERIFIED"), "the timer: {}", text(&o));
    assert!(!text(&o).contains(".timer:") && !text(&o).contains(".service:"), "verify complained: {}", text(&o));
    let before = count(&node);
    let o = in_ct(&node, ct, "systemctl start vikunja-three-backup.service");
    assert!(o.status.success(), "systemctl start of the backup service: {}", text(&o));
    assert_eq!(count(&node), before + 1, "starting the timer's service made no backup");
    let o = host(&node, &s, &["status", "--instance", "three", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let b = &v["backup_schedule"];
    assert_eq!((b["state"].as_str(), b["schedule"].as_str()), (Some("on"), Some("*-*-* 03:00:00")), "{v}");
    assert!(b["next_run"].is_string() && b["last_run"].is_string(), "last and next run: {v}");
    assert_eq!(b["last_result"], "success", "{v}");

    let o = host(&node, &s, &["logs", "--instance", "three", "-n", "500"]);
    assert!(o.status.success() && text(&o).contains(&format!("Vikunja version {V1}")), "logs: {}", text(&o));
    let o = host(&node, &s, &["logs", "--instance", "three", "-n", "3"]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).lines().count() <= 3, "logs -n 3");

    let o = host(&node, &s, &["stop", "--instance", "three"]);
    assert!(o.status.success(), "stop");
    let o = in_ct(&node, ct, "systemctl is-active nginx vikunja-three-backend-blue vikunja-three-backend-green");
    assert_eq!(text(&o).matches("inactive").count(), 3, "after stop: {}", text(&o));
    let o = host(&node, &s, &["status", "--instance", "three", "--json"]);
    assert_eq!(o.status.code(), Some(10));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["state"], "stopped");
    let o = host(&node, &s, &["start", "--instance", "three"]);
    assert!(o.status.success(), "start");
    assert_eq!(version_over_tls(&node, ct, &three), V1);

    let o = host(&node, &s, &["backup", "schedule", "--off", "--instance", "three"]);
    assert!(o.status.success(), "--off");
    let o = in_ct(&node, ct, &format!("test ! -e {unit}.timer && test ! -e {unit}.service && echo GONE"));
    assert!(text(&o).contains("GONE"), "--off left the units: {}", text(&o));

    let before = count(&node);
    let o = in_ct(&node, ct, "vikunja-installer uninstall </dev/null");
    assert_eq!(o.status.code(), Some(2), "uninstall without --yes and without a terminal");
    let o = in_ct(&node, ct, "vikunja-installer uninstall --yes");
    assert!(o.status.success(), "uninstall: {}", text(&o));
    assert_eq!(count(&node), before + 1, "uninstall took no last backup");
    let o = in_ct(
        &node,
        ct,
        "test -f /opt/vikunja-three/data/vikunja.db && ! id vikunja 2>/dev/null && \
         ! ls /etc/systemd/system/vikunja-three-* 2>/dev/null && test ! -e /etc/nginx/conf.d/vikunja-three.conf && echo CLEAN",
    );
    assert!(text(&o).contains("CLEAN"), "after uninstall: {}", text(&o));
    // The test's download site is signed by the test CA, which `create` put into the container.
    let o = in_ct(
        &node,
        ct,
        "SSL_CERT_FILE=/etc/vikunja-pve/ca-bundle.pem vikunja-installer install --yes --config \
         /opt/vikunja-three/config/deployment.toml.uninstalled",
    );
    assert!(o.status.success(), "install after uninstall: {}", text(&o));
    assert_eq!(version_over_tls(&node, ct, &three), V1);
}

/// The oldest PVE the installer supports (8.1, pve-container 5.0.8) as well as the newest: the
/// one-liner reads its two-column `pveam available`, does without `pct exec --keep-env`, asks for
/// an unprivileged CT although this pct would make a privileged one by default, and the CT it
/// gets is id-mapped with the hardened units running in it; an update (blue-green, writes frozen
/// while the new colour migrates) and status work through it.
#[test]
fn on_the_oldest_supported_pve_the_one_liner_makes_an_unprivileged_ct_and_updates_it() {
    if skip_or_fail() {
        return;
    }
    let node = Node::posing("host-oldpve", Pose::Oldest);
    let s = site(&node.dir);
    let (four, cfg) = instance(&node, &s, "four", 14, "local-lvm");
    let o =
        one_liner(&node, &s, &format!("create --config {} --yes --root {}", cfg.display(), node.root.display()), &[]);
    assert!(o.status.success(), "create failed");
    let ct = "100";
    assert_eq!(version_over_tls(&node, ct, &four), V1);
    let conf = text(&node.tool(&["pct", "config", ct]));
    assert!(conf.contains("unprivileged: 1") && conf.contains("features: nesting=1"), "{conf}");
    assert_sandboxed_unprivileged(&node, ct, "vikunja-four-backend-blue");

    // The write freeze reads /proc/<nginx worker>/syscall as the CT's root, which is host uid
    // 100000 here: it must see the worker turned, not refuse.
    let o = host(&node, &s, &["update", "--instance", "four", "--version", V2]);
    assert!(o.status.success(), "update failed");
    assert!(text(&o).contains("writes frozen") && text(&o).contains("writes resumed"), "{}", text(&o));
    assert_eq!(version_over_tls(&node, ct, &four), V2);
    let o = host(&node, &s, &["status", "--instance", "four", "--json"]);
    assert!(o.status.success());
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((st["version"].as_str(), st["healthy"].as_bool()), (Some(V2), Some(true)), "{st}");
    let cmds = node.commands();
    assert!(cmds.iter().any(|c| c[0] == "pveam" && c[1] == "available"), "{cmds:?}");
    let execs: Vec<&Vec<String>> = cmds.iter().filter(|c| c[0] == "pct" && c[1] == "exec").collect();
    assert!(!execs.is_empty() && execs.iter().all(|c| !c.contains(&"--keep-env".to_string())), "{execs:?}");
    assert_contract(&cmds);

    // This pct's own default is privileged (no `unprivileged` line, the host's ids); the newest
    // pct's is unprivileged. The installer never relies on either: it passes --unprivileged 1.
    let tmpl = cmds.iter().find(|c| c[0] == "pct" && c[1] == "create").map(|c| c[3].clone()).unwrap();
    let tmpl = tmpl.as_str();
    let o = node.tool(&["pct", "create", "300", tmpl, "--hostname", "default-old"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&node.tool(&["pct", "config", "300"])).contains("unprivileged"));
    let newest = Node::new("host-oldpve-control");
    let file = tmpl.rsplit('/').next().unwrap();
    for c in [&["pveam", "update"][..], &["pveam", "download", "local", file]] {
        assert!(newest.tool(c).status.success());
    }
    let o = newest.tool(&["pct", "create", "300", tmpl, "--hostname", "default-new"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&newest.tool(&["pct", "config", "300"])).contains("unprivileged: 1"));
}

/// Automatic updates (issue 16) in a real container with systemd as PID 1: `update --auto
/// --schedule on` from the host installs a timer that is enabled and passes verify; starting its
/// service with a never-healthy v2.5.0 leaves v2.4.0 serving and records v2.5.0 as skipped, a
/// second start does not try it again, and after `--clear-skip` (the release fixed) the service
/// updates v2.4.0 → v2.5.0, which `status` shows.
#[test]
fn auto_update_timer_in_a_container_updates_skips_a_never_healthy_release_and_does_not_retry_it() {
    if skip_or_fail() {
        return;
    }
    let node = Node::new("host-autoupdate");
    let s = site(&node.dir);
    // The download site's listing, which `update --auto` reads like `update` without --version.
    s.server.write_vikunja_listing(&[V1, V2]).unwrap();
    let p = vikunja_e2e::sandbox::Sandbox::new("host-ports-four").unwrap().ports;
    let four = Inst { name: "four", domain: "four.vikunja.test".into(), ports: p };
    let cfg = node.dir.join("four.toml");
    std::fs::write(
        &cfg,
        vikunja_e2e::sandbox::container_config(
            "four",
            &format!("version = \"{V1}\"\ndownload_base = \"{}/vikunja\"", s.server.base_url()),
            "127.0.10.16/8",
            &four.ports,
            "\n[container]\nstorage = \"local\"\n\n[updates]\nchannel = \"minor\"\n",
        ),
    )
    .unwrap();
    let o =
        one_liner(&node, &s, &format!("create --config {} --yes --root {}", cfg.display(), node.root.display()), &[]);
    assert!(o.status.success(), "create failed");
    let ct = "100";
    assert_eq!(version_over_tls(&node, ct, &four), V1);

    let o = host(&node, &s, &["update", "--auto", "--schedule", "on", "--instance", "four"]);
    assert!(o.status.success(), "update --auto --schedule on");
    assert!(!text(&o).contains("Snapshot"), "no snapshot for turning on a schedule: {}", text(&o));
    let unit = "/etc/systemd/system/vikunja-four-autoupdate";
    let o = in_ct(
        &node,
        ct,
        &format!(
            "systemctl is-enabled vikunja-four-autoupdate.timer && systemctl is-active vikunja-four-autoupdate.timer && \
             systemd-analyze verify --man=no {unit}.timer {unit}.service && grep -q '^Environment=SSL_CERT_FILE=' \
             {unit}.service && echo VERIFIED"
        ),
    );
    assert!(o.status.success() && text(&o).trim_end().ends_with("VERIFIED"), "the timer: {}", text(&o));
    assert!(!text(&o).contains(".timer:") && !text(&o).contains(".service:"), "verify complained: {}", text(&o));

    // v2.5.0 downloaded (an update killed right after it started, then recovered) and broken.
    let o = in_ct(
        &node,
        ct,
        &format!(
            "export SSL_CERT_FILE=/etc/vikunja-pve/ca-bundle.pem; VIKUNJA_INSTALLER_TEST_KILL_AT=started \
             vikunja-installer update --version {V2}; vikunja-installer status >/dev/null; \
             echo never-healthy > /opt/vikunja-four/releases/{V2}/STANDIN_FAULT && echo BROKEN"
        ),
    );
    assert!(text(&o).contains("BROKEN"), "{}", text(&o));
    let o = in_ct(&node, ct, "systemctl start vikunja-four-autoupdate.service");
    assert!(!o.status.success(), "the failed automatic update must fail its unit");
    assert_eq!(version_over_tls(&node, ct, &four), V1, "v2.4.0 must still serve");
    let st = |node: &Node| -> serde_json::Value {
        let o = host(node, &s, &["status", "--instance", "four", "--json"]);
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let a = st(&node)["auto_update"].clone();
    assert_eq!((a["timer"].as_str(), a["skipped"][0]["version"].as_str()), (Some("on"), Some(V2)), "{a}");
    assert!(a["result"].as_str().unwrap().contains("failed and undone"), "{a}");
    let last_op = "cat /opt/vikunja-four/state/last-operation";
    let before = text(&in_ct(&node, ct, last_op));
    let o = in_ct(
        &node,
        ct,
        "systemctl start vikunja-four-autoupdate.service && journalctl -u vikunja-four-autoupdate -n 20 --no-pager",
    );
    assert!(o.status.success(), "the second run: {}", text(&o));
    assert!(text(&o).contains(&format!("passed over {V2}")), "{}", text(&o));
    assert_eq!(text(&in_ct(&node, ct, last_op)), before, "the skipped release was tried again");
    assert_eq!(version_over_tls(&node, ct, &four), V1);

    let o = host(&node, &s, &["update", "--auto", "--clear-skip", "--instance", "four"]);
    assert!(o.status.success() && text(&o).contains("allowed again"), "{}", text(&o));
    in_ct(&node, ct, &format!("rm /opt/vikunja-four/releases/{V2}/STANDIN_FAULT"));
    let o = in_ct(&node, ct, "systemctl start vikunja-four-autoupdate.service");
    assert!(o.status.success(), "the automatic update");
    assert_eq!(version_over_tls(&node, ct, &four), V2);
    let a = st(&node)["auto_update"].clone();
    assert_eq!(a["result"], format!("updated {V1} -> {V2}"), "{a}");
    assert!(a["last_update"].is_string() && a["skipped"].as_array().unwrap().is_empty(), "{a}");

    let o = host(&node, &s, &["update", "--auto", "--schedule", "off", "--instance", "four"]);
    assert!(o.status.success());
    let o = in_ct(&node, ct, &format!("test ! -e {unit}.timer && test ! -e {unit}.service && echo GONE"));
    assert!(text(&o).contains("GONE"), "--schedule off left the units: {}", text(&o));
}
