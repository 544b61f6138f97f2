//! Proxmox clusters, through the cluster's own means (shared/reference: tests/pve-doubles/
//! CLUSTER.md): which node this is (`pvesh get /cluster/status`), where a container is now and
//! whether HA manages it, which node has room (`pvesh get /cluster/resources`), and running a
//! node-local tool on another node the way Proxmox's own tools do, `ssh -o BatchMode=yes
//! root@NODE`. pvesh itself is cluster-wide: it addresses a node by its API path.

use super::pve::{shell_line, strings, Runner};

/// A node as `/cluster/resources --type node` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub online: bool,
    /// Bytes of memory not in use (maxmem - mem).
    pub free_mem: u64,
}

/// A container as `/cluster/resources --type vm` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Guest {
    pub node: String,
    pub status: String,
    /// The HA state when HA manages it (`hastate`), else None.
    pub hastate: Option<String>,
}

fn json(out: &str) -> Option<Vec<serde_json::Value>> {
    serde_json::from_str::<serde_json::Value>(out).ok()?.as_array().cloned()
}

fn num(v: &serde_json::Value) -> u64 {
    v.as_u64().or_else(|| v.as_f64().map(|f| f as u64)).unwrap_or(0)
}

/// `/cluster/status`: the name of the entry of type node with `local` 1 (true in some versions).
pub fn parse_local_node(out: &str) -> Option<String> {
    json(out)?
        .iter()
        .find(|e| e["type"] == "node" && (e["local"] == 1 || e["local"] == true))
        .and_then(|e| e["name"].as_str().map(str::to_string))
}

/// `/cluster/resources --type node`.
pub fn parse_nodes(out: &str) -> Option<Vec<Node>> {
    Some(
        json(out)?
            .iter()
            .filter(|e| e["type"] == "node")
            .filter_map(|e| {
                Some(Node {
                    name: e["node"].as_str()?.to_string(),
                    online: e["status"] == "online",
                    free_mem: num(&e["maxmem"]).saturating_sub(num(&e["mem"])),
                })
            })
            .collect(),
    )
}

/// `/cluster/resources --type storage`: the free bytes (maxdisk - disk) of storage `name` on each
/// node where it is available, and whether it is shared.
pub fn parse_storage(out: &str, name: &str) -> Option<Vec<(String, u64, bool)>> {
    Some(
        json(out)?
            .iter()
            .filter(|e| e["type"] == "storage" && e["storage"] == name && e["status"] == "available")
            .filter_map(|e| {
                let node = e["node"].as_str()?.to_string();
                Some((node, num(&e["maxdisk"]).saturating_sub(num(&e["disk"])), e["shared"] == 1))
            })
            .collect(),
    )
}

/// `/cluster/resources --type vm`: container `vmid`, wherever it is.
pub fn parse_guest(out: &str, vmid: u32) -> Option<Guest> {
    let all = json(out)?;
    let e = all.iter().find(|e| e["vmid"].as_u64() == Some(u64::from(vmid)) && e["type"] == "lxc")?;
    Some(Guest {
        node: e["node"].as_str()?.to_string(),
        status: e["status"].as_str().unwrap_or("unknown").to_string(),
        hastate: e["hastate"].as_str().map(str::to_string),
    })
}

/// `--node auto`: of the online nodes with `need_mem` bytes of memory and `need_disk` bytes on
/// the storage free, the one with the most free memory, then the most free storage.
pub fn pick(nodes: &[Node], storage: &[(String, u64, bool)], need_mem: u64, need_disk: u64) -> Option<String> {
    nodes
        .iter()
        .filter(|n| n.online && n.free_mem >= need_mem)
        .filter_map(|n| {
            let disk = storage.iter().find(|(s, _, _)| *s == n.name).map(|s| s.1)?;
            (disk >= need_disk).then_some((n.free_mem, disk, n.name.clone()))
        })
        .max_by_key(|(m, d, _)| (*m, *d))
        .map(|(_, _, n)| n)
}

/// This node's name, as the cluster knows it; the kernel's host name when the API does not say
/// (the node name is the short host name on Proxmox).
pub fn local_node(r: &Runner) -> String {
    r.query(&["pvesh", "get", "/cluster/status", "--output-format", "json"])
        .ok()
        .and_then(|o| parse_local_node(&o))
        .unwrap_or_else(|| {
            let h = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            h.trim().split('.').next().unwrap_or_default().to_string()
        })
}

pub fn resources(r: &Runner, kind: &str) -> Result<String, super::pve::PveError> {
    r.query(&["pvesh", "get", "/cluster/resources", "--type", kind, "--output-format", "json"])
}

/// Where container `vmid` is now; None when the cluster does not list it.
pub fn locate(r: &Runner, vmid: u32) -> Option<Guest> {
    resources(r, "vm").ok().and_then(|o| parse_guest(&o, vmid))
}

/// Where container `vmid` is now: its node and, when that is not this node, the node to reach
/// through ssh. None when the cluster does not list it (then it is looked for here, as before).
pub fn place(r: &Runner, vmid: u32) -> Option<(Guest, Option<String>)> {
    let g = locate(r, vmid)?;
    let remote = (g.node != local_node(r)).then(|| g.node.clone());
    Some((g, remote))
}

/// The node to reach container `vmid` through (None: here), for a runner.
pub fn remote_of(r: &Runner, vmid: u32) -> Option<String> {
    place(r, vmid).and_then(|(_, remote)| remote)
}

/// A command of a node-local tool (pct, pvesm, pveam, …) to run on `node`: as it is for this
/// node (None), through `ssh -o BatchMode=yes root@NODE` for another, as Proxmox's tools reach
/// other nodes (a password prompt would hang, so batch mode fails instead).
pub fn at(node: Option<&str>, args: &[String]) -> Vec<String> {
    match node {
        None => args.to_vec(),
        Some(n) => {
            let mut a = strings(&["ssh", "-o", "BatchMode=yes", &format!("root@{n}"), "--"]);
            a.push(shell_line(args));
            a
        }
    }
}

/// The `pct create` arguments as the API call that creates the same container on `node`:
/// `pvesh create /nodes/NODE/lxc --vmid ID --ostemplate T …`. The API takes the SSH keys
/// themselves where pct's command line takes a file (`ssh_keys` is that file's text).
pub fn api_create(pct_create: &[String], node: &str, ssh_keys: Option<&str>) -> Vec<String> {
    let mut a = strings(&["pvesh", "create", &format!("/nodes/{node}/lxc"), "--vmid"]);
    a.push(pct_create[2].clone());
    a.push("--ostemplate".into());
    a.push(pct_create[3].clone());
    let mut rest = pct_create[4..].iter();
    while let Some(k) = rest.next() {
        let v = rest.next().cloned().unwrap_or_default();
        a.push(k.clone());
        a.push(if k == "--ssh-public-keys" { ssh_keys.unwrap_or_default().to_string() } else { v });
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_answers_as_pve_manager_gives_them() {
        let st = r#"[{"type":"cluster","id":"cluster","name":"c","nodes":3,"quorate":1,"version":3},
            {"type":"node","id":"node/a","name":"a","nodeid":1,"local":0,"online":1},
            {"type":"node","id":"node/b","name":"b","nodeid":2,"local":1,"online":1}]"#;
        assert_eq!(parse_local_node(st).as_deref(), Some("b"));
        assert_eq!(parse_local_node("[]"), None);
        let nodes = r#"[{"id":"node/a","type":"node","node":"a","status":"online","maxmem":8000,"mem":1000},
            {"id":"node/b","type":"node","node":"b","status":"online","maxmem":8000,"mem":500},
            {"id":"node/c","type":"node","node":"c","status":"offline"}]"#;
        let n = parse_nodes(nodes).unwrap();
        assert_eq!((n[1].free_mem, n[2].online), (7500, false));
        let st = r#"[{"id":"storage/a/local","type":"storage","storage":"local","node":"a","status":"available","maxdisk":100,"disk":10,"shared":0},
            {"id":"storage/b/local","type":"storage","storage":"local","node":"b","status":"available","maxdisk":100,"disk":95,"shared":0},
            {"id":"storage/c/local","type":"storage","storage":"local","node":"c","status":"available","maxdisk":100,"disk":0,"shared":0}]"#;
        let s = parse_storage(st, "local").unwrap();
        assert_eq!(s[0], ("a".to_string(), 90, false));
        // b has the most memory but too little disk; c is offline: a.
        assert_eq!(pick(&n, &s, 1000, 20).as_deref(), Some("a"));
        // Enough disk everywhere online: the most free memory wins.
        assert_eq!(pick(&n, &s, 1000, 5).as_deref(), Some("b"));
        assert_eq!(pick(&n, &s, 9000, 5), None, "no node has the memory");
        let vms = r#"[{"id":"lxc/101","type":"lxc","vmid":101,"node":"b","status":"running","hastate":"started"},
            {"id":"qemu/102","type":"qemu","vmid":102,"node":"a","status":"running"}]"#;
        let g = parse_guest(vms, 101).unwrap();
        assert_eq!((g.node.as_str(), g.hastate.as_deref()), ("b", Some("started")));
        assert_eq!(parse_guest(vms, 102), None, "a VM is not a container");
        let a = at(Some("b"), &strings(&["pct", "exec", "101", "--", "sh", "-c", "echo 'x y'"]));
        assert_eq!(a[..5], strings(&["ssh", "-o", "BatchMode=yes", "root@b", "--"]));
        assert_eq!(a[5], "pct exec 101 -- sh -c 'echo '\\''x y'\\'''");
        let c =
            strings(&["pct", "create", "120", "local:vztmpl/t.tar.zst", "--hostname", "h", "--ssh-public-keys", "/k"]);
        assert_eq!(
            api_create(&c, "b", Some("ssh-ed25519 AAA")),
            strings(&[
                "pvesh",
                "create",
                "/nodes/b/lxc",
                "--vmid",
                "120",
                "--ostemplate",
                "local:vztmpl/t.tar.zst",
                "--hostname",
                "h",
                "--ssh-public-keys",
                "ssh-ed25519 AAA"
            ])
        );
    }
}
