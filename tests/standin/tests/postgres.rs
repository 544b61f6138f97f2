//! The stand-in on a real PostgreSQL server: a throwaway cluster made with
//! the Debian `postgresql` package's initdb/pg_ctl, on a free loopback port,
//! in a temp dir, with password authentication.
//!
//! Skipped (with a message) when no server binaries are installed, unless
//! `STANDIN_REQUIRE_POSTGRES=1` makes that a failure. Install them with
//! `apt-get install -y postgresql`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use vikunja_e2e::postgres::PgCluster;

fn borrow(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn task_round_trip_upgrade_and_restore_on_postgres() {
    let Some(bin_dir) = PgCluster::bin_dir() else {
        assert!(
            std::env::var_os("STANDIN_REQUIRE_POSTGRES").is_none(),
            "STANDIN_REQUIRE_POSTGRES is set but no initdb was found (apt-get install -y postgresql)"
        );
        vikunja_e2e::skip("no PostgreSQL server binaries (apt-get install -y postgresql)");
        return;
    };
    let pg = PgCluster::start(&bin_dir).unwrap();
    let sb = Sandbox::new("postgres");
    let owned = pg.env();
    let env = borrow(&owned);
    let old = sb.release("v0.24.6");
    let new = sb.release("v2.5.0");

    // v0.24.6 has no _FILE variables: the password goes in plainly.
    let old_env: Vec<(&str, &str)> = env
        .iter()
        .map(|&(k, v)| {
            if k == "VIKUNJA_DATABASE_PASSWORD_FILE" {
                ("VIKUNJA_DATABASE_PASSWORD", vikunja_e2e::postgres::PASSWORD)
            } else {
                (k, v)
            }
        })
        .collect();
    let srv = Server::start(&old, &sb.root(), &old_env);
    create_task(srv.port, 1, "from 0.24.6");
    let data = awkward_bytes(70_000);
    assert_eq!(upload(srv.port, 1, "pg.bin", &data).status, 201);
    srv.stop();
    assert!(!sb.root().join("vikunja.db").exists(), "nothing went to SQLite");

    let srv = Server::start(&new, &sb.root(), &env);
    let info = get(srv.port, "/api/v1/info").unwrap().json();
    assert_eq!(info["concurrent_writes"], true, "PostgreSQL allows concurrent writes");
    let all = tasks(srv.port);
    assert_eq!((all[0]["title"].as_str(), all[0]["priority"].as_i64()), (Some("from 0.24.6"), Some(0)));
    let t = create_task(srv.port, 2, "from 2.5.0");
    assert_eq!(t["id"], 2);
    assert!(get(srv.port, "/api/v1/tasks/1/attachments/1").unwrap().body == data);
    srv.stop();

    let url = ("VIKUNJA_SERVICE_PUBLICURL", "http://127.0.0.1/");
    let mut with_url = env.clone();
    with_url.push(url);
    let out = run(&new, &sb.root(), &["dump", "-f", "pg"], &with_url, None);
    assert!(out.status.success() && text(&out).contains("Done creating dump"), "{}", text(&out));

    let srv = Server::start(&new, &sb.root(), &env);
    create_task(srv.port, 1, "after the dump");
    srv.stop();
    std::fs::remove_dir_all(sb.root().join("files")).unwrap();
    let dump = sb.root().join("pg.zip");
    let out = run(
        &new,
        &sb.root(),
        &["restore", dump.to_str().unwrap(), "--preserve-config"],
        &with_url,
        Some(b"Yes, I understand\n"),
    );
    assert!(text(&out).contains("Done restoring dump."), "{}", text(&out));

    let mut srv = Server::start(&new, &sb.root(), &env);
    assert_eq!(titles(srv.port), ["from 0.24.6", "from 2.5.0"]);
    assert_eq!(create_task(srv.port, 1, "next")["id"], 3, "the id sequence continues after restored rows");
    assert!(get(srv.port, "/api/v1/tasks/1/attachments/1").unwrap().body == data);

    // Health follows the database: red while PostgreSQL is down, green
    // again after it is back, without restarting the stand-in.
    pg.stop();
    assert_eq!(get(srv.port, "/health").unwrap().status, 500);
    let out = run(&new, &sb.root(), &["healthcheck"], &with_url, None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    pg.pg_ctl_start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(srv.port, "/health").unwrap().status != 200 {
        assert!(Instant::now() < deadline, "health did not recover: {}", srv.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    srv.wait_healthy(Duration::from_secs(1));
    srv.stop();
}
