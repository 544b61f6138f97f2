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
    let o = Command::new(env!("CARGO_BIN_EXE_vikunja-installer"))
        .args(args)
        .arg("--root")
        .arg(&sb.root)
        .env("SSL_CERT_FILE", &site().ca.ca_pem)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    eprintln!(
        "$ vikunja-installer {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
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
    assert_eq!(v["active_colour"], "blue");
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
