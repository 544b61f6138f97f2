//! `vikunja-installer install / health / status` for real: a sandbox root, real nginx with TLS, the
//! Vikunja stand-in downloaded as a release zip from a local HTTPS site, services run by the
//! installer's own supervisor (`--init process`: no systemd as PID 1 here).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use vikunja_e2e::sandbox::{DownloadSite, Sandbox};

const V: &str = "v2.5.0";

fn site() -> &'static DownloadSite {
    static S: OnceLock<DownloadSite> = OnceLock::new();
    S.get_or_init(|| {
        let dir = vikunja_e2e::scratch_dir("install-site").unwrap();
        DownloadSite::start(&dir, &[V]).unwrap()
    })
}

fn installer(sb: &Sandbox, args: &[&str]) -> Output {
    sb.run_installer(
        env!("CARGO_BIN_EXE_vikunja-installer"),
        &site().ca.ca_pem,
        args,
        std::iter::empty::<(&str, &str)>(),
    )
}

fn write_config(sb: &Sandbox, name: &str, text: &str) -> PathBuf {
    let p = sb.root.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn install(sb: &Sandbox, cfg: &Path) -> Output {
    installer(sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()])
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl").args(["-sS", "--max-time", "10"]).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn installs_from_scratch_serves_over_tls_and_a_second_run_changes_nothing() {
    let sb = Sandbox::new("install-sqlite").unwrap();
    let cfg = write_config(&sb, "d", &sb.config("t1", V, &site().base(), ""));
    let o = install(&sb, &cfg);
    assert!(o.status.success(), "install failed");
    let base = sb.instance_dir("t1");
    for d in ["config", "data", "backups", "state", "logs", "scripts", &format!("releases/{V}")] {
        assert!(base.join(d).is_dir(), "{d} missing");
    }
    use std::os::unix::fs::PermissionsExt;
    for secret in ["config/.service-secret", "config/ssl/key.pem"] {
        assert_eq!(std::fs::metadata(base.join(secret)).unwrap().permissions().mode() & 0o777, 0o600, "{secret}");
    }
    let yml = std::fs::read_to_string(base.join("config/config.yml")).unwrap();
    assert!(yml.contains("publicurl: \"https://vikunja.test:") && !yml.contains("secret:"), "{yml}");

    // Through nginx, with the certificate the installer made for the domain.
    let cert = base.join("config/ssl/cert.pem");
    let https = sb.ports.https;
    let resolve = format!("vikunja.test:{https}:127.0.0.1");
    let url = format!("https://vikunja.test:{https}/api/v1/info");
    let cacert = cert.to_str().unwrap();
    let o = curl(&["--cacert", cacert, "--resolve", &resolve, &url]);
    assert!(text(&o).contains(&format!("\"version\":\"{V}\"")), "{o:?}");
    let o = curl(&["--cacert", cacert, "--resolve", &resolve, "--tlsv1.3", "--tls-max", "1.3", &url]);
    assert!(o.status.success(), "TLS 1.3 refused: {o:?}");
    for old in ["1.0", "1.1"] {
        let o = curl(&["--cacert", cacert, "--resolve", &resolve, &format!("--tlsv{old}"), "--tls-max", old, &url]);
        assert!(!o.status.success(), "TLS {old} accepted");
    }
    let o = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
        &format!("http://127.0.0.1:{}/x", sb.ports.http),
    ]);
    assert!(text(&o).starts_with("301 https://"), "{}", text(&o));
    let o = curl(&["--cacert", cacert, "--resolve", &resolve, &format!("https://vikunja.test:{https}/")]);
    assert!(text(&o).to_lowercase().contains("<html"), "frontend");

    let o = installer(&sb, &["status", "--json"]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["instance"], "t1");
    assert_eq!(v["colour"], "blue");
    assert_eq!(v["version"], V);
    assert_eq!(v["healthy"], true);
    let names: Vec<&str> = v["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Backend API", "Frontend", "Database", "Nginx"]);
    assert_eq!(v["components"][0]["port"], sb.ports.backend_blue);
    assert_eq!(v["last_operation"]["operation"], "install");

    let o = installer(&sb, &["health"]);
    assert!(o.status.success());
    let o = installer(&sb, &["status"]);
    assert!(text(&o).contains("Vikunja Deployment Status") && text(&o).contains("Backend API"));

    let o = install(&sb, &cfg);
    assert!(o.status.success());
    assert!(text(&o).contains("Nothing to change"), "second install changed something");
}

fn nothing_installed(sb: &Sandbox, instance: &str) {
    let base = sb.instance_dir(instance);
    let left: Vec<_> = walk(&base);
    assert!(left.is_empty(), "half-installed: {left:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn invalid_settings_are_named_and_nothing_is_installed() {
    let sb = Sandbox::new("install-invalid").unwrap();
    let extra = "\n[files]\nmax_size_mb = 0\n\n[admin]\nemail = \"not-an-address\"\n";
    let cfg = write_config(&sb, "d", &sb.config("Bad_Name", V, &site().base(), extra));
    let o = install(&sb, &cfg);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    for want in
        ["instance.name = \"Bad_Name\"", "files.max_size_mb = \"0\"", "admin.email = \"not-an-address\"", "allowed:"]
    {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
    nothing_installed(&sb, "Bad_Name");
    let cfg =
        write_config(&sb, "typo", &format!("{}\n[network]\nhttps_prot = 1\n", sb.config("t2", V, &site().base(), "")));
    let o = install(&sb, &cfg);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("line"), "a TOML error names its line: {}", stderr(&o));
}

#[test]
fn a_wrong_checksum_installs_nothing() {
    let sb = Sandbox::new("install-checksum").unwrap();
    let extra = format!("sha256 = \"{}\"\n", "0".repeat(64));
    let cfg_text = sb.config("t3", V, &site().base(), "").replacen(
        &format!("download_base = \"{}\"\n", site().base()),
        &format!("download_base = \"{}\"\n{extra}", site().base()),
        1,
    );
    let cfg = write_config(&sb, "d", &cfg_text);
    let o = install(&sb, &cfg);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("sha256") && stderr(&o).contains("nothing was installed"), "{}", stderr(&o));
    nothing_installed(&sb, "t3");

    // A zip whose binary does not match the .sha256 inside it (offline artifact).
    let zips = vikunja_e2e::sandbox::standin_zips(&[V]).unwrap();
    let good = zips.join(V).join(format!("vikunja-{V}-linux-amd64-full.zip"));
    let bad = sb.root.join("tampered.zip");
    tamper_binary_in_zip(&good, &bad);
    let cfg_text = sb.config("t3", V, &site().base(), "").replacen(
        &format!("download_base = \"{}\"\n", site().base()),
        &format!("download_base = \"{}\"\nartifact = \"{}\"\n", site().base(), bad.display()),
        1,
    );
    let cfg = write_config(&sb, "offline", &cfg_text);
    let o = install(&sb, &cfg);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains(".sha256 file in the zip"), "{}", stderr(&o));
    nothing_installed(&sb, "t3");
}

/// Rewrites the zip with one byte of the binary changed and the original .sha256 kept.
fn tamper_binary_in_zip(src: &Path, dest: &Path) {
    let dir = dest.with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    assert!(Command::new("unzip").arg("-q").arg(src).arg("-d").arg(&dir).status().unwrap().success());
    let bin = dir.join(format!("vikunja-{V}-linux-amd64"));
    let mut b = std::fs::read(&bin).unwrap();
    let n = b.len() / 2;
    b[n] ^= 1;
    std::fs::write(&bin, b).unwrap();
    let st = Command::new("zip").arg("-q").arg("-r").arg(dest).arg(".").current_dir(&dir).status().unwrap();
    assert!(st.success());
}

#[test]
fn an_unreachable_database_is_refused_before_any_change() {
    let sb = Sandbox::new("install-nodb").unwrap();
    let pw = sb.root.join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let dead = vikunja_e2e::free_port();
    let extra = format!(
        "\n[database]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\nport = {dead}\npassword_file = \"{}\"\n",
        pw.display()
    );
    let cfg = write_config(&sb, "d", &sb.config("t4", V, &site().base(), &extra));
    let o = install(&sb, &cfg);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("database check failed, nothing was changed") && e.contains(&dead.to_string()), "{e}");
    nothing_installed(&sb, "t4");
}

#[test]
fn two_instances_with_mcp_side_by_side_and_units_pass_systemd_analyze() {
    let sb = Sandbox::new("install-multi").unwrap();
    // The real MCP server and bridge (tests/src/mcp.rs: the pinned wheels, cached under target/).
    let token = sb.root.join("api-token");
    std::fs::write(&token, "tk_alpha\n").unwrap();
    let mcp = format!("\n[components]\nmcp = true\nmcp_api_token_file = \"{}\"\n", token.display());
    let cfg = write_config(&sb, "a", &sb.config("alpha", V, &site().base(), &mcp));
    let o = Command::new(env!("CARGO_BIN_EXE_vikunja-installer"))
        .args(["install", "--init", "process", "--config", cfg.to_str().unwrap(), "--root"])
        .arg(&sb.root)
        .env("SSL_CERT_FILE", &site().ca.ca_pem)
        .envs(vikunja_e2e::mcp::pip_offline_env().unwrap())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let other = Sandbox::new("install-multi-ports").unwrap();
    let cfg2 = other.config("beta", V, &site().base(), "");
    let cfg2 = write_config(&sb, "b", &cfg2);
    assert!(install(&sb, &cfg2).status.success());

    let o = installer(&sb, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(2), "two instances: status must ask which");
    assert!(stderr(&o).contains("alpha, beta"), "{}", stderr(&o));
    let o = installer(&sb, &["status", "--json", "--instance", "alpha"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["components"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Backend API", "Frontend", "MCP Server", "Database", "Nginx"]);
    assert_eq!(v["healthy"], true, "{v}");
    let o = installer(&sb, &["health", "--instance", "beta", "--json"]);
    assert!(o.status.success());

    // /mcp through nginx reaches the MCP server of the active colour, with the bearer token only
    // (mcp_e2e.rs lists the tools with the reference client).
    let cert = sb.instance_dir("alpha").join("config/ssl/cert.pem");
    let resolve = format!("vikunja.test:{}:127.0.0.1", sb.ports.https);
    let bearer = std::fs::read_to_string(sb.instance_dir("alpha").join("config/mcp-bearer-token")).unwrap();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}"#;
    for (auth, want) in [(format!("Authorization: Bearer {bearer}"), "serverInfo"), ("X-No: auth".into(), "401")] {
        let o = curl(&[
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &resolve,
            "-H",
            &auth,
            "-H",
            "Accept: application/json, text/event-stream",
            "-H",
            "Content-Type: application/json",
            "-d",
            init,
            &format!("https://vikunja.test:{}/mcp", sb.ports.https),
        ]);
        assert!(text(&o).contains(want), "/mcp with {auth:.20}: {o:?}");
    }

    // Every unit the installer wrote passes the strict verify and scores at most 2.0.
    let units = sb.instance_dir("alpha").join("config/units");
    let mut n = 0;
    for e in std::fs::read_dir(&units).unwrap() {
        let p = e.unwrap().path();
        let o = Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&p).output().unwrap();
        let out = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        // The service user exists only in a real container; everything else must be silent.
        let noise: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(o.status.success() && noise.is_empty(), "{p:?}: {out}");
        let o = Command::new("systemd-analyze").args(["security", "--offline=yes"]).arg(&p).output().unwrap();
        let report = String::from_utf8_lossy(&o.stdout);
        let score: f64 = report
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no score for {p:?}: {report}"));
        assert!(score <= 2.0, "{p:?} scores {score}");
        n += 1;
    }
    assert_eq!(n, 4, "backend and mcp, blue and green");
}

#[test]
fn a_failing_nginx_check_keeps_the_old_configuration_serving() {
    let sb = Sandbox::new("install-nginx-t").unwrap();
    let cfg = write_config(&sb, "d", &sb.config("t5", V, &site().base(), ""));
    assert!(install(&sb, &cfg).status.success());
    let site_conf = sb.instance_dir("t5").join("config/nginx/site.conf");
    let before = std::fs::read_to_string(&site_conf).unwrap();
    // A certificate nginx cannot load: the new site fails `nginx -t`.
    let (bad_cert, bad_key) = (sb.root.join("bad-cert.pem"), sb.root.join("bad-key.pem"));
    std::fs::write(&bad_cert, "not a certificate\n").unwrap();
    std::fs::write(&bad_key, "not a key\n").unwrap();
    let extra = format!("\n[ssl]\ncert_path = \"{}\"\nkey_path = \"{}\"\n", bad_cert.display(), bad_key.display());
    let cfg = write_config(&sb, "bad", &sb.config("t5", V, &site().base(), &extra));
    let o = install(&sb, &cfg);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nginx -t failed") && stderr(&o).contains("still serving"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&site_conf).unwrap(), before, "site.conf was not restored");
    let cert = sb.instance_dir("t5").join("config/ssl/cert.pem");
    let resolve = format!("vikunja.test:{}:127.0.0.1", sb.ports.https);
    let o = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        "--resolve",
        &resolve,
        &format!("https://vikunja.test:{}/api/v1/info", sb.ports.https),
    ]);
    assert!(text(&o).contains(V), "the old configuration stopped serving: {o:?}");
}

#[test]
fn installs_against_a_real_postgresql_server() {
    use vikunja_e2e::postgres::PgCluster;
    let Some(pg) = PgCluster::for_test() else { return };
    let sb = Sandbox::new("install-postgres").unwrap();
    let extra = pg.deployment_toml();
    let cfg = write_config(&sb, "d", &sb.config("pg", V, &site().base(), &extra));
    let o = install(&sb, &cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let base = sb.instance_dir("pg");
    let yml = std::fs::read_to_string(base.join("config/config.yml")).unwrap();
    assert!(yml.contains("type: \"postgres\"") && !yml.contains(vikunja_e2e::postgres::PASSWORD), "{yml}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(base.join("config/.db-password")).unwrap().permissions().mode() & 0o777, 0o600);

    // A task written through nginx lands in PostgreSQL.
    let cert = base.join("config/ssl/cert.pem");
    let resolve = format!("vikunja.test:{}:127.0.0.1", sb.ports.https);
    let api = format!("https://vikunja.test:{}/api/v1", sb.ports.https);
    let o = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        "--resolve",
        &resolve,
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "-d",
        "{\"title\":\"in postgres\"}",
        &format!("{api}/projects/1/tasks"),
    ]);
    assert!(text(&o).contains("in postgres"), "{o:?}");
    assert_eq!(pg.query("SELECT title FROM tasks"), "in postgres");
    let o = installer(&sb, &["health", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["healthy"], true);
    assert!(v["components"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["detail"].as_str().unwrap().starts_with("PostgreSQL")));
}

#[test]
fn an_unhealthy_backend_exits_10_with_remediation_naming_the_real_unit() {
    let sb = Sandbox::new("install-unhealthy").unwrap();
    let cfg = write_config(&sb, "d", &sb.config("t6", V, &site().base(), ""));
    assert!(install(&sb, &cfg).status.success());
    let logs = sb.instance_dir("t6").join("logs");
    let unit = "vikunja-t6-backend-blue";
    let pidfile = logs.join(format!("{unit}.pid"));
    let supervisor = std::fs::read_to_string(&pidfile).unwrap().split_whitespace().next().unwrap().to_string();
    assert!(Command::new("kill").args(["-TERM", &supervisor]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while pidfile.exists() {
        assert!(std::time::Instant::now() < deadline, "the supervisor did not stop");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = installer(&sb, &["health"]);
    assert_eq!(o.status.code(), Some(10));
    let out = text(&o);
    assert!(out.contains("FAIL Backend API"), "{out}");
    assert!(out.contains(&format!("tail -n 50 {}", logs.join(format!("{unit}.log")).display())), "{out}");
    assert!(out.contains("health-check.sh") && out.contains("df -h"), "{out}");
    let o = installer(&sb, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(10));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["components"][0]["running"], false);
    let script = sb.instance_dir("t6").join("scripts/health-check.sh");
    let o = Command::new(&script).output().unwrap();
    assert_eq!(o.status.code(), Some(10), "the operator script must agree: {}", text(&o));
}

#[test]
fn the_service_user_owns_data_but_not_code_and_runs_the_backend() {
    let sb = Sandbox::new("install-user").unwrap();
    // A root with account files, so useradd --root can add the user there.
    let etc = sb.root.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    for f in ["passwd", "group", "shadow", "gshadow"] {
        let keep: String = std::fs::read_to_string(format!("/etc/{f}"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("root:"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(etc.join(f), keep).unwrap();
    }
    let cfg = write_config(&sb, "d", &sb.config("t7", V, &site().base(), ""));
    let o = install(&sb, &cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap();
    let line = passwd.lines().find(|l| l.starts_with("vikunja:")).unwrap_or_else(|| panic!("no user: {passwd}"));
    assert!(line.ends_with(":/usr/sbin/nologin"), "{line}");
    let uid: u32 = line.split(':').nth(2).unwrap().parse().unwrap();
    use std::os::unix::fs::MetadataExt;
    let base = sb.instance_dir("t7");
    assert_eq!(std::fs::metadata(base.join("data")).unwrap().uid(), uid);
    assert_eq!(std::fs::metadata(base.join("logs")).unwrap().uid(), uid);
    assert_eq!(std::fs::metadata(base.join("config/.service-secret")).unwrap().uid(), uid);
    let bin = base.join(format!("releases/{V}/vikunja-{V}-linux-amd64"));
    assert_eq!(std::fs::metadata(&bin).unwrap().uid(), 0, "code must stay root's");
    assert_eq!(std::fs::metadata(&bin).unwrap().mode() & 0o222, 0, "code must be read-only");
    // The backend process runs as that user.
    let pid = std::fs::read_to_string(base.join("logs/vikunja-t7-backend-blue.pid")).unwrap();
    let child = pid.split_whitespace().nth(1).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap();
    let proc_uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap().split_whitespace().nth(1).unwrap();
    assert_eq!(proc_uid, uid.to_string());
}

#[test]
fn nginx_bound_to_one_address_is_checked_there() {
    let sb = Sandbox::new("install-listen").unwrap();
    let text_cfg = sb
        .config("t9", V, &site().base(), "")
        .replace("listen_address = \"127.0.0.1\"", "listen_address = \"127.0.10.11\"");
    assert!(text_cfg.contains("127.0.10.11"));
    let cfg = write_config(&sb, "d", &text_cfg);
    let o = install(&sb, &cfg);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = installer(&sb, &["health", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["healthy"], true, "{v}");
    let nginx = v["components"].as_array().unwrap().iter().find(|c| c["name"] == "Nginx").unwrap().clone();
    assert!(nginx["detail"].as_str().unwrap().contains("HTTPS"), "{nginx}");
    // Nothing answers on 127.0.0.1 for this instance: the check really went to 127.0.10.11.
    let o = curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{}/", sb.ports.http)]);
    assert_eq!(text(&o), "000");
}
