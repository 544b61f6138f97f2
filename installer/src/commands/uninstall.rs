//! `uninstall` (inside a container or on a plain Debian machine) and `self uninstall` (the
//! installer's own files on the Proxmox host).
//!
//! An instance's uninstall takes a last backup first (through the one backup path; if it fails,
//! nothing is removed), then removes what the installer put on the machine: the scheduled backup
//! and automatic updates, both colours' units, the nginx site, the releases, logs, scripts and
//! state, and the service user when no other instance uses it. Kept unless `--purge`: `data/`, `backups/` and the secrets and
//! certificate in `config/`; `deployment.toml` is renamed to `deployment.toml.uninstalled`, so the
//! instance no longer counts as installed, and a later `install` with the same name finds its data.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use manifests::Exit;

use crate::cli::{SelfUninstall, Uninstall};
use crate::error::fail;
use crate::instance::state::Colour;
use crate::service::colour::Colours;
use crate::service::init::Init;

fn confirm(yes: bool, what: &str, question: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            Exit::Usage,
            format!("{what} needs confirmation: run it on a terminal or add --yes; nothing was changed"),
        ));
    }
    Ok(crate::ui::confirm(question)?)
}

fn remove_path(p: &Path) -> Result<()> {
    let r = match p.symlink_metadata() {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
    };
    r.map_err(|e| anyhow!("remove {}: {e}", p.display()))
}

pub fn instance(u: &Uninstall) -> Result<()> {
    // On the Proxmox host an instance lives in its own container: removing it is `destroy`.
    if let Some(name) = u.instance.as_deref() {
        let on_host = !crate::instance::layout::installed_instances(&u.root).iter().any(|n| n == name)
            && crate::host::registry::Registry::open(&u.root).get(name).is_ok_and(|e| e.is_some());
        if on_host {
            return Err(fail(
                Exit::Usage,
                format!(
                    "instance {name} runs in a container made by `create`: remove it with `vikunja-installer destroy \
                     --instance {name}` (it takes a last backup and keeps the backups on the host), or run \
                     `uninstall` inside the container; nothing was changed"
                ),
            ));
        }
    }
    let inst = crate::instance::open(&u.root, u.instance.as_deref())?;
    let l = inst.layout.clone();
    let kept = if u.purge {
        "nothing is kept (--purge)".to_string()
    } else {
        format!("{} and {} are kept", l.backups_dir().display(), l.data_dir().display())
    };
    if !confirm(
        u.yes,
        &format!("uninstalling instance {}", l.instance),
        &format!("Uninstall Vikunja instance {} from this machine? A last backup is taken first; {kept}", l.instance),
    )? {
        println!("Nothing was changed.");
        return Ok(());
    }
    // The last backup goes where --purge does not reach: with --purge it is the only copy left,
    // so it is moved out of the instance's directory before that is deleted.
    let last = if crate::instance::state::deployed(&l).is_some() {
        let o = crate::engine::backup::Options { seal: None, include_logs: false, output: None };
        let made = crate::engine::backup::run(&inst, &o).map_err(|e| {
            fail(
                e.downcast_ref::<crate::error::Failed>().map(|f| f.code).unwrap_or(Exit::Error),
                format!("the last backup before uninstalling failed, so nothing was removed: {e:#}"),
            )
        })?;
        println!("Last backup: {}", made.path.display());
        Some(made.path)
    } else {
        None
    };
    let begun = crate::engine::recovery::begin(&inst, "uninstall")?;
    let inst = &begun.inst;
    let others = crate::instance::layout::installed_instances(&l.root).into_iter().any(|i| i != l.instance);

    crate::service::schedule::remove(&l, inst.init)?;
    crate::service::schedule::remove_timer(&l, inst.init, &crate::service::acme::timer_unit(&l))?;
    super::autoupdate::unschedule(&l)?;
    crate::service::schedule::remove_timer(&l, inst.init, &format!("vikunja-{}-metrics", l.instance))?;
    let colours = Colours { l: &l, d: &inst.deployment, init: inst.init };
    colours.stop_all()?;
    let mut units = Vec::new();
    for c in [Colour::Blue, Colour::Green] {
        for comp in ["backend", "mcp"] {
            units.push(l.unit_name(comp, c.name()));
        }
    }
    match inst.init {
        Init::Process => crate::service::nginx::stop(&l, inst.init)?,
        Init::Systemd => {
            for u in &units {
                remove_path(&l.systemd_unit_path(u))?;
            }
            let _ = std::process::Command::new("systemctl").arg("daemon-reload").status();
            remove_path(&l.nginx_conf_d())?;
            // Debian's default site was moved aside by the install of a machine's first instance.
            let aside = l.state_dir().join("nginx-default-site.disabled");
            let default = l.system("/etc/nginx/sites-enabled/default");
            if !others && aside.symlink_metadata().is_ok() && default.symlink_metadata().is_err() {
                std::fs::rename(&aside, &default).map_err(|e| anyhow!("put {} back: {e}", default.display()))?;
            }
            if crate::service::nginx::is_running(&l, inst.init) {
                let _ = std::process::Command::new("systemctl").args(["reload", "nginx.service"]).status();
            }
        }
    }
    let user_removed = !others && remove_user(&l.root)?;

    let saved = match (&last, u.purge) {
        (Some(p), true) => {
            let dir = l.system("/var/backups");
            std::fs::create_dir_all(&dir).map_err(|e| anyhow!("create {}: {e}", dir.display()))?;
            let to = dir.join(p.file_name().unwrap_or_default());
            move_file(p, &to)?;
            Some(to)
        }
        (p, _) => p.clone(),
    };
    if u.purge {
        remove_path(&l.base)?;
    } else {
        for p in [l.releases_dir(), l.units_dir(), l.nginx_dir(), l.logs_dir(), l.scripts_dir(), l.state_dir()] {
            remove_path(&p)?;
        }
        let cfg = l.deployment_file();
        std::fs::rename(&cfg, cfg.with_extension("toml.uninstalled"))
            .map_err(|e| anyhow!("rename {}: {e}", cfg.display()))?;
    }
    println!(
        "Uninstalled instance {}: services, nginx site, releases and state removed{}.",
        l.instance,
        if user_removed { ", service user removed" } else { "" }
    );
    if u.purge {
        println!("Purged {} (data, configuration, backups).", l.base.display());
    } else {
        println!(
            "Kept: {} (backups), {} (data), {} (secrets, certificate, settings as deployment.toml.uninstalled). \
             `vikunja-installer install` with the same instance name uses them again; `uninstall --purge` removes them.",
            l.backups_dir().display(),
            l.data_dir().display(),
            l.config_dir().display()
        );
    }
    if let Some(p) = saved {
        println!("The last backup: {}", p.display());
    }
    Ok(())
}

/// Rename, or copy and remove across file systems.
fn move_file(from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| anyhow!("copy {} to {}: {e}", from.display(), to.display()))?;
    std::fs::remove_file(from).map_err(|e| anyhow!("remove {}: {e}", from.display()))
}

/// The service user, when the root has one (a sandbox root without /etc/passwd has none).
fn remove_user(root: &Path) -> Result<bool> {
    if crate::instance::account::lookup(root, crate::service::units::SERVICE_USER).is_none() {
        return Ok(false);
    }
    let mut cmd = std::process::Command::new("userdel");
    if root != Path::new("/") {
        cmd.arg("--root").arg(root);
    }
    let out = cmd.arg(crate::service::units::SERVICE_USER).output().map_err(|e| anyhow!("run userdel: {e}"))?;
    if !out.status.success() {
        return Err(anyhow!(
            "userdel {} failed: {}",
            crate::service::units::SERVICE_USER,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(true)
}

/// `self uninstall` on the Proxmox host: the versioned layout of `upgrade` and the command in
/// /usr/local/bin (only when it is ours: a link into /opt/vikunja-pve). Containers are left alone.
pub fn itself(u: &SelfUninstall) -> Result<()> {
    let home = crate::selfinstall::Home::new(&u.root);
    let bin = u.root.join("usr/local/bin/vikunja-installer");
    let reg = crate::host::registry::Registry::open(&u.root);
    let ours = std::fs::read_link(&bin).is_ok_and(|t| t.to_string_lossy().contains("opt/vikunja-pve/"));
    let mut remove: Vec<PathBuf> = vec![home.dir.clone()];
    if ours {
        remove.push(bin.clone());
    }
    if u.purge {
        remove.extend(reg.node_local());
    }
    let present: Vec<&PathBuf> = remove.iter().filter(|p| p.symlink_metadata().is_ok()).collect();
    if present.is_empty() {
        println!(
            "vikunja-installer is not installed under {} (no {}): nothing to remove.",
            u.root.display(),
            home.dir.display()
        );
        return Ok(());
    }
    let list = present.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    if !confirm(u.yes, "self uninstall", &format!("Remove {list}? Containers and their instances stay."))? {
        println!("Nothing was changed.");
        return Ok(());
    }
    // Its daily timer would run a command that is gone.
    if super::autoupdate::unschedule_upgrade(&u.root)? {
        println!("Removed the automatic upgrade timer of vikunja-installer.");
    }
    for p in &present {
        remove_path(p)?;
    }
    println!("Removed {list}.");
    if !u.purge {
        println!(
            "Kept: {} (the instance registry) and {} (backups copied out of containers); `self uninstall --purge` \
             removes them. The containers keep running; `pct destroy` removes one.",
            reg.dir.display(),
            reg.backups.display()
        );
    }
    Ok(())
}
