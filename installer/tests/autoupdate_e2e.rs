//! `update --auto` for real in a `--root` sandbox under `--init process`: real nginx with TLS, the
//! Vikunja stand-in served as release zips over HTTPS with the download site's JSON listing, and
//! the same blue-green update as by hand. The policy's rules themselves are unit-tested in
//! `instance::update_policy`; here: the window keeps it from doing anything, the channel keeps it
//! from crossing into the next minor, inside the window it backs up and updates, and a release
//! that never becomes healthy is undone, recorded as skipped and not tried again.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use vikunja_e2e::sandbox::{version_on, DownloadSite, Sandbox};

const V1: &str = "v2.4.0";
const V2: &str = "v2.5.0";
const INSTANCE: &str = "au";

fn site() -> &'static DownloadSite {
    static S: OnceLock<DownloadSite> = OnceLock::new();
    S.get_or_init(|| {
        let dir = vikunja_e2e::scratch_dir("autoupdate-site").unwrap();
        let s = DownloadSite::start(&dir, &[V1, V2]).unwrap();
        // A pre-release newer than both is listed too: it is never chosen (it has no zip, so an
        // update to it would fail loudly).
        s.server.write_vikunja_listing(&[V1, V2, "v2.6.0-rc1"]).unwrap();
        s
    })
}

fn installer_env(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Output {
    sb.run_installer(env!("CARGO_BIN_EXE_vikunja-installer"), &site().ca.ca_pem, args, env.iter().copied())
}

fn installer(sb: &Sandbox, args: &[&str]) -> Output {
    installer_env(sb, args, &[])
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn installed(name: &str, updates: &str) -> Sandbox {
    let sb = Sandbox::new(name).unwrap();
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, V1, &site().base(), &format!("\n[updates]\n{updates}\n"))).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "install failed");
    sb
}

/// Replaces the `[updates]` table of the installed deployment.toml, as a person editing it would.
fn set_updates(sb: &Sandbox, updates: &str) {
    let path = sb.instance_dir(INSTANCE).join("config/deployment.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // `[updates]` is the last table deployment.toml is written with (its pins and skips follow it).
    let start = text.find("\n[updates]\n").expect("an [updates] table") + 1;
    let new = format!("{}[updates]\n{updates}\n", &text[..start]);
    std::fs::write(&path, new).unwrap();
}

fn status(sb: &Sandbox) -> serde_json::Value {
    let o = installer(sb, &["status", "--json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("status --json: {e}"))
}

fn state_file(sb: &Sandbox, name: &str) -> String {
    std::fs::read_to_string(sb.instance_dir(INSTANCE).join("state").join(name)).unwrap_or_default()
}

fn full_backups(sb: &Sandbox) -> usize {
    std::fs::read_dir(sb.instance_dir(INSTANCE).join("backups"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("vikunja-backup-"))
        .count()
}

/// A window three days from today (local time, as the installer reads it): surely closed now.
fn closed_window() -> String {
    let o = Command::new("date").arg("+%u").output().unwrap();
    let today: usize = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap(); // 1 = Monday
    let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][(today - 1 + 3) % 7];
    format!("{day} 00:00-24:00")
}

fn serving(sb: &Sandbox, colour: &str, version: &str) {
    let (port, other) = match colour {
        "blue" => (sb.ports.backend_blue, sb.ports.backend_green),
        _ => (sb.ports.backend_green, sb.ports.backend_blue),
    };
    assert_eq!(version_on(port).as_deref(), Some(version), "{colour} does not serve {version}");
    assert_eq!(version_on(other), None, "the other colour still answers");
    assert!(state_file(sb, "deployed-version").contains(&format!("version: {version}")));
}

#[test]
fn outside_the_window_nothing_happens_the_channel_is_not_crossed_and_inside_it_backs_up_and_updates() {
    let window = closed_window();
    let sb = installed("au-window", &format!("channel = \"minor\"\nwindow = [\"{window}\"]"));
    let backups = full_backups(&sb);
    let o = installer(&sb, &["update", "--auto"]);
    assert!(o.status.success(), "outside the window is no error");
    let out = stdout(&o);
    assert!(out.contains("outside every maintenance window") && out.contains("nothing was done"), "{out}");
    assert!(out.contains(&format!("The next opens {}", &window[..3])), "says when: {out}");
    serving(&sb, "blue", V1);
    assert_eq!(full_backups(&sb), backups, "a backup outside the window");
    let a = &status(&sb)["auto_update"];
    assert!(a["result"].as_str().unwrap().contains("outside"), "{a}");
    assert!(a["next_window"].as_str().unwrap().starts_with(&window[..3]), "{a}");
    assert!(a["last_check"].is_string() && a["last_update"].is_null(), "{a}");

    // A bad window is refused naming the field, value and format, before anything is checked.
    set_updates(&sb, "window = [\"Sunday 3-5\"]");
    let o = installer(&sb, &["update", "--auto"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("updates.window") && err.contains("Sunday 3-5") && err.contains("HH:MM-HH:MM"), "{err}");

    // Inside the window (none set: any time) on channel patch: v2.5.0 is the next minor, not allowed.
    set_updates(&sb, "channel = \"patch\"");
    let o = installer(&sb, &["update", "--auto"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(out.contains("passed over v2.5.0 (outside channel patch") && out.contains("up to date"), "{out}");
    assert!(out.contains("passed over v2.6.0-rc1 (a pre-release)"), "{out}");
    serving(&sb, "blue", V1);
    assert_eq!(full_backups(&sb), backups);

    // A pin below it holds it back the same way, with its reason.
    set_updates(&sb, "channel = \"any\"\n[[updates.pin]]\nversion = \"v2.4\"\nreason = \"waiting for the plugin\"");
    let o = installer(&sb, &["update", "--auto"]);
    assert!(stdout(&o).contains("above pin v2.4: waiting for the plugin"), "{}", stdout(&o));
    serving(&sb, "blue", V1);

    // Channel minor: a backup first, then the blue-green update.
    set_updates(&sb, "channel = \"minor\"");
    let o = installer(&sb, &["update", "--auto"]);
    assert!(o.status.success(), "the automatic update failed");
    assert!(stdout(&o).contains(&format!("updated {V1} -> {V2}")), "{}", stdout(&o));
    serving(&sb, "green", V2);
    assert_eq!(full_backups(&sb), backups + 1, "no backup before the update");
    let a = &status(&sb)["auto_update"];
    assert_eq!(a["result"], format!("updated {V1} -> {V2}"), "{a}");
    assert!(a["last_update"].is_string() && a["skipped"].as_array().unwrap().is_empty(), "{a}");
    assert_eq!(a["timer"], "off");
    // Run again: nothing newer is allowed; the last update stays recorded.
    let o = installer(&sb, &["update", "--auto"]);
    assert!(o.status.success() && stdout(&o).contains("up to date"), "{}", stdout(&o));
    assert_eq!(status(&sb)["auto_update"]["last_update"], a["last_update"]);
    // A timer needs systemd: refused under --init process, nothing written.
    let o = installer(&sb, &["update", "--auto", "--schedule", "on"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(!sb.root.join("etc/systemd/system/vikunja-au-autoupdate.timer").exists());

    // A person rolls the automatic update back: the next window must not install it again.
    let o = installer(&sb, &["rollback", "--yes"]);
    assert!(o.status.success(), "rollback failed");
    assert!(stdout(&o).contains(&format!("will not install {V2} again")), "{}", stdout(&o));
    serving(&sb, "blue", V1);
    let skip = state_file(&sb, "auto-update-skip");
    assert!(skip.starts_with(&format!("{V2}: ")) && skip.contains("rolled back by hand"), "{skip}");
    let last = state_file(&sb, "last-operation");
    let o = installer(&sb, &["update", "--auto"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!(state_file(&sb, "last-operation"), last, "the rolled-back release was installed again");
    serving(&sb, "blue", V1);
}

/// The release zip of `version` present in releases/ without updating (an update killed right
/// after it recorded its start, then recovered), so a fault can be put into it.
fn predownload(sb: &Sandbox, version: &str) -> PathBuf {
    let o = installer_env(sb, &["update", "--version", version], &[("VIKUNJA_INSTALLER_TEST_KILL_AT", "started")]);
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(9), "not killed");
    installer(sb, &["status", "--json"]);
    sb.instance_dir(INSTANCE).join("releases").join(version)
}

fn set_fault(release: &Path, fault: &str) {
    std::fs::write(release.join("STANDIN_FAULT"), fault).unwrap();
}

#[test]
fn a_release_that_never_becomes_healthy_is_undone_skipped_and_not_retried_until_cleared() {
    let sb = installed("au-unhealthy", "channel = \"minor\"");
    set_fault(&predownload(&sb, V2), "never-healthy");
    let o = installer(&sb, &["update", "--auto"]);
    assert_eq!(o.status.code(), Some(11), "the undone update's exit code");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("failed and was undone") && err.contains("--clear-skip"), "{err}");
    serving(&sb, "blue", V1);
    let skip = state_file(&sb, "auto-update-skip");
    assert!(skip.starts_with(&format!("{V2}: ")) && skip.contains("exit 11"), "{skip}");
    let a = &status(&sb)["auto_update"];
    assert_eq!(a["skipped"][0]["version"], V2, "{a}");
    assert!(a["result"].as_str().unwrap().contains("failed and undone"), "{a}");
    let screen = stdout(&installer(&sb, &["status"]));
    assert!(screen.contains(&format!("Skipped:        {V2}")), "{screen}");

    // The next run does not try it again: no update operation, no backup.
    let last = state_file(&sb, "last-operation");
    let backups = full_backups(&sb);
    let o = installer(&sb, &["update", "--auto"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains(&format!("passed over {V2} (its automatic update failed")), "{}", stdout(&o));
    assert_eq!(state_file(&sb, "last-operation"), last, "it was tried again");
    assert_eq!(full_backups(&sb), backups);

    // A person clears it: the next run tries again (and, fixed, goes through).
    let o = installer(&sb, &["update", "--auto", "--clear-skip"]);
    assert!(o.status.success() && stdout(&o).contains(&format!("{V2} is allowed again")), "{}", stdout(&o));
    assert!(!sb.instance_dir(INSTANCE).join("state/auto-update-skip").exists());
    std::fs::remove_file(sb.instance_dir(INSTANCE).join("releases").join(V2).join("STANDIN_FAULT")).unwrap();
    let o = installer(&sb, &["update", "--auto"]);
    assert!(o.status.success(), "after clearing the skip and fixing the release");
    serving(&sb, "green", V2);

    // A manual update is a person deciding too: it clears the skips.
    let skip = sb.instance_dir(INSTANCE).join("state/auto-update-skip");
    std::fs::write(&skip, "v2.6.0: 2026-11-27T00:00:00Z exit 11: did not become healthy\n").unwrap();
    assert_eq!(status(&sb)["auto_update"]["skipped"][0]["version"], "v2.6.0");
    let o = installer(&sb, &["update", "--version", V1]);
    assert!(o.status.success() && stdout(&o).contains("v2.6.0 is allowed again"), "{}", stdout(&o));
    assert!(!skip.exists());
    serving(&sb, "blue", V1);
}
