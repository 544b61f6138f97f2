//! `stop` and `start` of an instance. A stop is recorded in `state/stopped`, so nothing that
//! revives or re-routes a colour (recovery's revive, `update`, `restart`, `rollback`) starts the
//! instance again behind the admin's back; only `start` (or a new `install`) clears it.

use anyhow::{anyhow, Result};
use manifests::time::{format_rfc3339, now_unix};
use manifests::Exit;

use crate::error::fail;
use crate::instance::layout::Layout;
use crate::instance::state::{self, LastOperation};
use crate::instance::Instance;
use crate::service::colour::Colours;

use crate::instance::state::{clear_stopped as clear, stopped_flag as flag};
use crate::report::{note, say};

fn record(l: &Layout, op: &str, started: &str, since: std::time::Instant, result: &str) {
    let r = state::record_operation(
        l,
        &LastOperation {
            operation: op.into(),
            started: started.into(),
            duration_ms: since.elapsed().as_millis() as u64,
            result: result.into(),
        },
    );
    if let Err(e) = r {
        note!("warning: could not record the {op} in state/last-operation: {e}");
    }
}

/// Stops both colours (backend and MCP) and nginx of the instance; the flag is written first, so
/// a stop killed half-way is still a stop that `start` finishes cleanly.
pub fn stop(inst: &Instance) -> Result<()> {
    let begun = crate::engine::recovery::begin(inst, "stop")?;
    let inst = &begun.inst;
    let l = &inst.layout;
    let (started, since) = (format_rfc3339(now_unix()), std::time::Instant::now());
    manifests::atomic::write_atomic(&flag(l), format!("{started}\n").as_bytes(), 0o644)
        .map_err(|e| anyhow!("write {}: {e}", flag(l).display()))?;
    let colours = Colours { l, d: &inst.deployment, init: inst.init };
    colours.stop_all()?;
    crate::service::nginx::stop(l, inst.init)?;
    record(l, "stop", &started, since, "success");
    say!(
        "Stopped instance {}: both colours and nginx. `vikunja-installer start` starts it again.",
        inst.deployment.instance.name
    );
    Ok(())
}

/// Starts the serving colour and nginx and waits for the health gate. An unhealthy start is
/// stopped again (the instance stays stopped) and exits 10 with the report and where the logs are.
pub fn start(inst: &Instance) -> Result<()> {
    let begun = crate::engine::recovery::begin(inst, "start")?;
    let inst = &begun.inst;
    let (l, d) = (&inst.layout, &inst.deployment);
    let dep = state::deployed(l).ok_or_else(|| {
        fail(Exit::Error, format!("instance {} has no deployed version yet; run vikunja-installer install", l.instance))
    })?;
    let colour = state::active_colour(l).unwrap_or(dep.colour);
    let (started, since) = (format_rfc3339(now_unix()), std::time::Instant::now());
    if inst.init == crate::service::init::Init::Systemd && !l.nginx_conf_d().is_file() {
        manifests::atomic::write_atomic(
            &l.nginx_conf_d(),
            crate::service::nginx::conf_d_include(l, d).as_bytes(),
            0o644,
        )
        .map_err(|e| anyhow!("write {}: {e}", l.nginx_conf_d().display()))?;
    }
    crate::service::nginx::check(l, inst.init)?;
    if !crate::service::nginx::is_running(l, inst.init) || inst.init == crate::service::init::Init::Systemd {
        crate::service::nginx::start_or_reload(l, inst.init)?;
    }
    let colours = Colours { l, d, init: inst.init };
    let other = if colour == state::Colour::Blue { state::Colour::Green } else { state::Colour::Blue };
    // Only the serving colour runs afterwards, whatever a killed operation left.
    colours.stop(other)?;
    if !colours.running(colour)? {
        colours.start(colour, &dep.version)?;
    }
    let (healthy, report) = colours.gate(colour, &dep.version);
    if !healthy {
        crate::service::health::print_report(&report);
        let _ = colours.stop(colour);
        let _ = crate::service::nginx::stop(l, inst.init);
        record(l, "start", &started, since, "failed, stopped again");
        return Err(fail(
            Exit::Unhealthy,
            format!(
                "instance {} (Vikunja {} on {}) did not become healthy within {} s, so it was stopped again; see \
                 `vikunja-installer logs` (log files in {})",
                d.instance.name,
                dep.version,
                colour.name(),
                d.health.timeout_s,
                l.logs_dir().display()
            ),
        ));
    }
    clear(l).map_err(|e| anyhow!("remove {}: {e}", flag(l).display()))?;
    record(l, "start", &started, since, "success");
    say!("Started instance {} (Vikunja {} on {}): healthy.", d.instance.name, dep.version, colour.name());
    Ok(())
}
