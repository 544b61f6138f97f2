//! Issue 16, "ACME certificates", against Debian's `pebble` (the ACME test server Let's Encrypt
//! publishes) on loopback: its HTTP-01 validation fetches the token from the instance's own nginx
//! (pebble's `httpPort` is the sandbox's HTTP port), and `pebble-challtestsrv` answers its DNS
//! queries for the domain with 127.0.0.1. Pebble's HTTPS uses the download site's test CA, which
//! the installer trusts through `SSL_CERT_FILE` alone. Black box: the CLI, the files, what nginx
//! serves.

mod lifecycle_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifecycle_common::*;
use vikunja_e2e::load::{Load, Target};
use vikunja_e2e::sandbox::Sandbox;

const DOMAIN: &str = "vikunja.test";

/// A pebble and its DNS stand-in, killed on drop.
struct Pebble {
    children: Vec<Child>,
    port: u16,
    mgmt: u16,
    _dir: vikunja_e2e::TestDir,
}

impl Pebble {
    /// `http_port`: where pebble's validation connects (the instance's nginx, or nothing).
    fn start(name: &str, http_port: u16, env: &[(&str, &str)]) -> Option<Pebble> {
        if Command::new("pebble").arg("-version").output().is_err() {
            vikunja_e2e::skip("pebble is not installed (apt-get install -y pebble)");
            return None;
        }
        let dir = vikunja_e2e::TestDir::new(name).unwrap();
        let (port, mgmt, tls, dns, dns_mgmt) = (free(), free(), free(), free(), free());
        let ca = &site().ca;
        let cfg = dir.path().join("pebble.json");
        std::fs::write(
            &cfg,
            format!(
                r#"{{"pebble": {{"listenAddress": "127.0.0.1:{port}", "managementListenAddress": "127.0.0.1:{mgmt}",
                "certificate": "{}", "privateKey": "{}", "httpPort": {http_port}, "tlsPort": {tls},
                "ocspResponderURL": "", "externalAccountBindingRequired": false}}}}"#,
                ca.leaf_pem.display(),
                ca.leaf_key.display()
            ),
        )
        .unwrap();
        let mut dns_cmd = Command::new("pebble-challtestsrv");
        dns_cmd
            .args(["-dns01", &format!("127.0.0.1:{dns}"), "-management", &format!("127.0.0.1:{dns_mgmt}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", "", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut cmd = Command::new("pebble");
        cmd.arg("-config").arg(&cfg).args(["-dnsserver", &format!("127.0.0.1:{dns}")]);
        cmd.env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_VA_ALWAYS_VALID", "0")
            // Every order validates afresh: a forced renewal and a failing challenge must not be
            // answered from an earlier valid authorization.
            .env("PEBBLE_AUTHZREUSE", "0")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(dir.path().join("pebble.log")).unwrap())
            .stderr(Stdio::null());
        let children = vec![vikunja_e2e::spawn_tied(dns_cmd).unwrap(), vikunja_e2e::spawn_tied(cmd).unwrap()];
        let p = Pebble { children, port, mgmt, _dir: dir };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", dns_mgmt)).is_err()
        {
            assert!(start.elapsed() < Duration::from_secs(20), "pebble did not listen on {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(p)
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// Pebble's root (made at its start), which the certificates it issues chain to.
    fn root(&self, to: &Path) -> PathBuf {
        let o = Command::new("curl")
            .args(["-sSf", "--cacert"])
            .arg(&site().ca.ca_pem)
            .arg(format!("https://127.0.0.1:{}/roots/0", self.mgmt))
            .output()
            .unwrap();
        assert!(o.status.success(), "pebble's root: {}", String::from_utf8_lossy(&o.stderr));
        std::fs::write(to, &o.stdout).unwrap();
        to.to_path_buf()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free() -> u16 {
    vikunja_e2e::free_port()
}

fn acme_config(sb: &Sandbox, directory: &str, extra: &str) -> PathBuf {
    write_config(
        sb,
        INSTANCE,
        V2,
        &format!("\n[ssl]\nacme = true\nacme_email = \"admin@example.org\"\nacme_directory = \"{directory}\"\n{extra}"),
    )
}

/// Points the installed instance at another directory (what `cert renew` reads).
fn set_directory(sb: &Sandbox, directory: &str) {
    let f = base(sb).join("config/deployment.toml");
    let text = std::fs::read_to_string(&f).unwrap();
    let line = text.lines().find(|l| l.starts_with("acme_directory")).unwrap().to_string();
    std::fs::write(&f, text.replace(&line, &format!("acme_directory = \"{directory}\""))).unwrap();
}

fn served_fingerprint(port: u16) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {DOMAIN} </dev/null 2>/dev/null | \
             openssl x509 -noout -fingerprint -sha256"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn file_fingerprint(cert: &Path) -> String {
    let o =
        Command::new("openssl").args(["x509", "-noout", "-fingerprint", "-sha256", "-in"]).arg(cert).output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn acme_files(sb: &Sandbox) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = base(sb).join("config/ssl/acme");
    let mut v: Vec<(PathBuf, Vec<u8>)> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| (e.path(), std::fs::read(e.path()).unwrap())).collect();
    v.sort();
    v
}

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

#[test]
fn install_obtains_a_certificate_renewal_keeps_or_replaces_it_without_a_failed_request_and_failures_change_nothing() {
    let sb = Sandbox::new("acme").unwrap();
    let Some(pebble) = Pebble::start("acme-pebble", sb.ports.http, &[]) else { return };
    let cfg = acme_config(&sb, &pebble.directory(), "");
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "install with acme: {}", said(&o));
    assert!(stdout(&o).contains(&format!("changed   ACME certificate for {DOMAIN}")), "{}", said(&o));

    // The account, certificate and key: owner-only files; nginx serves that certificate, which
    // chains to pebble's root for the domain.
    let acme = base(&sb).join("config/ssl/acme");
    let files = acme_files(&sb);
    let names: Vec<String> = files.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(
        names.len() == 2
            && names[0].starts_with("account-")
            && names[0].ends_with(".json")
            && names[1] == "certificate.pem",
        "{names:?}"
    );
    // Key and chain in one file, so one rename switches both.
    let text = String::from_utf8(files[1].1.clone()).unwrap();
    assert!(
        text.starts_with("-----BEGIN PRIVATE KEY-----") && text.matches("BEGIN CERTIFICATE").count() >= 2,
        "{text}"
    );
    for (p, _) in &files {
        let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
    let cert = acme.join("certificate.pem");
    assert_eq!(served_fingerprint(sb.ports.https), file_fingerprint(&cert));
    let root = pebble.root(&sb.root.join("pebble-root.pem"));
    let t = Target::new(DOMAIN, sb.ports.https, root.clone());
    let (status, body) = t.request("GET", "/api/v1/info", None);
    assert_eq!(status, 200, "through nginx, verified against pebble's root: {body}");
    // Port 80 still redirects everything but the challenge location.
    let o = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", &format!("Host: {DOMAIN}")])
        .arg(format!("http://127.0.0.1:{}/tasks", sb.ports.http))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("301 https://{DOMAIN}:{}/tasks", sb.ports.https),
        "plain HTTP must keep redirecting"
    );

    // Not due: nothing changes.
    let o = installer(&sb, &["cert", "renew"]);
    assert!(o.status.success() && stdout(&o).contains("more days"), "{}", said(&o));
    assert_eq!(acme_files(&sb), files, "a renewal that was not due changed files");

    // Forced, under load: a new certificate serves and no request fails.
    let load = Load::start(&t, 2, 1);
    load.warm_up(20);
    let started = Instant::now();
    let o = installer(&sb, &["cert", "renew", "--force"]);
    let took = started.elapsed();
    let r = load.stop();
    eprintln!(
        "forced renewal: {} ms, {} reads and {} writes meanwhile",
        took.as_millis(),
        r.reads_ok,
        r.writes_acked.len()
    );
    assert!(o.status.success() && stdout(&o).contains("New certificate for"), "forced renewal: {}", said(&o));
    let renewed = file_fingerprint(&cert);
    assert_ne!(std::fs::read(&cert).unwrap(), files.iter().find(|(p, _)| p == &cert).unwrap().1, "same certificate");
    assert_eq!(served_fingerprint(sb.ports.https), renewed, "nginx still serves the old certificate");
    assert!(r.reads_ok > 0 && r.reads_failed.is_empty(), "reads failed during the switch: {:?}", r.reads_failed);
    assert!(r.writes_failed.is_empty(), "writes failed during the switch: {:?}", r.writes_failed);
    // Killed right after the new file's rename: nginx still serves the previous certificate, and
    // the next `cert renew` (not due) sees nginx never loaded the file and reloads.
    let o = installer_env(
        &sb,
        &["cert", "renew", "--force"],
        &[("VIKUNJA_INSTALLER_TEST_KILL_AT", "acme-certificate-written")],
    );
    assert_eq!(describe(&o), "killed by signal 9", "{}", said(&o));
    assert_ne!(file_fingerprint(&cert), renewed, "the killed run did not write its certificate");
    assert_eq!(served_fingerprint(sb.ports.https), renewed, "the killed run reloaded nginx");
    let o = installer(&sb, &["cert", "renew"]);
    assert!(o.status.success() && stdout(&o).contains("nginx serves it now"), "{}", said(&o));
    assert_eq!(served_fingerprint(sb.ports.https), file_fingerprint(&cert));
    let o = installer(&sb, &["cert", "renew"]);
    assert!(
        o.status.success() && stdout(&o).contains("more days; it is renewed when"),
        "no second reload: {}",
        said(&o)
    );

    let before = acme_files(&sb);
    let serving = served_fingerprint(sb.ports.https);
    // A re-run of install knows nginx already loaded the renewed pair: nothing to change.
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success() && stdout(&o).contains("Nothing to change"), "{}", said(&o));
    assert_eq!(acme_files(&sb), before);

    // A challenge the CA cannot complete (its validation reaches no nginx): exit 13, the domain
    // and what to do named, every file byte for byte as it was, the old certificate served.
    let Some(blind) = Pebble::start("acme-pebble-blind", free(), &[]) else { return };
    set_directory(&sb, &blind.directory());
    let o = installer(&sb, &["cert", "renew", "--force"]);
    let err = stderr(&o);
    assert_eq!(code(&o), Some(13), "{}", said(&o));
    assert!(
        err.contains(&format!("could not validate {DOMAIN}"))
            && err.contains("port 80")
            && err.contains("keeps serving"),
        "{err}"
    );
    assert_kept(&sb, &before, &serving, "a failed challenge");
    assert!(std::fs::read_dir(base(&sb).join("acme-challenge")).unwrap().next().is_none(), "a token was left behind");
    // `health` shows the days left and the failed attempt; with years left that is no fault.
    let o = installer(&sb, &["health"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", said(&o));
    assert!(out.contains("Certificate") && out.contains("ACME certificate: 1825 days left"), "{out}");
    assert!(out.contains("failed: the CA could not validate"), "{out}");
    let o = installer(&sb, &["status"]);
    assert!(stdout(&o).contains("║ Certificate:    OK ACME certificate: 1825 days left"), "{}", said(&o));

    // A directory that is not there, and a CA that refuses every nonce: exit 13, named clearly.
    let dead = format!("https://127.0.0.1:{}/dir", free());
    set_directory(&sb, &dead);
    let o = installer(&sb, &["cert", "renew", "--force"]);
    assert_eq!(code(&o), Some(13), "{}", said(&o));
    assert!(stderr(&o).contains(&format!("the ACME directory {dead} could not be used")), "{}", said(&o));
    drop(blind);
    let Some(refusing) = Pebble::start("acme-pebble-nonce", sb.ports.http, &[("PEBBLE_WFE_NONCEREJECT", "100")]) else {
        return;
    };
    set_directory(&sb, &refusing.directory());
    let o = installer(&sb, &["cert", "renew", "--force"]);
    assert_eq!(code(&o), Some(13), "{}", said(&o));
    assert!(stderr(&o).contains("badNonce"), "the CA's problem is not named: {}", said(&o));
    assert_kept(&sb, &before, &serving, "a dead directory and a refused nonce");

    // A CA whose HTTPS certificate the configured roots do not vouch for is refused (the runs
    // above, trusting the test CA, are the control): SSL_CERT_FILE names another CA here.
    set_directory(&sb, &pebble.directory());
    let o = installer_env(&sb, &["cert", "renew", "--force"], &[("SSL_CERT_FILE", root.to_str().unwrap())]);
    assert_eq!(code(&o), Some(13), "{}", said(&o));
    assert!(stderr(&o).contains("UnknownIssuer"), "the refusal does not say why: {}", said(&o));
    assert_kept(&sb, &before, &serving, "an untrusted CA");

    // A certificate nginx -t refuses (here: the site's include broken beside it) is not taken:
    // the file and the site go back byte for byte, nginx keeps serving without a reload.
    let upstream = base(&sb).join("config/nginx/upstream.conf");
    let good = std::fs::read(&upstream).unwrap();
    let site = std::fs::read(base(&sb).join("config/nginx/site.conf")).unwrap();
    std::fs::write(&upstream, "upstream {\n").unwrap();
    let o = installer(&sb, &["cert", "renew", "--force"]);
    std::fs::write(&upstream, &good).unwrap();
    assert_eq!(code(&o), Some(13), "{}", said(&o));
    assert!(stderr(&o).contains("not taken into service") && stderr(&o).contains("nginx -t"), "{}", said(&o));
    assert_kept(&sb, &before, &serving, "a refused nginx -t");
    assert_eq!(std::fs::read(base(&sb).join("config/nginx/site.conf")).unwrap(), site);

    // A stopped instance: nginx serves no challenge, so the CA is not asked (a failed validation
    // counts against the account) and renewing starts nothing.
    let o = installer(&sb, &["stop"]);
    assert!(o.status.success(), "{}", said(&o));
    let o = installer(&sb, &["cert", "renew", "--force"]);
    assert_eq!(code(&o), Some(13), "{}", said(&o));
    assert!(
        stderr(&o).contains("nothing was asked of the CA") && stderr(&o).contains("vikunja-installer start"),
        "{}",
        said(&o)
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", sb.ports.http)).is_err(), "cert renew started nginx");
    let after: Vec<(PathBuf, Vec<u8>)> =
        acme_files(&sb).into_iter().filter(|(p, _)| before.iter().any(|(q, _)| q == p)).collect();
    assert_eq!(after, before);
}

/// Every ACME file that existed is byte for byte as it was (a failure may add an account for
/// another directory, nothing else), and nginx serves the same certificate.
fn assert_kept(sb: &Sandbox, before: &[(PathBuf, Vec<u8>)], serving: &str, what: &str) {
    let after: Vec<(PathBuf, Vec<u8>)> =
        acme_files(sb).into_iter().filter(|(p, _)| before.iter().any(|(q, _)| q == p)).collect();
    assert_eq!(after, before, "{what} changed the certificate, key or account");
    assert_eq!(served_fingerprint(sb.ports.https), serving, "{what} changed what nginx serves");
}

#[test]
fn a_first_certificate_not_obtained_fails_install_unless_self_signed_is_allowed_and_later_installs_obtain_one() {
    let sb = Sandbox::new("acme-first").unwrap();
    // Validation goes to a port where nothing listens.
    let Some(blind) = Pebble::start("acme-first-pebble", free(), &[]) else { return };
    let cfg = acme_config(&sb, &blind.directory(), "");
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code(&o), Some(13), "{}", said(&o));
    assert!(stderr(&o).contains("temporary self-signed certificate"), "{}", said(&o));
    assert!(!base(&sb).join("config/ssl/acme/certificate.pem").exists());
    let o = installer(&sb, &["health"]);
    assert_eq!(code(&o), Some(10), "{}", said(&o));
    assert!(stdout(&o).contains("FAIL Certificate") && stdout(&o).contains("no ACME certificate yet"), "{}", said(&o));
    assert!(stdout(&o).contains("cert renew --instance"), "{}", said(&o));

    // Control: allowed, the same failure is a warning and the self-signed certificate serves.
    let cfg = acme_config(&sb, &blind.directory(), "acme_fallback_self_signed = true\n");
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", said(&o));
    assert!(stderr(&o).contains("the self-signed certificate serves instead"), "{}", said(&o));
    assert_eq!(served_fingerprint(sb.ports.https), file_fingerprint(&base(&sb).join("config/ssl/cert.pem")));

    // Once the CA can reach nginx, the next install obtains one; a new domain gets a new one.
    let Some(pebble) = Pebble::start("acme-first-seeing", sb.ports.http, &[]) else { return };
    let cfg = acme_config(&sb, &pebble.directory(), "");
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success() && stdout(&o).contains("changed   ACME certificate for vikunja.test"), "{}", said(&o));
    let acme = base(&sb).join("config/ssl/acme/certificate.pem");
    assert_eq!(served_fingerprint(sb.ports.https), file_fingerprint(&acme));
    let text = std::fs::read_to_string(&cfg).unwrap().replace("domain = \"vikunja.test\"", "domain = \"tasks.test\"");
    std::fs::write(&cfg, text).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success() && stdout(&o).contains("changed   ACME certificate for tasks.test"), "{}", said(&o));
    let o =
        Command::new("openssl").args(["x509", "-noout", "-ext", "subjectAltName", "-in"]).arg(&acme).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("DNS:tasks.test"), "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(served_fingerprint(sb.ports.https), file_fingerprint(&acme));
}
