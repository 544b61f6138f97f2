//! The MCP component's files: its Python environment with the pinned server and bridge from PyPI
//! (each wheel's sha256 checked before it is installed), the Vikunja API token it calls Vikunja
//! with, and the bearer token nginx demands at `/mcp`. Vikunja's MCP servers speak MCP over stdio
//! only; the bridge (`mcp-proxy`) runs the server as its child and serves it over streamable HTTP.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::instance::config::Components;
use crate::instance::layout::Layout;

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error(
        "{what} failed ({status}): {tail}\nCheck that {python} has the venv module (Debian: apt-get install \
         python3-venv) and that PyPI (or PIP_INDEX_URL / PIP_FIND_LINKS) is reachable, then run install again"
    )]
    Pip { what: String, status: String, tail: String, python: String },
    #[error(
        "{name}: sha256 is {found} but deployment.toml pins {expected} (components.{field}); the download is \
         corrupt or tampered, or the pin is wrong; nothing was installed"
    )]
    Checksum { name: String, field: &'static str, expected: String, found: String },
    #[error("components.mcp_api_token_file {path}: {why}; put a Vikunja API token (Settings → API Tokens) on its first line")]
    Token { path: String, why: String },
}

impl McpError {
    pub fn exit(&self) -> manifests::Exit {
        match self {
            McpError::Io { .. } => manifests::Exit::Error,
            McpError::Pip { .. } => manifests::Exit::Download,
            McpError::Checksum { .. } => manifests::Exit::Verification,
            McpError::Token { .. } => manifests::Exit::Usage,
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> McpError {
    let what = what.into();
    move |source| McpError::Io { what, source }
}

/// `name==version` with a PEP 503 name and a plain version: nothing pip could read as an option,
/// a URL or a path.
fn is_pin(s: &str) -> bool {
    let Some((name, version)) = s.split_once("==") else { return false };
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let version_ok = version.starts_with(|c: char| c.is_ascii_digit())
        && version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '!'));
    name_ok && !name.starts_with(['-', '.']) && version_ok
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// The MCP settings' checks, reported through the config's `bad(field, value, allowed)`.
pub fn validate(c: &Components, bad: &mut dyn FnMut(&str, &dyn std::fmt::Display, &str)) {
    if c.mcp_command.first().is_none_or(|p| !(p.starts_with('/') || p.starts_with("{venv}/"))) {
        bad("components.mcp_command", &format!("{:?}", c.mcp_command), "an absolute program path (or {venv}/…) first");
    }
    if !c.mcp_python.is_absolute() {
        bad("components.mcp_python", &c.mcp_python.display(), "an absolute path to python3");
    }
    for (field, v) in [("components.mcp_server", &c.mcp_server), ("components.mcp_bridge", &c.mcp_bridge)] {
        if !is_pin(v) {
            bad(field, v, "a PyPI package pinned as name==version");
        }
    }
    for (field, v) in
        [("components.mcp_server_sha256", &c.mcp_server_sha256), ("components.mcp_bridge_sha256", &c.mcp_bridge_sha256)]
    {
        if !is_sha256(v) {
            bad(field, v, "the wheel's sha256: 64 lowercase hex digits");
        }
    }
    match &c.mcp_api_token_file {
        None => bad(
            "components.mcp_api_token_file",
            &"(unset)",
            "a file holding a Vikunja API token for the MCP server (create one under Settings → API Tokens)",
        ),
        Some(p) if !p.is_file() => bad("components.mcp_api_token_file", &p.display(), "an existing file"),
        Some(_) => {}
    }
}

/// Where the pinned packages are installed; a new pin gets a new directory, so the colour still
/// serving keeps its own until it stops.
pub fn venv_dir(l: &Layout, c: &Components) -> PathBuf {
    l.base.join("mcp").join(format!("{}+{}", c.mcp_server.replace("==", "-"), c.mcp_bridge.replace("==", "-")))
}

/// The copy of the Vikunja API token the service reads (owner: the service user, 0600).
pub fn api_token_file(l: &Layout) -> PathBuf {
    l.config_dir().join(".mcp-api-token")
}

/// The bearer token MCP clients send to `/mcp` (root's, 0600): hand it to the clients.
pub fn bearer_file(l: &Layout) -> PathBuf {
    l.config_dir().join("mcp-bearer-token")
}

/// The nginx snippet with the bearer check, included by the `/mcp` location (root's, 0600: the
/// nginx master reads it as root; the workers never see the file).
pub fn nginx_auth_file(l: &Layout) -> PathBuf {
    l.nginx_dir().join("mcp-auth.conf")
}

const MARKER: &str = ".installed";

fn marker_text(c: &Components) -> String {
    format!("{} sha256={}\n{} sha256={}\n", c.mcp_server, c.mcp_server_sha256, c.mcp_bridge, c.mcp_bridge_sha256)
}

fn run(cmd: &mut Command, what: &str, python: &Path) -> Result<(), McpError> {
    let out = cmd.output().map_err(io_err(format!("start {what}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    Err(McpError::Pip {
        what: what.into(),
        status: out.status.to_string(),
        tail: lines[lines.len().saturating_sub(6)..].join("\n"),
        python: python.display().to_string(),
    })
}

/// Installs the pinned server and bridge into [`venv_dir`] unless it is complete already;
/// returns whether anything was installed. Each pinned wheel is downloaded alone (`--no-deps`),
/// its sha256 compared with the pin, and only then installed (its dependencies come from the
/// index as pip resolves them). pip's own `PIP_*` variables apply, so an offline mirror works.
pub fn ensure_installed(l: &Layout, c: &Components) -> Result<bool, McpError> {
    let venv = venv_dir(l, c);
    if std::fs::read_to_string(venv.join(MARKER)).is_ok_and(|m| m == marker_text(c)) {
        return Ok(false);
    }
    // A venv's scripts name its absolute path, so it is built in place; one without the marker
    // is the remains of an interrupted run and starts over.
    if venv.exists() {
        std::fs::remove_dir_all(&venv).map_err(io_err(format!("remove the incomplete {}", venv.display())))?;
    }
    let parent = venv.parent().unwrap_or(&venv).to_path_buf();
    std::fs::create_dir_all(&parent).map_err(io_err(format!("create {}", parent.display())))?;
    let res = build(&venv, c);
    if res.is_err() {
        // Nothing half-installed stays behind (a fresh instance's directories are removed after).
        let _ = std::fs::remove_dir_all(&venv);
        let _ = std::fs::remove_dir(&parent);
    }
    res.map(|()| true)
}

fn build(venv: &Path, c: &Components) -> Result<(), McpError> {
    let py = &c.mcp_python;
    run(Command::new(py).arg("-m").arg("venv").arg(venv), &format!("{} -m venv {}", py.display(), venv.display()), py)?;
    let pip = venv.join("bin/pip");
    let mut wheels = Vec::new();
    for (pin, sha, field) in [
        (&c.mcp_server, &c.mcp_server_sha256, "mcp_server_sha256"),
        (&c.mcp_bridge, &c.mcp_bridge_sha256, "mcp_bridge_sha256"),
    ] {
        let dir = venv.join("wheels").join(pin.replace("==", "-"));
        std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        run(
            Command::new(&pip)
                .args(["download", "--no-input", "--disable-pip-version-check", "--no-deps", "--only-binary=:all:"])
                .arg("--dest")
                .arg(&dir)
                .arg(pin),
            &format!("pip download {pin}"),
            py,
        )?;
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(io_err(format!("read {}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        let [wheel] = files.as_slice() else {
            return Err(McpError::Io {
                what: format!("pip download {pin}"),
                source: io::Error::other(format!(
                    "left {} files in {}, expected one wheel",
                    files.len(),
                    dir.display()
                )),
            });
        };
        let bytes = std::fs::read(wheel).map_err(io_err(format!("read {}", wheel.display())))?;
        let found = manifests::hash::sha256_hex(&bytes);
        if &found != sha {
            let name = wheel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            return Err(McpError::Checksum { name, field, expected: sha.clone(), found });
        }
        wheels.push(wheel.clone());
    }
    run(
        Command::new(&pip)
            .args(["install", "--no-input", "--disable-pip-version-check", "--only-binary=:all:"])
            .args(&wheels),
        &format!("pip install {} {}", c.mcp_server, c.mcp_bridge),
        py,
    )?;
    // The downloaded wheels are installed now; only the environment is needed.
    let _ = std::fs::remove_dir_all(venv.join("wheels"));
    manifests::atomic::write_atomic(&venv.join(MARKER), marker_text(c).as_bytes(), 0o644)
        .map_err(io_err(format!("write {}", venv.join(MARKER).display())))
}

/// Removes the environments of earlier pins (and all of them with MCP off). Only for after every
/// colour runs the current settings: a colour still serving may run from an older one.
pub fn prune(l: &Layout, c: &Components) -> Vec<PathBuf> {
    let keep = c.mcp.then(|| venv_dir(l, c));
    let mut removed = Vec::new();
    for e in std::fs::read_dir(l.base.join("mcp")).into_iter().flatten().flatten() {
        let p = e.path();
        if Some(&p) != keep.as_ref() && std::fs::remove_dir_all(&p).is_ok() {
            removed.push(p);
        }
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir(l.base.join("mcp"));
    }
    removed
}

/// Copies the API token's first line into [`api_token_file`]; returns whether it changed.
pub fn ensure_api_token(l: &Layout, c: &Components) -> Result<bool, McpError> {
    let Some(src) = &c.mcp_api_token_file else {
        return Err(McpError::Token { path: "(unset)".into(), why: "is not set".into() });
    };
    let token_err = |why: String| McpError::Token { path: src.display().to_string(), why };
    let text = std::fs::read_to_string(src).map_err(|e| token_err(format!("cannot be read ({e})")))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(token_err("has no token on its first line".into()));
    }
    write_owner_only(&api_token_file(l), token)
}

/// Makes the bearer token once (kept across runs, as clients are configured with it) and writes
/// nginx's check from it; returns whether either changed.
pub fn ensure_bearer(l: &Layout) -> Result<bool, McpError> {
    let path = bearer_file(l);
    let mut changed = false;
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if is_bearer(t.trim()) => t.trim().to_string(),
        _ => {
            let t = crate::instance::secrets::random_hex(32).map_err(io_err("read /dev/urandom"))?;
            changed |= write_owner_only(&path, &t)?;
            t
        }
    };
    changed |= write_owner_only(&nginx_auth_file(l), &nginx_auth(&token))?;
    Ok(changed)
}

fn is_bearer(t: &str) -> bool {
    t.len() >= 32 && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
}

/// The `/mcp` location's first lines: anything but `Authorization: Bearer <token>` gets 401. The
/// header is not passed on, so the token never reaches the MCP server or its logs.
pub fn nginx_auth(token: &str) -> String {
    format!(
        "# Generated by vikunja-installer from {}; the bearer token MCP clients must send.\n\
         if ($http_authorization != \"Bearer {token}\") {{\n    \
         add_header WWW-Authenticate 'Bearer realm=\"vikunja-mcp\"' always;\n    \
         return 401;\n}}\nproxy_set_header Authorization \"\";\n",
        "mcp-bearer-token"
    )
}

fn write_owner_only(path: &Path, text: &str) -> Result<bool, McpError> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    manifests::atomic::write_atomic(path, text.as_bytes(), 0o600)
        .map_err(io_err(format!("write {}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io_err(format!("chmod 0600 {}", path.display())))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_name_equals_version_and_nothing_pip_reads_otherwise() {
        for ok in ["rmc-vikunja-mcp==0.4.6", "mcp-proxy==0.13.0", "a_b.c==1.0.0+local"] {
            assert!(is_pin(ok), "{ok}");
        }
        for bad in ["mcp-proxy", "mcp-proxy>=0.13", "--index-url==1", "x==1 --pre", "https://e/x.whl==1", "x==", "==1"]
        {
            assert!(!is_pin(bad), "{bad}");
        }
    }

    #[test]
    fn prune_keeps_only_the_current_pins_environment() {
        let root = std::env::temp_dir().join(format!("mcp-prune-{}", std::process::id()));
        let l = Layout::new(&root, "p");
        let mut c = crate::instance::config::Components { mcp: true, ..Default::default() };
        let current = venv_dir(&l, &c);
        let old = l.base.join("mcp/rmc-vikunja-mcp-0.4.5+mcp-proxy-0.12.0");
        for d in [&current, &old] {
            std::fs::create_dir_all(d.join("bin")).unwrap();
        }
        assert_eq!(prune(&l, &c), vec![old.clone()]);
        assert!(current.is_dir() && !old.exists());
        c.mcp = false;
        assert_eq!(prune(&l, &c), vec![current]);
        assert!(!l.base.join("mcp").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn nginx_check_refuses_everything_but_the_exact_bearer() {
        let conf = nginx_auth("abc");
        assert!(conf.contains("if ($http_authorization != \"Bearer abc\")") && conf.contains("return 401;"), "{conf}");
        assert!(conf.contains("proxy_set_header Authorization \"\";"), "{conf}");
    }
}
