//! One colour of an instance (its backend and, if enabled, its MCP server) as one thing to start,
//! stop, probe and identify. `install`, `update`, `rollback`, `restore` and recovery all move
//! colours through this module only, so the rules hold everywhere: a port held by something else
//! is found and named before anything starts; an unsupervised service of this instance (left by a
//! killed supervisor) is stopped before its colour starts again; the health gate gives up as soon
//! as the colour's process exits instead of waiting out the timeout; a colour that never took
//! traffic is killed rather than drained.

use std::time::{Duration, Instant};

use anyhow::Result;
use manifests::Exit;

use crate::error::fail;
use crate::instance::config::Deployment;
use crate::instance::layout::Layout;
use crate::instance::state::Colour;
use crate::report::note;
use crate::service::health;
use crate::service::init::Init;
use crate::service::sockets::{self, Listen};
use crate::service::units;

pub struct Colours<'a> {
    pub l: &'a Layout,
    pub d: &'a Deployment,
    pub init: Init,
}

/// A unit of a colour and the port its service listens on.
pub struct Unit {
    pub name: String,
    pub port: u16,
    /// The `[ports]` key that sets the port, for error messages.
    pub key: String,
}

impl Colours<'_> {
    pub fn units(&self, c: Colour) -> Result<Vec<Unit>> {
        let rendered = units::render_colour(self.l, self.d, c, "0.0.0")?;
        Ok(rendered
            .into_iter()
            .map(|(name, _)| {
                let (port, key) = if name == self.l.unit_name("backend", c.name()) {
                    (units::backend_port(self.d, c), format!("ports.backend_{}", c.name()))
                } else {
                    (units::mcp_port(self.d, c), format!("ports.mcp_{}", c.name()))
                };
                Unit { name, port, key }
            })
            .collect())
    }

    pub fn running(&self, c: Colour) -> Result<bool> {
        Ok(self.units(c)?.iter().any(|u| self.init.is_active(self.l, &u.name)))
    }

    /// Renders the colour's units for `version` and starts them (restarting any left running),
    /// after making sure each port is free or held by that very unit.
    pub fn start(&self, c: Colour, version: &str) -> Result<()> {
        self.free_ports(c)?;
        for (unit, text) in units::render_colour(self.l, self.d, c, version)? {
            self.init.install_unit(self.l, &unit, &text)?;
            if self.init.is_active(self.l, &unit) {
                self.init.stop(self.l, &unit)?;
            }
            self.init.start(self.l, &unit)?;
        }
        Ok(())
    }

    /// Stops the colour's units, whatever the deployment enables now (settings rolled out without
    /// the MCP server must not leave the old colour's running); the backend drains in-flight
    /// requests on SIGINT.
    pub fn stop(&self, c: Colour) -> Result<()> {
        for comp in ["backend", "mcp"] {
            let unit = self.l.unit_name(comp, c.name());
            if self.init.is_active(self.l, &unit) {
                self.init.stop(self.l, &unit)?;
            }
        }
        Ok(())
    }

    /// Stops a colour that never took traffic at once (no drain to wait for).
    pub fn kill(&self, c: Colour) -> Result<()> {
        for u in self.units(c)? {
            if self.init.is_active(self.l, &u.name) {
                self.init.kill(self.l, &u.name)?;
            }
        }
        Ok(())
    }

    /// Every unit of both colours, whatever the deployment enables now.
    pub fn stop_all(&self) -> Result<()> {
        for c in [Colour::Blue, Colour::Green] {
            self.stop(c)?;
        }
        Ok(())
    }

    /// Refuses (exit 4, naming the holder and the setting to change) when a port of the colour is
    /// held by a process that is neither the unit's own nor an orphan of this instance. Changes
    /// nothing: `install` calls it before its first change.
    pub fn check_ports(&self, c: Colour) -> Result<()> {
        for u in self.units(c)? {
            self.port_holders(c, &u)?;
        }
        Ok(())
    }

    /// Before a unit starts: its port must be free or held by the unit itself. A service of this
    /// instance that runs without its supervisor (an orphan) is stopped; anything else is named
    /// and the start refused (exit 4), nothing changed.
    pub fn free_ports(&self, c: Colour) -> Result<()> {
        for u in self.units(c)? {
            self.clear_port(c, &u)?;
        }
        Ok(())
    }

    /// The orphans of this instance on the unit's port; an error for any stranger.
    fn port_holders(&self, c: Colour, u: &Unit) -> Result<Vec<sockets::Holder>> {
        let Listen::Held(holders) = sockets::holders(u.port) else { return Ok(Vec::new()) };
        let (ours, strangers): (Vec<_>, Vec<_>) =
            holders.into_iter().filter(|h| !self.init.owns(self.l, &u.name, h.pid)).partition(|h| {
                h.exe.as_ref().is_some_and(|e| e.starts_with(self.l.releases_dir()))
                    || (self.init == Init::Process && orphaned_service(self.l, h.pid))
            });
        if let Some(s) = strangers.first() {
            return Err(fail(
                Exit::Prerequisite,
                format!(
                    "port {} ({} of {}) is in use by {}; nothing was started. Stop that process, or give instance \
                     {} another port with {} in deployment.toml",
                    u.port,
                    u.name,
                    c.name(),
                    s.describe(),
                    self.d.instance.name,
                    u.key
                ),
            ));
        }
        Ok(ours)
    }

    fn clear_port(&self, c: Colour, u: &Unit) -> Result<()> {
        for o in self.port_holders(c, u)? {
            note!(
                "found an unsupervised service of this instance on port {} ({}; its supervisor is gone): stopping it",
                u.port,
                o.describe()
            );
            crate::service::init::signal(o.pid, libc::SIGINT);
            if crate::service::init::wait_gone(o.pid, Duration::from_secs(20)).is_err() {
                crate::service::init::signal(o.pid, libc::SIGKILL);
                let _ = crate::service::init::wait_gone(o.pid, Duration::from_secs(5));
            }
        }
        Ok(())
    }

    /// The health gate: every component healthy, with the expected version, answered by this
    /// colour's own processes. Gives up early when the colour's service exits (a failed
    /// migration), so the write freeze does not wait out the whole timeout.
    pub fn gate(&self, c: Colour, version: &str) -> (bool, Vec<health::Component>) {
        let t = health::Target { l: self.l, d: self.d, init: self.init, colour: c, version };
        // Polled faster than the configured interval (capped by it): the gate should open as soon
        // as the new colour answers, not up to one interval later.
        let interval = Duration::from_secs(self.d.health.interval_s).min(Duration::from_millis(100));
        let timeout = Duration::from_secs(self.d.health.timeout_s);
        let backend = self.l.unit_name("backend", c.name());
        // The service as started: if it already exited, `main_pid` differs from it at once.
        let first_pid = self.init.service_pid(self.l, &backend);
        let start = Instant::now();
        // From 5 ms, doubling up to the interval: a new colour is often healthy within tens of
        // milliseconds, and every millisecond here is write freeze.
        let mut pause = Duration::from_millis(5).min(interval);
        let port = units::backend_port(self.d, c);
        loop {
            let last = start.elapsed() + pause > timeout;
            // The full check (database included, which a migrating colour keeps locked) only once
            // the backend answers at all.
            if last
                || crate::service::probe::get(port, "/health", Duration::from_secs(1)).is_ok_and(|r| r.status == 200)
            {
                let report = health::check_all(&t);
                let ok = report.iter().all(|x| x.healthy);
                if ok || last {
                    return (ok, report);
                }
            }
            let now_pid = self.init.main_pid(self.l, &backend);
            if first_pid.is_none() || now_pid != first_pid {
                let mut report = health::check_all(&t);
                if let Some(b) = report.iter_mut().find(|x| x.name == "Backend API") {
                    b.detail = format!(
                        "{} (the service exited after {:.1} s: see its log)",
                        b.detail,
                        start.elapsed().as_secs_f64()
                    );
                }
                return (false, report);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(interval);
        }
    }
}

/// Whether `pid` is a service our supervisor started and then lost: its parent is init (the
/// supervisor died) and it runs a file of an instance's `releases/` (the Vikunja binary). Used
/// only when the executable path cannot tell (a deleted or replaced release).
fn orphaned_service(l: &Layout, pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    sockets::parent(pid) == Some(1)
        && std::path::Path::new(&*String::from_utf8_lossy(first)).starts_with(l.releases_dir())
}
