//! vikunja-standin is a TEST DOUBLE of Vikunja. It is NOT Vikunja.
//!
//! It imitates the `vikunja` server binary (Go, cobra) closely enough for
//! the vikunja-pve deployment tests, which cannot download the real release
//! on the build machines: the CLI (`web`, `version`, `migrate`,
//! `healthcheck`, `dump`, `restore`), configuration lookup and environment
//! variables, versioned migrations on SQLite or PostgreSQL, `/health` and
//! `/api/v1/info`, and the process quirks a deployment engine must cope
//! with (drain only on SIGINT, a busy port that does not end the process,
//! dump/restore failures that exit 0). The contract it follows is
//! `shared/reference/vikunja.md`; README.md beside this crate lists what it
//! adds (fault switches, an unauthenticated task API) and leaves out.

mod api;
mod cli;
mod config;
mod db;
mod dump;
mod faults;
mod http;
mod logger;
mod version;

fn main() {
    std::process::exit(cli::run(std::env::args().skip(1).collect()));
}
