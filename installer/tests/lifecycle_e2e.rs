//! The seven cases of issue 10 ("Instance lifecycle"), each as an admin would meet it by chaining
//! commands that each work alone: a sandbox root, real nginx with TLS, the Vikunja stand-in
//! (v2.4.0 / v2.5.0) under `--init process`. Black box: only the CLI, the files it writes and the
//! processes it leaves. Every test asserts what the issue demands, not what the code did when the
//! issue was filed.

mod lifecycle_common;

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use lifecycle_common::*;
use vikunja_e2e::disk::SmallDisk;
use vikunja_e2e::load::Load;
use vikunja_e2e::sandbox::Sandbox;

/// The end of every wedge case: the instance is operable again. `status`, `update`, `backup`
/// succeed, writes through nginx are not answered 503, exactly one colour runs.
fn assert_operable(sb: &Sandbox, what: &str) {
    let o = installer(sb, &["status", "--json"]);
    assert!(o.status.success(), "{what}: status afterwards: {}: {}", describe(&o), stderr(&o));
    assert_serving(sb, &format!("{what}: after status"));
    assert_writes_accepted(sb, &format!("{what}-write-1"), what);
    let o = installer(sb, &["update", "--version", V2]);
    assert!(o.status.success(), "{what}: update --version {V2} afterwards: {}: {}", describe(&o), stderr(&o));
    assert_serving(sb, &format!("{what}: after update"));
    let o = installer(sb, &["backup"]);
    assert!(o.status.success(), "{what}: backup afterwards: {}: {}", describe(&o), stderr(&o));
    assert_serving(sb, &format!("{what}: after backup"));
    assert_writes_accepted(sb, &format!("{what}-write-2"), what);
}

/// (state's colour, state's version, the version nginx serves, the colours that answer).
fn observed(sb: &Sandbox) -> (String, String, String, Vec<&'static str>) {
    let (colour, version) = deployed(sb);
    let (_, body) = target(sb).request("GET", "/api/v1/info", None);
    let served = serde_json::from_str::<serde_json::Value>(body.lines().next().unwrap_or(""))
        .ok()
        .and_then(|v| v["version"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("(no version: {})", body.trim()));
    let answering = ["blue", "green"].into_iter().filter(|c| version_on(port_of(sb, c)).is_some()).collect();
    (colour, version, served, answering)
}

/// A rollback that meets a rollback point it cannot honour either succeeds or refuses before
/// changing anything, saying what to do; never "switched, then failed".
fn assert_rollback_succeeds_or_refuses_cleanly(sb: &Sandbox, what: &str) {
    let before = observed(sb);
    let pids = pid_file(sb, &before.0);
    let o = installer(sb, &["rollback", "--yes"]);
    if o.status.success() {
        assert_serving(sb, &format!("{what}: after a successful rollback"));
        let now = observed(sb);
        if said(&o).contains("Nothing to roll back") {
            // The restore consumed the rollback point: nothing may have changed, not even a restart.
            assert_eq!(now, before, "{what}: 'nothing to roll back' changed the deployment: {}", said(&o));
            assert_eq!(pid_file(sb, &before.0), pids, "{what}: 'nothing to roll back' restarted the serving colour");
        } else {
            assert_ne!(now, before, "{what}: rollback exited 0 but the deployment did not change: {}", said(&o));
        }
        return;
    }
    let err = said(&o);
    let now = observed(sb);
    assert_eq!(
        now,
        before,
        "{what}: the rollback failed ({}) after it had changed the deployment (was {before:?}, now {now:?}): it must \
         refuse before any change or succeed: {err}",
        describe(&o)
    );
    assert_eq!(pid_file(sb, &before.0), pids, "{what}: the refused rollback restarted the serving colour: {err}");
    assert_ne!(o.status.code(), Some(12), "{what}: rollback needs manual action (exit 12): {err}");
    assert!(
        err.contains("nothing was changed") && err.contains("vikunja-installer "),
        "{what}: a refused rollback ({}) must say that nothing was changed and which command to run instead: {err}",
        describe(&o)
    );
    assert_serving(sb, &format!("{what}: after the refused rollback"));
}

#[test]
fn case1_restore_of_a_backup_naming_a_pruned_dump_then_rollback_does_not_wedge() {
    let sb = installed("lc-wedge", V1);
    assert!(installer(&sb, &["update", "--version", V2]).status.success(), "first update");
    let o = installer(&sb, &["backup"]);
    assert!(o.status.success(), "backup after the update");
    let archive = backups(&sb).pop().expect("the backup's archive");
    assert!(installer(&sb, &["rollback", "--yes"]).status.success(), "first rollback");
    assert!(installer(&sb, &["update", "--version", V2]).status.success(), "second update");
    let o = installer(&sb, &["restore", archive.to_str().unwrap(), "--yes"]);
    assert!(o.status.success(), "restore of the backup taken after the first update: {}", said(&o));
    assert_serving(&sb, "after the restore");
    assert_rollback_succeeds_or_refuses_cleanly(&sb, "rollback after the restore");
    assert_operable(&sb, "wedge sequence");
}

#[test]
fn case1_a_new_machine_restoring_a_backup_taken_after_an_update_can_roll_back_or_says_why_not() {
    let sb = installed("lc-newmachine", V1);
    assert!(installer(&sb, &["update", "--version", V2]).status.success(), "update");
    let (code, _) = target(&sb).create_task("made-before-the-backup");
    assert_eq!(code, 201);
    let o = installer(&sb, &["backup"]);
    assert!(o.status.success(), "backup after the update");
    let archive = backups(&sb).pop().expect("the backup's archive");
    let kept = sb.root.join(archive.file_name().unwrap());
    std::fs::copy(&archive, &kept).unwrap();
    // The new machine: the same root and ports, with nothing of the old instance left.
    sb.stop_all();
    std::fs::remove_dir_all(sb.root.join("opt")).unwrap();
    let o = install(&sb, V1);
    assert!(o.status.success(), "install on the new machine");
    // What the admin is told to do first: the backup's release must run its database.
    let o = installer(&sb, &["restore", kept.to_str().unwrap(), "--yes"]);
    assert!(
        !o.status.success() && said(&o).contains(&format!("update --version {V2}")),
        "restoring a {V2} backup on {V1} must ask for the update first: {}",
        said(&o)
    );
    assert!(installer(&sb, &["update", "--version", V2]).status.success(), "update on the new machine");
    let o = installer(&sb, &["restore", kept.to_str().unwrap(), "--yes"]);
    assert!(o.status.success(), "restore on the new machine: {}", said(&o));
    assert_serving(&sb, "after the restore on the new machine");
    let titles = target(&sb).task_titles().unwrap();
    assert!(titles.contains(&"made-before-the-backup".to_string()), "restored tasks: {titles:?}");
    assert_rollback_succeeds_or_refuses_cleanly(&sb, "rollback on the new machine");
    assert_operable(&sb, "new machine");
}

#[test]
fn case2_a_second_rollback_changes_nothing_and_says_there_is_nothing_to_roll_back() {
    let sb = installed("lc-idempotent", V1);
    assert!(installer(&sb, &["update", "--version", V2]).status.success(), "update");
    let o = installer(&sb, &["rollback", "--yes"]);
    assert!(o.status.success(), "first rollback");
    let after_first = assert_serving(&sb, "after the first rollback");
    assert_eq!(after_first, ("blue".to_string(), V1.to_string()), "the first rollback went back to blue {V1}");
    let t = target(&sb);
    let written: Vec<String> = (1..=5).map(|i| format!("between-rollbacks-{i}")).collect();
    for w in &written {
        let (code, body) = t.create_task(w);
        assert_eq!(code, 201, "{body}");
    }
    let pids = pid_file(&sb, "blue");
    let o = installer(&sb, &["rollback", "--yes"]);
    let text = said(&o);
    assert!(
        text.to_lowercase().contains("nothing to roll back"),
        "a second rollback ({}) must say there is nothing to roll back: {text}",
        describe(&o)
    );
    assert_eq!(deployed(&sb), after_first, "the second rollback changed the deployment: {text}");
    assert_eq!(pid_file(&sb, "blue"), pids, "the second rollback restarted blue");
    assert_serving(&sb, "after the second rollback");
    let titles = t.task_titles().unwrap();
    let lost: Vec<&String> = written.iter().filter(|w| !titles.contains(w)).collect();
    assert!(lost.is_empty(), "{} of 5 writes made between the rollbacks were lost: {lost:?}", lost.len());
}

#[test]
fn case3_a_killed_supervisor_takes_its_backend_with_it_and_no_traffic_goes_to_an_orphan() {
    let sb = installed("lc-orphan", V1);
    assert!(installer(&sb, &["update", "--version", V2]).status.success(), "update");
    assert_serving(&sb, "after the update");
    let (sup, child) = pid_file(&sb, "green").expect("green's pid file");
    kill9(sup);
    assert!(wait_dead(sup, Duration::from_secs(5)), "supervisor {sup} survived kill -9");
    let orphan_died = wait_dead(child, Duration::from_secs(5));
    // Whatever `status` makes of it, it must not call healthy a colour an unsupervised process serves.
    let o = installer(&sb, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    if v["healthy"] == true {
        let problems = serving_violations(&sb);
        assert!(problems.is_empty(), "status reports healthy, yet: {}", problems.join("; "));
    }
    // Back to blue, then forward to green again: the colour whose port the orphan held.
    let o = installer(&sb, &["rollback", "--yes"]);
    assert!(o.status.success(), "rollback after the supervisor was killed: {}: {}", describe(&o), stderr(&o));
    assert_serving(&sb, "after the rollback");
    let o = installer(&sb, &["update", "--version", V2]);
    let on_green = listener_pid(sb.ports.backend_green);
    assert!(
        orphan_died,
        "backend {child} outlived its supervisor {sup} (kill -9); after rollback and update ({}) green's port \
         {} is held by pid {on_green:?} ({}), green's pid file says {:?}",
        describe(&o),
        sb.ports.backend_green,
        on_green.map(cmdline).unwrap_or_default(),
        pid_file(&sb, "green")
    );
    assert!(o.status.success(), "update to green again: {}: {}", describe(&o), stderr(&o));
    assert_serving(&sb, "after the update back to green");
}

#[test]
fn case4_an_install_whose_backend_port_another_instance_holds_refuses_naming_the_holder() {
    let a = Sandbox::new("lc-stranger-a").unwrap();
    let cfg = write_config(&a, "alpha", V1, "");
    let o = installer(&a, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "control: instance alpha installs");
    let ta = target_of(&a, "alpha");
    let (code, _) = ta.create_task("alpha-task");
    assert_eq!(code, 201);
    let holder = listener_pid(a.ports.backend_blue).expect("alpha's backend listens");

    let mut b = Sandbox::new("lc-stranger-b").unwrap();
    b.ports.backend_blue = a.ports.backend_blue;
    let cfg = write_config(&b, "beta", V1, "");
    let o = installer(&b, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    let err = said(&o);
    assert!(!o.status.success(), "install of beta on alpha's backend port {} reported success", a.ports.backend_blue);
    assert!(
        err.contains(&a.ports.backend_blue.to_string()) && err.contains(&holder.to_string()),
        "the refusal ({}) must name port {} and the process holding it (pid {holder}): {err}",
        describe(&o),
        a.ports.backend_blue
    );
    // Before any change: beta runs nothing, and alpha's data never saw beta.
    let beta = b.instance_dir("beta");
    for f in std::fs::read_dir(beta.join("logs")).into_iter().flatten().flatten() {
        if f.path().extension().is_some_and(|e| e == "pid") {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            let live: Vec<&str> = text.split_whitespace().filter(|p| p.parse::<u32>().is_ok_and(alive)).collect();
            assert!(live.is_empty(), "beta left {} running: pids {live:?}", f.path().display());
        }
    }
    assert_eq!(listener_pid(b.ports.https), None, "beta's nginx runs after the refused install");
    let o = installer(&b, &["status", "--json", "--instance", "beta"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert_ne!(v["healthy"], true, "beta's status reports healthy on alpha's backend: {v}");
    assert_eq!(ta.task_titles().unwrap(), ["alpha-task"], "alpha's tasks changed");
    assert_eq!(listener_pid(a.ports.backend_blue), Some(holder), "alpha's backend was disturbed");
}

#[test]
fn case5_a_failed_install_leaves_no_backend_running_and_names_the_port() {
    let sb = Sandbox::new("lc-failed-install").unwrap();
    // Another listener on the https port nginx needs.
    let squatter = TcpListener::bind(("127.0.0.1", sb.ports.https)).unwrap();
    let o = install(&sb, V1);
    let err = said(&o);
    let mut wrong = Vec::new();
    if o.status.success() {
        wrong.push(format!("install succeeded with its https port {} taken", sb.ports.https));
    }
    if o.status.code() == Some(1) {
        wrong.push("it exited 1 ('any other error') for a port another listener holds".to_string());
    }
    if !err.contains(&sb.ports.https.to_string()) {
        wrong.push(format!("the message does not name the taken port {}", sb.ports.https));
    }
    for (colour, port) in [("blue", sb.ports.backend_blue), ("green", sb.ports.backend_green)] {
        if let Some(pid) = listener_pid(port) {
            wrong.push(format!("{colour}'s backend still listens on port {port}: pid {pid} ({})", cmdline(pid)));
        }
        if let Some((sup, child)) = pid_file(&sb, colour).filter(|(s, c)| alive(*s) || alive(*c)) {
            wrong.push(format!("{colour}'s supervisor {sup} / backend {child} still run"));
        }
    }
    assert!(wrong.is_empty(), "a failed install ({}): {}; its output: {err}", describe(&o), wrong.join("; "));
    drop(squatter);
}

/// How long writes were answered 503 during an update that cannot succeed.
fn freeze_of_a_failing_update(sb: &Sandbox, fault: &str) -> (Duration, Duration) {
    let t = target(sb);
    set_fault(&predownload(sb, V2), fault);
    let load = Load::start(&t, 1, 2);
    load.warm_up(5);
    let started = Instant::now();
    let o = installer(sb, &["update", "--version", V2]);
    let took = started.elapsed();
    let r = load.stop();
    assert_eq!(o.status.code(), Some(11), "{fault}: the update must fail and be rolled back: {}", said(&o));
    assert!(r.writes_failed.is_empty(), "{fault}: writes failed other than by the freeze: {:?}", r.writes_failed);
    assert_serving(sb, &format!("{fault}: after the failed update"));
    let (first, last) = r.freeze_seen.unwrap_or_else(|| panic!("{fault}: no write met the freeze: {r:?}"));
    (last - first, took)
}

#[test]
fn case6_a_failed_migration_ends_the_write_freeze_long_before_the_health_timeout() {
    let sb = installed("lc-freeze-migration", V1);
    // The sandbox's health.timeout_s is 30: a release that exits at once must not be waited for.
    let (freeze, took) = freeze_of_a_failing_update(&sb, "fail-migration");
    eprintln!("fail-migration: writes frozen for {freeze:?}, the update took {took:?}");
    assert!(
        freeze < Duration::from_secs(10),
        "writes stayed frozen for {freeze:?} (the update took {took:?}) although the new release exited on its \
         failed migration at once; health.timeout_s is 30"
    );
}

#[test]
fn case6_a_start_slower_than_the_timeout_freezes_writes_no_longer_than_the_timeout() {
    let sb = installed("lc-freeze-slow", V1);
    let (freeze, took) = freeze_of_a_failing_update(&sb, "slow-start=120");
    eprintln!("slow-start past the timeout: writes frozen for {freeze:?}, the update took {took:?}");
    assert!(
        freeze < Duration::from_secs(30 + 5),
        "writes stayed frozen for {freeze:?} (the update took {took:?}); health.timeout_s is 30, so the freeze \
         must end within a few seconds after it"
    );
}

#[test]
fn case7_a_stale_lock_is_taken_over_naming_the_dead_holder() {
    let sb = installed("lc-stale-lock", V1);
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    assert!(!alive(dead_pid));
    let lock = base(&sb).join("state/locks/operation.lock");
    std::fs::write(&lock, format!("PID: {dead_pid}\nOperation: update\nStarted: 2026-11-27T00:00:00Z\nUser: root\n"))
        .unwrap();
    let o = installer(&sb, &["backup"]);
    assert!(o.status.success(), "backup with a stale lock: {}: {}", describe(&o), stderr(&o));
    let text = said(&o);
    assert!(
        text.contains(&dead_pid.to_string()) && text.contains("update"),
        "taking over the stale lock must name its dead holder (PID {dead_pid}, operation update): {text}"
    );
    // The control: a lock without contents (the normal state after an operation) takes no message.
    let o = installer(&sb, &["backup"]);
    assert!(o.status.success());
    assert!(!said(&o).contains(&dead_pid.to_string()), "the stale holder is named again: {}", said(&o));
}

#[test]
fn case7_a_lock_that_cannot_be_written_says_so_not_cannot_open() {
    let sb = installed("lc-lock-full", V1);
    let locks = base(&sb).join("state/locks");
    let Some(_disk) = SmallDisk::mount(&locks, 64 * 1024) else {
        vikunja_e2e::skip("cannot mount a tmpfs (not root)");
        return;
    };
    // Fill it: the lock file can still be created (an inode), not written.
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", locks.join("fill").display()))
        .arg("bs=4k")
        .status();
    let o = installer(&sb, &["backup"]);
    let err = said(&o);
    assert!(!o.status.success(), "backup succeeded without a lock it could write: {err}");
    assert_ne!(o.status.signal(), Some(9));
    assert!(
        !err.contains("cannot open") && err.contains("write") && err.contains("No space left on device"),
        "a lock write on a full disk ({}) must say it could not write it (ENOSPC), not 'cannot open': {err}",
        describe(&o)
    );
    assert!(backups(&sb).is_empty(), "a backup was made without the lock");
}

/// Day two (issue 13): `restart` moves the same version to the other colour under load without a
/// failed read, keeps every acknowledged write, and leaves the rollback point usable.
#[test]
fn restart_moves_the_same_version_to_the_other_colour_without_a_failed_read_and_keeps_the_rollback() {
    let sb = installed("lc-restart", V1);
    assert!(installer(&sb, &["update", "--version", V2]).status.success(), "update");
    let before = assert_serving(&sb, "after the update");
    let t = target(&sb);
    let load = Load::start(&t, 2, 1);
    load.warm_up(20);
    let o = installer(&sb, &["restart"]);
    let r = load.stop();
    assert!(o.status.success(), "restart: {}", said(&o));
    let after = assert_serving(&sb, "after the restart");
    assert_ne!(after.0, before.0, "restart did not move to the other colour");
    assert_eq!(after.1, V2, "restart changed the version");
    assert!(r.reads_failed.is_empty(), "reads failed during the restart: {:?}", r.reads_failed);
    assert!(r.writes_failed.is_empty(), "writes failed other than by the freeze: {:?}", r.writes_failed);
    let titles = t.task_titles().unwrap();
    let lost: Vec<&String> = r.writes_acked.iter().filter(|w| !titles.contains(w)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost by the restart: {lost:?}");
    // The rollback point of the update survived the restart (its copy and release too).
    let o = installer(&sb, &["rollback", "--yes"]);
    assert!(o.status.success(), "rollback after a restart: {}", said(&o));
    assert_eq!(assert_serving(&sb, "after the rollback").1, V1);
}

/// Day two (issue 13): with no network, `update` says which option exists (`--artifact`), and
/// `update --version V --artifact ZIP` updates from a zip copied by hand, checked like a download.
#[test]
fn an_offline_update_takes_the_zip_given_with_artifact_and_the_no_network_error_names_it() {
    let sb = installed("lc-offline", V1);
    // The download site becomes unreachable: a closed port.
    let file = base(&sb).join("config/deployment.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().find(|l| l.trim_start().starts_with("download_base")).expect("download_base").to_string();
    std::fs::write(&file, text.replace(&line, "download_base = \"https://127.0.0.1:1/vikunja\"")).unwrap();
    let o = installer(&sb, &["update", "--version", V2]);
    assert_eq!(o.status.code(), Some(6), "update without network: {}", said(&o));
    assert!(said(&o).contains("--artifact"), "the no-network error must name --artifact: {}", said(&o));
    assert_eq!(deployed(&sb).1, V1, "a failed download changed the deployment");
    let o = installer(&sb, &["update", "--artifact", "/nonexistent.zip"]);
    assert_eq!(o.status.code(), Some(2), "--artifact without --version: {}", said(&o));
    let zips = vikunja_e2e::sandbox::standin_zips(&[V2]).unwrap();
    let zip = zips.join(V2).join(format!("vikunja-{V2}-linux-amd64-full.zip"));
    let wrong =
        installer(&sb, &["update", "--version", V2, "--artifact", zip.to_str().unwrap(), "--sha256", &"0".repeat(64)]);
    assert_eq!(wrong.status.code(), Some(3), "a zip whose sha256 differs must be refused: {}", said(&wrong));
    let o = installer(&sb, &["update", "--version", V2, "--artifact", zip.to_str().unwrap()]);
    assert!(o.status.success(), "offline update: {}", said(&o));
    assert_eq!(assert_serving(&sb, "after the offline update").1, V2);
}

/// Found by the soak (seed 20261127, step 21): an update killed after nginx was told to reload
/// into the write freeze, but before the installer recorded what nginx applied. The recovery
/// must not trust the stale record: writes are accepted again afterwards.
#[test]
fn an_update_killed_after_signalling_the_freeze_reload_leaves_writes_open_after_recovery() {
    let sb = installed("lc-reload-kill", V1);
    let o = installer_env(&sb, &["update", "--version", V2], &[("VIKUNJA_INSTALLER_TEST_KILL_AT", "reload-signalled")]);
    assert_eq!(o.status.signal(), Some(9), "the update was not killed at reload-signalled: {}", said(&o));
    let o = installer(&sb, &["status", "--json"]);
    assert!(o.status.success(), "status after the kill: {}", said(&o));
    let (code, body) = target(&sb).create_task("after-the-killed-freeze");
    assert_eq!(code, 201, "a write after the recovery was answered {code}: {body}");
    assert_serving(&sb, "after the recovery");
}
