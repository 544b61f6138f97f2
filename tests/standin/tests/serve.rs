//! The `web` command: routes, the task API, and process behaviour around
//! signals and ports (vikunja.md §3.3, §3.4).

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn serves_health_info_frontend_and_tasks() {
    let sb = Sandbox::new("serve");
    let bin = sb.release("v1.2.3");
    let srv = Server::start(&bin, &sb.root(), &[]);
    let port = srv.port;

    let h = get(port, "/health").unwrap();
    assert_eq!((h.status, h.text().as_str()), (200, "OK"));

    let info = get(port, "/api/v1/info").unwrap();
    assert_eq!(info.status, 200);
    assert!(info.header("content-type").unwrap().starts_with("application/json"));
    let info = info.json();
    assert_eq!(info["version"], "v1.2.3", "version comes from the file name");
    assert_eq!(info["frontend_url"], "http://standin.test/", "publicurl gets a trailing slash");
    assert_eq!(info["max_file_size"], "20MB");
    assert_eq!(info["task_attachments_enabled"], true);
    assert_eq!(info["concurrent_writes"], false, "SQLite does not allow concurrent writes");
    assert_eq!(info["link_sharing_enabled"], true);
    assert_eq!(info["motd"], "");

    let page = get(port, "/").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.text().starts_with("<!doctype html>"));
    assert!(page.text().contains("<title>Vikunja</title>"));

    let nf = get(port, "/api/v1/nope").unwrap();
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["message"], "Not Found");
    assert_eq!(request(port, "DELETE", "/health", &[], b"").unwrap().status, 405);

    let a = create_task(port, 7, "first");
    assert_eq!((a["id"].as_i64(), a["project_id"].as_i64(), a["title"].as_str()), (Some(1), Some(7), Some("first")));
    assert_eq!(a["priority"], 0, "v1.2.3 has the priority column");
    assert!(a.get("description").is_none(), "description arrives only in v2.5.0");
    create_task(port, 7, "second");
    assert_eq!(titles(port), ["first", "second"]);

    let bad = request(port, "PUT", "/api/v1/projects/7/tasks", &[], b"{\"title\": \"\"}").unwrap();
    assert_eq!(bad.status, 400);
    let bad = request(port, "PUT", "/api/v1/projects/7/tasks", &[], b"not json").unwrap();
    assert_eq!(bad.status, 400);

    // Several requests on one keep-alive connection.
    let mut conn = connect(port).unwrap();
    for _ in 0..3 {
        write_request(&mut conn, "GET", "/health", &[], b"").unwrap();
        let r = read_response(&mut conn).unwrap();
        assert_eq!((r.status, r.header("connection")), (200, Some("keep-alive")));
    }
    srv.stop();
}

#[test]
fn attachments_round_trip_byte_identical_and_respect_maxsize() {
    let sb = Sandbox::new("attach");
    let bin = sb.release("v2.5.0");
    let srv = Server::start(&bin, &sb.root(), &[("VIKUNJA_FILES_MAXSIZE", "1MB")]);
    let port = srv.port;
    create_task(port, 1, "with file");

    let data = awkward_bytes(300_000);
    let r = upload(port, 1, "notes.bin", &data);
    assert_eq!(r.status, 201, "{}", r.text());
    let j = r.json();
    assert_eq!((j["task_id"].as_i64(), j["file"]["name"].as_str()), (Some(1), Some("notes.bin")));
    assert_eq!(j["file"]["size"].as_u64(), Some(data.len() as u64));
    let id = j["id"].as_i64().unwrap();
    assert_eq!(
        std::fs::read(sb.root().join("files").join(id.to_string())).unwrap(),
        data,
        "stored under files.basepath"
    );

    let back = get(port, &format!("/api/v1/tasks/1/attachments/{id}")).unwrap();
    assert_eq!(back.status, 200);
    assert!(back.body == data, "downloaded bytes differ from the upload");

    assert_eq!(get(port, "/api/v1/tasks/1/attachments/99").unwrap().status, 404);
    assert_eq!(upload(port, 42, "x", b"x").status, 404, "no such task");

    let big = awkward_bytes(1024 * 1024 + 10);
    let r = upload(port, 1, "big.bin", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(!sb.root().join("files").join((id + 1).to_string()).exists());

    // Announced-too-large bodies with Expect: 100-continue are refused before sending.
    let mut s = connect(port).unwrap();
    s.write_all(b"PUT /api/v1/tasks/1/attachments HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 413);
    srv.stop();
}

#[test]
fn sigint_drains_an_in_flight_request_and_exits_0() {
    let sb = Sandbox::new("drain");
    let bin = sb.release("v2.5.0");
    let srv = Server::start(&bin, &sb.root(), &[]);
    let port = srv.port;

    // Start a request and stop halfway through its body.
    let body = br#"{"title": "sent across a shutdown"}"#;
    let mut conn = connect(port).unwrap();
    let head = format!("PUT /api/v1/projects/1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body[..10]).unwrap();
    // An idle keep-alive connection, which shutdown closes instead of waiting for.
    let mut idle = connect(port).unwrap();
    write_request(&mut idle, "GET", "/health", &[], b"").unwrap();
    assert_eq!(read_response(&mut idle).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(200));

    srv.signal(libc::SIGINT);
    assert!(srv.wait_log("Shutting down...", Duration::from_secs(5)), "{}", srv.log_text());
    std::thread::sleep(Duration::from_millis(300));
    assert!(connect(port).is_err() || get(port, "/health").is_err(), "no new connections once draining");
    let mut srv = srv;
    assert!(srv.child.try_wait().unwrap().is_none(), "must wait for the in-flight request");

    conn.write_all(&body[10..]).unwrap();
    let r = read_response(&mut conn).unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    let st = srv.wait_exit(Duration::from_secs(5)).expect("exits once drained");
    assert_eq!(st.code(), Some(0), "{}", srv.log_text());
    assert!(read_response(&mut idle).is_err(), "idle connection was closed");

    // A 2xx means stored: the next start sees the task.
    let srv = Server::start(&bin, &sb.root(), &[]);
    assert_eq!(titles(srv.port), ["sent across a shutdown"]);
    srv.stop();
}

#[test]
fn sigint_gives_up_after_10s_and_exits_1() {
    let sb = Sandbox::new("drain-timeout");
    let bin = sb.release("v2.5.0");
    let mut srv = Server::start(&bin, &sb.root(), &[]);
    let mut conn = connect(srv.port).unwrap();
    conn.write_all(b"PUT /api/v1/projects/1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    srv.signal(libc::SIGINT);
    let st = srv.wait_exit(Duration::from_secs(20)).expect("gives up");
    let took = t0.elapsed();
    assert_eq!(st.code(), Some(1), "{}", srv.log_text());
    assert!(took >= Duration::from_secs(9) && took < Duration::from_secs(15), "took {took:?}");
    assert!(srv.log_text().contains("Server shutdown failed: context deadline exceeded"));
}

#[test]
fn sigterm_is_not_handled() {
    use std::os::unix::process::ExitStatusExt;
    let sb = Sandbox::new("sigterm");
    let bin = sb.release("v2.5.0");
    let mut srv = Server::start(&bin, &sb.root(), &[]);
    srv.signal(libc::SIGTERM);
    let st = srv.wait_exit(Duration::from_secs(5)).expect("killed by SIGTERM");
    assert_eq!(st.signal(), Some(libc::SIGTERM), "default action, no drain: {st}");
    assert!(!srv.log_text().contains("Shutting down"));
}

#[test]
fn busy_port_logs_server_error_and_keeps_running() {
    let sb = Sandbox::new("busy");
    let bin = sb.release("v2.5.0");
    for iface in ["127.0.0.1", ""] {
        let holder = TcpListener::bind(if iface.is_empty() { "0.0.0.0:0" } else { "127.0.0.1:0" }).unwrap();
        let port = holder.local_addr().unwrap().port();
        let setting = format!("{iface}:{port}");
        let mut srv = Server::spawn(&bin, &sb.root(), &[("VIKUNJA_SERVICE_INTERFACE", &setting)]);
        assert!(srv.wait_log("Server error: listen tcp", Duration::from_secs(10)), "{}", srv.log_text());
        assert!(srv.log_text().contains("address already in use"), "{}", srv.log_text());
        std::thread::sleep(Duration::from_millis(500));
        assert!(srv.child.try_wait().unwrap().is_none(), "must keep running after a bind failure");
        srv.stop();
    }
}

#[test]
fn interface_with_empty_host_listens_on_all_addresses() {
    let sb = Sandbox::new("anyaddr");
    let bin = sb.release("v2.5.0");
    let mut srv = Server::spawn(&bin, &sb.root(), &[("VIKUNJA_SERVICE_INTERFACE", ":0")]);
    let port = srv.wait_bound(Duration::from_secs(20));
    srv.wait_healthy(Duration::from_secs(20));
    assert!(srv.log_text().contains("HTTP server listening on :0"));
    // Reachable over both loopback families where IPv6 exists.
    if let Ok(mut s) = std::net::TcpStream::connect(("::1", port)) {
        write_request(&mut s, "GET", "/health", &[], b"").unwrap();
        assert_eq!(read_response(&mut s).unwrap().status, 200);
    }
    srv.stop();
}
