//! `health`: every component's check (with `--wait`, until healthy or the configured timeout), as
//! a report or JSON; exit 10 when unhealthy.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use manifests::Exit;

use crate::cli;
use crate::engine::recovery;
use crate::instance::{self, state};
use crate::service::{health, status};

pub fn command(h: cli::Health) -> Result<ExitCode> {
    let inst = instance::open(&h.root, h.instance.as_deref())?;
    recovery::recover_if_interrupted(&inst)?;
    recovery::revive(&inst)?;
    let (l, d) = (&inst.layout, &inst.deployment);
    let deployed =
        state::deployed(l).ok_or_else(|| anyhow!("instance {} has no deployed version yet", d.instance.name))?;
    let colour = state::active_colour(l).unwrap_or(deployed.colour);
    let t = health::Target { l, d, init: inst.init, colour, version: &deployed.version };
    let deadline = Instant::now() + Duration::from_secs(d.health.timeout_s);
    let report = loop {
        let r = health::report(&t);
        if !h.wait || r.iter().all(|c| c.healthy) || Instant::now() >= deadline {
            break r;
        }
        std::thread::sleep(Duration::from_secs(d.health.interval_s));
    };
    let healthy = report.iter().all(|c| c.healthy);
    if h.json {
        let v = serde_json::json!({"schema": status::JSON_SCHEMA, "instance": d.instance.name, "version": deployed.version, "colour": colour.name(), "healthy": healthy, "url": d.public_url(), "components": report});
        println!("{v}");
    } else {
        health::print_report(&report);
    }
    Ok(if healthy { ExitCode::SUCCESS } else { Exit::Unhealthy.into() })
}
