//! A Proxmox cluster of three nodes on this machine, with the TEST DOUBLES of pct, pvesh, pveam,
//! pvesm, pveversion, ha-manager and ssh (tests/pve-doubles, contract in CLUSTER.md) backed by
//! real LXC containers: a node is a directory of the shared /etc/pve (etc/pve/nodes/<node>) and
//! PVE_DOUBLE_NODE, each node has its own --root whose etc/pve is the shared one (pmxcfs), and
//! the ssh double switches node. The instance is made on pve2 from pve1, listed from pve3,
//! updated through routing, moved to pve1 under a read load, then destroyed with its HA resource.
//!
//! Needs root and LXC, like host_e2e (skipped elsewhere, failing under CI=true).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vikunja_e2e::ca::TestCa;
use vikunja_e2e::nginx::ReleaseServer;

const V1: &str = "v2.4.0";
const V2: &str = "v2.5.0";
const NODES: [&str; 3] = ["pve1", "pve2", "pve3"];

fn doubles() -> PathBuf {
    vikunja_e2e::workspace_root().join("tests/pve-doubles")
}

fn lxc_missing() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        return Some("not root (LXC containers need root)".into());
    }
    for c in ["lxc-start", "lxc-create", "debootstrap"] {
        if !["/usr/bin", "/usr/sbin", "/bin", "/sbin"].iter().any(|d| Path::new(d).join(c).exists()) {
            return Some(format!("{c} is missing: apt-get install -y lxc debootstrap"));
        }
    }
    None
}

/// The cluster: the shared state of the doubles, a root per node, and a Drop that stops every
/// container.
struct Cluster {
    dir: vikunja_e2e::TestDir,
    ca: TestCa,
    _server: ReleaseServer,
    base_url: String,
}

impl Cluster {
    fn new() -> Cluster {
        // "host-" like host_e2e's runs, whose start stops the containers of killed runs.
        let dir = vikunja_e2e::TestDir::new("host-cluster").unwrap();
        for n in NODES {
            std::fs::create_dir_all(dir.join(format!("pve/etc/pve/nodes/{n}/lxc"))).unwrap();
            let etc = dir.join(format!("root-{n}/etc"));
            std::fs::create_dir_all(&etc).unwrap();
            // Every node mounts the one cluster filesystem at /etc/pve.
            std::os::unix::fs::symlink(dir.join("pve/etc/pve"), etc.join("pve")).unwrap();
        }
        let ca = TestCa::create(&dir.join("ca")).unwrap();
        let server = ReleaseServer::start(&dir.join("nginx"), &ca).unwrap();
        let zips = vikunja_e2e::sandbox::standin_zips(&[V1, V2]).unwrap();
        use std::os::unix::fs::PermissionsExt;
        for v in [V1, V2] {
            let d = server.www.join("vikunja").join(v);
            std::fs::create_dir_all(&d).unwrap();
            let zip = format!("vikunja-{v}-linux-amd64-full.zip");
            std::fs::copy(zips.join(v).join(&zip), d.join(&zip)).unwrap();
            std::fs::set_permissions(d.join(&zip), std::fs::Permissions::from_mode(0o644)).unwrap();
            for p in [d.as_path(), d.parent().unwrap()] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let base_url = server.base_url();
        Cluster { dir, ca, _server: server, base_url }
    }

    fn pve(&self) -> PathBuf {
        self.dir.join("pve")
    }

    fn root(&self, node: &str) -> PathBuf {
        self.dir.join(format!("root-{node}"))
    }

    fn env(&self, node: &str, c: &mut Command) {
        let path = format!("{}:{}", doubles().display(), std::env::var("PATH").unwrap_or_default());
        c.env("PATH", path)
            .env("PVE_DOUBLE_DIR", self.pve())
            .env("PVE_DOUBLE_NODE", node)
            .env("PVE_DOUBLE_CACHE", vikunja_e2e::workspace_root().join("target/pve-doubles/cache"))
            .env("SSL_CERT_FILE", &self.ca.ca_pem)
            .env("NO_COLOR", "1")
            .env("TMPDIR", self.dir.path())
            .stdin(Stdio::null());
    }

    /// The installer on `node`.
    fn run(&self, node: &str, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_vikunja-installer"));
        c.args(args).arg("--root").arg(self.root(node));
        self.env(node, &mut c);
        let o = c.output().unwrap();
        eprintln!("[{node}] $ vikunja-installer {} ({:?})\n{}", args.join(" "), o.status, text(&o));
        o
    }

    /// A double, as `node` runs it.
    fn tool(&self, node: &str, args: &[&str]) -> Output {
        let mut c = Command::new(doubles().join(args[0]));
        c.args(&args[1..]);
        self.env(node, &mut c);
        c.output().unwrap()
    }

    fn commands(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.pve().join("commands.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\x1f').map(str::to_string).collect())
            .collect()
    }

    fn conf(&self, node: &str, id: &str) -> PathBuf {
        self.pve().join(format!("etc/pve/nodes/{node}/lxc/{id}.conf"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let lxc = self.pve().join("lxc");
        for e in std::fs::read_dir(&lxc).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let _ = Command::new("lxc-stop").arg("-P").arg(&lxc).args(["-n", &n, "-k"]).output();
        }
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Reads in a loop, each with the time it was answered: what a user sees during a migration.
struct Reader {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(Duration, bool)>>>,
    thread: std::thread::JoinHandle<()>,
    started: Instant,
}

impl Reader {
    fn start(t: &vikunja_e2e::load::Target) -> Reader {
        let (stop, log) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
        let started = Instant::now();
        let (t, s, l) = (t.clone(), Arc::clone(&stop), Arc::clone(&log));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let (code, _) = t.request("GET", "/api/v1/tasks/all", None);
                l.lock().unwrap().push((started.elapsed(), code == 200));
                if code != 200 {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        });
        Reader { stop, log, thread, started }
    }

    fn stop(self) -> Vec<(Duration, bool)> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
        let _ = self.started;
        self.log.lock().unwrap().clone()
    }
}

#[test]
fn an_instance_made_on_one_node_is_listed_updated_moved_and_destroyed_from_the_others() {
    if let Some(why) = lxc_missing() {
        vikunja_e2e::skip(&format!("the Proxmox cluster test needs LXC: {why}"));
        return;
    }
    let c = Cluster::new();
    let p = vikunja_e2e::sandbox::Sandbox::new("host-cluster-ports").unwrap().ports;
    let domain = "one.vikunja.test";
    let cfg = c.dir.join("one.toml");
    std::fs::write(
        &cfg,
        vikunja_e2e::sandbox::container_config(
            "one",
            &format!("version = \"{V1}\"\ndownload_base = \"{}/vikunja\"", c.base_url),
            "127.0.10.31/8",
            &p,
            "\n[container]\nstorage = \"local\"\n",
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    // Naming a node the cluster does not have is refused before anything happens.
    let o = c.run("pve1", &["create", "--config", cfg, "--yes", "--node", "pve9"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no such node in this cluster; its nodes: pve1, pve2, pve3"), "{}", text(&o));
    let o = c.run("pve1", &["create", "--config", cfg, "--yes", "--ha-group", "g"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--ha-group g goes with --ha"), "{}", text(&o));
    // --node auto: the node with the most free memory (pve3 here) and room on the storage.
    for (n, free) in [("pve1", 2000), ("pve2", 3000), ("pve3", 6000)] {
        let f = c.pve().join(format!("etc/pve/nodes/{n}/.double-resources"));
        std::fs::write(f, format!("mem_total_mb 8000\nmem_used_mb {}\n", 8000 - free)).unwrap();
    }
    let o = c.run("pve1", &["create", "--config", cfg, "--yes", "--node", "auto", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("--node auto: pve3 has the most free memory"), "{t}");
    assert!(t.contains("pvesh create /nodes/pve3/lxc --vmid 100 --ostemplate "), "{t}");
    assert!(t.contains("ssh -o BatchMode=yes root@pve3 -- 'pct start 100'"), "{t}");
    // The dry run changed nothing: no container anywhere.
    assert!(NODES.iter().all(|n| !c.conf(n, "100").exists()));
    // Less memory everywhere than the container asks for: refused, naming what to change.
    for n in NODES {
        let f = c.pve().join(format!("etc/pve/nodes/{n}/.double-resources"));
        std::fs::write(f, "mem_total_mb 8000\nmem_used_mb 7500\n").unwrap();
    }
    let o = c.run("pve1", &["create", "--config", cfg, "--yes", "--node", "auto", "--dry-run"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("no online node has 1024 MiB of memory"), "{}", text(&o));
    for n in NODES {
        std::fs::remove_file(c.pve().join(format!("etc/pve/nodes/{n}/.double-resources"))).unwrap();
    }

    // Made on pve2 from pve1: the API creates it there, ssh reaches pve2 for the rest; HA on.
    let t0 = Instant::now();
    let o = c.run("pve1", &["create", "--config", cfg, "--yes", "--node", "pve2", "--ha"]);
    assert!(o.status.success(), "create on pve2 failed");
    eprintln!("instance on pve2 healthy after {:.1} s", t0.elapsed().as_secs_f64());
    let t = text(&o);
    assert!(t.contains("creating on cluster node pve2 (this is pve1)"), "{t}");
    assert!(t.contains("HA recovers a container on another node only when its volumes are on shared storage"), "{t}");
    assert!(c.conf("pve2", "100").is_file() && !c.conf("pve1", "100").exists());
    let cmds = c.commands();
    let line = |c: &Vec<String>| c.join(" ");
    let create = cmds.iter().find(|c| c[0] == "pvesh" && c[1] == "create").expect("no API create");
    assert_eq!(&create[2..4], ["/nodes/pve2/lxc", "--vmid"], "{}", line(create));
    let w: Vec<&str> = create.iter().map(String::as_str).collect();
    assert!(
        w.windows(2).any(|p| p == ["--unprivileged", "1"]) && w.windows(2).any(|p| p == ["--features", "nesting=1"])
    );
    assert!(cmds.iter().any(|c| c[0] == "ssh" && c[1..4] == ["-o", "BatchMode=yes", "root@pve2"]));
    let ha = text(&c.tool("pve3", &["ha-manager", "status"]));
    assert!(ha.contains("service ct:100 (pve2, started)"), "{ha}");
    // The registry is on the cluster filesystem, not in a node's state.
    assert!(c.pve().join("etc/pve/priv/vikunja-pve/instances/one.toml").is_file());
    assert!(!c.root("pve1").join("var/lib/vikunja-pve/instances/one.toml").exists());

    // Listed from pve3, with its node, asked inside through ssh to pve2.
    let o = c.run("pve3", &["list", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let l = v["instances"].as_array().unwrap();
    assert_eq!(l.len(), 1, "{v}");
    assert_eq!(
        (l[0]["node"].as_str(), l[0]["container_status"].as_str(), l[0]["version"].as_str(), l[0]["healthy"].as_bool()),
        (Some("pve2"), Some("running"), Some(V1), Some(true)),
        "{v}"
    );
    assert_eq!(l[0]["ha"], "started", "{v}");
    let o = c.run("pve3", &["list"]);
    assert!(text(&o).contains("NODE") && text(&o).contains("pve2"), "{}", text(&o));

    // Updated from pve3, routed to pve2.
    let o = c.run("pve3", &["update", "--instance", "one", "--version", V2]);
    assert!(o.status.success(), "update through routing failed");
    let pem = c.dir.join("one-cert.pem");
    let o = c.tool("pve2", &["pct", "pull", "100", "/opt/vikunja-one/config/ssl/cert.pem", pem.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let target = vikunja_e2e::load::Target::new(domain, p.https, pem);
    let info = |t: &vikunja_e2e::load::Target| {
        let (code, body) = t.request("GET", "/api/v1/info", None);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["version"].as_str().unwrap().to_string()
    };
    assert_eq!(info(&target), V2);
    let (code, body) = target.create_task("made before the move");
    assert!((200..300).contains(&code), "{body}");

    // The plan first: the migration runs where the container is; nothing moves.
    let o = c.run("pve3", &["migrate", "--instance", "one", "--to", "pve1", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("ssh -o BatchMode=yes root@pve2 -- 'pct migrate 100 pve1 --restart'"), "{}", text(&o));
    assert!(c.conf("pve2", "100").is_file());
    let o = c.run("pve3", &["migrate", "--instance", "one", "--to", "pve2"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is on node pve2 already"), "{}", text(&o));

    // Moved to pve1 from pve3 under a read load: backup first, restart migration, health after.
    let reads = Reader::start(&target);
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let o = c.run("pve3", &["migrate", "--instance", "one", "--to", "pve1"]);
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let log = reads.stop();
    assert!(o.status.success(), "migrate failed");
    let t = text(&o);
    assert!(t.contains("moved from node pve2 to node pve1 and is healthy"), "{t}");
    assert!(t.contains("Requesting HA migration for CT 100 to node pve1"), "HA-managed: HA moves it: {t}");
    assert!(t.contains(&format!("https://{domain}:{}/", p.https)), "{t}");
    assert!(c.conf("pve1", "100").is_file() && !c.conf("pve2", "100").exists());
    let backups = c.root("pve3").join("var/lib/vikunja-pve/backups/one");
    assert!(std::fs::read_dir(&backups).map(|d| d.count()).unwrap_or(0) >= 1, "no backup copied out before the move");
    let failed: Vec<&(Duration, bool)> = log.iter().filter(|(_, ok)| !ok).collect();
    let (first, last) = (failed.first().map(|f| f.0), failed.last().map(|f| f.0));
    let downtime = match (first, last) {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    eprintln!(
        "migrate took {:.1} s; reads: {} ok, {} failed; unavailable for about {downtime:.1} s",
        took.as_secs_f64(),
        log.iter().filter(|(_, ok)| *ok).count(),
        failed.len()
    );
    // A restart migration has downtime, but it ends: reads answer again before the command does.
    assert!(log.last().is_some_and(|(_, ok)| *ok), "reads did not come back after the move");
    assert!(log.iter().any(|(_, ok)| *ok) && downtime < took.as_secs_f64(), "{downtime} s down of {took:?}");
    assert_eq!(info(&target), V2, "the version changed across the move");
    assert!(target.task_titles().unwrap().contains(&"made before the move".to_string()), "data lost in the move");
    let reg = std::fs::read_to_string(c.pve().join("etc/pve/priv/vikunja-pve/instances/one.toml")).unwrap();
    assert!(reg.contains("node = \"pve1\""), "{reg}");

    // From pve2 now, status is routed to pve1 (where the container is now).
    let before = c.commands().len();
    let o = c.run("pve2", &["status", "--instance", "one", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(c.commands()[before..].iter().any(|c| c[0] == "ssh" && c[3] == "root@pve1"));

    // The destroy plan, from pve2: through ssh to pve1, the HA resource before the container.
    let o = c.run("pve2", &["destroy", "--instance", "one", "--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    let (ha, gone) = (t.find("  ha-manager remove ct:100"), t.find("root@pve1 -- 'pct destroy 100 --purge'"));
    assert!(ha.is_some() && gone.is_some() && ha < gone, "{t}");
    assert!(c.conf("pve1", "100").is_file(), "the dry run destroyed it");

    // Destroyed from pve2: the HA resource goes first, or HA would start the container again.
    let before = c.commands().len();
    let o = c.run("pve2", &["destroy", "--instance", "one", "--yes"]);
    assert!(o.status.success(), "destroy failed");
    let after: Vec<String> = c.commands()[before..].iter().map(line).collect();
    let ha_rm = after.iter().position(|l| l == "ha-manager remove ct:100");
    let destroy = after.iter().position(|l| l.contains("pct destroy 100"));
    assert!(ha_rm.is_some() && destroy.is_some() && ha_rm < destroy, "{after:?}");
    assert!(!text(&c.tool("pve1", &["ha-manager", "status"])).contains("ct:100"));
    assert!(NODES.iter().all(|n| !c.conf(n, "100").exists()));
    let o = c.run("pve3", &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["instances"].as_array().map(Vec::len), Some(0), "{v}");
}

/// The cluster doubles' documented behaviour (tests/pve-doubles/CLUSTER.md), which needs no
/// container: outputs, errors and exit codes.
#[test]
fn the_cluster_doubles_keep_the_contract() {
    let dir = vikunja_e2e::TestDir::new("cluster-doubles").unwrap();
    for n in NODES {
        std::fs::create_dir_all(dir.join(format!("pve/etc/pve/nodes/{n}/lxc"))).unwrap();
    }
    let tool = |node: &str, args: &[&str]| {
        let path = format!("{}:{}", doubles().display(), std::env::var("PATH").unwrap_or_default());
        Command::new(doubles().join(args[0]))
            .args(&args[1..])
            .env("PATH", path)
            .env("PVE_DOUBLE_DIR", dir.join("pve"))
            .env("PVE_DOUBLE_NODE", node)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let json = |o: &Output| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();
    for name in ["pvesh", "pct", "ha-manager", "ssh"] {
        let head = std::fs::read_to_string(doubles().join(name)).unwrap();
        assert!(head.lines().take(3).any(|l| l.contains("TEST DOUBLE")), "{name} does not say it is a double");
    }
    // /cluster/status: the answering node is `local`.
    let st = json(&tool("pve2", &["pvesh", "get", "/cluster/status", "--output-format", "json"]));
    let local: Vec<&str> =
        st.as_array().unwrap().iter().filter(|e| e["local"] == 1).filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(local, ["pve2"], "{st}");
    assert_eq!(st[0]["type"], "cluster");
    let o = tool("pve1", &["pvesh", "get", "/cluster/resources", "--type", "bogus", "--output-format", "json"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o).contains("400 Parameter verification failed."), "{}", text(&o));
    let nodes =
        json(&tool("pve1", &["pvesh", "get", "/cluster/resources", "--type", "node", "--output-format", "json"]));
    assert_eq!(nodes.as_array().map(Vec::len), Some(3));
    assert!(nodes[0]["maxmem"].as_u64().unwrap() > nodes[0]["mem"].as_u64().unwrap(), "{nodes}");
    // Ids are cluster-wide: a CT on pve3 takes 100 for everyone.
    std::fs::write(dir.join("pve/etc/pve/nodes/pve3/lxc/100.conf"), "hostname: x\nmemory: 512\n").unwrap();
    assert_eq!(text(&tool("pve1", &["pvesh", "get", "/cluster/nextid"])), "101\n");
    let o = tool("pve1", &["pvesh", "get", "/cluster/nextid", "--vmid", "100"]);
    assert_eq!((o.status.code(), text(&o).trim()), (Some(255), "VM 100 already exists"));
    let vms = json(&tool("pve1", &["pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"]));
    assert_eq!((vms[0]["id"].as_str(), vms[0]["node"].as_str()), (Some("lxc/100"), Some("pve3")));
    assert!(vms[0].get("hastate").is_none(), "hastate only for HA-managed guests: {vms}");
    let o = tool("pve1", &["pvesh", "create", "/nodes/pve9/lxc", "--vmid", "105", "--ostemplate", "local:vztmpl/x"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o).contains("hostname lookup 'pve9' failed"), "{}", text(&o));
    // pct acts on its own node's containers only.
    let o = tool("pve1", &["pct", "status", "100"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o).contains("Configuration file 'nodes/pve1/lxc/100.conf' does not exist"), "{}", text(&o));
    let o = tool("pve3", &["pct", "migrate", "100", "pve3"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o).contains("target is local node"), "{}", text(&o));
    // ha-manager: add, a second add refused, status, remove, a second remove refused.
    let o = tool("pve1", &["ha-manager", "add", "ct:100", "--state", "stopped"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = tool("pve1", &["ha-manager", "add", "ct:100"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o).contains("resource ID 'ct:100' already defined"), "{}", text(&o));
    let o = tool("pve2", &["ha-manager", "status"]);
    let t = text(&o);
    assert!(t.starts_with("quorum OK\nmaster pve1 (active, ") && t.contains("service ct:100 (pve3, stopped)"), "{t}");
    let vms = json(&tool("pve1", &["pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"]));
    assert_eq!(vms[0]["hastate"], "stopped", "{vms}");
    let cfg = std::fs::read_to_string(dir.join("pve/etc/pve/ha/resources.cfg")).unwrap();
    assert_eq!(cfg, "ct: 100\n\tstate stopped\n\n");
    assert!(tool("pve1", &["ha-manager", "remove", "ct:100"]).status.success());
    let o = tool("pve1", &["ha-manager", "remove", "ct:100"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o).contains("cannot delete service 'ct:100', not HA managed!"), "{}", text(&o));
    // pct migrate moves a stopped CT's config to the target node.
    let o = tool("pve3", &["pct", "migrate", "100", "pve1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(dir.join("pve/etc/pve/nodes/pve1/lxc/100.conf").is_file());
    assert!(!dir.join("pve/etc/pve/nodes/pve3/lxc/100.conf").exists());
    // ssh: the command runs as the other node, stdin, output and exit code passed through.
    let o = Command::new(doubles().join("ssh"))
        .args(["-o", "BatchMode=yes", "root@pve1", "--", "pct status 100; cat; exit 7"])
        .env("PATH", format!("{}:{}", doubles().display(), std::env::var("PATH").unwrap_or_default()))
        .env("PVE_DOUBLE_DIR", dir.join("pve"))
        .env("PVE_DOUBLE_NODE", "pve2")
        .stdin(std::fs::File::open(dir.join("pve/etc/pve/nodes/pve1/lxc/100.conf")).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "status: stopped\nhostname: x\nmemory: 512\n");
    let o = tool("pve1", &["ssh", "-o", "BatchMode=yes", "root@pve9", "true"]);
    assert_eq!(o.status.code(), Some(255));
    assert!(text(&o).contains("Could not resolve hostname pve9"), "{}", text(&o));
}
