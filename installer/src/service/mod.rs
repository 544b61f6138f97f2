//! What runs an instance: its units and colours, the init system behind them, nginx in front, and
//! the checks that judge them (probe, database check, health, status, sockets).

pub mod acme;
pub mod colour;
pub mod dbcheck;
pub mod freeze;
pub mod health;
pub mod init;
pub mod mcp_probe;
pub mod metrics;
pub mod nginx;
pub mod notify;
pub mod pgprovision;
pub mod probe;
pub mod schedule;
pub mod sockets;
pub mod status;
pub mod supervisor;
pub mod units;
