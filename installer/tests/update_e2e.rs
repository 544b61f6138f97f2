//! Blue-green `update` and `rollback` for real: a sandbox root, real nginx with TLS, the Vikunja
//! stand-in (two releases served as zips over HTTPS), services under the installer's supervisor,
//! and a curl-based load of reads and writes running through nginx during the operation.
//! After every case: every write the clients were told was stored is there, exactly one colour
//! serves, and the state files agree with what runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use vikunja_e2e::disk::SmallDisk;
use vikunja_e2e::load::{Load, Target};
use vikunja_e2e::sandbox::{version_on, DownloadSite, Sandbox};

const V1: &str = "v2.4.0";
const V2: &str = "v2.5.0";

fn site() -> &'static DownloadSite {
    static S: OnceLock<DownloadSite> = OnceLock::new();
    S.get_or_init(|| {
        let dir = vikunja_e2e::scratch_dir("update-site").unwrap();
        let s = DownloadSite::start(&dir, &[V1, V2]).unwrap();
        // The download site's JSON listing, for `update` without --version.
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

const INSTANCE: &str = "bg";

/// A sandbox with V1 installed and healthy.
fn installed(name: &str) -> Sandbox {
    let sb = Sandbox::new(name).unwrap();
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, V1, &site().base(), "")).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "install failed");
    sb
}

fn target(sb: &Sandbox) -> Target {
    Target::new("vikunja.test", sb.ports.https, sb.instance_dir(INSTANCE).join("config/ssl/cert.pem"))
}

fn status(sb: &Sandbox) -> serde_json::Value {
    let o = installer(sb, &["status", "--json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("status --json: {e}"))
}

fn state_file(sb: &Sandbox, name: &str) -> String {
    std::fs::read_to_string(sb.instance_dir(INSTANCE).join("state").join(name)).unwrap_or_default()
}

/// Exactly one colour answers, with `version`, nginx routes to it unfrozen, and the state files say so.
fn assert_serving(sb: &Sandbox, colour: &str, version: &str) {
    let (port, other) = match colour {
        "blue" => (sb.ports.backend_blue, sb.ports.backend_green),
        _ => (sb.ports.backend_green, sb.ports.backend_blue),
    };
    assert_eq!(version_on(port).as_deref(), Some(version), "{colour} does not serve {version}");
    assert_eq!(version_on(other), None, "the other colour still answers");
    assert_eq!(state_file(sb, "active-color").trim(), colour);
    let deployed = state_file(sb, "deployed-version");
    assert!(
        deployed.contains(&format!("version: {version}")) && deployed.contains(&format!("color: {colour}")),
        "{deployed}"
    );
    assert!(!sb.instance_dir(INSTANCE).join("state/journal").exists(), "journal left behind");
    let up = std::fs::read_to_string(sb.instance_dir(INSTANCE).join("config/nginx/upstream.conf")).unwrap();
    assert!(up.contains(&format!("server 127.0.0.1:{port};")), "{up}");
    assert!(!sb.instance_dir(INSTANCE).join("state/writes-frozen").exists(), "writes still frozen");
    let t = target(sb);
    let (code, body) = t.request("GET", "/api/v1/info", None);
    assert!(code == 200 && body.contains(version), "through nginx: {code} {body}");
    let (code, body) = t.create_task("after-check");
    assert!((200..300).contains(&code), "writes not accepted: {code} {body}");
}

fn assert_all_present(t: &Target, acked: &[String]) {
    let titles = t.task_titles().unwrap();
    let missing: Vec<&String> = acked.iter().filter(|a| !titles.contains(a)).collect();
    assert!(missing.is_empty(), "{} acknowledged writes lost: {missing:?}", missing.len());
}

fn migrations(sb: &Sandbox) -> Vec<String> {
    let db = sb.instance_dir(INSTANCE).join("data/vikunja.db");
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c.prepare("SELECT id FROM migration ORDER BY id").unwrap();
    st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
}

/// Makes `version` present in releases/ (downloaded and verified) without changing anything
/// else: an update that is killed right after it recorded its start, then recovered.
fn predownload(sb: &Sandbox, version: &str) -> PathBuf {
    let o = installer_env(sb, &["update", "--version", version], &[("VIKUNJA_INSTALLER_TEST_KILL_AT", "started")]);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(9), "not killed");
    let o = installer(sb, &["status", "--json"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"colour\":\"blue\""));
    sb.instance_dir(INSTANCE).join("releases").join(version)
}

fn set_fault(release: &Path, fault: &str) {
    std::fs::write(release.join("STANDIN_FAULT"), fault).unwrap();
}

#[test]
fn update_under_load_loses_no_write_then_rollback_restores_the_old_release() {
    let sb = installed("bg-load");
    let t = target(&sb);
    let before = migrations(&sb);
    let attachment = attach(&sb, &t, "with-attachment");
    let load = Load::start(&t, 2, 1);
    load.warm_up(10);
    let o = installer(&sb, &["update"]); // the newest on the listing: V2
    let r = load.stop();
    assert!(o.status.success(), "update failed");
    let out = String::from_utf8_lossy(&o.stdout);
    for step in ["writes frozen", "database backed up", "health gate: passed", "traffic switched to green"] {
        assert!(out.contains(step), "no {step:?} in the progress");
    }
    assert!(
        r.reads_failed.is_empty(),
        "{} of {} reads failed: {:?}",
        r.reads_failed.len(),
        r.reads_ok,
        &r.reads_failed[..r.reads_failed.len().min(5)]
    );
    assert!(r.writes_failed.is_empty(), "writes failed other than by the freeze: {:?}", r.writes_failed);
    assert!(r.writes_acked.len() > 3, "too little load: {r:?}");
    eprintln!("load: {} reads, {} writes acked, {} frozen", r.reads_ok, r.writes_acked.len(), r.writes_frozen);
    assert_all_present(&t, &r.writes_acked);
    assert_serving(&sb, "green", V2);
    attachment.assert_intact(&t);
    assert!(migrations(&sb).len() > before.len(), "V2 did not migrate");
    let backups: Vec<_> = std::fs::read_dir(sb.instance_dir(INSTANCE).join("backups")).unwrap().flatten().collect();
    assert_eq!(backups.len(), 1, "one pre-update backup");
    let backup_titles = |path: &Path| -> Vec<String> {
        let c = rusqlite::Connection::open(path).unwrap();
        let mut st = c.prepare("SELECT title FROM tasks ORDER BY id").unwrap();
        let titles = st.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        titles
    };
    let expected = backup_titles(&backups[0].path());
    let s = status(&sb);
    assert_eq!((s["colour"].as_str(), s["version"].as_str()), (Some("green"), Some(V2)));
    assert_eq!(s["last_operation"]["operation"], "update");
    assert!(std::fs::read_to_string(sb.instance_dir(INSTANCE).join("config/deployment.toml")).unwrap().contains(V2));
    // Updating to what runs changes nothing.
    let o = installer(&sb, &["update", "--version", V2]);
    assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("nothing to update"));

    // The schema changed, so a rollback must restore the pre-update database: never without consent.
    let o = installer(&sb, &["rollback"]);
    assert_eq!(o.status.code(), Some(2), "rollback without --yes and without a terminal");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--yes"));
    assert_serving(&sb, "green", V2);
    let load = Load::start(&t, 2, 1);
    load.warm_up(10);
    let o = installer(&sb, &["rollback", "--yes"]);
    let r = load.stop();
    assert!(o.status.success(), "rollback failed");
    let out = String::from_utf8_lossy(&o.stdout);
    let (reads_at, restored_at) = (out.find("reads switched to blue").unwrap(), out.find("database restored").unwrap());
    assert!(reads_at < restored_at, "the schema must come back only after blue took the reads: {out}");
    assert!(
        r.reads_failed.is_empty(),
        "reads failed during the rollback: {:?}",
        &r.reads_failed[..r.reads_failed.len().min(5)]
    );
    assert!(r.writes_failed.is_empty(), "{:?}", r.writes_failed);
    assert_serving(&sb, "blue", V1);
    assert_eq!(migrations(&sb), before, "schema not restored");
    // As the rollback said: the tasks are those of the pre-update backup, then what was written
    // after it.
    // Only the dump the new rollback point needs is kept: the pre-rollback one.
    let names: Vec<String> = std::fs::read_dir(sb.instance_dir(INSTANCE).join("backups"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.len() == 1 && names[0].starts_with("pre-rollback-"), "{names:?}");
    // Then the writes acknowledged once the rollback lifted its freeze: a tail of what the
    // clients were told was stored (the ones before the freeze went with the restore, as announced).
    let titles = t.task_titles().unwrap();
    assert_eq!(&titles[..expected.len()], &expected[..], "the pre-update backup's tasks");
    let (after, last) = titles[expected.len()..].split_at(titles.len() - expected.len() - 1);
    assert_eq!(last, ["after-check"]);
    assert!(r.writes_acked.ends_with(after), "writes after the rollback lost: {after:?} vs {:?}", r.writes_acked);
    attachment.assert_intact(&t);
}

/// A task with an attachment of random bytes, uploaded through nginx.
struct Attached {
    task: i64,
    id: i64,
    bytes: Vec<u8>,
}

impl Attached {
    fn assert_intact(&self, t: &Target) {
        let got = t.download(self.task, self.id).unwrap();
        assert!(
            got == self.bytes,
            "attachment {} changed ({} bytes, expected {})",
            self.id,
            got.len(),
            self.bytes.len()
        );
    }
}

fn attach(sb: &Sandbox, t: &Target, title: &str) -> Attached {
    let (code, body) = t.create_task(title);
    assert_eq!(code, 201, "{body}");
    let task = vikunja_e2e::load::id_in(&body).unwrap();
    let mut bytes = vec![0u8; 300_000];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).unwrap();
    let file = sb.root.join("attachment.bin");
    std::fs::write(&file, &bytes).unwrap();
    let id = t.upload(task, &file).unwrap();
    Attached { task, id, bytes }
}

#[test]
fn update_and_rollback_against_a_real_postgresql_server() {
    use vikunja_e2e::postgres::PgCluster;
    let Some(pg) = PgCluster::for_test() else { return };
    let sb = Sandbox::new("bg-postgres").unwrap();
    let extra = pg.deployment_toml();
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, V1, &site().base(), &extra)).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "install failed");
    let t = target(&sb);
    let attachment = attach(&sb, &t, "pg-attachment");
    let psql = |sql: &str| pg.query(sql);
    let before = psql("SELECT string_agg(id, ',' ORDER BY id) FROM migration");

    // An update whose new release never gets healthy: its migrations are undone from the pg_dump.
    set_fault(&predownload(&sb, V2), "never-healthy");
    let load = Load::start(&t, 1, 1);
    load.warm_up(5);
    let o = installer(&sb, &["update", "--version", V2]);
    let r = load.stop();
    assert_eq!(o.status.code(), Some(11));
    assert_eq!(psql("SELECT string_agg(id, ',' ORDER BY id) FROM migration"), before, "schema not restored");
    assert!(r.reads_failed.is_empty(), "{:?}", r.reads_failed);
    assert_all_present(&t, &r.writes_acked);
    assert_serving(&sb, "blue", V1);
    let (_, description_col) = (
        0,
        psql("SELECT count(*) FROM information_schema.columns WHERE table_name='tasks' AND column_name='description'"),
    );
    assert_eq!(description_col, "0", "V2's column survived the undo");

    // The same update, healthy this time, under load; then back with a rollback.
    std::fs::remove_file(sb.instance_dir(INSTANCE).join(format!("releases/{V2}/STANDIN_FAULT"))).unwrap();
    let load = Load::start(&t, 1, 1);
    load.warm_up(5);
    let o = installer(&sb, &["update", "--version", V2]);
    let r = load.stop();
    assert!(o.status.success());
    assert!(r.reads_failed.is_empty(), "{:?}", r.reads_failed);
    assert_all_present(&t, &r.writes_acked);
    assert_serving(&sb, "green", V2);
    assert_ne!(psql("SELECT string_agg(id, ',' ORDER BY id) FROM migration"), before);
    let o = installer(&sb, &["rollback", "--yes"]);
    assert!(o.status.success());
    assert_serving(&sb, "blue", V1);
    assert_eq!(psql("SELECT string_agg(id, ',' ORDER BY id) FROM migration"), before);
    attachment.assert_intact(&t);
}

fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| if e.path().is_dir() { du(&e.path()) } else { e.metadata().unwrap().len() })
        .sum()
}

#[test]
fn a_full_disk_while_unpacking_changes_nothing_and_says_what_to_do() {
    let sb = installed("bg-diskfull");
    let releases = sb.instance_dir(INSTANCE).join("releases");
    // Room for the running release and the download, not for unpacking the new binary.
    let keep = sb.root.join("releases-before");
    std::fs::rename(&releases, &keep).unwrap();
    let zip = site().server.www.join(format!("vikunja/{V2}/vikunja-{V2}-linux-amd64-full.zip"));
    let size = du(&keep) + std::fs::metadata(&zip).unwrap().len() + 512 * 1024;
    let Some(_disk) = SmallDisk::mount(&releases, size) else {
        vikunja_e2e::skip("cannot mount a tmpfs (not root)");
        std::fs::rename(&keep, &releases).unwrap();
        return;
    };
    let o = Command::new("cp").arg("-a").arg(keep.join(V1)).arg(&releases).status().unwrap();
    assert!(o.success());
    let o = installer(&sb, &["update", "--version", V2]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device") && err.contains("df -h"), "{err}");
    let left: Vec<String> =
        std::fs::read_dir(&releases).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, [V1], "a partial release was left behind");
    assert_serving(&sb, "blue", V1);
    assert!(!state_file(&sb, "last-operation").contains("update"), "nothing should be recorded as changed");
}

#[test]
fn a_release_that_never_becomes_healthy_is_rolled_back_with_exit_11() {
    let sb = installed("bg-unhealthy");
    let t = target(&sb);
    // Below the floor: refused with the reason before anything changes, in update and install.
    let last = state_file(&sb, "last-operation");
    let o = installer(&sb, &["update", "--version", "v2.2.0"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains("v2.3.0 or newer") && err.contains("no service.secret") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(state_file(&sb, "last-operation"), last);
    let cfg = sb.root.join("old.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, "v2.2.0", &site().base(), "")).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("every switch would log everyone out"), "{o:?}");
    assert_serving(&sb, "blue", V1);
    set_fault(&predownload(&sb, V2), "never-healthy");
    let before = migrations(&sb);
    let load = Load::start(&t, 1, 1);
    load.warm_up(5);
    let o = installer(&sb, &["update", "--version", V2]);
    let r = load.stop();
    assert_eq!(o.status.code(), Some(11), "exit code");
    assert!(String::from_utf8_lossy(&o.stderr).contains("did not become healthy"));
    assert!(r.reads_failed.is_empty(), "reads failed: {:?}", r.reads_failed);
    assert_all_present(&t, &r.writes_acked);
    assert_serving(&sb, "blue", V1);
    assert_eq!(migrations(&sb), before, "the failed release's migrations were not undone");
    assert!(state_file(&sb, "last-operation").contains("result: failed, rolled back"));
}

#[test]
fn a_failing_migration_is_rolled_back_and_a_slow_start_in_time_succeeds() {
    let sb = installed("bg-migration");
    let release = predownload(&sb, V2);
    set_fault(&release, "fail-migration");
    let before = migrations(&sb);
    let o = installer(&sb, &["update", "--version", V2]);
    assert_eq!(o.status.code(), Some(11));
    assert_serving(&sb, "blue", V1);
    assert_eq!(migrations(&sb), before);

    // Slow but within the health timeout (30 s in the sandbox config): the update goes through.
    set_fault(&release, "slow-start=2");
    let o = installer(&sb, &["update", "--version", V2]);
    assert!(o.status.success());
    assert_serving(&sb, "green", V2);
}

#[test]
fn a_second_operation_exits_5_naming_the_holder() {
    let sb = installed("bg-concurrent");
    set_fault(&predownload(&sb, V2), "slow-start=3");
    let exe = env!("CARGO_BIN_EXE_vikunja-installer");
    let first = Command::new(exe)
        .args(["update", "--version", V2, "--root"])
        .arg(&sb.root)
        .env("SSL_CERT_FILE", &site().ca.ca_pem)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lock = sb.instance_dir(INSTANCE).join("state/locks/operation.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(&lock).unwrap_or_default().contains("Operation: update") {
        assert!(std::time::Instant::now() < deadline, "first update never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let o = installer(&sb, &["update", "--version", V2]);
    assert_eq!(o.status.code(), Some(5));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("PID: {}", first.id())) && err.contains("Operation: update"), "{err}");
    let o = installer(&sb, &["rollback", "--yes"]);
    assert_eq!(o.status.code(), Some(5));
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success());
    assert_serving(&sb, "green", V2);
}

#[test]
fn a_failing_nginx_check_stops_the_update_and_blue_keeps_serving() {
    let sb = installed("bg-nginx");
    let t = target(&sb);
    // A broken nginx.conf on disk (an update renders the site and upstream files again, not this
    // one): the running nginx still serves the configuration it loaded, but every `nginx -t` now
    // fails: the update checks it while green starts, and stops before the switch.
    let site_file = sb.instance_dir(INSTANCE).join("config/nginx/nginx.conf");
    let good = std::fs::read_to_string(&site_file).unwrap();
    std::fs::write(&site_file, format!("{good}\nthis_is_not_a_directive;\n")).unwrap();
    let o = installer(&sb, &["update", "--version", V2]);
    assert_eq!(o.status.code(), Some(11));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nginx -t failed"));
    let (code, body) = t.request("GET", "/api/v1/info", None);
    assert!(code == 200 && body.contains(V1), "{code} {body}");
    std::fs::write(&site_file, good).unwrap();
    assert_serving(&sb, "blue", V1);
}

/// SIGKILL right after each journal step: the next command (`status`) finishes the update once
/// traffic was switched, and undoes it before that; no acknowledged write is lost either way.
#[test]
fn sigkill_at_every_step_is_finished_or_undone_by_the_next_command() {
    for (step, colour, version) in [
        ("frozen", "blue", V1),
        ("freeze-flag-written", "blue", V1),
        ("backed-up", "blue", V1),
        ("starting", "blue", V1),
        ("switched", "green", V2),
    ] {
        let sb = installed(&format!("bg-kill-{step}"));
        let t = target(&sb);
        let before = migrations(&sb);
        let (code, _) = t.create_task("before-the-crash");
        assert_eq!(code, 201);
        let o = installer_env(&sb, &["update", "--version", V2], &[("VIKUNJA_INSTALLER_TEST_KILL_AT", step)]);
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(9), "{step}: not killed");
        assert!(sb.instance_dir(INSTANCE).join("state/journal").exists(), "{step}: no journal");
        let flag = sb.instance_dir(INSTANCE).join("state/writes-frozen");
        assert_eq!(flag.exists(), step != "frozen", "{step}: writes frozen or not");
        let o = installer(&sb, &["status", "--json"]);
        let out = String::from_utf8_lossy(&o.stderr);
        let said = if colour == "green" { "finishing it" } else { "undoing it" };
        assert!(out.contains(said), "{step}: recovery did not say {said:?}");
        assert_serving(&sb, colour, version);
        if colour == "blue" {
            assert_eq!(migrations(&sb), before, "{step}: schema not restored");
        }
        assert_all_present(&t, &["before-the-crash".to_string()]);
        drop(sb);
    }
}

/// Killed after the upstream file named green but before nginx reloaded: the file already says
/// green, yet nginx still sends traffic to blue. The recovery must reload before it stops blue.
#[test]
fn a_kill_between_writing_the_upstream_and_reloading_is_finished_with_a_reload() {
    let sb = installed("bg-kill-reload");
    let t = target(&sb);
    let o = installer_env(
        &sb,
        &["update", "--version", V2],
        &[("VIKUNJA_INSTALLER_TEST_KILL_AT", "upstream-written-green")],
    );
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(9), "not killed");
    let up = std::fs::read_to_string(sb.instance_dir(INSTANCE).join("config/nginx/upstream.conf")).unwrap();
    assert!(up.contains(&format!("127.0.0.1:{};", sb.ports.backend_green)), "the file already names green: {up}");
    let o = installer(&sb, &["status", "--json"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("finishing it"));
    assert_serving(&sb, "green", V2);
    let (code, body) = t.request("GET", "/api/v1/tasks/all", None);
    assert_eq!(code, 200, "{body}");
}

/// A rollback killed once traffic is on the old colour but before the old schema is back: the
/// next command restores it and only then lets writes in.
#[test]
fn a_rollback_killed_after_the_switch_is_finished_with_the_schema_restored() {
    let sb = installed("bg-kill-rollback");
    let before = migrations(&sb);
    assert!(installer(&sb, &["update", "--version", V2]).status.success());
    assert_ne!(migrations(&sb), before);
    let o = installer_env(&sb, &["rollback", "--yes"], &[("VIKUNJA_INSTALLER_TEST_KILL_AT", "switched")]);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(9), "not killed");
    let journal = state_file(&sb, "journal");
    assert!(journal.contains("pending_restore: /"), "{journal}");
    let o = installer(&sb, &["health"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("finishing it"));
    assert_serving(&sb, "blue", V1);
    assert_eq!(migrations(&sb), before, "schema not restored by the recovery");
}

/// The write freeze without a reload: a write still uploading when the update freezes writes is
/// let through to the end, acknowledged, and in the pre-update dump (so no write reached the
/// database after it); a write sent while frozen is answered 503 and never stored.
#[test]
fn a_write_in_flight_when_writes_freeze_is_in_the_dump_and_one_sent_while_frozen_gets_503() {
    let sb = installed("bg-inflight");
    let t = target(&sb);
    let title = "slow-upload-in-flight";
    // About 24 KiB at 8 KiB/s: three seconds on the wire, streamed to the backend as it arrives.
    let body = sb.root.join("slow-body.json");
    std::fs::write(&body, format!("{{\"title\":\"{title}\"{}}}", " ".repeat(24 * 1024))).unwrap();
    let upload = Command::new("curl")
        .args(["-sS", "--http1.1", "--max-time", "30", "--limit-rate", "8k", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("--cacert")
        .arg(&t.cacert)
        .args(["--resolve", &t.resolve, "-X", "PUT", "-H", "Content-Type: application/json", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(format!("{}/api/v1/projects/1/tasks", t.base))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let update = {
        let root = sb.root.clone();
        let ca = site().ca.ca_pem.clone();
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_vikunja-installer"))
                .args(["update", "--version", V2, "--root"])
                .arg(root)
                .env("SSL_CERT_FILE", ca)
                .env("NO_COLOR", "1")
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        })
    };
    let flag = sb.instance_dir(INSTANCE).join("state/writes-frozen");
    let (mut frozen, mut acked) = (0, Vec::new());
    for i in 0.. {
        if update.is_finished() {
            break;
        }
        let was_frozen = flag.exists();
        let probe = format!("probe-{i}");
        let (code, answer) = t.create_task(&probe);
        match code {
            503 => {
                assert!(answer.contains("being updated"), "{answer}");
                frozen += 1;
            }
            200..=299 => {
                assert!(!(was_frozen && flag.exists()), "a write was stored while frozen: {answer}");
                acked.push(probe);
            }
            _ => panic!("a write during the update was answered {code}: {answer}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let o = update.join().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("update:\n{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "update failed");
    let up = upload.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&up.stdout), "201", "the slow upload was not acknowledged");
    assert!(frozen > 0, "no write met the freeze, which lasts as long as the upload");
    let dump = out
        .lines()
        .find_map(|l| l.split_once("database backed up to ").map(|(_, p)| PathBuf::from(p.trim())))
        .expect("no backup line");
    let c = rusqlite::Connection::open(&dump).unwrap();
    let in_dump: Vec<String> =
        c.prepare("SELECT title FROM tasks").unwrap().query_map([], |r| r.get(0)).unwrap().flatten().collect();
    assert!(in_dump.iter().any(|x| x == title), "the in-flight write is not in the dump {}", dump.display());
    assert!(!in_dump.iter().any(|x| x.starts_with("probe-") && !acked.contains(x)), "a frozen write was stored");
    acked.push(title.to_string());
    assert_all_present(&t, &acked);
    assert_serving(&sb, "green", V2);
}
