//! Calling Proxmox's tools (pct, pveam, pvesm, pvesh, pveversion) and reading their output, as
//! fixed by shared/reference/proxmox-cli.md. Queries run even under `--dry-run` (they change
//! nothing and the plan depends on them); changes are only printed then.

use crate::report::say;
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// A command line as a user would type it (quoted where the shell needs it).
pub fn shell_line(args: &[String]) -> String {
    args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
}

pub fn shell_quote(a: &str) -> String {
    if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=,+@%".contains(&b)) {
        a.to_string()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PveError {
    #[error("could not run `{cmd}`: {source}; is this a Proxmox VE host with {program} installed?")]
    Spawn { cmd: String, program: String, source: std::io::Error },
    #[error("`{cmd}` failed (exit {code}): {detail}")]
    Failed { cmd: String, code: i32, detail: String },
    #[error("cannot read {path} to push it to node {node} (`{cmd}`): {source}")]
    Read { cmd: String, path: String, node: String, source: std::io::Error },
    #[error("`{cmd}` printed something unexpected ({what}): {output:?}; please report this with `pveversion -v`")]
    Parse { cmd: String, what: String, output: String },
}

impl PveError {
    /// The tool's own message (stderr), for recognising documented failures.
    pub fn detail(&self) -> &str {
        match self {
            PveError::Failed { detail, .. } => detail,
            _ => "",
        }
    }
}

/// Runs commands, or under `--dry-run` prints the ones that would change something.
pub struct Runner {
    pub dry_run: bool,
    /// Changes made so far, in order: what a failure report lists.
    pub done: Vec<String>,
    /// Another cluster node that node-local tools run on (through ssh); None: this one.
    pub node: Option<String>,
}

impl Runner {
    pub fn new(dry_run: bool) -> Runner {
        Runner { dry_run, done: Vec::new(), node: None }
    }

    /// A runner whose node-local commands run on `node` (None: here).
    pub fn on(dry_run: bool, node: Option<String>) -> Runner {
        Runner { dry_run, done: Vec::new(), node }
    }

    /// The command as it runs: on another node through ssh, except pvesh and ha-manager, which
    /// act on the whole cluster from any node.
    pub fn argv(&self, args: &[String]) -> Vec<String> {
        match self.node.as_deref() {
            Some(node) if !matches!(args[0].as_str(), "pvesh" | "ha-manager") => super::cluster::at(Some(node), args),
            _ => args.to_vec(),
        }
    }

    /// `argv`, and for `pct push` of a file here to another node the file's bytes, which pct
    /// there reads from stdin (it opens the path it is given, /dev/stdin too). A file that cannot
    /// be read is an error here, never an empty push.
    fn wire(&self, args: &[String]) -> Result<(Vec<String>, Option<Vec<u8>>), PveError> {
        if self.node.is_some() && args.len() > 4 && args[0] == "pct" && args[1] == "push" && !self.dry_run {
            let data = std::fs::read(&args[3]).map_err(|source| PveError::Read {
                cmd: shell_line(args),
                path: args[3].clone(),
                node: self.node.clone().unwrap_or_default(),
                source,
            })?;
            let mut a = args.to_vec();
            a[3] = "/dev/stdin".into();
            return Ok((self.argv(&a), Some(data)));
        }
        Ok((self.argv(args), None))
    }

    fn exec(args: &[String], stdin: Option<&[u8]>) -> Result<Output, PveError> {
        let cmd = shell_line(args);
        let mut c = Command::new(&args[0]);
        c.args(&args[1..]).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child =
            c.spawn().map_err(|source| PveError::Spawn { cmd: cmd.clone(), program: args[0].clone(), source })?;
        if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
            let _ = w.write_all(data);
        }
        let o = child.wait_with_output().map_err(|source| PveError::Spawn {
            cmd: cmd.clone(),
            program: args[0].clone(),
            source,
        })?;
        if !o.status.success() {
            let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
            let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
            let detail = if err.is_empty() { out } else { err };
            return Err(PveError::Failed { cmd, code: o.status.code().unwrap_or(-1), detail });
        }
        Ok(o)
    }

    /// A read-only command: runs under `--dry-run` too.
    pub fn query(&self, args: &[&str]) -> Result<String, PveError> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Runner::exec(&self.argv(&args), None).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// A command that changes something; its output is captured. Under `--dry-run` it is printed.
    pub fn change(&mut self, args: &[String]) -> Result<String, PveError> {
        let (args, stdin) = self.wire(args)?;
        let args = &args[..];
        let line = shell_line(args);
        if self.dry_run {
            say!("  {line}");
            return Ok(String::new());
        }
        let o = Runner::exec(args, stdin.as_deref())?;
        self.done.push(line);
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// A change whose exit code means nothing (`pveam update` exits 0 even when it failed):
    /// stdout and stderr for the caller to judge. Under `--dry-run` it is printed, and both are empty.
    pub fn change_judged(&mut self, args: &[String]) -> Result<(String, String), PveError> {
        let args = &self.argv(args)[..];
        let line = shell_line(args);
        if self.dry_run {
            say!("  {line}");
            return Ok((String::new(), String::new()));
        }
        let o = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|source| PveError::Spawn { cmd: line.clone(), program: args[0].clone(), source })?;
        self.done.push(line);
        Ok((String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned()))
    }

    /// A change whose output the user should see as it happens (the deployment engine's progress).
    pub fn change_streamed(&mut self, args: &[String]) -> Result<(), PveError> {
        let args = &self.argv(args)[..];
        let line = shell_line(args);
        if self.dry_run {
            say!("  {line}");
            return Ok(());
        }
        let cmd = line.clone();
        let status = Command::new(&args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .status()
            .map_err(|source| PveError::Spawn { cmd: cmd.clone(), program: args[0].clone(), source })?;
        self.done.push(line);
        if !status.success() {
            return Err(PveError::Failed {
                cmd,
                code: status.code().unwrap_or(-1),
                detail: "see its output above".into(),
            });
        }
        Ok(())
    }
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// `pveversion`: `pve-manager/8.4.11/14a32011146091ed (running kernel: …)` → "8.4.11".
pub fn parse_pveversion(out: &str) -> Option<String> {
    let rest = out.trim().strip_prefix("pve-manager/")?;
    let v = rest.split('/').next()?;
    v.split('.').next()?.parse::<u32>().ok()?;
    Some(v.to_string())
}

/// `pveversion -v`: whether its `pve-container: X.Y.Z` line (older ones read like `4.4-6`) is
/// 5.0.9 or newer, the first with `pct exec --keep-env`. No such line reads as older.
pub fn has_keep_env(verbose: &str) -> bool {
    let Some(v) = verbose.lines().find_map(|l| l.trim().strip_prefix("pve-container:")) else { return false };
    let n: Vec<u64> = v.trim().split(['.', '-']).map_while(|p| p.parse().ok()).collect();
    n.as_slice() >= [5, 0, 9].as_slice()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Storage {
    pub name: String,
    pub kind: String,
    pub active: bool,
    pub avail_kib: u64,
}

/// `pvesm status`: header, then name, type, status, total, used, available (KiB), %.
/// Columns 1, 3 and 6, as community-scripts reads them.
pub fn parse_pvesm_status(out: &str) -> Vec<Storage> {
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 7 {
                return None;
            }
            Some(Storage {
                name: f[0].into(),
                kind: f[1].into(),
                active: f[2] == "active",
                avail_kib: f[5].parse().unwrap_or(0),
            })
        })
        .collect()
}

/// `pveam list STORAGE`: header `NAME SIZE`, rows `local:vztmpl/<file>  <n>MB`; the file names.
pub fn parse_pveam_list(out: &str) -> Vec<String> {
    out.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|v| v.split_once(":vztmpl/").map(|(_, f)| f.to_string()))
        .collect()
}

/// This node's architecture as Proxmox names it in templates (`amd64`, `arm64`).
pub fn node_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// Whether a template file is built for `arch`, read from its name (`…_amd64.tar.zst`), for lists
/// without an architecture column.
fn named_for(file: &str, arch: &str) -> bool {
    file.contains(&format!("_{arch}."))
}

pub fn for_arch(files: Vec<String>, arch: &str) -> Vec<String> {
    files.into_iter().filter(|f| named_for(f, arch)).collect()
}

/// `pveam available`: `section template [arch]`; the third column exists since pve-manager
/// f6cfb6bd (2026-08) and decides when present, the file name otherwise. The templates for `arch`.
pub fn parse_pveam_available(out: &str, arch: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let t = *f.get(1)?;
            match f.get(2) {
                Some(a) => (*a == arch).then_some(t),
                None => named_for(t, arch).then_some(t),
            }
        })
        .map(str::to_string)
        .collect()
}

/// The newest template matching `want`: an exact file name, a prefix like "debian-12" matched as
/// `debian-12-standard_*`, or a family like "debian" matched as `debian-<N>-standard_*` (so the
/// newest Debian offered, the current stable). Version order by the numbers in the name.
pub fn pick_template(candidates: &[String], want: &str) -> Option<String> {
    if candidates.iter().any(|c| c == want) {
        return Some(want.to_string());
    }
    let matches = |c: &str| {
        let Some(rest) = c.strip_prefix(want) else { return false };
        if rest.starts_with("-standard_") {
            return true;
        }
        rest.strip_prefix('-')
            .and_then(|r| r.split_once("-standard_"))
            .is_some_and(|(v, _)| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut m: Vec<&String> = candidates.iter().filter(|c| matches(c)).collect();
    m.sort_by_key(|c| numbers(c));
    m.last().map(|s| s.to_string())
}

/// Whether `want` names a family ("debian") rather than one release or file: then a newer
/// offered template beats the one already on the storage.
pub fn is_family(want: &str) -> bool {
    !want.bytes().any(|b| b.is_ascii_digit())
}

/// `pvesh get /nodes/NODE/network --type any_bridge --output-format json`: the `iface` names.
pub fn parse_bridges(out: &str) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(out).ok()?;
    Some(v.as_array()?.iter().filter_map(|i| i["iface"].as_str().map(str::to_string)).collect())
}

fn numbers(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).filter_map(|p| p.parse().ok()).collect()
}

/// `pvesh get /cluster/nextid`: the integer on one line.
pub fn parse_nextid(out: &str) -> Option<u32> {
    out.trim().trim_matches('"').parse().ok()
}

/// `pct status ID`: exactly `status: running|stopped`.
pub fn parse_status(out: &str) -> Option<&str> {
    out.trim().strip_prefix("status: ")
}

/// `ip -4 -o addr show dev eth0`: the first `inet A/len`.
pub fn parse_inet(out: &str) -> Option<String> {
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "inet" {
            return words.next().and_then(|a| a.split('/').next()).map(str::to_string);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_as_the_contract_describes_them() {
        let v = "pve-manager/8.4.11/14a32011146091ed (running kernel: 6.8.12-13-pve)\n";
        assert_eq!(parse_pveversion(v).as_deref(), Some("8.4.11"));
        assert_eq!(parse_pveversion("bash: pveversion: not found"), None);
        let verbose = |c: &str| format!("proxmox-ve: 8.4.0 (running kernel: 6.8.12-13-pve)\npve-container: {c}\n");
        for (c, has) in
            [("5.0.9", true), ("5.3.0", true), ("6.1.10", true), ("5.0.10", true), ("5.0.8", false), ("4.4-6", false)]
        {
            assert_eq!(has_keep_env(&verbose(c)), has, "{c}");
        }
        assert!(!has_keep_env("pve-manager: 8.4.11\n"), "unknown reads as older");
        let st = "Name             Type     Status     Total (KiB)      Used (KiB) Available (KiB)        %\n\
                  local             dir     active        98497780        12345678        81085672   12.53%\n\
                  local-lvm     lvmthin     active       365760512        32425139       333335373    8.87%\n\
                  nas               nfs   disabled               0               0               0      N/A\n";
        let s = parse_pvesm_status(st);
        assert_eq!(s.len(), 3);
        assert_eq!((s[1].name.as_str(), s[1].active, s[1].avail_kib), ("local-lvm", true, 333335373));
        assert!(!s[2].active);
        let l = "NAME                                                         SIZE\n\
                 local:vztmpl/debian-12-standard_12.7-1_amd64.tar.zst         120.29MB\n";
        assert_eq!(parse_pveam_list(l), ["debian-12-standard_12.7-1_amd64.tar.zst"]);
        let a = "system          debian-12-standard_12.2-1_amd64.tar.zst\n\
                 system          debian-12-standard_12.12-1_amd64.tar.zst                     amd64\n\
                 system          debian-13-standard_13.1-2_amd64.tar.zst                      amd64\n\
                 system          debian-14-standard_14.0-1_arm64.tar.zst                      arm64\n\
                 system          debian-15-standard_15.0-1_arm64.tar.zst\n\
                 system          debian-12-turnkey-core_18.0-1_amd64.tar.gz                   amd64\n";
        let av = parse_pveam_available(a, "amd64");
        assert_eq!(av.len(), 4, "{av:?}");
        assert_eq!(pick_template(&av, "debian-12").as_deref(), Some("debian-12-standard_12.12-1_amd64.tar.zst"));
        assert_eq!(pick_template(&av, "debian-11"), None);
        // The family: the newest Debian of this architecture, never another architecture's.
        assert_eq!(pick_template(&av, "debian").as_deref(), Some("debian-13-standard_13.1-2_amd64.tar.zst"));
        let arm = parse_pveam_available(a, "arm64");
        assert_eq!(pick_template(&arm, "debian").as_deref(), Some("debian-15-standard_15.0-1_arm64.tar.zst"));
        assert!(is_family("debian") && !is_family("debian-13"));
        let b = r#"[{"iface":"vmbr0","type":"bridge","active":1},{"iface":"vmbr1","type":"OVSBridge"}]"#;
        assert_eq!(parse_bridges(b).unwrap(), ["vmbr0", "vmbr1"]);
        assert_eq!(parse_bridges("no json"), None);
        assert_eq!(parse_nextid("105\n"), Some(105));
        assert_eq!(parse_status("status: running\n"), Some("running"));
        let ip = "2: eth0    inet 192.168.1.50/24 brd 192.168.1.255 scope global dynamic eth0\\ valid_lft 86000sec";
        assert_eq!(parse_inet(ip).as_deref(), Some("192.168.1.50"));
        assert_eq!(shell_line(&strings(&["pct", "set", "1", "--tags", "a;b", "x y"])), "pct set 1 --tags 'a;b' 'x y'");
    }

    #[test]
    fn on_another_node_node_local_tools_go_through_ssh_and_cluster_wide_ones_do_not() {
        let mut r = Runner::on(false, Some("pve2".into()));
        let pvesh = strings(&["pvesh", "get", "/cluster/nextid"]);
        assert_eq!(r.argv(&pvesh), pvesh);
        let ha = strings(&["ha-manager", "add", "ct:100"]);
        assert_eq!(r.argv(&ha), ha);
        let st = r.argv(&strings(&["pct", "status", "100"]));
        assert_eq!(st, strings(&["ssh", "-o", "BatchMode=yes", "root@pve2", "--", "pct status 100"]));
        assert_eq!(Runner::new(false).argv(&strings(&["pct", "status", "100"])), strings(&["pct", "status", "100"]));
        // A push reads the file here and sends it on stdin; one that cannot be read is an error,
        // never an empty file there.
        let me = std::env::current_exe().unwrap().display().to_string();
        let (a, data) = r.wire(&strings(&["pct", "push", "100", &me, "/x", "--perms", "0600"])).unwrap();
        assert_eq!(a[5], "pct push 100 /dev/stdin /x --perms 0600");
        assert!(data.is_some_and(|d| !d.is_empty()));
        let e = r.change(&strings(&["pct", "push", "100", "/nonexistent/file", "/x", "--perms", "0600"])).unwrap_err();
        assert!(e.to_string().contains("cannot read /nonexistent/file to push it to node pve2"), "{e}");
        assert!(r.done.is_empty());
    }
}
