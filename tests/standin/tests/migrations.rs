//! Versioned migrations across releases, the `migrate` and `healthcheck`
//! commands, and the fault switches.

mod common;

use std::time::{Duration, Instant};

use common::*;

const URL: (&str, &str) = ("VIKUNJA_SERVICE_PUBLICURL", "http://127.0.0.1/");

fn migrate_list(bin: &std::path::Path, root: &std::path::Path) -> Vec<String> {
    let out = run(bin, root, &["migrate", "list"], &[URL], None);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("| ID "), "{stdout}");
    assert!(stdout.contains("| Description "), "{stdout}");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .map(|l| l.split(" |").next().unwrap().trim().to_owned())
        .filter(|id| id != "ID")
        .collect()
}

#[test]
fn newer_release_adds_migrations_and_keeps_old_rows() {
    let sb = Sandbox::new("upgrade");
    let old = sb.release("v0.24.6");
    let new = sb.release("v2.5.0");

    let srv = Server::start(&old, &sb.root(), &[]);
    let t = create_task(srv.port, 3, "written by 0.24.6");
    assert!(t.get("priority").is_none(), "0.24.6 has no priority column");
    assert_eq!(t["done"], false);
    let info = get(srv.port, "/api/v1/info").unwrap().json();
    assert_eq!(info["version"], "v0.24.6");
    assert!(
        info.get("concurrent_writes").is_none() && info.get("registration_enabled").is_some(),
        "pre-1.0 info fields"
    );
    assert_eq!(upload(srv.port, 1, "old.txt", b"old bytes").status, 201);
    srv.stop();
    let before = migrate_list(&old, &sb.root());
    assert_eq!(before, ["20200101000000", "20230601000000", "20240601000000"]);

    let srv = Server::start(&new, &sb.root(), &[]);
    assert!(srv.log_text().contains("Running migrations…"));
    let all = tasks(srv.port);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["title"], "written by 0.24.6");
    assert_eq!(
        (all[0]["priority"].as_i64(), all[0]["description"].as_str()),
        (Some(0), Some("")),
        "defaults for new columns"
    );
    assert_eq!(get(srv.port, "/api/v1/tasks/1/attachments/1").unwrap().body, b"old bytes");
    srv.stop();
    let after = migrate_list(&new, &sb.root());
    assert_eq!(after.len(), 5);
    assert_eq!(&after[..3], &before[..]);

    // Going back without restoring the DB: the old release ignores the
    // migrations it does not know and still reads the rows.
    let srv = Server::start(&old, &sb.root(), &[]);
    assert_eq!(titles(srv.port), ["written by 0.24.6"]);
    srv.stop();
    assert_eq!(migrate_list(&old, &sb.root()).len(), 5, "a downgrade does not undo migrations");
}

#[test]
fn migrate_command_and_rollback_that_only_forgets() {
    let sb = Sandbox::new("migrate");
    let bin = sb.release("v2.5.0");
    let out = run(&bin, &sb.root(), &["migrate", "list"], &[URL], None);
    assert_eq!(out.status.code(), Some(1), "no migration table yet: {}", text(&out));
    assert!(text(&out).contains("Error getting migration table"));

    let out = run(&bin, &sb.root(), &["migrate"], &[URL], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("Ran all migrations successfully."));
    assert_eq!(migrate_list(&bin, &sb.root()).len(), 5);

    let out = run(&bin, &sb.root(), &["migrate", "rollback"], &[URL], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("required flag(s) \"name\" not set"));

    // Like most of Vikunja's rollback funcs, this changes no schema; the
    // next start re-runs the forgotten migrations and fails on them.
    let out = run(&bin, &sb.root(), &["migrate", "rollback", "--name", "20240601000000"], &[URL], None);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(migrate_list(&bin, &sb.root()).len(), 3);
    let out = run(&bin, &sb.root(), &["migrate"], &[URL], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("Migration failed:"), "{}", text(&out));
}

#[test]
fn fail_migration_fault_planted_in_one_release_dir() {
    let sb = Sandbox::new("failmig");
    let old = sb.release("v0.24.6");
    let new = sb.release("v2.5.0");
    let srv = Server::start(&old, &sb.root(), &[]);
    create_task(srv.port, 1, "keep me");
    srv.stop();

    std::fs::write(new.parent().unwrap().join("STANDIN_FAULT"), "fail-migration\n").unwrap();
    let mut srv = Server::spawn(&new, &sb.root(), &[]);
    let st = srv.wait_exit(Duration::from_secs(10)).expect("a failed migration is fatal");
    assert_eq!(st.code(), Some(1));
    let log = srv.log_text();
    assert!(log.contains("Migration failed:") && log.contains("20250101000000"), "{log}");
    assert!(!log.contains("HTTP server listening"), "must not listen: {log}");
    assert_eq!(migrate_list(&old, &sb.root()).len(), 3, "the failed migration was rolled back, not recorded");

    // The other release directory is unaffected.
    let srv = Server::start(&old, &sb.root(), &[]);
    assert_eq!(titles(srv.port), ["keep me"]);
    srv.stop();

    // Via the environment as well.
    let mut srv = Server::spawn(&sb.release("v1.0.0"), &sb.root(), &[("VIKUNJA_STANDIN_FAULT", "fail-migration")]);
    assert_eq!(srv.wait_exit(Duration::from_secs(10)).unwrap().code(), Some(1));
}

#[test]
fn never_healthy_fault_and_healthcheck_command() {
    let sb = Sandbox::new("unhealthy");
    let bin = sb.release("v2.5.0");
    let out = run(&bin, &sb.root(), &["healthcheck"], &[URL], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "API server is healthy\n");

    let fault = [("VIKUNJA_STANDIN_FAULT", "never-healthy")];
    let out = run(&bin, &sb.root(), &["healthcheck"], &[URL, fault[0]], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("API server is not healthy: "));

    let mut srv = Server::spawn(&bin, &sb.root(), &fault);
    let port = srv.wait_bound(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        match get(port, "/health") {
            Ok(r) => break r.status,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(status, 500);
    assert_eq!(get(port, "/api/v1/info").unwrap().status, 200, "only health is broken");
    srv.stop();

    let out = run(&bin, &sb.root(), &["healthcheck"], &[URL, ("VIKUNJA_STANDIN_FAULT", "port-taken")], None);
    assert_eq!(out.status.code(), Some(1), "an unknown fault is refused: {}", text(&out));
}

#[test]
fn slow_start_fault_delays_listening() {
    let sb = Sandbox::new("slow");
    let bin = sb.release("v2.5.0");
    let t0 = Instant::now();
    let mut srv = Server::spawn(&bin, &sb.root(), &[("VIKUNJA_STANDIN_FAULT", "slow-start=1.5")]);
    assert!(srv.wait_log("fault slow-start", Duration::from_secs(10)));
    assert!(!srv.log_text().contains("HTTP server listening"), "not listening while starting slowly");
    srv.wait_bound(Duration::from_secs(10));
    srv.wait_healthy(Duration::from_secs(10));
    assert!(t0.elapsed() >= Duration::from_millis(1500), "{:?}", t0.elapsed());
    srv.stop();
}

/// `user create` as the installer's last screen prints it: the user is recorded, a second one of
/// the same name is refused as Vikunja refuses it, and a missing flag is a usage error.
#[test]
fn user_create_records_the_user_and_refuses_a_taken_name() {
    let sb = Sandbox::new("user");
    let bin = sb.release("v2.5.0");
    let create = ["user", "create", "-u", "admin", "-e", "admin@vikunja.test", "-p", "secret words"];
    let out = run(&bin, &sb.root(), &create, &[URL], None);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("User was created successfully."), "{}", text(&out));
    let out = run(&bin, &sb.root(), &["user", "list"], &[URL], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1\tadmin\tadmin@vikunja.test"), "{}", text(&out));
    let out = run(&bin, &sb.root(), &create, &[URL], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("A user with this username already exists."), "{}", text(&out));
    let out = run(&bin, &sb.root(), &["user", "create", "-u", "x"], &[URL], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("required flag(s) \"email\", \"password\" not set"), "{}", text(&out));
}
