//! The Proxmox host driver: the last stage of the seed's three-stage bootstrap. On the host the
//! installer creates an unprivileged LXC container with `pct`, installs itself into it and runs
//! the deployment engine there (`create`); it keeps a registry of the instances it made (`list`),
//! routes `--instance NAME` commands into their containers, and removes them (`destroy`).
//!
//! - `pve`: running Proxmox's tools (with `--dry-run`) and reading their output.
//! - `create`: prerequisites, settings, template, `pct create`, provisioning, failure recovery.
//! - `wizard`: the container questions on a terminal.
//! - `registry`: the host's record of instances and their copied-out backups.
//! - `manage`: `list`, `destroy`, and the commands routed into containers.
//! - `cluster`: which node this is, where a container is now, which node has room, ssh to a node.
//! - `migrate`: moving an instance to another node of the cluster.

pub mod cluster;
pub mod create;
pub mod fleet;
pub mod manage;
pub mod migrate;
pub mod pve;
pub mod registry;
pub mod wizard;

/// The Proxmox commands the host driver calls.
pub const HOST_TOOLS: &[&str] = &["pct", "pveam", "pvesm", "pvesh", "pveversion"];

/// Whether this is a Proxmox VE host, as `create` checks it: `pveversion` on PATH or /etc/pve.
pub fn is_proxmox_host() -> bool {
    create::on_path("pveversion") || std::path::Path::new("/etc/pve").is_dir()
}

use crate::error::fail;
