//! Every instance of the host at once: `list`'s row per instance (version, colour, health and URL,
//! asked of the installer in its container) and `update --all` (one instance after another, each
//! health-gated, stopping at the first failure).

use std::process::{Command, ExitCode, Stdio};

use anyhow::Result;
use manifests::Exit;

use super::create::{on_path, pct_exec, CT_BIN};
use super::fail;
use super::pve::{self, Runner};
use super::registry::{Entry, Registry};
use crate::cli;
use crate::report::{note, say};

pub fn url(e: &Entry) -> String {
    match e.https_port {
        443 => format!("https://{}/", e.domain),
        p => format!("https://{}:{p}/", e.domain),
    }
}

/// The cluster as `list` sees it, asked once: this node and every container's node and status.
pub struct Cluster {
    local: String,
    vms: Option<String>,
}

impl Cluster {
    pub fn read(r: &Runner) -> Cluster {
        if !on_path("pvesh") {
            return Cluster { local: String::new(), vms: None };
        }
        Cluster { local: super::cluster::local_node(r), vms: super::cluster::resources(r, "vm").ok() }
    }
}

/// One instance as `list` shows it: the registry's record plus `instance`, `url`, `node` (where
/// the container is now), `container_status`, and `version`, `colour`, `healthy` from `status
/// --json` inside (null, null, false when the container is not running or does not answer).
pub fn row(r: &Runner, c: &Cluster, e: &Entry) -> serde_json::Value {
    let mut j = serde_json::to_value(e).unwrap_or_default();
    let guest = c.vms.as_deref().and_then(|o| super::cluster::parse_guest(o, e.ctid));
    let mut remote = None;
    let ct = if let Some(g) = &guest {
        j["node"] = g.node.clone().into();
        remote = (g.node != c.local).then(|| g.node.clone());
        g.status.clone()
    } else if c.vms.is_some() {
        "missing".into()
    } else if !on_path("pct") {
        "?".to_string()
    } else {
        match r.query(&["pct", "status", &e.ctid.to_string()]) {
            Ok(o) => pve::parse_status(&o).unwrap_or("unknown").to_string(),
            Err(_) => "missing".into(),
        }
    };
    j["ha"] = guest.and_then(|g| g.hastate).map(serde_json::Value::from).unwrap_or_default();
    let status = (ct == "running").then(|| inside_status(e, remote.as_deref())).flatten();
    let get = |k: &str| status.as_ref().map(|s| s[k].clone()).unwrap_or(serde_json::Value::Null);
    // An installer in the container from before the shared field names says `active_colour`.
    let colour = match get("colour") {
        serde_json::Value::Null => get("active_colour"),
        c => c,
    };
    j["instance"] = e.name.clone().into();
    j["url"] = url(e).into();
    j["container_status"] = ct.into();
    j["version"] = get("version");
    j["colour"] = colour;
    j["healthy"] = get("healthy").as_bool().unwrap_or(false).into();
    j
}

/// `status --json` of the installer in the container; it exits 10 when unhealthy and still
/// prints the status, so only the output counts.
fn inside_status(e: &Entry, node: Option<&str>) -> Option<serde_json::Value> {
    let a = super::cluster::at(node, &pct_exec(e.ctid, &[CT_BIN, "status", "--instance", &e.name, "--json"]));
    let o = Command::new(&a[0]).args(&a[1..]).stdin(Stdio::null()).stderr(Stdio::null()).output().ok()?;
    serde_json::from_slice(&o.stdout).ok()
}

/// `update --all` on the host: each instance of the registry in turn, routed into its container
/// like `update --instance NAME` (snapshot, blue-green, health gate), then `health` there. The
/// first failure stops the walk; what was updated and what is left is said.
pub fn update_all(u: &cli::Update, args: &[String]) -> Result<ExitCode> {
    if u.instance.is_some() {
        return Err(fail(Exit::Usage, "--all updates every instance: leave out --instance, or leave out --all"));
    }
    if !on_path("pveversion") || !on_path("pct") {
        return Err(fail(
            Exit::Usage,
            "--all is for the Proxmox host, where `vikunja-installer list` shows the instances; \
             inside a container run `vikunja-installer update` (with --instance NAME if there are several)",
        ));
    }
    let all = Registry::open(&u.root).all()?;
    if all.is_empty() {
        say!("No instances yet: vikunja-installer create makes one; nothing was updated.");
        return Ok(ExitCode::SUCCESS);
    }
    let base: Vec<String> = args.iter().filter(|a| *a != "--all").cloned().collect();
    let names = |es: &[Entry]| {
        if es.is_empty() {
            "none".to_string()
        } else {
            es.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
        }
    };
    for (i, e) in all.iter().enumerate() {
        say!("\n== update --all: {} of {}: instance {} (CT {})", i + 1, all.len(), e.name, e.ctid);
        let outcome = if e.state != "ready" {
            let why = format!("its container is {} (not ready); `vikunja-installer list` shows it", e.state);
            Err((why, Exit::Error.code()))
        } else {
            update_one(u, &base, e)
        };
        if let Err((what, code)) = outcome {
            note!(
                "vikunja-installer: update --all stopped at instance {} (CT {}): {what}.\n  \
                 updated: {}\n  not attempted: {}\n\
                 Fix {} (vikunja-installer status --instance {}), then run update --all again: the instances \
                 already updated have nothing left to do.",
                e.name,
                e.ctid,
                names(&all[..i]),
                names(&all[i + 1..]),
                e.name,
                e.name
            );
            // The failing instance's own code (11 rolled back, 10 unhealthy, 2 refused, …), so a
            // script can tell what happened as with `update --instance NAME`.
            return Ok(ExitCode::from(code));
        }
    }
    if u.dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    say!("\nupdate --all: every instance updated and healthy ({}).", names(&all));
    Ok(ExitCode::SUCCESS)
}

/// One instance's update and its health check afterwards; why it failed otherwise, with the exit
/// code of what failed (the update's, `health`'s, or the host's refusal).
fn update_one(u: &cli::Update, base: &[String], e: &Entry) -> Result<(), (String, u8)> {
    let mut args = base.to_vec();
    args.extend(["--instance".to_string(), e.name.clone()]);
    let cmd = cli::Command::Update(cli::Update {
        version: u.version.clone(),
        instance: Some(e.name.clone()),
        all: false,
        dry_run: u.dry_run,
        root: u.root.clone(),
        artifact: u.artifact.clone(),
        sha256: u.sha256.clone(),
        auto: false,
        clear_skip: false,
        schedule: None,
    });
    match super::manage::routed(&cmd, &args, &u.root, e, u.dry_run) {
        Ok(0) => {}
        Ok(code) => return Err((format!("its update failed (exit {code}, see above)"), code)),
        Err(x) => {
            let code = x.downcast_ref::<crate::error::Failed>().map_or(Exit::Error, |f| f.code);
            return Err((format!("{x:#}"), code.code()));
        }
    }
    if u.dry_run {
        return Ok(());
    }
    let node = super::cluster::remote_of(&Runner::new(true), e.ctid);
    let a = super::cluster::at(node.as_deref(), &pct_exec(e.ctid, &[CT_BIN, "health", "--instance", &e.name]));
    match Command::new(&a[0]).args(&a[1..]).stdin(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => {
            let code = s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(Exit::Error.code());
            Err((format!("it is not healthy after its update (`health` exit {code})"), code))
        }
        Err(x) => Err((format!("{}: {x}", pve::shell_line(&a)), Exit::Error.code())),
    }
}
