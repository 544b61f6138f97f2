//! Day two (issue 13), end to end in a sandbox root under `--init process`, black box: `logs`,
//! `stop` / `start`, `uninstall`, `backup schedule` where no systemd runs, and the `--json` outputs
//! with `"schema": 1` and the names shared by `status`, `health` and `backup`.

mod lifecycle_common;

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use lifecycle_common::*;
use vikunja_e2e::sandbox::Sandbox;

fn json(o: &std::process::Output, what: &str) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", said(o)))
}

/// The names every `--json` output shares, with the values the state files and the config give.
fn assert_shared_names(v: &serde_json::Value, what: &str, colour: &str, version: &str) {
    assert_eq!(v["schema"], 1, "{what}: {v}");
    assert_eq!(v["instance"], INSTANCE, "{what}: {v}");
    assert_eq!(v["version"], version, "{what}: {v}");
    assert_eq!(v["colour"], colour, "{what}: {v}");
    assert!(v.get("active_colour").is_none(), "{what}: the old name is still there: {v}");
}

fn nginx_answers(sb: &Sandbox) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], sb.ports.https).into(), Duration::from_secs(2)).is_ok()
}

fn lines(o: &std::process::Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

#[test]
fn logs_show_the_serving_backend_and_n_limits_them() {
    let sb = installed("dt-logs", V1);
    let (colour, _) = deployed(&sb);
    let all = installer(&sb, &["logs", "-n", "1000"]);
    assert!(all.status.success(), "logs: {}", said(&all));
    let text = stdout(&all);
    assert!(text.contains(&format!("Vikunja version {V1}")), "the backend's own output is missing: {text}");
    assert!(lines(&all).len() > 2, "too few lines to prove -n: {text}");
    let two = installer(&sb, &["logs", "-n", "2"]);
    assert!(two.status.success(), "logs -n 2: {}", said(&two));
    assert_eq!(lines(&two).len(), 2, "-n 2 printed: {}", stdout(&two));
    assert!(text.ends_with(&stdout(&two)), "-n 2 is not the last two lines");
    // -f keeps following (and shows new lines: a restart's start lines of the same colour).
    let mut f = command(&sb, &["logs", "-f", "-n", "1"], &[]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let out = f.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    assert!(rx.recv_timeout(Duration::from_secs(10)).is_ok(), "logs -f printed nothing");
    std::thread::sleep(Duration::from_millis(500));
    assert!(f.try_wait().unwrap().is_none(), "logs -f ended by itself");
    // A stop and start of the same colour writes its start lines to the same log file.
    assert!(installer(&sb, &["stop"]).status.success() && installer(&sb, &["start"]).status.success());
    let followed: Vec<String> = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(3)).ok()).collect();
    let _ = f.kill();
    let _ = f.wait();
    assert!(
        followed.iter().any(|l| l.contains(&format!("Vikunja version {V1}"))),
        "logs -f did not show the new start: {followed:?}"
    );
    // The other colour never ran: named, not an empty screen.
    let o = installer(&sb, &["logs", "--colour", other(&colour)]);
    assert_eq!(o.status.code(), Some(1), "logs of a colour that never ran: {}", said(&o));
    assert!(stderr(&o).contains("never ran"), "{}", said(&o));
    let o = installer(&sb, &["logs", "--component", "nginx", "-n", "5"]);
    assert!(o.status.success() && !stdout(&o).is_empty(), "nginx logs: {}", said(&o));
    for (args, says) in [
        (&["logs", "--colour", "purple"][..], "blue or green"),
        (&["logs", "--component", "mcp"][..], "components.mcp"),
        (&["logs", "--component", "db"][..], "backend, nginx or mcp"),
    ] {
        let o = installer(&sb, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", said(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", said(&o));
    }
}

#[test]
fn stop_stays_stopped_until_start_which_brings_it_back_healthy() {
    let sb = installed("dt-stop", V1);
    let (colour, _) = deployed(&sb);
    assert!(nginx_answers(&sb), "nginx does not answer before the stop");
    let o = installer(&sb, &["stop"]);
    assert!(o.status.success(), "stop: {}", said(&o));
    assert!(!nginx_answers(&sb), "nginx still answers on {} after stop", sb.ports.https);
    for c in ["blue", "green"] {
        assert_eq!(version_on(port_of(&sb, c)), None, "{c} still answers after stop");
    }
    let o = installer(&sb, &["status", "--json"]);
    assert_eq!(o.status.code(), Some(10), "status of a stopped instance must say unhealthy: {}", said(&o));
    let v = json(&o, "status --json");
    assert_eq!(v["state"], "stopped", "{v}");
    assert_eq!(v["healthy"], false, "{v}");
    // status revives crashed services under --init process; a stop is not a crash.
    assert!(!nginx_answers(&sb) && version_on(port_of(&sb, &colour)).is_none(), "status started it again");
    let o = installer(&sb, &["status"]);
    assert!(stdout(&o).contains("STOPPED"), "the status screen does not say stopped: {}", stdout(&o));
    let o = installer(&sb, &["restart"]);
    assert_eq!(o.status.code(), Some(1), "restart of a stopped instance: {}", said(&o));
    assert!(stderr(&o).contains("vikunja-installer start"), "{}", said(&o));
    assert!(!nginx_answers(&sb), "the refused restart started nginx");

    let o = installer(&sb, &["start"]);
    assert!(o.status.success(), "start: {}", said(&o));
    assert_eq!(assert_serving(&sb, "after start"), (colour, V1.to_string()));
    assert_writes_accepted(&sb, "after-start", "start");
    let v = json(&installer(&sb, &["status", "--json"]), "status after start");
    assert_eq!((v["state"].as_str(), v["healthy"].as_bool()), (Some("serving"), Some(true)), "{v}");
    // A second start changes nothing and still succeeds.
    let before = pid_file(&sb, &deployed(&sb).0);
    assert!(installer(&sb, &["start"]).status.success());
    assert_eq!(pid_file(&sb, &deployed(&sb).0), before, "a start of a running instance restarted it");
}

#[test]
fn json_outputs_carry_schema_1_and_the_same_names() {
    let sb = installed("dt-json", V1);
    let (colour, version) = deployed(&sb);
    let s = json(&installer(&sb, &["status", "--json"]), "status");
    assert_shared_names(&s, "status", &colour, &version);
    assert_eq!(s["healthy"], true, "{s}");
    assert_eq!(s["url"], format!("https://vikunja.test:{}/", sb.ports.https), "{s}");
    assert_eq!(s["backup_schedule"]["state"], "needs systemd", "{s}");
    let h = json(&installer(&sb, &["health", "--json"]), "health");
    assert_shared_names(&h, "health", &colour, &version);
    assert_eq!((&h["healthy"], &h["url"]), (&s["healthy"], &s["url"]), "health and status differ: {h}");
    let o = installer(&sb, &["backup", "--json"]);
    assert!(o.status.success(), "backup --json: {}", said(&o));
    let b = json(&o, "backup");
    assert_shared_names(&b, "backup", &colour, &version);
    let path = b["file"]["path"].as_str().expect("file.path");
    assert_eq!(backups(&sb), vec![std::path::PathBuf::from(path)], "backup --json names another file: {b}");
    assert_eq!(b["file"]["size"].as_u64(), Some(std::fs::metadata(path).unwrap().len()), "{b}");
    let sum = Command::new("sha256sum").arg(path).output().unwrap();
    let sum = String::from_utf8_lossy(&sum.stdout).split_whitespace().next().unwrap().to_string();
    assert_eq!(b["file"]["sha256"], sum, "{b}");
}

#[test]
fn uninstall_takes_a_last_backup_keeps_it_and_the_data_and_a_new_install_uses_them() {
    let sb = installed("dt-uninstall", V1);
    assert_writes_accepted(&sb, "written-before-uninstall", "before");
    let base = base(&sb);
    let o = installer(&sb, &["uninstall"]);
    assert_eq!(o.status.code(), Some(2), "uninstall without --yes and without a terminal: {}", said(&o));
    assert!(stderr(&o).contains("--yes"), "{}", said(&o));
    assert_serving(&sb, "after the refused uninstall");
    assert!(backups(&sb).is_empty(), "the refused uninstall made a backup");

    let o = installer(&sb, &["uninstall", "--yes"]);
    assert!(o.status.success(), "uninstall: {}", said(&o));
    let kept = backups(&sb);
    assert_eq!(kept.len(), 1, "the last backup: {kept:?}");
    assert!(backup_titles(&kept[0], &sb.root).contains(&"written-before-uninstall".to_string()));
    assert!(base.join("data/vikunja.db").is_file(), "the data was not kept");
    for gone in ["releases", "state", "logs", "config/deployment.toml", "config/nginx"] {
        assert!(!base.join(gone).exists(), "{gone} is still there after uninstall");
    }
    assert!(!nginx_answers(&sb), "nginx still answers after uninstall");
    for c in ["blue", "green"] {
        assert_eq!(version_on(port_of(&sb, c)), None, "{c} still answers after uninstall");
    }
    let o = installer(&sb, &["status"]);
    assert_eq!(o.status.code(), Some(1), "status after uninstall: {}", said(&o));
    assert!(stderr(&o).contains("no Vikunja instance is installed"), "{}", said(&o));

    // A new install finds the kept data.
    let o = install(&sb, V1);
    assert!(o.status.success(), "install after uninstall: {}", said(&o));
    assert_serving(&sb, "the install after uninstall");
    let titles = target(&sb).task_titles().unwrap();
    assert!(titles.contains(&"written-before-uninstall".to_string()), "the kept data is not served: {titles:?}");

    // --purge: nothing of the instance is left but the last backup, moved out of it first.
    let o = installer(&sb, &["uninstall", "--yes", "--purge"]);
    assert!(o.status.success(), "uninstall --purge: {}", said(&o));
    assert!(!base.exists(), "{} is still there after --purge", base.display());
    let moved: Vec<_> = std::fs::read_dir(sb.root.join("var/backups")).unwrap().flatten().map(|e| e.path()).collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(backup_titles(&moved[0], &sb.root).contains(&"written-before-uninstall".to_string()));
}

#[test]
fn backup_schedule_under_process_init_refuses_and_changes_nothing() {
    let sb = installed("dt-schedule", V1);
    let units = base(&sb).join("config/units");
    let before: Vec<_> = std::fs::read_dir(&units).unwrap().flatten().map(|e| e.file_name()).collect();
    let o = installer(&sb, &["backup", "schedule", "--daily"]);
    assert_eq!(o.status.code(), Some(4), "backup schedule without systemd: {}", said(&o));
    assert!(stderr(&o).contains("timers need systemd"), "{}", said(&o));
    let after: Vec<_> = std::fs::read_dir(&units).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(before, after, "the refused schedule wrote units");
    assert!(!sb.root.join("etc/systemd/system/vikunja-lc-backup.timer").exists());
    for (args, code) in [
        (&["backup", "schedule"][..], 2),
        (&["backup", "schedule", "--daily", "--weekly"][..], 2),
        (&["backup", "schedule", "--cron", "0 3 1 * 1"][..], 2),
    ] {
        let o = installer(&sb, args);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {}", said(&o));
    }
    let o = installer(&sb, &["backup", "schedule", "--off"]);
    assert!(o.status.success() && stdout(&o).contains("No backup was scheduled"), "{}", said(&o));
    let o = installer(&sb, &["status"]);
    assert!(stdout(&o).contains("timers need systemd"), "{}", stdout(&o));
}

/// `self uninstall` on the host removes the versioned layout `upgrade` made and our command link,
/// keeps the registry and copied-out backups unless --purge, and never removes a command in
/// /usr/local/bin that is not ours.
#[test]
fn self_uninstall_removes_the_installer_and_keeps_the_registry_unless_purged() {
    let sb = Sandbox::new("dt-self").unwrap();
    let r = &sb.root;
    let bin_dir = r.join("opt/vikunja-pve/versions/0.6.0/bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::copy("/bin/true", bin_dir.join("vikunja-installer")).unwrap();
    std::os::unix::fs::symlink("versions/0.6.0", r.join("opt/vikunja-pve/current")).unwrap();
    std::fs::create_dir_all(r.join("usr/local/bin")).unwrap();
    let link = r.join("usr/local/bin/vikunja-installer");
    std::os::unix::fs::symlink("../../../opt/vikunja-pve/current/bin/vikunja-installer", &link).unwrap();
    let state = r.join("var/lib/vikunja-pve");
    for d in ["instances", "backups/one"] {
        std::fs::create_dir_all(state.join(d)).unwrap();
    }
    std::fs::write(state.join("backups/one/vikunja-backup-one-2026-11-27-03-00-00.tar.gz"), b"x").unwrap();
    let run = |args: &[&str]| {
        let o =
            Command::new(exe()).args(args).arg("--root").arg(r).stdin(std::process::Stdio::null()).output().unwrap();
        log(args, &o);
        o
    };
    std::fs::write(
        state.join("instances/one.toml"),
        "name = \"one\"\nnumber = 1\nctid = 101\nnode = \"pve\"\nhostname = \"vikunja-one\"\naddress = \"10.0.0.5\"\n\
         domain = \"one.example\"\nhttps_port = 443\nstorage = \"local\"\ntemplate = \"debian-12\"\nstate = \"ready\"\n\
         created_at = \"2026-11-27T00:00:00Z\"\ninstaller_version = \"0.6.0\"\nca_bundle = \"\"\n",
    )
    .unwrap();
    // An instance of the host lives in its container: `uninstall` there points at `destroy`.
    let o = run(&["uninstall", "--instance", "one", "--yes"]);
    assert_eq!(o.status.code(), Some(2), "uninstall of a container's instance on the host: {}", said(&o));
    assert!(stderr(&o).contains("destroy --instance one"), "{}", said(&o));

    let o = run(&["self", "uninstall"]);
    assert_eq!(o.status.code(), Some(2), "without --yes and a terminal: {}", said(&o));
    assert!(r.join("opt/vikunja-pve").exists() && link.symlink_metadata().is_ok(), "the refusal removed something");

    let o = run(&["self", "uninstall", "--yes"]);
    assert!(o.status.success(), "{}", said(&o));
    assert!(!r.join("opt/vikunja-pve").exists(), "/opt/vikunja-pve is still there");
    assert!(link.symlink_metadata().is_err(), "the command link is still there");
    assert!(
        state.join("backups/one/vikunja-backup-one-2026-11-27-03-00-00.tar.gz").is_file(),
        "copied-out backup gone"
    );
    assert!(state.join("instances").is_dir(), "the registry is gone without --purge");

    // A vikunja-installer in /usr/local/bin that is not a link into our layout stays.
    std::fs::create_dir_all(r.join("opt/vikunja-pve")).unwrap();
    std::fs::write(&link, b"#!/bin/sh\n").unwrap();
    let o = run(&["self", "uninstall", "--yes", "--purge"]);
    assert!(o.status.success(), "{}", said(&o));
    assert!(link.is_file(), "a command that is not ours was removed");
    assert!(!state.join("instances").exists() && !state.join("backups").exists(), "--purge kept the registry");
}
