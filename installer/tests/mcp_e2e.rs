//! The MCP component for real: the installer installs the pinned Vikunja MCP server and its stdio
//! bridge from PyPI wheels (cached under target/ on the first run, then installed offline), runs
//! one per colour under its supervisor, and real nginx serves `/mcp` only with the bearer token.
//! The reference MCP client (PyPI `mcp`) lists the tools through nginx; the server's own calls go
//! to the Vikunja stand-in.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use vikunja_e2e::sandbox::{DownloadSite, Sandbox};

const V1: &str = "v2.4.0";
const V2: &str = "v2.5.0";
const INSTANCE: &str = "m";
/// A tool rmc-vikunja-mcp 0.4.6 offers.
const KNOWN_TOOL: &str = "list_projects";

fn site() -> &'static DownloadSite {
    static S: OnceLock<DownloadSite> = OnceLock::new();
    S.get_or_init(|| {
        let dir = vikunja_e2e::scratch_dir("mcp-site").unwrap();
        DownloadSite::start(&dir, &[V1, V2]).unwrap()
    })
}

fn installer(sb: &Sandbox, args: &[&str]) -> Output {
    sb.run_installer(
        env!("CARGO_BIN_EXE_vikunja-installer"),
        &site().ca.ca_pem,
        args,
        vikunja_e2e::mcp::pip_offline_env().unwrap(),
    )
}

/// A deployment with MCP on and an API token file; `extra` goes into `[components]`.
fn config(sb: &Sandbox, extra: &str) -> PathBuf {
    let token = sb.root.join("vikunja-api-token");
    std::fs::write(&token, "tk_test_api_token_0123456789\n").unwrap();
    let comp = format!("\n[components]\nmcp = true\nmcp_api_token_file = \"{}\"\n{extra}", token.display());
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, V1, &site().base(), &comp)).unwrap();
    cfg
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

fn https_code(sb: &Sandbox, headers: &[&str]) -> String {
    let cert = sb.instance_dir(INSTANCE).join("config/ssl/cert.pem");
    let mut args = vec!["-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"];
    args.push(cert.to_str().unwrap());
    for h in headers {
        args.extend(["-H", h]);
    }
    let url = format!("https://localhost:{}/mcp", sb.ports.https);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;
    args.extend(["-H", "Accept: application/json, text/event-stream", "-H", "Content-Type: application/json"]);
    args.extend(["-d", body, &url]);
    let o = Command::new("curl").args(&args).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn list(sb: &Sandbox, bearer: &str) -> vikunja_e2e::mcp::Listing {
    let base = sb.instance_dir(INSTANCE);
    let venv = std::fs::read_dir(base.join("mcp")).unwrap().next().unwrap().unwrap().path();
    let url = format!("https://localhost:{}/mcp", sb.ports.https);
    let l = vikunja_e2e::mcp::list_tools(&venv.join("bin/python"), &url, bearer, &base.join("config/ssl/cert.pem"))
        .unwrap();
    eprintln!("--- MCP client (bearer {bearer:.6}…)\n{}", l.output);
    l
}

/// The process listening on `port`, by its socket inode in /proc/net/tcp.
fn listener_pid(port: u16) -> Option<u32> {
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        (local_port == port && f.get(3) == Some(&"0A")).then(|| f.get(9).map(|s| s.to_string()))?
    })?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
        let pid: u32 = p.file_name().to_str()?.parse().ok()?;
        let fds = std::fs::read_dir(p.path().join("fd")).ok()?;
        fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_str() == Some(&target))).then_some(pid)
    })
}

#[test]
fn mcp_lists_tools_through_nginx_only_with_the_bearer_token_and_an_update_switches_its_colour() {
    let sb = Sandbox::new("mcp-e2e").unwrap();
    let cfg = config(&sb, "");
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "install failed");
    let base = sb.instance_dir(INSTANCE);
    for (f, m) in
        [("config/mcp-bearer-token", 0o600), ("config/.mcp-api-token", 0o600), ("config/nginx/mcp-auth.conf", 0o600)]
    {
        assert_eq!(mode(&base.join(f)), m, "{f}");
    }
    let bearer = std::fs::read_to_string(base.join("config/mcp-bearer-token")).unwrap();
    assert_eq!(bearer.len(), 64, "{bearer}");
    let unit = std::fs::read_to_string(base.join("config/units/vikunja-m-mcp-blue.service")).unwrap();
    assert!(!unit.contains("tk_test_api_token"), "the API token must not be in the world-readable unit:\n{unit}");

    // Health is an MCP round trip, not an open port.
    let o = installer(&sb, &["health", "--json"]);
    assert!(o.status.success(), "health");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mcp = v["components"].as_array().unwrap().iter().find(|c| c["name"] == "MCP Server").unwrap().clone();
    assert!(mcp["healthy"] == true && mcp["detail"].as_str().unwrap().contains("tools/list"), "{mcp}");
    assert_eq!(mcp["port"], sb.ports.mcp_blue, "{mcp}");
    let o = Command::new(base.join("scripts/health-check.sh")).output().unwrap();
    assert!(o.status.success(), "the operator script must agree: {}", String::from_utf8_lossy(&o.stdout));

    // The server got the API token through its environment (from the 0600 copy).
    let pid = listener_pid(sb.ports.mcp_blue).expect("nothing listens on mcp_blue");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(
        environ.split(|b| *b == 0).any(|e| e == b"VIKUNJA_TOKEN=tk_test_api_token_0123456789"),
        "the bridge (and so its server) runs without the API token"
    );

    // Control: the reference client with the right token lists the server's tools through nginx.
    let ok = list(&sb, &bearer);
    assert!(ok.ok && ok.tools.iter().any(|t| t == KNOWN_TOOL), "tools through nginx: {:?}", ok.tools);
    // Attacks: no token, a wrong one, the right one without its scheme; refused by nginx.
    let wrong = list(&sb, &format!("{}x", &bearer[..63]));
    assert!(!wrong.ok && wrong.tools.is_empty() && wrong.output.contains("401"), "{}", wrong.output);
    assert_eq!(https_code(&sb, &[]), "401");
    assert_eq!(https_code(&sb, &[&format!("Authorization: {bearer}")]), "401");
    assert_eq!(https_code(&sb, &[&format!("Authorization: Bearer {bearer}")]), "200");

    // The blue-green switch carries the MCP colour: green's server serves /mcp after the update.
    let o = installer(&sb, &["update", "--version", V2]);
    assert!(o.status.success(), "update failed");
    let up = std::fs::read_to_string(base.join("config/nginx/upstream.conf")).unwrap();
    assert!(up.contains(&format!("server 127.0.0.1:{};", sb.ports.mcp_green)), "{up}");
    assert!(listener_pid(sb.ports.mcp_green).is_some(), "green's MCP server is not running");
    assert!(listener_pid(sb.ports.mcp_blue).is_none(), "blue's MCP server still runs after the switch");
    let after = list(&sb, &bearer);
    assert!(after.ok && after.tools == ok.tools, "after the update: {:?}", after.tools);
    let o = installer(&sb, &["health", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mcp = v["components"].as_array().unwrap().iter().find(|c| c["name"] == "MCP Server").unwrap().clone();
    assert!(mcp["healthy"] == true && mcp["port"] == sb.ports.mcp_green, "{mcp}");

    // A backup while MCP is on, restored below after switching it off pruned its environment.
    let o = installer(&sb, &["backup"]);
    assert!(o.status.success(), "backup failed");
    let backup = std::fs::read_dir(base.join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vikunja-backup-")))
        .expect("the backup in backups/");

    // MCP switched off: rolled out like any setting; no bridge, no /mcp check, no environment left.
    let off = sb.root.join("off.toml");
    std::fs::write(&off, sb.config(INSTANCE, V2, &site().base(), "")).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", off.to_str().unwrap()]);
    assert!(o.status.success(), "install with mcp = false failed");
    assert!(listener_pid(sb.ports.mcp_green).is_none() && listener_pid(sb.ports.mcp_blue).is_none());
    assert!(!base.join("mcp").exists(), "the MCP environment was left behind");
    let site_conf = std::fs::read_to_string(base.join("config/nginx/site.conf")).unwrap();
    assert!(!site_conf.contains("location /mcp"), "{site_conf}");

    // The restore of the backup made with MCP on builds its environment again before the switch,
    // and /mcp serves the tools with the backup's bearer token.
    let o = installer(&sb, &["restore", backup.to_str().unwrap(), "--yes"]);
    assert!(o.status.success(), "restore of a backup with MCP after MCP was switched off failed");
    assert!(base.join("mcp").is_dir(), "the restore did not rebuild the MCP environment");
    let restored = list(&sb, &bearer);
    assert!(restored.ok && restored.tools == ok.tools, "after the restore: {:?}", restored.output);
    sb.stop_all();
}

#[test]
fn a_wheel_that_does_not_match_its_pin_is_refused_and_nothing_is_installed() {
    let sb = Sandbox::new("mcp-pin").unwrap();
    let forged = "0".repeat(64);
    let cfg = config(&sb, &format!("mcp_bridge_sha256 = \"{forged}\"\n"));
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "a checksum mismatch is a verification failure");
    assert!(
        err.contains("mcp_proxy-0.13.0-py3-none-any.whl: sha256 is 4058835a")
            && err.contains(&forged)
            && err.contains("components.mcp_bridge_sha256"),
        "{err}"
    );
    assert!(!sb.instance_dir(INSTANCE).exists(), "a refused install left files behind");
}

#[test]
fn mcp_without_an_api_token_file_is_refused_before_anything_changes() {
    let sb = Sandbox::new("mcp-token").unwrap();
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, V1, &site().base(), "\n[components]\nmcp = true\n")).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("components.mcp_api_token_file") && err.contains("API Tokens"), "{err}");
    assert!(!sb.instance_dir(INSTANCE).exists());
}
