//! Metrics and notifications for real (issue 17): an instance installed in a sandbox (stand-in,
//! real nginx, the installer's supervisor); its textfile checked by `promtool check metrics`,
//! read by a real `prometheus-node-exporter` textfile collector and scraped by a real Prometheus,
//! whose PromQL API must name the serving version before and after an update; a receiver on
//! loopback that must get the expected JSON for each event; and a dead receiver that changes
//! no exit code and is counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use vikunja_e2e::sandbox::{DownloadSite, Sandbox};

const V1: &str = "v2.4.0";
const V2: &str = "v2.5.0";
const INSTANCE: &str = "obs";

fn site() -> &'static DownloadSite {
    static S: OnceLock<DownloadSite> = OnceLock::new();
    S.get_or_init(|| {
        let dir = vikunja_e2e::scratch_dir("observe-site").unwrap();
        let s = DownloadSite::start(&dir, &[V1, V2]).unwrap();
        // The download site's JSON listing, where the timer looks for a newer release.
        s.server.write_vikunja_listing(&[V1, V2]).unwrap();
        s
    })
}

fn installer_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    sb.run_installer(env!("CARGO_BIN_EXE_vikunja-installer"), &site().ca.ca_pem, args, env.iter().copied())
}

fn installer(sb: &Sandbox, args: &[&str]) -> Output {
    installer_env(sb, args, &[])
}

fn installed(name: &str, extra: &str) -> Sandbox {
    let sb = Sandbox::new(name).unwrap();
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, V1, &site().base(), extra)).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "install failed");
    sb
}

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

/// A process killed and reaped when the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(mut cmd: Command) -> Killed {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    Killed(vikunja_e2e::spawn_tied(cmd).unwrap())
}

fn curl(url: &str) -> String {
    let o = Command::new("curl").args(["-sS", "--max-time", "5", url]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Polls a PromQL query until the serving version it reports is `want`.
fn wait_for_version(prom: u16, want: &str) {
    let url = format!("http://127.0.0.1:{prom}/api/v1/query?query=vikunja_pve_info");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < deadline {
        last = curl(&url);
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&last) {
            let versions: Vec<&str> = v["data"]["result"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["metric"]["version"].as_str())
                .collect();
            if versions == [want] {
                let r = &v["data"]["result"][0]["metric"];
                assert_eq!(r["vikunja_instance"], INSTANCE);
                assert!(r["colour"] == "blue" || r["colour"] == "green", "{r}");
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("Prometheus never reported version {want}: {last}");
}

#[test]
fn prometheus_scrapes_the_textfile_and_reads_the_serving_version_before_and_after_an_update() {
    for tool in ["promtool", "prometheus", "prometheus-node-exporter"] {
        if !have(tool) {
            return vikunja_e2e::skip(&format!(
                "{tool} is not installed (apt-get install prometheus prometheus-node-exporter)"
            ));
        }
    }
    let sb = Sandbox::new("observe-prom").unwrap();
    let textdir = sb.root.join("textfile");
    std::fs::create_dir_all(&textdir).unwrap();
    let prom_file = textdir.join("vikunja.prom");
    let cfg = sb.root.join("d.toml");
    let extra = format!("\n[metrics]\ntextfile = \"{}\"\n", prom_file.display());
    std::fs::write(&cfg, sb.config(INSTANCE, V1, &site().base(), &extra)).unwrap();
    assert!(installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]).status.success());

    // Written by the hook after install; what `metrics` prints is the same format.
    let written = std::fs::read_to_string(&prom_file).expect("install wrote no textfile");
    assert!(written.contains(&format!("version=\"{V1}\"")), "{written}");
    let printed = installer(&sb, &["metrics"]);
    assert!(printed.status.success());
    for text in [written.as_bytes(), &printed.stdout[..]] {
        let mut check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check.stdin.take().unwrap().write_all(text).unwrap();
        let o = check.wait_with_output().unwrap();
        // promtool prints lint findings and exits 1 for them too: accepted means no output at all.
        assert!(
            o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
            "promtool: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // The control: promtool does reject a broken family (a counter without _total).
    let mut bad = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    bad.stdin
        .take()
        .unwrap()
        .write_all(b"# HELP vikunja_pve_updates Updates.\n# TYPE vikunja_pve_updates counter\nvikunja_pve_updates 1\n")
        .unwrap();
    let o = bad.wait_with_output().unwrap();
    assert!(!o.stdout.is_empty() || !o.stderr.is_empty() || !o.status.success(), "promtool accepts anything");

    let exporter = vikunja_e2e::free_port();
    let mut ne = Command::new("prometheus-node-exporter");
    ne.arg(format!("--web.listen-address=127.0.0.1:{exporter}"))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .arg(format!("--collector.textfile.directory={}", textdir.display()));
    let _ne = start(ne);
    let prom = vikunja_e2e::free_port();
    let pdir = sb.root.join("prometheus");
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::write(
        pdir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vikunja\n    static_configs:\n      - targets: ['127.0.0.1:{exporter}']\n"
        ),
    )
    .unwrap();
    let mut p = Command::new("prometheus");
    p.arg(format!("--config.file={}", pdir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", pdir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom}"));
    let _p = start(p);
    wait_for_version(prom, V1);

    // The update's hook rewrites the textfile; the next scrape names the new version.
    let o = installer(&sb, &["update", "--version", V2]);
    assert!(o.status.success(), "update failed");
    wait_for_version(prom, V2);
    let after = std::fs::read_to_string(&prom_file).unwrap();
    assert!(after.contains("vikunja_pve_updates_total{vikunja_instance=\"obs\",result=\"succeeded\"} 1"), "{after}");
    assert!(
        after.contains(
            "vikunja_pve_last_operation_info{vikunja_instance=\"obs\",operation=\"update\",result=\"success\"} 1"
        ),
        "{after}"
    );
}

/// One HTTP request a receiver got.
#[derive(Debug)]
struct Got {
    path: String,
    json: serde_json::Value,
}

/// A webhook receiver on loopback: answers 200 and hands each request's path and JSON body over.
fn receiver() -> (u16, mpsc::Receiver<Got>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut len = 0;
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap();
                    }
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let _ = (&s).write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            if tx.send(Got { path, json }).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

/// The next notification, checked for the fields every event carries.
fn next(rx: &mpsc::Receiver<Got>, event: &str, version: &str) -> serde_json::Value {
    let got = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no {event} notification"));
    assert_eq!(got.path, "/hook");
    let j = got.json;
    assert_eq!(j["event"], event, "{j}");
    assert_eq!(j["instance"], INSTANCE, "{j}");
    assert_eq!(j["version"], version, "{j}");
    assert!(j["time"].as_str().is_some_and(|t| t.len() == 20 && t.ends_with('Z')), "{j}");
    assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
    j
}

fn metric(sb: &Sandbox, line_start: &str) -> String {
    let o = installer(sb, &["metrics"]);
    String::from_utf8_lossy(&o.stdout).lines().find(|l| l.starts_with(line_start)).unwrap_or("").to_string()
}

fn predownload(sb: &Sandbox, version: &str) -> PathBuf {
    let o = installer_env(sb, &["update", "--version", version], &[("VIKUNJA_INSTALLER_TEST_KILL_AT", "started")]);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(9), "not killed");
    assert!(installer(sb, &["status"]).status.code().is_some());
    sb.instance_dir(INSTANCE).join("releases").join(version)
}

fn set_notify_url(sb: &Sandbox, url: &str) {
    let p = sb.instance_dir(INSTANCE).join("config/deployment.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut out = String::new();
    for l in text.lines() {
        out.push_str(&if l.starts_with("url = ") { format!("url = \"{url}\"") } else { l.to_string() });
        out.push('\n');
    }
    std::fs::write(&p, out).unwrap();
}

#[test]
fn a_loopback_receiver_gets_each_event_and_a_dead_one_changes_no_exit_code() {
    let (port, rx) = receiver();
    let sb = installed("observe-notify", &format!("\n[notify]\nurl = \"http://127.0.0.1:{port}/hook\"\n"));
    assert!(rx.try_recv().is_err(), "a healthy install announced something");

    // The timer's first run: healthy (nothing to say about health), and V2 is on the download site.
    assert!(installer(&sb, &["metrics", "--tick"]).status.success());
    let j = next(&rx, "release_available", V1);
    assert!(j["message"].as_str().unwrap().contains(V2), "{j}");
    // Announced once: the next run says nothing.
    assert!(installer(&sb, &["metrics", "--tick"]).status.success());
    assert!(rx.recv_timeout(Duration::from_secs(1)).is_err(), "announced twice");

    // A failed update (a release the site does not have): exit 6 as without notifications.
    let o = installer(&sb, &["update", "--version", "v2.9.9"]);
    assert_eq!(o.status.code(), Some(6));
    next(&rx, "update_failed", V1);

    // An update that never gets healthy is undone: exit 11, announced as rolled back.
    std::fs::write(predownload(&sb, V2).join("STANDIN_FAULT"), "never-healthy").unwrap();
    let o = installer(&sb, &["update", "--version", V2]);
    assert_eq!(o.status.code(), Some(11));
    let j = next(&rx, "update_rolled_back", V1);
    assert!(j["message"].as_str().unwrap().contains(V2), "{j}");

    // A failed backup (its output directory is a file).
    let blocker = sb.root.join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let o = installer(&sb, &["backup", "--output", blocker.to_str().unwrap()]);
    assert!(!o.status.success());
    next(&rx, "backup_failed", V1);

    // A certificate near its end (the self-signed one's record says 5 days).
    let meta = sb.instance_dir(INSTANCE).join("config/ssl/self-signed.meta");
    let text = std::fs::read_to_string(&meta).unwrap();
    let end = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 5 * 86_400;
    let names = text.lines().find(|l| l.starts_with("names")).unwrap();
    std::fs::write(&meta, format!("not_after = {end}\n{names}\n")).unwrap();
    assert!(installer(&sb, &["metrics", "--tick"]).status.success());
    let j = next(&rx, "certificate_expiring", V1);
    assert!(j["message"].as_str().unwrap().contains("days left"), "{j}");
    assert!(metric(&sb, "vikunja_pve_certificate_expiry_timestamp_seconds").ends_with(&format!(" {end}")));

    // Turned unhealthy (nginx gone), seen by the timer; then healthy again once it is back.
    let ng = sb.instance_dir(INSTANCE).join("config/nginx");
    let quit = Command::new("nginx")
        .arg("-p")
        .arg(&ng)
        .arg("-c")
        .arg(ng.join("nginx.conf"))
        .args(["-s", "quit"])
        .output()
        .unwrap();
    assert!(quit.status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while ng.join("nginx.pid").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(installer(&sb, &["metrics", "--tick"]).status.success());
    let j = next(&rx, "unhealthy", V1);
    assert!(j["message"].as_str().unwrap().contains("nginx"), "{j}");
    assert_eq!(
        metric(&sb, "vikunja_pve_up{vikunja_instance=\"obs\",component=\"nginx\"}"),
        "vikunja_pve_up{vikunja_instance=\"obs\",component=\"nginx\"} 0"
    );
    assert!(installer(&sb, &["install", "--init", "process", "-y"]).status.success());
    assert!(installer(&sb, &["metrics", "--tick"]).status.success());
    next(&rx, "healthy_again", V1);
    let sent = metric(&sb, "vikunja_pve_notifications_sent_total");
    assert!(sent.ends_with(" 7"), "{sent}");

    // Timers need systemd: under --init process the timer is refused and nothing is written.
    let o = installer(&sb, &["metrics", "--enable-timer"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(!sb.root.join("etc/systemd/system/vikunja-obs-metrics.timer").exists());

    // A dead receiver: the same failed update exits 6 again, the failure is logged and counted.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    set_notify_url(&sb, &format!("http://127.0.0.1:{dead_port}/hook"));
    let o = installer(&sb, &["update", "--version", "v2.9.9"]);
    assert_eq!(o.status.code(), Some(6), "a dead receiver changed the exit code");
    assert!(String::from_utf8_lossy(&o.stderr).contains("update_failed notification to"), "not logged");
    let o = installer(&sb, &["backup", "--output", blocker.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let failed = metric(&sb, "vikunja_pve_notifications_failed_total");
    assert!(failed.ends_with(" 2"), "{failed}");
    // And a successful operation stays successful.
    assert!(installer(&sb, &["backup"]).status.success());
    assert!(!metric(&sb, "vikunja_pve_last_backup_size_bytes").ends_with(" 0"));
}
