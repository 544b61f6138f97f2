//! The host side of instances that exist: `list`, `destroy`, and running `update`, `rollback`,
//! `health`, `status`, `backup` and `restore` inside the right container (`pct exec`), with a
//! `pct snapshot` before an update and backups copied out to the host.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{anyhow, Context, Result};
use manifests::Exit;

use super::create::{engine_env, on_path, pct_exec, CT_BIN};
use super::fail;
use super::pve::{self, strings, Runner};
use super::registry::{Entry, Registry};
use crate::cli;
use crate::report::{note, say};

/// Where a routed command runs: (instance, host root, dry run). None: not a command we route.
fn target(cmd: &cli::Command) -> Option<(Option<&str>, &Path, bool)> {
    Some(match cmd {
        // `update --all` walks the registry itself (super::fleet).
        cli::Command::Update(u) if u.all => return None,
        cli::Command::Update(u) => (u.instance.as_deref(), &u.root, u.dry_run),
        cli::Command::Rollback(r) => (r.instance.as_deref(), &r.root, r.dry_run),
        cli::Command::Restart(r) => (r.instance.as_deref(), &r.root, r.dry_run),
        cli::Command::Health(h) => (h.instance.as_deref(), &h.root, false),
        cli::Command::Status(s) => (s.instance.as_deref(), &s.root, false),
        // A subcommand's own --instance (`backup schedule --instance NAME`) routes it too.
        cli::Command::Backup(b) => match &b.cmd {
            Some(cli::BackupCommand::Schedule(x)) => (x.instance.as_deref(), &x.root, false),
            Some(cli::BackupCommand::List(x)) => (x.instance.as_deref(), &x.root, false),
            Some(cli::BackupCommand::Verify(_)) => return None,
            None => (b.instance.as_deref(), &b.root, false),
        },
        cli::Command::Restore(r) => (r.instance.as_deref(), &r.root, false),
        cli::Command::Logs(x) => (x.instance.as_deref(), &x.root, false),
        cli::Command::Stop(x) => (x.instance.as_deref(), &x.root, false),
        cli::Command::Start(x) => (x.instance.as_deref(), &x.root, false),
        cli::Command::Metrics(x) => (x.instance.as_deref(), &x.root, false),
        cli::Command::Cert(cli::Cert { cmd: cli::CertCommand::Renew(x) }) => (x.instance.as_deref(), &x.root, false),
        _ => return None,
    })
}

/// On a Proxmox host, `--instance NAME` of an instance in the registry runs inside its container.
/// Anywhere else (inside the container, a plain Debian machine) the command runs here as before.
pub fn route(cmd: &cli::Command, args: &[String]) -> Option<Result<ExitCode>> {
    let (instance, root, dry_run) = target(cmd)?;
    let name = instance?;
    if !on_path("pveversion") || !on_path("pct") {
        return None;
    }
    let reg = Registry::open(root);
    let entry = match reg.get(name) {
        Ok(Some(mut e)) => {
            // In a cluster the container may have moved (a migration, HA): the record follows it.
            if let Some((g, _)) = super::cluster::place(&Runner::new(true), e.ctid) {
                if g.node != e.node && !dry_run {
                    e.node = g.node;
                    let _ = reg.save_entry(&e);
                }
            }
            e
        }
        Ok(None) if crate::instance::layout::installed_instances(root).iter().any(|n| n == name) => return None,
        Ok(None) => {
            return Some(Err(super::fail(
                manifests::Exit::Usage,
                format!("no instance named {name}; `vikunja-installer list` shows them"),
            )))
        }
        Err(e) => return Some(Err(anyhow!(e))),
    };
    Some(routed(cmd, args, root, &entry, dry_run).map(ExitCode::from))
}

/// The arguments for the installer inside: the host's `--root` and `--dry-run` stay outside.
fn inner_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--root" {
            it.next();
        } else if a.starts_with("--root=") || a == "--dry-run" {
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// Runs `cmd` inside the container of `e`; the command's exit code.
pub(super) fn routed(cmd: &cli::Command, args: &[String], root: &Path, e: &Entry, dry_run: bool) -> Result<u8> {
    let reg = Registry::open(root);
    let mut r = Runner::on(dry_run, super::cluster::remote_of(&Runner::new(true), e.ctid));
    let id = e.ctid;
    let mut inner = inner_args(args);
    // The version floor is checked here too, so a refused version takes no snapshot either.
    if let cli::Command::Update(cli::Update { version: Some(v), .. }) = cmd {
        crate::instance::config::supported_vikunja(v).map_err(|why| {
            fail(Exit::Usage, format!("cannot update to Vikunja {v}: this installer needs {why}; nothing was changed"))
        })?;
    }
    if dry_run {
        say!("Dry run: these commands would run, in order:");
    }
    sync_installer(&mut r, id)?;
    match cmd {
        // An automatic update takes its own backup inside, and mostly finds nothing to do.
        cli::Command::Update(u) if !u.auto => snapshot_before_update(&mut r, e)?,
        cli::Command::Restore(rs) if rs.file.is_file() => {
            // A backup on the host goes into the container's backups/ first.
            let name = rs
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .context("restore: the backup file has no name")?;
            let dst = ct_layout(e).backups_dir().join(&name).display().to_string();
            let mut a = strings(&["pct", "push", &id.to_string()]);
            a.push(rs.file.display().to_string());
            a.extend(strings(&[&dst, "--perms", "0600"]));
            r.change(&a)?;
            let host_path = rs.file.display().to_string();
            for a in inner.iter_mut() {
                if *a == host_path {
                    *a = dst.clone();
                }
            }
        }
        _ => {}
    }
    // A schedule's passphrase file is read at every run, so it must be a file in the container
    // (pushed files are removed after the command).
    let scheduling = matches!(cmd, cli::Command::Backup(b) if matches!(b.cmd, Some(cli::BackupCommand::Schedule(_))));
    let secrets = if scheduling {
        Vec::new()
    } else {
        push_secret_files(&mut r, id, &mut inner, matches!(cmd, cli::Command::Backup(_) | cli::Command::Restore(_)))?
    };
    let mut c = engine_env(e);
    c.push(CT_BIN.into());
    c.extend(inner);
    let refs: Vec<&str> = c.iter().map(String::as_str).collect();
    let line = r.argv(&pct_exec(id, &refs));
    if dry_run {
        say!("  {}", pve::shell_line(&line));
        if matches!(cmd, cli::Command::Backup(b) if b.cmd.is_none()) {
            say!("  {}", pve::shell_line(&r.argv(&copy_out_command(e))));
        }
        say!("Dry run: nothing was changed.");
        return Ok(0);
    }
    // The command's own exit code passes through pct exec (10 unhealthy, 11 rolled back, …).
    let status =
        Command::new(&line[0]).args(&line[1..]).status().with_context(|| format!("run {}", pve::shell_line(&line)));
    for f in &secrets {
        let _ = r.change(&pct_exec(id, &["rm", "-f", f]));
    }
    let status = status?;
    let code = status.code().unwrap_or(1);
    if code == 0 {
        if let cli::Command::Backup(b) = cmd {
            if b.cmd.is_none() {
                let dir = copy_out_backups(&r, e, &reg.backups_of(&e.name))?;
                say!("Backups of instance {} copied to the host: {}", e.name, dir.display());
            }
        }
    }
    Ok(u8::try_from(code).unwrap_or(1))
}

/// Passphrase and identity files named on the host go into the container (0600, removed after
/// the command) and the arguments are rewritten to their paths there; a passphrase given in
/// `VIKUNJA_BACKUP_PASSPHRASE` travels the same way, since `pct exec --keep-env 0` drops the
/// environment and a command line would show it to every user.
fn push_secret_files(r: &mut Runner, id: u32, inner: &mut Vec<String>, backup_like: bool) -> Result<Vec<String>> {
    let mut pushed = Vec::new();
    let dir = format!("{}/files", super::create::CT_ETC);
    let mut push_one = |r: &mut Runner, src: &Path, n: usize| -> Result<String> {
        let dst = format!("{dir}/secret-{}-{n}", std::process::id());
        let mut a = strings(&["pct", "push", &id.to_string()]);
        a.push(src.display().to_string());
        a.extend(strings(&[&dst, "--perms", "0600"]));
        r.change(&a)?;
        pushed.push(dst.clone());
        Ok(dst)
    };
    let mut n = 0;
    for i in 1..inner.len() {
        if matches!(inner[i - 1].as_str(), "--passphrase-file" | "--identity") && Path::new(&inner[i]).is_file() {
            n += 1;
            inner[i] = push_one(r, &PathBuf::from(&inner[i]), n)?;
        }
    }
    let has_file = inner.iter().any(|a| a == "--passphrase-file");
    if let (true, false, Ok(pass)) = (backup_like, has_file, std::env::var("VIKUNJA_BACKUP_PASSPHRASE")) {
        let tmp = std::env::temp_dir().join(format!(".vikunja-pass-{}", std::process::id()));
        manifests::atomic::write_atomic(&tmp, format!("{pass}\n").as_bytes(), 0o600)?;
        let dst = push_one(r, &tmp, n + 1);
        let _ = std::fs::remove_file(&tmp);
        inner.extend(["--passphrase-file".to_string(), dst?]);
    }
    Ok(pushed)
}

/// The installer inside the container follows the host's: one pushed by an older host installer
/// is replaced (in its versioned layout, switched atomically) before the command runs.
fn sync_installer(r: &mut Runner, id: u32) -> Result<()> {
    let host = manifests::build_info::version();
    let line = pct_exec(id, &[CT_BIN, "--version"]);
    let args: Vec<&str> = line.iter().map(String::as_str).collect();
    let inside = r.query(&args).ok();
    let inside_version = inside.as_deref().and_then(|o| o.split_whitespace().nth(1)).unwrap_or("");
    if inside_version == host {
        return Ok(());
    }
    note!(
        "The installer in CT {id} is {}; bringing it to the host's {host}",
        if inside_version.is_empty() { "missing" } else { inside_version }
    );
    super::create::push_installer(r, id)
}

/// A Proxmox snapshot of the whole container before an update, when its storage can take one.
fn snapshot_before_update(r: &mut Runner, e: &Entry) -> Result<()> {
    let name = format!("vikunja-pre-update-{}", manifests::time::now_unix());
    let a =
        strings(&["pct", "snapshot", &e.ctid.to_string(), &name, "--description", "before vikunja-installer update"]);
    match r.change(&a) {
        Ok(_) => {
            if !r.dry_run {
                say!("Snapshot {name} of CT {} taken (pct rollback {} {name} goes back to it).", e.ctid, e.ctid);
            }
            Ok(())
        }
        Err(x) if x.detail().contains("snapshot feature is not available") => {
            say!(
                "The storage of CT {} ({}) cannot take snapshots (pct: snapshot feature is not available): carrying on; \
                 the update backs up the database before it changes anything.",
                e.ctid, e.storage
            );
            Ok(())
        }
        Err(x) => Err(fail(
            Exit::Error,
            format!("{x}; nothing was updated. Fix the snapshot problem and run the update again"),
        )),
    }
}

fn copy_out_command(e: &Entry) -> Vec<String> {
    pct_exec(e.ctid, &["tar", "-C", &ct_layout(e).base.display().to_string(), "-cf", "-", "backups"])
}

/// The instance's paths as the installer inside its container has them (root `/`).
fn ct_layout(e: &Entry) -> crate::instance::layout::Layout {
    crate::instance::layout::Layout::new(std::path::Path::new("/"), &e.name)
}

/// Copies the instance's backups/ out of the container (a tar stream through `pct exec`, and
/// ssh when the container is on another node) to this node.
fn copy_out_backups(r: &Runner, e: &Entry, dest: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dest).with_context(|| format!("create {}", dest.display()))?;
    let a = r.argv(&copy_out_command(e));
    let o = Command::new(&a[0])
        .args(&a[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", pve::shell_line(&a)))?;
    if !o.status.success() {
        return Err(anyhow!(
            "copying the backups out of CT {} failed ({}): {}",
            e.ctid,
            pve::shell_line(&a),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    let mut ar = tar::Archive::new(std::io::Cursor::new(o.stdout));
    for entry in ar.entries()? {
        let mut entry = entry?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let p = entry.path()?.into_owned();
        let Some(name) = p.file_name().filter(|_| p.components().count() == 2) else { continue };
        let target = dest.join(name);
        entry.unpack(&target).with_context(|| format!("write {}", target.display()))?;
    }
    Ok(dest.to_path_buf())
}

/// Stops (when running) and destroys a container.
pub fn remove_container(r: &mut Runner, id: u32) -> Result<()> {
    let ids = id.to_string();
    let running = r.query(&["pct", "status", &ids]).ok().is_some_and(|o| pve::parse_status(&o) == Some("running"));
    if running || r.dry_run {
        r.change(&strings(&["pct", "stop", &ids]))?;
    }
    r.change(&strings(&["pct", "destroy", &ids, "--purge"]))?;
    Ok(())
}

/// `ask`: the answer to the question before anything is destroyed, None when nobody can answer
/// (the command's adapter asks; host never prompts).
pub fn destroy(d: &cli::Destroy, ask: &dyn Fn(&str) -> Result<Option<bool>>) -> Result<ExitCode> {
    let reg = Registry::open(&d.root);
    let e = reg.get(&d.instance)?.ok_or_else(|| {
        fail(
            Exit::Usage,
            format!("no instance {:?} in the registry {}; see vikunja-installer list", d.instance, reg.dir.display()),
        )
    })?;
    let place = super::cluster::place(&Runner::new(true), e.ctid);
    let mut r = Runner::on(d.dry_run, place.as_ref().and_then(|p| p.1.clone()));
    super::create::check_host(&r)?;
    let ids = e.ctid.to_string();
    // The id could have been reused by someone else since: only a container we made is destroyed.
    let config = r.query(&["pct", "config", &ids]).map_err(|x| {
        fail(
            Exit::Error,
            format!(
                "CT {} of instance {} cannot be read ({x}); if it is gone, remove {} by hand",
                e.ctid,
                e.name,
                reg.dir.join(format!("{}.toml", e.name)).display()
            ),
        )
    })?;
    if !config.contains("managed by vikunja-pve") || !config.contains(&format!("Vikunja instance {}", e.name)) {
        return Err(fail(
            Exit::Error,
            format!(
                "CT {} does not say it holds Vikunja instance {} (pct config {}): refusing to destroy it",
                e.ctid, e.name, e.ctid
            ),
        ));
    }
    let keep = reg.backups_of(&e.name);
    if !d.yes && !d.dry_run {
        let q = format!(
            "Destroy CT {} ({}) with Vikunja instance {} ({})? A last backup is taken and kept in {}",
            e.ctid,
            e.hostname,
            e.name,
            e.domain,
            keep.display()
        );
        let Some(yes) = ask(&q)? else {
            return Err(fail(
                Exit::Usage,
                format!("destroying CT {} needs confirmation: run it on a terminal or add --yes", e.ctid),
            ));
        };
        if !yes {
            say!("Nothing was changed.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    if d.dry_run {
        say!("Dry run: these commands would run, in order:");
    }
    let is_running =
        |r: &Runner| r.query(&["pct", "status", &ids]).ok().is_some_and(|o| pve::parse_status(&o) == Some("running"));
    if e.state == "ready" && !is_running(&r) {
        // A stopped container still holds the instance's backups: it is started to take the last
        // one and copy them all out, never destroyed with them.
        r.change(&strings(&["pct", "start", &ids])).map_err(|x| {
            fail(
                Exit::Error,
                format!(
                    "CT {} is stopped and does not start ({x}); nothing was destroyed: its backups are inside",
                    e.ctid
                ),
            )
        })?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !d.dry_run && !is_running(&r) {
            if std::time::Instant::now() > deadline {
                return Err(fail(
                    Exit::Error,
                    format!("CT {} did not come up within 60 s; nothing was destroyed", e.ctid),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
    if e.state == "ready" {
        let mut c = engine_env(&e);
        c.extend(strings(&[CT_BIN, "backup", "--instance", &e.name]));
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        r.change_streamed(&pct_exec(e.ctid, &refs))
            .map_err(|x| fail(Exit::Error, format!("the last backup failed ({x}); nothing was destroyed. Fix it, or copy what you need out with `pct pull`, then `pct destroy {}`", e.ctid)))?;
        if d.dry_run {
            say!("  {}", pve::shell_line(&r.argv(&copy_out_command(&e))));
        } else {
            copy_out_backups(&r, &e, &keep)?;
        }
    }
    if let Some(state) = place.as_ref().and_then(|p| p.0.hastate.as_deref()) {
        // First, or HA would start the container again the moment it stops.
        r.change(&strings(&["ha-manager", "remove", &format!("ct:{}", e.ctid)])).map_err(|x| {
            fail(Exit::Error, format!("{x}; CT {} stays HA-managed ({state}) and was not destroyed", e.ctid))
        })?;
    }
    remove_container(&mut r, e.ctid)?;
    if d.dry_run {
        say!("Dry run: nothing was changed.");
        return Ok(ExitCode::SUCCESS);
    }
    reg.remove(&e.name)?;
    say!("CT {} and instance {} are gone; its backups are kept in {}", e.ctid, e.name, keep.display());
    Ok(ExitCode::SUCCESS)
}

pub fn list(l: &cli::List) -> Result<ExitCode> {
    let reg = Registry::open(&l.root);
    let all = reg.all()?;
    let r = Runner::new(false);
    let cluster = super::fleet::Cluster::read(&r);
    let rows: Vec<serde_json::Value> = all.iter().map(|e| super::fleet::row(&r, &cluster, e)).collect();
    if l.json {
        // The field names are those of `status`, `health` and `backup` (schema 1): instance,
        // version, colour, healthy, url; the registry's own fields come along.
        say!("{}", serde_json::json!({"schema": 1, "instances": rows}));
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        say!("No instances yet: vikunja-installer create makes one.");
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "{:<16} {:>6} {:<10} {:<9} {:<10} {:<8} {:<9} {:<16} URL",
        "INSTANCE",
        "CT",
        "NODE",
        "CT STATUS",
        "VERSION",
        "COLOUR",
        "HEALTH",
        "ADDRESS"
    );
    for (e, j) in all.iter().zip(&rows) {
        let s = |k: &str| j[k].as_str().unwrap_or("-").to_string();
        let health = match j["healthy"].as_bool() {
            Some(true) => "healthy",
            Some(false) if j["version"].is_string() => "UNHEALTHY",
            _ => "unknown",
        };
        say!(
            "{:<16} {:>6} {:<10} {:<9} {:<10} {:<8} {:<9} {:<16} {}",
            e.name,
            e.ctid,
            s("node"),
            s("container_status"),
            s("version"),
            s("colour"),
            health,
            e.address,
            s("url")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_root_and_dry_run_stay_outside() {
        let a = strings(&["update", "--version", "v2.5.0", "--instance", "x", "--root", "/tmp/r", "--dry-run"]);
        assert_eq!(inner_args(&a), strings(&["update", "--version", "v2.5.0", "--instance", "x"]));
    }
}
