//! Issue 13, "Settings": Vikunja's own settings in deployment.toml, and re-running `install` with
//! changed settings. A sandbox root, real nginx with TLS, the Vikunja stand-in under
//! `--init process`; black box: the CLI, the files it writes, what nginx serves.

mod lifecycle_common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use lifecycle_common::*;
use vikunja_e2e::load::{Load, Target};
use vikunja_e2e::sandbox::Sandbox;

fn secret(sb: &Sandbox, name: &str, value: &str, mode: u32) -> PathBuf {
    let p = sb.root.join(name);
    std::fs::write(&p, format!("{value}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// The sandbox's deployment.toml with `tz` in [vikunja] and `extra` at the end.
fn config_with(sb: &Sandbox, tz: &str, extra: &str) -> PathBuf {
    let cfg = write_config(sb, INSTANCE, V2, extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replacen("[vikunja]\n", &format!("[vikunja]\n{tz}"), 1);
    std::fs::write(&cfg, text).unwrap();
    cfg
}

fn install_with(sb: &Sandbox, cfg: &Path) -> std::process::Output {
    installer(sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()])
}

#[test]
fn config_yml_holds_mail_openid_timezone_and_pass_through_settings_and_no_secret() {
    let sb = Sandbox::new("set-conf").unwrap();
    let mail_pw = secret(&sb, "smtp-password", "mail-hunter2", 0o600);
    let oidc = secret(&sb, "oidc-secret", "oidc-hunter2", 0o600);
    let redis = secret(&sb, "redis-password", "redis-hunter2", 0o600);
    let extra = format!(
        "\n[mail]\nhost = \"smtp.example.org\"\nport = 465\nuser = \"vikunja\"\npassword_file = \"{}\"\n\
         from = \"tasks@example.org\"\ntls = \"tls\"\n\n\
         [[auth.openid]]\nname = \"Company SSO\"\nkey = \"sso\"\nauth_url = \"https://id.example.org/realms/co\"\n\
         client_id = \"vikunja\"\nclient_secret_file = \"{}\"\n\n\
         [vikunja.settings]\n\"service.motd\" = \"Welcome\"\n\"redis.password.file\" = \"{}\"\n\
         [vikunja.settings.defaultsettings]\nweek_start = 1\n",
        mail_pw.display(),
        oidc.display(),
        redis.display()
    );
    let cfg = config_with(&sb, "timezone = \"Europe/Berlin\"\n", &extra);
    let o = install_with(&sb, &cfg);
    assert!(o.status.success(), "install: {}", said(&o));
    assert_serving(&sb, "after the install with settings");

    let conf = base(&sb).join("config");
    let yml = std::fs::read_to_string(conf.join("config.yml")).unwrap();
    let copy = |n: &str| conf.join(n).display().to_string();
    for want in [
        "  timezone: \"Europe/Berlin\"\n  motd: \"Welcome\"\n".to_string(),
        format!(
            "mailer:\n  enabled: true\n  host: \"smtp.example.org\"\n  port: 465\n  username: \"vikunja\"\n  password:\n    \
             file: \"{}\"\n  fromemail: \"tasks@example.org\"\n  forcessl: true\n",
            copy(".mail-password")
        ),
        format!(
            "auth:\n  openid:\n    enabled: true\n    providers:\n      sso:\n        name: \"Company SSO\"\n        authurl: \
             \"https://id.example.org/realms/co\"\n        clientid: \"vikunja\"\n        clientsecret:\n          file: \"{}\"\n",
            copy(".openid-sso-secret")
        ),
        format!("redis:\n  password:\n    file: \"{}\"\n", copy(".setting-redis.password")),
        "defaultsettings:\n  week_start: 1\n".into(),
    ] {
        assert!(yml.contains(&want), "config.yml lacks\n{want}\n---\n{yml}");
    }
    for (copy, value) in [
        (".mail-password", "mail-hunter2"),
        (".openid-sso-secret", "oidc-hunter2"),
        (".setting-redis.password", "redis-hunter2"),
    ] {
        assert!(!yml.contains(value), "config.yml holds the secret of {copy}");
        let p = conf.join(copy);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), value, "{copy}");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{copy}");
    }
    // The running Vikunja read this config.yml: its motd is what /api/v1/info answers.
    let (code, body) = target(&sb).request("GET", "/api/v1/info", None);
    assert!(code == 200 && body.contains("\"motd\":\"Welcome\""), "{code} {body}");
}

#[test]
fn an_owned_key_or_a_secret_others_can_read_is_refused_naming_the_key_and_changes_nothing() {
    let sb = Sandbox::new("set-refuse").unwrap();
    let cfg = config_with(&sb, "", "\n[vikunja.settings]\n\"service.publicurl\" = \"https://elsewhere.example/\"\n");
    let o = install_with(&sb, &cfg);
    assert_eq!(o.status.code(), Some(2), "an owned key: {}", said(&o));
    let e = said(&o);
    assert!(
        e.contains("vikunja.settings.service.publicurl")
            && e.contains("owns service.publicurl")
            && e.contains("network.domain"),
        "{e}"
    );
    assert!(!base(&sb).join("config/config.yml").exists(), "a refused install wrote config.yml");

    let readable = secret(&sb, "smtp-password", "hunter2", 0o644);
    let mail = format!(
        "\n[mail]\nhost = \"smtp.example.org\"\nfrom = \"tasks@example.org\"\npassword_file = \"{}\"\n",
        readable.display()
    );
    let cfg = config_with(&sb, "", &mail);
    let o = install_with(&sb, &cfg);
    assert_eq!(o.status.code(), Some(2), "a group/world-readable secret: {}", said(&o));
    let e = said(&o);
    assert!(e.contains("mail.password_file") && e.contains("0644") && e.contains("chmod 600"), "{e}");
    assert!(!base(&sb).join("config/config.yml").exists(), "a refused install wrote config.yml");

    // Control: the same file, readable by its owner only, is accepted.
    std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = install_with(&sb, &cfg);
    assert!(o.status.success(), "the 0600 secret: {}", said(&o));
}

/// A CA bundle for the load's curl that always holds the certificate nginx may be serving: the
/// one before and, from the moment it is on disk (before nginx is reloaded), the new one.
struct Bundle {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Bundle {
    fn follow(cert: PathBuf, path: PathBuf) -> Bundle {
        let first = std::fs::read_to_string(&cert).unwrap();
        std::fs::write(&path, &first).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, p) = (Arc::clone(&stop), path.clone());
        let thread = std::thread::spawn(move || {
            let mut seen = vec![first];
            while !s.load(Ordering::SeqCst) {
                if let Ok(now) = std::fs::read_to_string(&cert) {
                    if now.contains("END CERTIFICATE") && !seen.contains(&now) {
                        seen.push(now);
                        let tmp = p.with_extension("tmp");
                        std::fs::write(&tmp, seen.concat()).unwrap();
                        std::fs::rename(&tmp, &p).unwrap();
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        Bundle { path, stop, thread: Some(thread) }
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `assert_serving` for an instance whose domain is `domain` now (the common one reaches nginx as
/// vikunja.test, which the new certificate no longer names).
fn serving_as(sb: &Sandbox, domain: &str, what: &str) -> (String, String) {
    serving_with(sb, domain, &base(sb).join("config/ssl/cert.pem"), what)
}

fn serving_with(sb: &Sandbox, domain: &str, cacert: &Path, what: &str) -> (String, String) {
    let v: Vec<String> = serving_violations(sb).into_iter().filter(|x| !x.starts_with("through nginx")).collect();
    assert!(v.is_empty(), "{what}: {}", v.join("; "));
    let dep = deployed(sb);
    let t = Target::new(domain, sb.ports.https, cacert.to_path_buf());
    let (code, body) = t.request("GET", "/api/v1/info", None);
    assert!(
        code == 200 && body.contains(&format!("\"{}\"", dep.1)),
        "{what}: through nginx as {domain}: {code} {body}"
    );
    dep
}

/// The subjectAltName of the certificate nginx serves for `name`.
fn served_san(port: u16, name: &str) -> String {
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {name} </dev/null 2>/dev/null | \
             openssl x509 -noout -ext subjectAltName"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_domain_change_rolls_out_blue_green_under_load_and_a_rerun_without_changes_restarts_nothing() {
    let sb = installed("set-domain", V2);
    let before = assert_serving(&sb, "after the install");
    let cert = base(&sb).join("config/ssl/cert.pem");
    assert!(served_san(sb.ports.https, "vikunja.test").contains("DNS:vikunja.test"));

    // Clients reach nginx as "localhost", a name both the old and the new certificate carry.
    let bundle = Bundle::follow(cert.clone(), sb.root.join("ca-bundle.pem"));
    let t = Target::new("localhost", sb.ports.https, bundle.path.clone());
    let load = Load::start(&t, 2, 1);
    load.warm_up(20);
    let cfg = write_config(&sb, INSTANCE, V2, "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("domain = \"vikunja.test\"", "domain = \"tasks.test\"");
    std::fs::write(&cfg, text).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    let r = load.stop();
    drop(bundle);
    assert!(o.status.success(), "install with a new domain: {}", said(&o));
    let out = stdout(&o);
    assert!(
        out.contains("service.publicurl: \"https://vikunja.test:") && out.contains("-> \"https://tasks.test:"),
        "the output does not say what changed: {out}"
    );
    let after = serving_as(&sb, "tasks.test", "after the domain change");
    assert_ne!(after.0, before.0, "the new settings were not rolled out on the other colour");
    assert!(
        out.contains(&format!("Restarted: {} -> {}", before.0, after.0)),
        "the output does not say what was restarted: {out}"
    );
    assert_eq!(after.1, V2, "the version changed");
    assert!(r.reads_ok > 0 && r.reads_failed.is_empty(), "reads failed during the change: {:?}", r.reads_failed);
    assert!(r.writes_failed.is_empty(), "writes failed other than by the freeze: {:?}", r.writes_failed);
    let titles = t.task_titles().unwrap();
    let lost: Vec<&String> = r.writes_acked.iter().filter(|w| !titles.contains(w)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");

    // Vikunja has the new URL, and nginx serves a certificate for the new name, verified as such.
    let yml = std::fs::read_to_string(base(&sb).join("config/config.yml")).unwrap();
    assert!(yml.contains(&format!("publicurl: \"https://tasks.test:{}/\"", sb.ports.https)), "{yml}");
    let new = Target::new("tasks.test", sb.ports.https, cert);
    let (code, body) = new.request("GET", "/api/v1/info", None);
    assert!(
        code == 200 && body.contains(&format!("\"frontend_url\":\"https://tasks.test:{}/\"", sb.ports.https)),
        "{code} {body}"
    );
    let san = served_san(sb.ports.https, "tasks.test");
    assert!(san.contains("DNS:tasks.test") && !san.contains("DNS:vikunja.test"), "served SAN: {san}");

    // The same settings again: nothing changes and nothing restarts.
    let pids = pid_file(&sb, &after.0);
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "the re-run: {}", said(&o));
    assert!(stdout(&o).contains("Nothing to change"), "{}", stdout(&o));
    assert!(!stdout(&o).contains("Restarted"), "{}", stdout(&o));
    assert_eq!(pid_file(&sb, &after.0), pids, "a re-run without changes restarted {}", after.0);
    assert_eq!(serving_as(&sb, "tasks.test", "after the re-run"), after);
}

fn sh(script: &str) -> String {
    let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A self-signed certificate for vikunja.test, as an admin's own would be.
fn own_certificate(cert: &Path, key: &Path, serial: &str) -> String {
    sh(&format!(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout {k} -out {c} -days 30 -subj /CN=vikunja.test -set_serial {serial} \
         -addext subjectAltName=DNS:vikunja.test,DNS:localhost 2>/dev/null && openssl x509 -noout -fingerprint -sha256 -in {c}",
        k = key.display(),
        c = cert.display()
    ))
}

fn served_fingerprint(port: u16) -> String {
    sh(&format!(
        "openssl s_client -connect 127.0.0.1:{port} -servername vikunja.test </dev/null 2>/dev/null | \
         openssl x509 -noout -fingerprint -sha256"
    ))
}

#[test]
fn a_certificate_replaced_at_the_same_path_is_served_after_a_rerun_without_restarting_vikunja() {
    let sb = Sandbox::new("set-cert").unwrap();
    let (cert, key) = (sb.root.join("site.crt"), sb.root.join("site.key"));
    let first = own_certificate(&cert, &key, "1");
    let cfg = config_with(
        &sb,
        "",
        &format!("\n[ssl]\ncert_path = \"{}\"\nkey_path = \"{}\"\n", cert.display(), key.display()),
    );
    let o = install_with(&sb, &cfg);
    assert!(o.status.success(), "install: {}", said(&o));
    let dep = serving_with(&sb, "vikunja.test", &cert, "after the install");
    assert_eq!(served_fingerprint(sb.ports.https), first);
    let pids = pid_file(&sb, &dep.0);

    let second = own_certificate(&cert, &key, "2");
    assert_ne!(first, second);
    let o = install_with(&sb, &cfg);
    assert!(o.status.success(), "the re-run with a renewed certificate: {}", said(&o));
    let out = stdout(&o);
    assert!(out.contains("changed   certificate") && out.contains("Restarted: no Vikunja service"), "{out}");
    assert_eq!(served_fingerprint(sb.ports.https), second, "nginx still serves the replaced certificate");
    assert_eq!(pid_file(&sb, &dep.0), pids, "a new certificate restarted Vikunja");
    assert_eq!(serving_with(&sb, "vikunja.test", &cert, "after the renewal"), dep);

    let o = install_with(&sb, &cfg);
    assert!(o.status.success() && stdout(&o).contains("Nothing to change"), "{}", said(&o));
}

#[test]
fn a_changed_port_of_the_serving_colour_is_rolled_out_without_a_failed_read() {
    let sb = installed("set-port", V2);
    let before = assert_serving(&sb, "after the install");
    let key = format!("backend_{} = {}", before.0, port_of(&sb, &before.0));
    let new_port = vikunja_e2e::free_port();
    let cfg = write_config(&sb, INSTANCE, V2, "");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains(&key), "{text}");
    std::fs::write(&cfg, text.replace(&key, &format!("backend_{} = {new_port}", before.0))).unwrap();

    let t = target(&sb);
    let load = Load::start(&t, 2, 1);
    load.warm_up(20);
    let o = install_with(&sb, &cfg);
    let r = load.stop();
    assert!(o.status.success(), "install with a new port: {}", said(&o));
    let after = assert_serving(&sb, "after the port change");
    assert_ne!(after.0, before.0, "the change was not rolled out on the other colour");
    assert!(r.reads_ok > 0 && r.reads_failed.is_empty(), "reads failed during the change: {:?}", r.reads_failed);
    let titles = t.task_titles().unwrap();
    let lost: Vec<&String> = r.writes_acked.iter().filter(|w| !titles.contains(w)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    // The colour that served before starts on its new port next time: a restart moves back to it.
    let o = installer(&sb, &["restart"]);
    assert!(o.status.success(), "restart: {}", said(&o));
    assert_eq!(version_on(new_port).as_deref(), Some(V2), "{} does not answer on its new port", before.0);
}

/// The motd the running Vikunja answers through nginx.
fn motd(sb: &Sandbox) -> String {
    let (code, body) = target(sb).request("GET", "/api/v1/info", None);
    assert_eq!(code, 200, "{body}");
    body.split("\"motd\":\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string()
}

#[test]
fn settings_that_fail_the_health_gate_leave_the_old_ones_serving_and_the_next_install_retries() {
    let sb = Sandbox::new("set-retry").unwrap();
    let cfg = config_with(&sb, "", "\n[vikunja.settings]\n\"service.motd\" = \"one\"\n");
    assert!(install_with(&sb, &cfg).status.success());
    let before = assert_serving(&sb, "after the install");
    assert_eq!(motd(&sb), "one");

    // The next start of the release never becomes healthy (the serving process is unaffected).
    let release = base(&sb).join("releases").join(V2);
    set_fault(&release, "never-healthy");
    let cfg = config_with(&sb, "", "\n[vikunja.settings]\n\"service.motd\" = \"two\"\n");
    let o = install_with(&sb, &cfg);
    assert_eq!(o.status.code(), Some(11), "{}", said(&o));
    assert!(said(&o).contains("The changed settings were not applied: the previous ones keep serving"), "{}", said(&o));
    assert_eq!(assert_serving(&sb, "after the failed roll-out"), before);
    assert_eq!(motd(&sb), "one", "the old settings should keep serving");

    // Fixed: the same settings again. The files already hold them, yet the roll-out is retried.
    std::fs::remove_file(release.join("STANDIN_FAULT")).unwrap();
    let o = install_with(&sb, &cfg);
    assert!(o.status.success(), "the retry: {}", said(&o));
    assert!(stdout(&o).contains("Restarted: "), "{}", stdout(&o));
    assert_ne!(assert_serving(&sb, "after the retry").0, before.0);
    assert_eq!(motd(&sb), "two");
}
