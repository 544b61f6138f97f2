//! `install`: from a validated deployment to a healthy instance. Everything that can refuse
//! (settings, database connection, artifact checksum, nginx present) is checked before the first
//! change, so a refusal leaves nothing half-installed. Each step reports whether it changed
//! anything: a second run with the same settings changes nothing and says so.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use manifests::time::{format_rfc3339, now_unix};

use crate::engine::switch;
use crate::instance::config::{DbType, Deployment};
use crate::instance::layout::Layout;
use crate::instance::state::{self, Colour, Deployed, LastOperation};
use crate::instance::{account, artifact, secrets, settings, tls, vikunja_conf};
use crate::render::templates;
use crate::service::colour::Colours;
use crate::service::init::Init;
use crate::service::sockets::{self, Listen};
use crate::service::{dbcheck, health, nginx, units};

pub struct Options {
    pub root: PathBuf,
    pub init: Init,
}

use crate::error::{fail, Failed};
use crate::report::{note, say};

fn step(name: &str, changed: bool) -> bool {
    say!("  {} {name}", if changed { "changed  " } else { "unchanged" });
    changed
}

pub fn render_health_script(l: &Layout, d: &Deployment) -> Result<String> {
    let t = templates::load("scripts/health-check.sh")?;
    let vars = [
        ("instance", d.instance.name.clone()),
        ("base", l.base.to_string_lossy().into_owned()),
        ("backend_blue", d.ports.backend_blue.to_string()),
        ("backend_green", d.ports.backend_green.to_string()),
        ("mcp_blue", d.ports.mcp_blue.to_string()),
        ("mcp_green", d.ports.mcp_green.to_string()),
        ("mcp_enabled", if d.components.mcp { "yes" } else { "no" }.to_string()),
        ("http_port", d.network.http_port.to_string()),
    ];
    Ok(vars.iter().fold(t, |acc, (k, v)| acc.replace(&format!("{{{{{k}}}}}"), v)))
}

fn write_if_changed(path: &Path, text: &str, mode: u32) -> Result<bool> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    manifests::atomic::write_atomic(path, text.as_bytes(), mode)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(true)
}

/// Every port the instance needs is free, or held by its own services and nginx (a re-run);
/// otherwise the holder is named before anything changes.
fn check_ports(l: &Layout, d: &Deployment, init: Init) -> Result<()> {
    let colours = Colours { l, d, init };
    for c in [Colour::Blue, Colour::Green] {
        colours.check_ports(c)?;
    }
    for (key, port) in [("network.http_port", d.network.http_port), ("network.https_port", d.network.https_port)] {
        if let Listen::Held(h) = sockets::holders(port) {
            if !h.iter().any(|h| nginx::owns(l, init, h.pid)) {
                return Err(fail(
                    manifests::Exit::Prerequisite,
                    format!(
                        "port {port} ({key}) is in use by {}; nothing was changed. Stop that process, or choose \
                         another port with {key} in deployment.toml",
                        h[0].describe()
                    ),
                ));
            }
        }
    }
    Ok(())
}

pub fn run(opts: &Options, d: &Deployment) -> Result<()> {
    let started = Instant::now();
    let started_at = format_rfc3339(now_unix());
    d.validate().map_err(|e| fail(manifests::Exit::Usage, e.to_string()))?;
    // SAFETY: geteuid(2) takes no arguments, cannot fail and touches no memory.
    let root_user = unsafe { libc::geteuid() } == 0;
    if !root_user && opts.root == Path::new("/") {
        return Err(fail(
            manifests::Exit::Prerequisite,
            "install changes system users, units and nginx: run it as root (sudo vikunja-installer install …); \
             nothing was changed",
        ));
    }
    let l = Layout::new(&opts.root, &d.instance.name);
    let init = opts.init;
    say!(
        "Installing Vikunja {} as instance {} into {} (init: {})",
        d.vikunja.version,
        d.instance.name,
        l.base.display(),
        init.name()
    );

    // ---- checks: nothing is changed until all of them pass ----
    if !nginx::have_nginx() {
        return Err(fail(manifests::Exit::Prerequisite, "nginx is not installed: apt-get install -y nginx"));
    }
    // A local server set up for the instance (issue 17): idempotent, so it may come before the checks.
    if d.database.provision {
        let said = crate::service::pgprovision::provision(&l, d)
            .map_err(|e| fail(manifests::Exit::Prerequisite, format!("provisioning PostgreSQL failed: {e}")))?;
        say!("{said}");
    }
    let new_password = match &d.database.password_file {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("read database.password_file {}", p.display()))?)
        }
        None => secrets::db_password(&l),
    };
    if d.database.kind != DbType::Sqlite {
        dbcheck::check(
            &l,
            d,
            new_password.as_deref().map(|p| p.trim_end_matches(['\r', '\n'])),
            Duration::from_secs(10),
        )
        .map_err(|e| fail(manifests::Exit::Prerequisite, format!("database check failed, nothing was changed: {e}")))?;
    }
    let previous = state::deployed(&l);
    if let Some(p) = &previous {
        if p.version != d.vikunja.version {
            return Err(fail(
                manifests::Exit::Usage,
                format!(
                    "instance {} runs Vikunja {}; changing the version is an update: vikunja-installer update --version {}",
                    d.instance.name, p.version, d.vikunja.version
                ),
            ));
        }
    }
    check_ports(&l, d, init)?;
    let _lock = crate::instance::lock::take(&l, "install")?;
    if l.deployment_file().is_file() {
        // Whatever a killed operation left is finished or undone before settings change under it.
        crate::engine::recovery::recover_locked(&crate::instance::open(&l.root, Some(&l.instance))?)?;
    }
    // Verified into releases/<version>/ through a temp dir: a bad checksum leaves no release behind.
    let fetcher =
        manifests::fetch::Fetcher::new(&format!("vikunja-installer/{}", manifests::build_info::version()), None)
            .map_err(|e| fail(e.exit(), e.to_string()))?
            .offline(
                "copy the release zip here, set vikunja.artifact = \"/path/to/the.zip\" in deployment.toml \
                 (the wizard's \"Offline Vikunja zip\") and run install again",
            );
    // Like the release below: pinned wheels checked before anything of the instance changes (and
    // first, so a refusal leaves no verified release behind on a fresh instance either).
    let mcp_installed = if d.components.mcp {
        match crate::instance::mcp::ensure_installed(&l, &d.components) {
            Ok(c) => c,
            Err(e) => {
                if previous.is_none() {
                    cleanup_fresh(&l);
                }
                return Err(fail(e.exit(), e.to_string()));
            }
        }
    } else {
        false
    };

    std::fs::create_dir_all(l.releases_dir()).with_context(|| format!("create {}", l.releases_dir().display()))?;
    let release_changed = match artifact::ensure_release(&l, d, Some(&fetcher)) {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit();
            if previous.is_none() {
                cleanup_fresh(&l);
            }
            return Err(fail(code, e.to_string()));
        }
    };

    // ---- changes ----
    let mut changed = step(
        &format!("release {} verified in {}", d.vikunja.version, l.release_dir(&d.vikunja.version).display()),
        release_changed,
    );
    if d.components.mcp {
        let venv = crate::instance::mcp::venv_dir(&l, &d.components);
        let what =
            format!("MCP server {} + {} in {}", d.components.mcp_server, d.components.mcp_bridge, venv.display());
        changed |= step(&what, mcp_installed);
    }
    let ids = account::ensure(&l.root, units::SERVICE_USER)?;
    for (dir, mode) in l.dirs() {
        let fresh = !dir.exists();
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        if fresh {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
            changed = true;
        }
    }
    // Code stays root's; the service writes only data and logs.
    for dir in [l.data_dir(), l.files_dir(), l.logs_dir()] {
        account::chown(&dir, ids)?;
    }
    nginx::prepare_dirs(&l)?;
    // Settings being applied to a running instance: until the serving colour runs them (or it
    // is found not running), this marker makes the next install roll them out even when the
    // files already match (a run killed or failed after writing them).
    let pending = l.state_dir().join("settings-pending");
    let was_pending = pending.exists();
    if previous.is_some() {
        manifests::atomic::write_atomic(&pending, b"install\n", 0o644)
            .with_context(|| format!("write {}", pending.display()))?;
    }
    // What the serving colour was started with (its ports stay until it stops).
    let serving_d =
        previous.as_ref().and_then(|_| Deployment::load(&l.deployment_file()).ok()).unwrap_or_else(|| d.clone());
    changed |= step("deployment.toml", write_if_changed(&l.deployment_file(), &d.to_toml(), 0o640)?);
    let secret_new = secrets::ensure_service_secret(&l)?;
    let pw_new = secrets::ensure_db_password(&l, d)?;
    let copies_new = settings::sync_secret_copies(&l, d)?;
    let copies = settings::secret_copies(&l, d).into_iter().map(|c| c.dest);
    for f in [l.service_secret_file(), l.db_password_file()].into_iter().chain(copies) {
        if f.exists() {
            account::chown(&f, ids)?;
        }
    }
    let mut mcp_new = false;
    if d.components.mcp {
        use crate::instance::mcp;
        let e = |e: mcp::McpError| fail(e.exit(), e.to_string());
        mcp_new = mcp::ensure_api_token(&l, &d.components).map_err(e)?;
        mcp_new |= mcp::ensure_bearer(&l).map_err(e)?;
        account::chown(&mcp::api_token_file(&l), ids)?;
    }
    let secrets_changed = secret_new || pw_new || copies_new || mcp_new;
    changed |= step("secrets (0600)", secrets_changed);
    let old_yml = std::fs::read_to_string(l.vikunja_config()).unwrap_or_default();
    let yml = vikunja_conf::render(&l, d);
    let config_changed = step("Vikunja config.yml", write_if_changed(&l.vikunja_config(), &yml, 0o640)?);
    changed |= config_changed;
    if previous.is_some() {
        for c in vikunja_conf::changed_keys(&old_yml, &yml) {
            say!("              {c}");
        }
    }
    if let Some(i) = ids {
        std::os::unix::fs::chown(l.vikunja_config(), Some(0), Some(i.gid))?;
        std::os::unix::fs::chown(l.config_dir(), Some(0), Some(i.gid))?;
    }
    let (cert, cert_new) = tls::ensure(&l, d)?;
    // nginx reads the certificate only when (re)loaded, and the site file does not change when
    // the user replaces the certificate at the same path: what nginx last loaded is recorded.
    let served_cert = l.state_dir().join("served-certificate");
    let cert_id = [&cert.cert, &cert.key]
        .iter()
        .map(|p| std::fs::read(p).map(|b| manifests::hash::sha256_hex(&b)))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("read the certificate {} and its key {}", cert.cert.display(), cert.key.display()))?
        .join(" ");
    let cert_reload = std::fs::read_to_string(&served_cert).ok().as_deref() != Some(cert_id.as_str());
    changed |= step(
        if cert.self_signed { "self-signed certificate" } else { "certificate" },
        cert_new || (previous.is_some() && cert_reload),
    );
    let script = render_health_script(&l, d)?;
    changed |=
        step("scripts/health-check.sh", write_if_changed(&l.scripts_dir().join("health-check.sh"), &script, 0o755)?);

    let colour = previous.as_ref().map(|p| p.colour).unwrap_or(Colour::Blue);
    let mut units_changed = false;
    for c in [Colour::Blue, Colour::Green] {
        for (unit, text) in units::render_colour(&l, d, c, &d.vikunja.version)? {
            units_changed |= init.install_unit(&l, &unit, &text)?;
        }
    }
    changed |= step("service units (blue, green)", units_changed);
    // A serving colour never stops for new settings: the other colour starts with them, passes
    // the health gate and takes the traffic (the `restart` path), after nginx has its new site.
    let roll_out = previous.is_some()
        && (config_changed || units_changed || secrets_changed || was_pending)
        && Colours { l: &l, d, init }.running(colour)?;

    let up = nginx::upstreams(d, colour);
    let mut files = nginx::render_all(&l, d, init, &cert, &up)?;
    if roll_out {
        // The serving colour still listens where its running process was told to (changed ports
        // apply to the colour that starts next): traffic stays routed as it is until the switch.
        if let Ok(routed) = std::fs::read_to_string(nginx::upstream_file(&l)) {
            for (path, text) in files.iter_mut() {
                if *path == nginx::upstream_file(&l) {
                    *text = routed.clone();
                }
            }
        }
    }
    if init == Init::Systemd {
        nginx::disable_default_site(&l)?;
    }
    let nginx_changed = nginx::replace_checked(&l, init, &files)?;
    changed |= step("nginx site and upstream", nginx_changed);

    // ---- start and verify ----
    let colours = Colours { l: &l, d, init };
    let outcome = (|| -> Result<Vec<health::Component>> {
        let mut started_any = false;
        if !roll_out {
            colours.free_ports(colour)?;
            for u in colours.units(colour)? {
                if units_changed && init.is_active(&l, &u.name) {
                    init.stop(&l, &u.name)?;
                }
                if !init.is_active(&l, &u.name) {
                    init.start(&l, &u.name)?;
                    started_any = true;
                }
            }
        }
        changed |= step(&format!("{} services running", colour.name()), started_any);
        if nginx_changed || cert_reload || !nginx::is_running(&l, init) {
            nginx::start_or_reload(&l, init)?;
            manifests::atomic::write_atomic(&served_cert, cert_id.as_bytes(), 0o644)
                .with_context(|| format!("write {}", served_cert.display()))?;
            changed = true;
        }
        // Before a roll-out the serving colour still runs the settings it was started with.
        let serving = Colours { l: &l, d: if roll_out { &serving_d } else { d }, init };
        Ok(serving.gate(colour, &d.vikunja.version).1)
    })();
    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            if previous.is_none() {
                // A first install that failed leaves nothing running.
                let _ = colours.stop_all();
            }
            return Err(e);
        }
    };
    let healthy = report.iter().all(|c| c.healthy);
    let mut duration_ms = started.elapsed().as_millis() as u64;
    if !healthy {
        health::print_report(&report);
        state::record_operation(
            &l,
            &LastOperation {
                operation: "install".into(),
                started: started_at,
                duration_ms,
                result: "unhealthy".into(),
            },
        )?;
        bail!(fail(
            manifests::Exit::Unhealthy,
            format!("instance {} was installed but is not healthy (see above)", d.instance.name)
        ));
    }
    std::fs::write(l.state_dir().join("init"), format!("{}\n", init.name()))?;
    // Everything runs again and is healthy: a `stop` from before no longer holds.
    crate::instance::state::clear_stopped(&l)?;
    if previous.is_none() || state::active_colour(&l).is_none() {
        state::set_active_colour(&l, colour)?;
        let ts = format_rfc3339(now_unix());
        let id = state::deployment_id(&d.instance.name, &ts);
        state::set_deployed(
            &l,
            &Deployed { version: d.vikunja.version.clone(), timestamp: ts, colour, deployment_id: id },
        )?;
    }
    let restarted = if roll_out {
        say!("Rolling the changed settings out without downtime: a blue-green restart on {}", d.vikunja.version);
        let inst = crate::instance::Instance { layout: l.clone(), deployment: d.clone(), init };
        switch::restart_locked(&inst, &serving_d).map_err(|e| match e.downcast_ref::<Failed>() {
            Some(f) => fail(
                f.code,
                format!(
                    "{}\nThe changed settings were not applied: the previous ones keep serving. Fix deployment.toml \
                     and run install again (it retries the roll-out).",
                    f.message
                ),
            ),
            None => e,
        })?;
        changed = true;
        let now = state::active_colour(&l).unwrap_or(colour);
        format!("{} -> {} (blue-green, Vikunja {} kept)", colour.name(), now.name(), d.vikunja.version)
    } else if nginx_changed || cert_reload {
        "no Vikunja service (nginx reloaded its site and certificate gracefully)".to_string()
    } else {
        "nothing".to_string()
    };
    changed |= acme(&l, d, init)?;
    duration_ms = started.elapsed().as_millis() as u64;
    let _ = std::fs::remove_file(&pending);
    // Every colour that runs now runs these settings: older MCP environments have no user left.
    for p in crate::instance::mcp::prune(&l, &d.components) {
        step(&format!("MCP environment {} removed (no longer used)", p.display()), true);
    }
    if previous.is_some() && changed {
        say!("Restarted: {restarted}");
    }
    if changed {
        state::record_operation(
            &l,
            &LastOperation { operation: "install".into(), started: started_at, duration_ms, result: "success".into() },
        )?;
        say!("Vikunja {} is running and healthy at {} ({} ms)\n", d.vikunja.version, d.public_url(), duration_ms);
        let fancy = crate::report::fancy();
        crate::report::text(&crate::service::status::render(&crate::service::status::gather(&l, d, init), fancy));
    } else {
        say!(
            "Nothing to change: instance {} already runs Vikunja {} with these settings, and is healthy.",
            d.instance.name,
            d.vikunja.version
        );
    }
    Ok(())
}

/// `[ssl] acme`: the renewal timer (removed when acme is off), and a certificate once nginx serves the challenge location
/// when none covers the domain yet (renewing the one that does is the timer's). Returns whether
/// anything changed.
fn acme(l: &Layout, d: &Deployment, init: Init) -> Result<bool> {
    use crate::service::acme;
    if !d.ssl.acme {
        let removed = crate::service::schedule::remove_timer(l, init, &acme::timer_unit(l))?;
        return Ok(removed && step("certificate renewal timer removed (ssl.acme is off)", true));
    }
    // Without the timer the certificate still serves (and `health` flags the missing timer): a
    // warning, not a failed install.
    let mut changed = match acme::schedule(l, init) {
        Ok(c) => step("certificate renewal timer", c),
        Err(e) => {
            note!(
                "warning: the certificate renewal timer was not installed: {e:#}\nuntil it is, renew with \
                 `vikunja-installer cert renew` before the certificate's last 30 days"
            );
            false
        }
    };
    if acme::fits(l, d) {
        return Ok(changed);
    }
    match acme::renew(l, d, init, false) {
        Ok(_) => changed |= step(&format!("ACME certificate for {}", d.network.domain), true),
        Err(e) if d.ssl.acme_fallback_self_signed => note!(
            "warning: {e}\nthe self-signed certificate serves instead (acme_fallback_self_signed = true); \
             the renewal timer or `vikunja-installer cert renew` tries again"
        ),
        Err(e) => bail!(fail(
            manifests::Exit::Certificate,
            format!(
                "{e}\nVikunja is installed and serves a temporary self-signed certificate until \
                 `vikunja-installer cert renew` succeeds (set acme_fallback_self_signed = true under [ssl] to accept it)"
            )
        )),
    }
    Ok(changed)
}

/// After a refusal on a fresh install, remove what the checks created (the lock and empty
/// directories), so nothing looks half-installed.
fn cleanup_fresh(l: &Layout) {
    let _ = std::fs::remove_file(l.locks_dir().join("operation.lock"));
    // The MCP environment is installed before the release is fetched; a fresh instance keeps neither.
    let _ = std::fs::remove_dir_all(l.base.join("mcp"));
    for d in [l.releases_dir(), l.locks_dir(), l.state_dir(), l.base.clone()] {
        let _ = std::fs::remove_dir(d);
    }
}
