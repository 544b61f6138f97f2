//! Proves the harness itself with real parts (openssl, nginx, curl), so a
//! failing e2e test points at the product, not at the harness.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};

use vikunja_e2e::ca::TestCa;
use vikunja_e2e::nginx::ReleaseServer;
use vikunja_e2e::proxy::ConnectProxy;
use vikunja_e2e::{scratch_dir, TestDir, KEEP_TEST_DIRS};

/// A CA, a running server and its temp dir. Destructure it (`let (dir, ca, srv)`): locals drop
/// in reverse, so the server stops before its dir is removed.
fn server(name: &str) -> (TestDir, TestCa, ReleaseServer) {
    let dir = TestDir::new(name).unwrap();
    let ca = TestCa::create(&dir.join("ca")).unwrap();
    let srv = ReleaseServer::start(&dir.join("nginx"), &ca).unwrap();
    (dir, ca, srv)
}

/// Publishes one asset `name` with `body` as `o/r` release `tag`.
fn publish(srv: &ReleaseServer, dir: &Path, tag: &str, name: &str, body: &[u8]) {
    let assets = dir.join(format!("assets-{tag}"));
    std::fs::create_dir_all(&assets).unwrap();
    std::fs::write(assets.join(name), body).unwrap();
    srv.publish("o", "r", tag, &assets).unwrap();
}

/// curl without ~/.curlrc and without any proxy from the environment.
fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-q", "--noproxy", "*", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed")
}

fn ca_arg(ca: &TestCa) -> String {
    ca.ca_pem.to_str().unwrap().to_string()
}

#[test]
fn latest_redirect_serves_published_bytes() {
    let (dir, ca, srv) = server("selftest-latest");
    publish(&srv, &dir, "v1.0.0", "x.txt", b"hello v1\n");
    srv.set_latest("v1.0.0").unwrap();

    let url = format!("{}/o/r/releases/latest/download/x.txt", srv.base_url());
    let out = curl(&["--cacert", &ca_arg(&ca), "-fsSL", &url]);
    assert!(out.status.success(), "curl: {out:?}");
    assert_eq!(out.stdout, b"hello v1\n");

    let log = srv.access_log().unwrap();
    assert!(log.contains("\"GET /o/r/releases/latest/download/x.txt HTTP/1.1\" 302"), "{log}");
    assert!(log.contains("\"GET /o/r/releases/download/v1.0.0/x.txt HTTP/1.1\" 200"), "{log}");
    srv.stop();
}

#[test]
fn latest_is_404_before_any_release() {
    let (_dir, ca, srv) = server("selftest-nolatest");
    let url = format!("{}/o/r/releases/latest/download/x.txt", srv.base_url());
    let out = curl(&["--cacert", &ca_arg(&ca), "-fsSL", &url]);
    assert_eq!(out.status.code(), Some(22), "curl: {out:?}");
}

#[test]
fn set_latest_moves_the_redirect() {
    let (dir, ca, srv) = server("selftest-move");
    publish(&srv, &dir, "v1.0.0", "x.txt", b"one");
    publish(&srv, &dir, "v2.0.0", "x.txt", b"two");
    let url = format!("{}/o/r/releases/latest/download/x.txt", srv.base_url());
    let ca = ca_arg(&ca);

    for (tag, body) in [("v1.0.0", &b"one"[..]), ("v2.0.0", b"two"), ("v1.0.0", b"one")] {
        srv.set_latest(tag).unwrap();
        let head = curl(&["--cacert", &ca, "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", &url]);
        assert_eq!(
            String::from_utf8_lossy(&head.stdout),
            format!("302 {}/o/r/releases/download/{tag}/x.txt", srv.base_url())
        );
        let out = curl(&["--cacert", &ca, "-fsSL", &url]);
        assert!(out.status.success(), "curl: {out:?}");
        assert_eq!(out.stdout, body, "after set_latest({tag})");
    }
}

#[test]
fn missing_asset_makes_curl_fail_with_22() {
    let (dir, ca, srv) = server("selftest-missing");
    publish(&srv, &dir, "v1.0.0", "x.txt", b"x");
    srv.set_latest("v1.0.0").unwrap();
    let url = format!("{}/o/r/releases/latest/download/nope.txt", srv.base_url());
    let out = curl(&["--cacert", &ca_arg(&ca), "-fsSL", &url]);
    assert_eq!(out.status.code(), Some(22), "curl: {out:?}");
    assert!(out.stdout.is_empty());
}

#[test]
fn tampered_asset_is_served_as_tampered() {
    let (dir, ca, srv) = server("selftest-tamper");
    publish(&srv, &dir, "v1.0.0", "x.txt", b"original");
    let path = srv.asset_path("o", "r", "v1.0.0", "x.txt");
    assert_eq!(std::fs::read(&path).unwrap(), b"original");
    std::fs::write(&path, b"evil").unwrap();
    let url = format!("{}/o/r/releases/download/v1.0.0/x.txt", srv.base_url());
    let out = curl(&["--cacert", &ca_arg(&ca), "-fsSL", &url]);
    assert_eq!(out.stdout, b"evil");
}

#[test]
fn publish_skips_subdirectories() {
    let (dir, ca, srv) = server("selftest-subdir");
    let assets = dir.join("assets");
    std::fs::create_dir_all(assets.join("sub")).unwrap();
    std::fs::write(assets.join("top.txt"), b"top").unwrap();
    std::fs::write(assets.join("sub/inner.txt"), b"inner").unwrap();
    srv.publish("o", "r", "v1", &assets).unwrap();
    assert!(srv.asset_path("o", "r", "v1", "top.txt").is_file());
    assert!(!srv.asset_path("o", "r", "v1", "sub").exists());
    let url = format!("{}/o/r/releases/download/v1/top.txt", srv.base_url());
    assert_eq!(curl(&["--cacert", &ca_arg(&ca), "-fsS", &url]).stdout, b"top");
}

#[test]
fn untrusted_server_makes_curl_fail_with_60() {
    // The host trust store does not know the test CA, so this is the check a
    // client skipping --cacert must fail.
    let (dir, _ca, srv) = server("selftest-untrusted");
    publish(&srv, &dir, "v1.0.0", "x.txt", b"x");
    let url = format!("{}/o/r/releases/download/v1.0.0/x.txt", srv.base_url());
    let plain = curl(&["-fsSL", &url]);
    assert_eq!(plain.status.code(), Some(60), "curl: {plain:?}");
}

#[test]
fn curl_through_connect_proxy() {
    let (dir, ca, srv) = server("selftest-proxy");
    publish(&srv, &dir, "v1.0.0", "x.txt", b"via proxy");
    srv.set_latest("v1.0.0").unwrap();
    let proxy = ConnectProxy::start().unwrap();
    let url = format!("{}/o/r/releases/latest/download/x.txt", srv.base_url());
    let out = Command::new("curl")
        .args(["-q", "--max-time", "10", "--proxy", &proxy.url()])
        .args(["--cacert", &ca_arg(&ca), "-fsSL", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "curl: {out:?}");
    assert_eq!(out.stdout, b"via proxy");
    let target = format!("127.0.0.1:{}", srv.port);
    let connects = proxy.connects();
    assert!(!connects.is_empty() && connects.iter().all(|c| *c == target), "{connects:?}");
}

#[test]
fn proxy_refuses_non_loopback_targets() {
    let proxy = ConnectProxy::start().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    // Refused before any connect attempt, so no traffic leaves the machine.
    s.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply:?}");
    assert!(proxy.connects().is_empty());
}

#[test]
fn scratch_dirs_are_fresh_and_distinct() {
    let a = TestDir::new("selftest-scratch").unwrap();
    let b = TestDir::new("selftest-scratch").unwrap();
    assert_ne!(a.path(), b.path());
    assert!(a.starts_with(vikunja_e2e::workspace_root().join("target/e2e")));
    assert_eq!(std::fs::read_dir(&a).unwrap().count(), 0);
    assert!(scratch_dir("../escape").is_err());
}

/// A test's temp dir is gone after the test, also when the test panicked (unless the developer
/// asked to keep it); the control, a dir that is not dropped, stays.
#[test]
fn test_dirs_are_removed_when_the_test_panics() {
    if std::env::var_os(KEEP_TEST_DIRS).is_some() {
        return;
    }
    let kept = TestDir::new("selftest-kept").unwrap();
    let dir = TestDir::new("selftest-panic").unwrap();
    std::fs::write(dir.join("log"), "evidence").unwrap();
    let path = dir.to_path_buf();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _dir = dir;
        panic!("the test failed (on purpose)");
    }));
    assert!(r.is_err());
    assert!(!path.exists(), "{} survived the panic", path.display());
    assert!(kept.is_dir(), "a dir still in use was removed");
}

/// Not a test on its own: `servers_end_with_their_test_binary` runs it in a child process, where
/// it starts a server kept in a `static` (never dropped, like the e2e download sites), prints the
/// master's pid and port and then returns (`exit`) or waits to be killed (`hang`).
#[test]
fn tied_server_child() {
    static SITE: std::sync::OnceLock<(TestDir, TestCa, ReleaseServer)> = std::sync::OnceLock::new();
    let Some(mode) = std::env::var_os("HARNESS_TIED_CHILD") else { return };
    let (_, _, srv) = SITE.get_or_init(|| server("selftest-tied"));
    let pid = std::fs::read_to_string(srv.prefix.join("nginx.pid")).unwrap();
    println!("SERVER {} {}", pid.trim(), srv.port);
    std::io::stdout().flush().unwrap();
    if mode == "hang" {
        std::thread::sleep(std::time::Duration::from_secs(120));
    }
}

/// Alive (not merely a zombie waiting for its new parent to reap it).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

/// Runs `tied_server_child` in `mode` and returns it with the master's pid and port, checking the
/// server really runs while its test binary does.
fn tied_child(mode: &str) -> (std::process::Child, u32, u16) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["tied_server_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("HARNESS_TIED_CHILD", mode)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    // libtest prints `test tied_server_child ... ` on the same line first.
    while !(out.contains("SERVER ") && out.ends_with('\n')) {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "child ended early: {out}");
        out.push(byte[0] as char);
    }
    let line = out.split("SERVER ").nth(1).unwrap();
    let mut f = line.split_whitespace();
    let (pid, port) = (f.next().unwrap().parse().unwrap(), f.next().unwrap().parse().unwrap());
    assert!(alive(pid), "the control: nginx {pid} runs while its test binary does");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    std::mem::forget(stdout);
    (child, pid, port)
}

fn assert_gone(pid: u32, port: u16) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!alive(pid), "nginx master {pid} outlived its test binary");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still served");
}

#[test]
fn servers_end_with_their_test_binary() {
    let (mut child, pid, port) = tied_child("exit");
    assert!(child.wait().unwrap().success());
    assert_gone(pid, port);

    // SIGKILL runs no exit code at all: only the kernel's parent-death signal is left.
    let (mut child, pid, port) = tied_child("hang");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_gone(pid, port);
}
