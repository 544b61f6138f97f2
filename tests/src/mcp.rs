//! The real MCP packages for tests, from PyPI: the installer's pinned server and bridge with every
//! dependency, downloaded once into `target/mcp-wheels` so that later runs install them offline
//! (pip's `PIP_NO_INDEX` + `PIP_FIND_LINKS`, which the installer passes on to pip), and the
//! reference MCP client (PyPI `mcp`, a dependency of both) to talk to the served endpoint.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Must equal the installer's `components.mcp_server` / `mcp_bridge` defaults (its sha256 pins
/// are checked by the installer itself, so a drift fails the install, loudly).
pub const PACKAGES: [&str; 2] = ["rmc-vikunja-mcp==0.4.6", "mcp-proxy==0.13.0"];

/// The installer's default `components.mcp_python`; the wheels must be for its version.
pub const PYTHON: &str = "/usr/bin/python3";

/// The wheel cache, filled from PyPI on first use (one process at a time, under a lock).
pub fn wheel_cache() -> Result<PathBuf> {
    let target = crate::workspace_root().join("target");
    let dir = target.join("mcp-wheels");
    let stamp = dir.join(".complete");
    let want = format!("{}\n", PACKAGES.join("\n"));
    std::fs::create_dir_all(&target)?;
    let lock = std::fs::File::create(target.join("mcp-wheels.lock"))?;
    lock.lock().context("lock target/mcp-wheels.lock")?;
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == want) {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let o = Command::new(PYTHON)
        .args(["-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:", "-d"])
        .arg(&dir)
        .args(PACKAGES)
        .output()
        .with_context(|| format!("run {PYTHON} -m pip (Debian: apt-get install python3-pip python3-venv)"))?;
    if !o.status.success() {
        bail!("pip download {PACKAGES:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    std::fs::write(&stamp, want)?;
    Ok(dir)
}

/// pip's settings that make the installer's pip use only the cache.
pub fn pip_offline_env() -> Result<Vec<(&'static str, String)>> {
    let dir = wheel_cache()?;
    Ok(vec![("PIP_NO_INDEX", "1".into()), ("PIP_FIND_LINKS", dir.to_string_lossy().into_owned())])
}

/// What [`list_tools`] saw: the tool names, or the error the client raised.
pub struct Listing {
    pub ok: bool,
    pub tools: Vec<String>,
    pub output: String,
}

/// Lists the tools at `url` with the reference client (`mcp.client.streamable_http`) run by the
/// `python` of a venv that has `mcp` (the instance's own), sending `Authorization: Bearer <bearer>`
/// and trusting `cacert` for TLS (httpx reads `SSL_CERT_FILE`; the instance's certificate also
/// names `localhost`).
pub fn list_tools(python: &Path, url: &str, bearer: &str, cacert: &Path) -> Result<Listing> {
    const CLIENT: &str = r#"
import asyncio, sys
from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

async def main(url, bearer):
    async with streamablehttp_client(url, headers={"Authorization": "Bearer " + bearer}) as (r, w, _):
        async with ClientSession(r, w) as s:
            init = await s.initialize()
            tools = await s.list_tools()
            print("SERVER", init.serverInfo.name)
            for t in tools.tools:
                print("TOOL", t.name)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"#;
    let mut cmd = Command::new(python);
    cmd.args(["-c", CLIENT, url, bearer]).env("SSL_CERT_FILE", cacert);
    let o = cmd.output().with_context(|| format!("run {}", python.display()))?;
    let output = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let tools = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("TOOL "))
        .map(str::to_string)
        .collect();
    Ok(Listing { ok: o.status.success(), tools, output })
}
