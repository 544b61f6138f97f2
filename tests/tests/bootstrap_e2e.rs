//! The whole chain with real parts: releases built by `cargo xtask dist` (static binaries, signed
//! with a throw-away key), served by a real nginx over HTTPS with a test CA (including GitHub's
//! `latest` 302), fetched by the real static bootstrap or by `curl … | sh`, handed off to the real
//! installer. Attacks must fail with exit 3, run nothing and leave no temp directory behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use manifests::manifest::names;
use manifests::{ReleaseManifest, TrustedComment};
use release::SigningKey;
use vikunja_e2e::ca::TestCa;
use vikunja_e2e::nginx::ReleaseServer;

const OWNER: &str = "vikunja-pve";
const REPO: &str = "vikunja-pve";
const V1: &str = "0.1.0";
const V2: &str = "0.2.0";
const TARGET: &str = names::TARGET;

struct World {
    ca: TestCa,
    server: ReleaseServer,
    key: SigningKey,
    v1: PathBuf,
    v2: PathBuf,
}

fn dist(root: &Path, out: &Path, key: &Path, version: &str, serial: u64) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out_s = out.to_str().unwrap();
    let serial_s = serial.to_string();
    let o = Command::new(cargo)
        .current_dir(root)
        .args(["xtask", "dist", "--out", out_s, "--key", key.to_str().unwrap(), "--version", version])
        .args(["--serial", &serial_s])
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo xtask dist");
    assert!(o.status.success(), "cargo xtask dist failed:\n{}", String::from_utf8_lossy(&o.stderr));
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let root = vikunja_e2e::workspace_root();
        let base = root.join("target/e2e-dist");
        let key = SigningKey::throwaway_in(&base.join("keys")).unwrap();
        let key_path = base.join("keys").join(release::signing::SECRET_NAME);
        let (v1, v2) = (base.join(V1), base.join(V2));
        dist(&root, &v1, &key_path, V1, 100);
        dist(&root, &v2, &key_path, V2, 200);
        let scratch = vikunja_e2e::scratch_dir("bootstrap-e2e").unwrap();
        let ca = TestCa::create(&scratch.join("ca")).unwrap();
        let server = ReleaseServer::start(&scratch.join("nginx"), &ca).unwrap();
        server.publish(OWNER, REPO, &format!("v{V1}"), &v1).unwrap();
        server.publish(OWNER, REPO, &format!("v{V2}"), &v2).unwrap();
        server.set_latest(&format!("v{V2}")).unwrap();
        World { ca, server, key, v1, v2 }
    })
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    tmp: PathBuf,
}

impl Run {
    fn tmp_entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.tmp).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }

    /// Exit 3, the installer never ran, and nothing was left in TMPDIR.
    fn assert_refused(&self, needle: &str) {
        self.assert_refused_any(&[needle]);
    }

    fn assert_refused_any(&self, needles: &[&str]) {
        assert_eq!(self.code, 3, "expected exit 3\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert!(needles.iter().any(|n| self.stderr.contains(n)), "stderr lacks {needles:?}: {}", self.stderr);
        assert!(self.stderr.contains("nothing was run"), "{}", self.stderr);
        assert!(
            !self.stdout.contains("\"version\"") && !self.stdout.contains("EVIL"),
            "installer ran: {}",
            self.stdout
        );
        assert!(self.tmp_entries().is_empty(), "temp dir left behind: {:?}", self.tmp_entries());
    }
}

/// A fresh TMPDIR and state directory per run, and a clean environment: the developer's proxies or
/// pins must not leak into a test.
struct Env {
    tmp: PathBuf,
    state: PathBuf,
    vars: Vec<(String, String)>,
}

impl Env {
    fn new(name: &str) -> Env {
        let w = world();
        let dir = vikunja_e2e::scratch_dir(name).unwrap();
        let (tmp, state) = (dir.join("tmp"), dir.join("state"));
        std::fs::create_dir_all(&tmp).unwrap();
        let vars = vec![
            ("PATH".into(), std::env::var("PATH").unwrap()),
            ("HOME".into(), dir.to_string_lossy().into_owned()),
            ("TMPDIR".into(), tmp.to_string_lossy().into_owned()),
            ("VIKUNJA_STATE_DIR".into(), state.to_string_lossy().into_owned()),
            ("SSL_CERT_FILE".into(), w.ca.ca_pem.to_string_lossy().into_owned()),
            ("CURL_CA_BUNDLE".into(), w.ca.ca_pem.to_string_lossy().into_owned()),
            ("VIKUNJA_INSTALLER_BASE_URL".into(), w.server.base_url()),
        ];
        Env { tmp, state, vars }
    }

    fn set(mut self, k: &str, v: &str) -> Env {
        self.vars.retain(|(key, _)| key != k);
        self.vars.push((k.into(), v.into()));
        self
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear().envs(self.vars.iter().map(|(k, v)| (k, v))).stdin(Stdio::null());
        c
    }

    fn run(&self, mut c: Command) -> Run {
        let o = c.output().unwrap();
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            tmp: self.tmp.clone(),
        }
    }

    fn bootstrap(&self, args: &[&str]) -> Run {
        let mut c = self.command(world().v2.join(names::bootstrap(TARGET)));
        c.args(args);
        self.run(c)
    }
}

fn about_json(r: &Run) -> &str {
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    r.stdout.lines().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no JSON in {}", r.stdout))
}

fn field<'a>(json: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":\"");
    let start = json.find(&pat).unwrap_or_else(|| panic!("{key} missing in {json}")) + pat.len();
    &json[start..start + json[start..].find('"').unwrap()]
}

#[test]
fn one_liner_curl_pipe_sh_installs_the_latest_release() {
    let w = world();
    let env = Env::new("one-liner");
    let url = format!("{}/{OWNER}/{REPO}/releases/latest/download/install.sh", w.server.base_url());
    let mut c = env.command("bash");
    c.args(["-o", "pipefail", "-c", &format!("curl -fsSL '{url}' | sh -s -- -- about --json")]);
    let r = env.run(c);
    let json = about_json(&r);
    assert_eq!(field(json, "version"), V2, "the installer binary reports its compiled-in version");
    assert_eq!(field(json, "release_version"), V2);
    assert_eq!(field(json, "release_serial"), "200");
    assert_eq!(field(json, "release_key_id"), manifests::Keyring::from_list(&w.key.public_b64()).unwrap().ids()[0]);
    let bundle_dir = PathBuf::from(field(json, "bundle_dir"));
    assert!(bundle_dir.starts_with(&env.tmp), "{bundle_dir:?} not under TMPDIR");
    assert!(bundle_dir.file_name().unwrap().to_string_lossy().starts_with("vikunja-installer-"));
    assert!(!bundle_dir.exists(), "bundle directory not removed");
    assert!(r.tmp_entries().is_empty(), "left in TMPDIR: {:?}", r.tmp_entries());
    let accepted = std::fs::read_to_string(env.state.join("trusted-serials")).unwrap();
    assert!(accepted.contains("stable = 200"), "{accepted}");
}

#[test]
fn bootstrap_follows_the_latest_redirect_and_honours_pins() {
    let env = Env::new("latest");
    let r = env.bootstrap(&["--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_version"), V2);
    let log = world().server.access_log().unwrap();
    assert!(log.contains("/releases/latest/download/release.toml HTTP/1.1\" 302"), "no 302 in access log");

    let env = Env::new("pin-flag");
    let r = env.bootstrap(&["--version", V1, "--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "version"), V1);

    let env = Env::new("pin-env").set("VIKUNJA_INSTALLER_VERSION", &format!("v{V1}"));
    let r = env.bootstrap(&["--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_version"), V1);
}

#[test]
fn mirror_base_url_by_host_name_serves_the_same_signed_files() {
    let w = world();
    let mirror = w.server.www.join("mirror").join(OWNER).join(REPO).join("releases/download").join(format!("v{V1}"));
    std::fs::create_dir_all(&mirror).unwrap();
    for e in std::fs::read_dir(&w.v1).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, mirror.join(p.file_name().unwrap())).unwrap();
        }
    }
    // localhost, not an IP: name resolution must work in the static binary.
    let base = format!("https://localhost:{}/mirror", w.server.port);
    let env = Env::new("mirror").set("VIKUNJA_INSTALLER_BASE_URL", &base);
    let r = env.bootstrap(&["--version", V1, "--", "about", "--json"]);
    assert!(field(about_json(&r), "release_source").starts_with(&base));
    let env = Env::new("mirror-flag");
    let r = env.bootstrap(&["--base-url", &base, "--version", V1, "--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_version"), V1);
}

#[test]
fn air_gapped_bundle_needs_no_network() {
    let w = world();
    let env = Env::new("airgap").set("VIKUNJA_INSTALLER_BASE_URL", "https://127.0.0.1:1");
    let media = env.tmp.parent().unwrap().join("usb");
    std::fs::create_dir_all(&media).unwrap();
    let bundle = names::bundle(V1, TARGET);
    for f in [bundle.clone(), names::signature(&bundle)] {
        std::fs::copy(w.v1.join(&f), media.join(&f)).unwrap();
    }
    let r = env.bootstrap(&["--bundle", media.join(&bundle).to_str().unwrap(), "--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_version"), V1);
    assert!(r.tmp_entries().is_empty());

    // Without its signature the bundle is never run.
    std::fs::remove_file(media.join(names::signature(&bundle))).unwrap();
    let r = env.bootstrap(&["--bundle", media.join(&bundle).to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("never run"), "{}", r.stderr);
}

#[test]
fn air_gapped_expiry_is_waived_only_with_the_flag() {
    let w = world();
    let env = Env::new("airgap-expired");
    let media = env.tmp.parent().unwrap().join("usb");
    std::fs::create_dir_all(&media).unwrap();
    let bundle = names::bundle(V1, TARGET);
    std::fs::copy(w.v1.join(&bundle), media.join(&bundle)).unwrap();
    // The genuine bundle, signed by the genuine key, but the release expired yesterday.
    let now = manifests::time::now_unix();
    let tc = TrustedComment::render(&[
        ("timestamp", (now - 2 * 86400).to_string()),
        ("file", bundle.clone()),
        ("channel", "stable".into()),
        ("version", V1.into()),
        ("serial", "100".into()),
        ("expires", (now - 86400).to_string()),
    ]);
    let sig = w.key.sign(std::fs::File::open(media.join(&bundle)).unwrap(), &tc).unwrap();
    std::fs::write(media.join(names::signature(&bundle)), sig).unwrap();
    let path = media.join(&bundle);
    env.bootstrap(&["--bundle", path.to_str().unwrap(), "--", "about"]).assert_refused("expired");
    let r = env.bootstrap(&["--bundle", path.to_str().unwrap(), "--allow-expired", "--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_version"), V1);
    assert!(r.stderr.contains("WARNING") && r.stderr.contains("--allow-expired"), "{}", r.stderr);
    let r = env.bootstrap(&["--allow-expired"]);
    assert_eq!(r.code, 2, "online use may not waive expiry: {}", r.stderr);
}

#[test]
fn hand_off_passes_arguments_and_exit_codes_and_cleans_up() {
    let env = Env::new("handoff");
    let r = env.bootstrap(&["--", "--version"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let key = manifests::Keyring::from_list(&world().key.public_b64()).unwrap().ids()[0].clone();
    assert_eq!(r.stdout.trim(), format!("vikunja-installer {V2} (stable, signed by key {key})"));
    let r = env.bootstrap(&["--", "no-such-command"]);
    assert_eq!(r.code, 2, "the installer's usage error must become the bootstrap's exit code: {}", r.stderr);
    assert!(r.stderr.contains("no-such-command"));
    assert!(r.tmp_entries().is_empty());

    let r = env.bootstrap(&["--keep-temp", "--", "about", "--json"]);
    let kept = PathBuf::from(field(about_json(&r), "bundle_dir"));
    assert!(kept.join("bin/vikunja-installer").is_file(), "--keep-temp must keep the bundle");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o700);
}

#[test]
fn https_proxy_from_the_environment_is_used_and_no_proxy_honoured() {
    let proxy = vikunja_e2e::proxy::ConnectProxy::start().unwrap();
    let env = Env::new("proxy").set("HTTPS_PROXY", &proxy.url());
    let r = env.bootstrap(&["--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_version"), V2);
    let port = world().server.port;
    assert!(proxy.connects().iter().any(|c| c == &format!("127.0.0.1:{port}")), "{:?}", proxy.connects());
    let before = proxy.connects().len();
    let env = Env::new("no-proxy").set("HTTPS_PROXY", &proxy.url()).set("NO_PROXY", "127.0.0.1");
    let r = env.bootstrap(&["--", "about", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(proxy.connects().len(), before, "NO_PROXY ignored");
}

#[test]
fn transient_network_failures_are_retried_with_backoff() {
    let proxy = vikunja_e2e::proxy::ConnectProxy::start().unwrap();
    proxy.drop_next(2);
    let env = Env::new("retry").set("HTTPS_PROXY", &proxy.url());
    let started = std::time::Instant::now();
    let r = env.bootstrap(&["--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_version"), V2);
    assert!(r.stderr.matches("retrying in").count() >= 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("retrying in 500 ms") && r.stderr.contains("retrying in 1000 ms"),
        "backoff doubles: {}",
        r.stderr
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(1500));
    // A permanent error (404) is not retried.
    let env = Env::new("no-retry");
    let r = env.bootstrap(&["--version", "9.9.9", "--", "about"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("404") && !r.stderr.contains("retrying"), "{}", r.stderr);
}

#[test]
fn a_progress_bar_is_drawn_on_a_terminal_only() {
    let w = world();
    let env = Env::new("progress");
    let boot = w.v2.join(names::bootstrap(TARGET));
    // `script` gives the bootstrap a pseudo-terminal for stderr.
    let mut c = env.command("script");
    c.args(["-q", "-e", "-c", &format!("{} -- --version", boot.display()), "/dev/null"]);
    let r = env.run(c);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("MiB") && r.stdout.contains('%'), "no progress on a terminal: {}", r.stdout);
    let r = env.bootstrap(&["--", "--version"]);
    assert!(!r.stderr.contains("MiB"), "progress drawn without a terminal: {}", r.stderr);
}

// ---- attacks: every one must end in exit 3 with nothing run ----

/// Publishes a private copy of the latest release under its own owner, for one attack to corrupt.
fn attack_copy(name: &str) -> (Env, String) {
    let w = world();
    let owner = format!("atk-{name}");
    w.server.publish(&owner, REPO, &format!("v{V2}"), &w.v2).unwrap();
    (Env::new(&format!("atk-{name}")).set("VIKUNJA_GITHUB_OWNER", &owner), owner)
}

fn served(owner: &str, asset: &str) -> PathBuf {
    world().server.asset_path(owner, REPO, &format!("v{V2}"), asset)
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

#[test]
fn a_flipped_byte_in_any_signed_asset_is_refused() {
    let bundle = names::bundle(V2, TARGET);
    // A flipped bit in a signature file may break the signature, its encoding, its key id or its
    // trusted comment: each is a refusal.
    let sig_broken: &[&str] = &["tampered", "not a minisign signature", "not trusted", "trusted comment"];
    let cases = [
        ("manifest", "release.toml".to_string(), 30),
        ("manifest-sig", "release.toml.minisig".to_string(), 60),
        ("manifest-comment", "release.toml.minisig".to_string(), 200),
        ("bundle-start", bundle.clone(), 0),
        ("bundle-middle", bundle.clone(), 5000),
        ("bundle-end", bundle.clone(), usize::MAX),
        ("bundle-sig", names::signature(&bundle), 60),
    ];
    for (name, asset, at) in cases {
        let (env, owner) = attack_copy(name);
        flip_byte(&served(&owner, &asset), at);
        env.bootstrap(&["--", "about", "--json"]).assert_refused_any(sig_broken);
    }
}

#[test]
fn a_flipped_byte_in_the_bootstrap_is_caught_by_install_sh() {
    let (env, owner) = attack_copy("bootstrap");
    flip_byte(&served(&owner, &names::bootstrap(TARGET)), 100_000);
    let url = format!("{}/{owner}/{REPO}/releases/latest/download/install.sh", world().server.base_url());
    let env = env.set("VIKUNJA_GITHUB_OWNER", &owner);
    let mut c = env.command("bash");
    c.args(["-o", "pipefail", "-c", &format!("curl -fsSL '{url}' | sh -s -- -- about --json")]);
    let r = env.run(c);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("checksum mismatch"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.tmp_entries().is_empty(), "{:?}", r.tmp_entries());
}

#[test]
fn a_manifest_signed_by_another_key_is_refused() {
    let (env, owner) = attack_copy("other-key");
    let other = SigningKey::throwaway_in(&env.tmp.parent().unwrap().join("evil-keys")).unwrap();
    let text = std::fs::read_to_string(served(&owner, "release.toml")).unwrap();
    let m = ReleaseManifest::parse(&text).unwrap();
    release::write_manifest(&m, &other, served(&owner, "release.toml").parent().unwrap(), None).unwrap();
    env.bootstrap(&["--", "about"]).assert_refused("not trusted");
}

#[test]
fn a_replayed_older_release_is_refused_after_a_newer_one_was_accepted() {
    let env = Env::new("replay");
    let r = env.bootstrap(&["--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_serial"), "200");
    let r = env.bootstrap(&["--version", V1, "--", "about", "--json"]);
    r.assert_refused("rollback");
    assert!(r.stderr.contains("serial 100") && r.stderr.contains("serial 200"), "{}", r.stderr);
    assert!(r.stderr.contains("for channel stable"), "{}", r.stderr);
}

fn resign_manifest(owner: &str, edit: impl FnOnce(&mut ReleaseManifest), comment: Option<&str>) {
    let path = served(owner, "release.toml");
    let mut m = ReleaseManifest::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut m);
    release::write_manifest(&m, &world().key, path.parent().unwrap(), comment).unwrap();
}

#[test]
fn an_expired_manifest_is_refused_online() {
    let (env, owner) = attack_copy("expired");
    let now = manifests::time::now_unix();
    resign_manifest(&owner, |m| m.expires = now - 60, None);
    env.bootstrap(&["--", "about"]).assert_refused("expired");
}

#[test]
fn a_trusted_comment_naming_another_file_is_refused() {
    let (env, owner) = attack_copy("comment");
    let comment = TrustedComment::render(&[
        ("file", "other.toml".into()),
        ("channel", "stable".into()),
        ("version", V2.into()),
        ("serial", "200".into()),
    ]);
    resign_manifest(&owner, |_| {}, Some(&comment));
    env.bootstrap(&["--", "about"]).assert_refused("file:other.toml");
}

#[test]
fn a_manifest_needing_a_newer_bootstrap_asks_for_one() {
    let (env, owner) = attack_copy("too-old");
    resign_manifest(&owner, |m| m.min_bootstrap_version = manifests::Version::parse("9.0.0").unwrap(), None);
    let r = env.bootstrap(&["--", "about"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("install.sh again"), "{}", r.stderr);
}

#[test]
fn a_plain_http_base_url_or_redirect_is_refused() {
    let env = Env::new("plain-http").set("VIKUNJA_INSTALLER_BASE_URL", "http://127.0.0.1:1");
    env.bootstrap(&["--", "about"]).assert_refused("plain-http");
    let base = format!("{}/downgrade", world().server.base_url());
    let env = Env::new("downgrade").set("VIKUNJA_INSTALLER_BASE_URL", &base);
    let r = env.bootstrap(&["--version", V2, "--", "about"]);
    r.assert_refused("plain-http");
    let target =
        format!("http://127.0.0.1:{}/{OWNER}/{REPO}/releases/download/v{V2}/release.toml", world().server.port);
    assert!(r.stderr.contains(&format!("plain-http URL {target}")), "the redirect target is not named: {}", r.stderr);
}

/// The release spec of `m` (for signing an asset the way `cargo xtask dist` does).
fn spec_of(m: &ReleaseManifest) -> release::ReleaseSpec {
    release::ReleaseSpec {
        version: m.version.clone(),
        channel: m.channel.clone(),
        serial: m.serial,
        published: m.published,
        expires: m.expires,
        min_bootstrap_version: m.min_bootstrap_version.clone(),
        target: TARGET.into(),
        base_url: "https://github.com".into(),
        owner: OWNER.into(),
        repo: REPO.into(),
    }
}

/// Replaces the served bundle of `owner` with `bytes`, correctly signed with the release key and
/// listed in a re-signed manifest: only the bundle's content is hostile.
fn replace_bundle(owner: &str, bytes: &[u8]) {
    let bundle_name = names::bundle(V2, TARGET);
    let path = served(owner, &bundle_name);
    std::fs::write(&path, bytes).unwrap();
    let m = ReleaseManifest::parse(&std::fs::read_to_string(served(owner, "release.toml")).unwrap()).unwrap();
    let entry = release::sign_asset(&world().key, &spec_of(&m), path.parent().unwrap(), &bundle_name).unwrap();
    resign_manifest(owner, |m| *m.assets.iter_mut().find(|a| a.name == bundle_name).unwrap() = entry, None);
}

/// An air-gapped copy of a 0.2.0 bundle made of `bytes` in a fresh directory, its signature made by
/// the release key for the release `edit` describes (the genuine 0.2.0 release unless edited).
fn offline_bundle(env: &Env, dir: &str, bytes: &[u8], edit: impl FnOnce(&mut ReleaseManifest)) -> PathBuf {
    let media = env.tmp.parent().unwrap().join(dir);
    std::fs::create_dir_all(&media).unwrap();
    let name = names::bundle(V2, TARGET);
    std::fs::write(media.join(&name), bytes).unwrap();
    let mut m = ReleaseManifest::parse(&std::fs::read_to_string(world().v2.join("release.toml")).unwrap()).unwrap();
    edit(&mut m);
    release::sign_asset(&world().key, &spec_of(&m), &media, &name).unwrap();
    media.join(name)
}

fn genuine_v2_bundle() -> Vec<u8> {
    std::fs::read(world().v2.join(names::bundle(V2, TARGET))).unwrap()
}

fn accepted_serials(env: &Env) -> String {
    std::fs::read_to_string(env.state.join("trusted-serials")).unwrap_or_default()
}

fn hostile_release(name: &str, entries: &[vikunja_e2e::evil::Evil]) -> Run {
    let (env, owner) = attack_copy(name);
    replace_bundle(&owner, &vikunja_e2e::evil::tarball(entries));
    env.bootstrap(&["--", "about", "--json"])
}

#[test]
fn signed_but_hostile_tarballs_are_refused() {
    use vikunja_e2e::evil::Evil;
    // Control: the same construction with only regular files is accepted and its installer runs,
    // so each refusal below is for the hostile entry and nothing else.
    let r = hostile_release("harmless", &[Evil::File { name: "lib/ok", data: b"x" }]);
    assert!(r.code == 0 && r.stdout.contains("EVIL RAN"), "control refused: {}{}", r.stdout, r.stderr);

    // Issue 11: each link alone points inside; together they resolve to `/`, and the installer
    // the bootstrap runs becomes /bin/sh.
    let chain = vec![
        Evil::Symlink { name: "a1/a2/a3/a4/a5/a6/a7/a8/l", target: "../../../../../../../.." },
        Evil::Symlink { name: "x", target: "a1/a2/a3/a4/a5/a6/a7/a8/l/../../.." },
        Evil::Symlink { name: "lib/vikunja-installer", target: "../x/bin/sh" },
    ];
    let cases: Vec<(&str, Vec<Evil>, &str)> = vec![
        ("dotdot", vec![Evil::File { name: "../../escaped", data: b"x" }], "'..'"),
        ("absolute", vec![Evil::File { name: "/tmp/escaped", data: b"x" }], "absolute"),
        ("symlink", vec![Evil::Symlink { name: "lib/etc", target: "../../../../etc" }], "symbolic link"),
        ("symlink-inside", vec![Evil::Symlink { name: "lib/bin", target: "../bin" }], "symbolic link"),
        ("symlink-loop", vec![Evil::Symlink { name: "lib/a", target: "." }], "symbolic link"),
        ("link-chain", chain, "symbolic link"),
        ("hardlink", vec![Evil::HardLink { name: "lib/passwd", target: "/etc/passwd" }], "hard link"),
        ("hardlink-inside", vec![Evil::HardLink { name: "lib/i", target: "bin/vikunja-installer" }], "hard link"),
        ("twice", vec![Evil::File { name: "bin/vikunja-installer", data: b"#!/bin/sh\necho EVIL\n" }], "named twice"),
        ("device", vec![Evil::CharDevice { name: "lib/mem" }], "device"),
        ("bomb", vec![Evil::Zeros { count: 12, size: 8 << 20 }], "decompression bomb"),
    ];
    for (name, entries, needle) in cases {
        let r = hostile_release(name, &entries);
        r.assert_refused(needle);
        assert!(!r.stderr.contains("WARNING"), "{name}: {}", r.stderr);
    }
    assert!(!Path::new("/tmp/escaped").exists());
}

#[test]
fn a_release_of_another_channel_is_refused_unless_asked_for() {
    // A correctly signed release, all of it (manifest and bundle) on channel beta.
    let (env, owner) = attack_copy("beta");
    resign_manifest(&owner, |m| m.channel = "beta".into(), None);
    replace_bundle(&owner, &genuine_v2_bundle());
    let r = env.bootstrap(&["--", "about", "--json"]);
    r.assert_refused("channel \"beta\"");
    assert!(r.stderr.contains("--channel beta"), "no hint how to switch: {}", r.stderr);
    assert_eq!(accepted_serials(&env), "", "a refused release moved a guard");

    // Control: asked for, it is accepted, and its serial is guarded under beta, not stable.
    let r = env.bootstrap(&["--channel", "beta", "--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_channel"), "beta");
    let serials = accepted_serials(&env);
    assert!(serials.contains("beta = 200") && !serials.contains("stable"), "{serials}");
    // The stable release is refused by a bootstrap told to follow beta.
    let env = env.set("VIKUNJA_GITHUB_OWNER", OWNER);
    env.bootstrap(&["--channel", "beta", "--", "about"]).assert_refused("channel \"stable\"");
}

#[test]
fn a_serial_far_ahead_or_a_release_from_the_future_is_refused_and_locks_nothing_out() {
    let now = manifests::time::now_unix();
    type Edit = Box<dyn Fn(&mut ReleaseManifest)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("serial-max", Box::new(|m| m.serial = u64::MAX), "would lock this host out"),
        ("serial-ahead", Box::new(|m| m.serial = m.published as u64 + 2 * 86_400), "would lock this host out"),
        ("future", Box::new(move |m| m.published = now + 3 * 86_400), "check the clock"),
        ("expires-first", Box::new(move |m| m.published = m.expires + 1), "before that"),
    ];
    for (name, edit, needle) in cases {
        let (env, owner) = attack_copy(name);
        resign_manifest(&owner, |m| edit(m), None);
        env.bootstrap(&["--", "about"]).assert_refused(needle);
        assert_eq!(accepted_serials(&env), "", "{name}: a refused release recorded a serial");
        // Control: the genuine release is still accepted afterwards.
        let env = env.set("VIKUNJA_GITHUB_OWNER", OWNER);
        assert_eq!(field(about_json(&env.bootstrap(&["--", "about", "--json"])), "release_serial"), "200");
    }
    // The same bound holds for a bundle verified by its own signature alone.
    let env = Env::new("serial-offline");
    let path = offline_bundle(&env, "usb", &genuine_v2_bundle(), |m| m.serial = u64::MAX);
    env.bootstrap(&["--bundle", path.to_str().unwrap(), "--", "about"]).assert_refused("would lock this host out");
    let path = offline_bundle(&env, "usb2", &genuine_v2_bundle(), |_| {});
    assert_eq!(
        field(
            about_json(&env.bootstrap(&["--bundle", path.to_str().unwrap(), "--", "about", "--json"])),
            "release_serial"
        ),
        "200"
    );
}

#[test]
fn a_manifest_that_does_not_parse_is_refused_with_the_reason() {
    let (env, owner) = attack_copy("unparsable");
    let path = served(&owner, "release.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen("serial = 200", "serial = two hundred", 1);
    std::fs::write(&path, text).unwrap();
    let r = env.bootstrap(&["--", "about"]);
    r.assert_refused("unsupported value \"two hundred\"");
    assert!(r.stderr.contains("release.toml line 6"), "{}", r.stderr);
}

#[test]
fn a_bundle_that_fails_to_unpack_records_no_serial() {
    // install.sh is signed like a bundle but is no tarball: refused at unpacking, after the
    // signature checks passed. The serial must not move then.
    let w = world();
    let env = Env::new("bundle-install-sh");
    let media = env.tmp.parent().unwrap().join("usb");
    std::fs::create_dir_all(&media).unwrap();
    for f in [names::INSTALL_SH.to_string(), names::signature(names::INSTALL_SH)] {
        std::fs::copy(w.v2.join(&f), media.join(&f)).unwrap();
    }
    env.bootstrap(&["--bundle", media.join(names::INSTALL_SH).to_str().unwrap(), "--", "about"])
        .assert_refused("corrupt");
    assert_eq!(accepted_serials(&env), "", "a serial was recorded for a release that was refused");
    // Control: the real bundle, checked the same way, records its serial.
    let bundle = names::bundle(V2, TARGET);
    for f in [bundle.clone(), names::signature(&bundle)] {
        std::fs::copy(w.v2.join(&f), media.join(&f)).unwrap();
    }
    let r = env.bootstrap(&["--bundle", media.join(&bundle).to_str().unwrap(), "--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_serial"), "200");
    assert!(accepted_serials(&env).contains("stable = 200"));
}

#[test]
fn allow_expired_names_every_expired_file() {
    // release.toml beside the bundle has expired; the bundle's own signature has not.
    let w = world();
    let env = Env::new("expired-manifest-offline");
    let path = offline_bundle(&env, "usb", &genuine_v2_bundle(), |_| {});
    let media = path.parent().unwrap();
    let mut m = ReleaseManifest::parse(&std::fs::read_to_string(w.v2.join("release.toml")).unwrap()).unwrap();
    m.published -= 3 * 86_400;
    m.expires = manifests::time::now_unix() - 86_400;
    release::write_manifest(&m, &w.key, media, None).unwrap();
    let bundle = path.to_str().unwrap();
    env.bootstrap(&["--bundle", bundle, "--", "about"]).assert_refused("expired");
    let r = env.bootstrap(&["--bundle", bundle, "--allow-expired", "--", "about", "--json"]);
    assert_eq!(field(about_json(&r), "release_version"), V2);
    let warning =
        r.stderr.lines().find(|l| l.contains("WARNING")).unwrap_or_else(|| panic!("no warning: {}", r.stderr));
    assert!(warning.contains("release.toml (expired") && warning.contains("--allow-expired"), "{warning}");
    assert!(!warning.contains(".tar.gz (expired"), "the bundle's signature is fresh: {warning}");

    // Both expired: both named. (The bundle signature is re-made with an expiry in the past.)
    let path = offline_bundle(&env, "usb", &genuine_v2_bundle(), |b| {
        b.published = m.published;
        b.expires = m.expires;
    });
    let r = env.bootstrap(&["--bundle", path.to_str().unwrap(), "--allow-expired", "--", "about", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warning = r.stderr.lines().find(|l| l.contains("WARNING")).unwrap();
    assert!(warning.contains("release.toml (expired") && warning.contains(".tar.gz (expired"), "{warning}");
}

#[test]
fn an_endless_manifest_is_cut_off_at_the_size_cap() {
    let (env, owner) = attack_copy("endless");
    let path = served(&owner, "release.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&"# padding\n".repeat(8000));
    std::fs::write(&path, text).unwrap();
    env.bootstrap(&["--", "about"]).assert_refused("limit");
}

#[test]
fn sigint_during_the_download_removes_the_private_directory() {
    let w = world();
    // The /slow/ location serves the same files at 64 KiB/s: the bundle takes seconds to arrive.
    let base = format!("{}/slow", w.server.base_url());
    let env = Env::new("sigint-download").set("VIKUNJA_INSTALLER_BASE_URL", &base);
    let mut c = env.command(w.v2.join(names::bootstrap(TARGET)));
    c.args(["--version", V2, "--", "about"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::read_dir(&env.tmp).unwrap().next().is_none() {
        assert!(std::time::Instant::now() < deadline, "the bootstrap never created its directory");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap().success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.stdout.is_empty(), "the installer ran");
    let left: Vec<_> = std::fs::read_dir(&env.tmp).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_signature_by_the_next_key_verifies_so_keys_can_rotate() {
    let dir = vikunja_e2e::TestDir::new("rotation").unwrap();
    let current = SigningKey::throwaway_in(&dir.join("current")).unwrap();
    let next = SigningKey::throwaway_in(&dir.join("next")).unwrap();
    let other = SigningKey::throwaway_in(&dir.join("other")).unwrap();
    let keys = manifests::Keyring::from_list(&format!("{},{}", current.public_b64(), next.public_b64())).unwrap();
    for k in [&current, &next] {
        let sig = k.sign(&b"data"[..], "file:data").unwrap();
        keys.verify("data", b"data", &sig).unwrap();
    }
    let sig = other.sign(&b"data"[..], "file:data").unwrap();
    assert!(matches!(keys.verify("data", b"data", &sig), Err(manifests::SigError::UnknownKey { .. })));
}

// ---- release properties ----

#[test]
fn minisign_cli_verifies_our_signatures_and_we_verify_its() {
    let w = world();
    let pubkey = w.v2.parent().unwrap().join("keys").join(release::signing::PUBLIC_NAME);
    for e in std::fs::read_dir(&w.v2).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && !p.to_string_lossy().ends_with(".minisig") {
            let o = Command::new("minisign").arg("-Vm").arg(&p).arg("-p").arg(&pubkey).output().unwrap();
            assert!(o.status.success(), "minisign CLI rejects {p:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    // The other direction: a key and signature made by the minisign CLI.
    let dir = vikunja_e2e::TestDir::new("minisign-cli").unwrap();
    let (pk, sk, data) = (dir.join("k.pub"), dir.join("k.key"), dir.join("data"));
    std::fs::write(&data, b"payload").unwrap();
    let ok = |c: &mut Command| assert!(c.status().unwrap().success());
    ok(Command::new("minisign").args(["-G", "-W", "-f", "-p"]).arg(&pk).arg("-s").arg(&sk).stdout(Stdio::null()));
    ok(Command::new("minisign").arg("-S").arg("-s").arg(&sk).arg("-m").arg(&data).args(["-t", "file:data"]));
    let b64 = std::fs::read_to_string(&pk).unwrap().lines().nth(1).unwrap().to_string();
    let keys = manifests::Keyring::from_list(&b64).unwrap();
    let sig = std::fs::read_to_string(dir.join("data.minisig")).unwrap();
    let v = keys.verify("data", b"payload", &sig).unwrap();
    assert_eq!(v.comment.get("file"), Some("data"));
    assert!(matches!(keys.verify("data", b"payloaD", &sig), Err(manifests::SigError::Invalid { .. })));
    // Legacy (non-prehashed) signatures are refused.
    ok(Command::new("minisign").args(["-S", "-l"]).arg("-s").arg(&sk).arg("-m").arg(&data));
    let legacy = std::fs::read_to_string(dir.join("data.minisig")).unwrap();
    assert!(matches!(keys.verify("data", b"payload", &legacy), Err(manifests::SigError::Legacy { .. })));
}

/// Feeds `prefix` to `shell` on stdin, as `curl … | sh` does: (exit code, stdout, stderr).
fn run_piped(env: &Env, shell: &Path, prefix: &[u8]) -> (i32, String, String) {
    let mut c = env.command(shell);
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // A shell that stops reading early (a syntax error) closes the pipe: not a failure.
    let _ = std::io::Write::write_all(child.stdin.as_mut().unwrap(), prefix);
    drop(child.stdin.take());
    let o = child.wait_with_output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (o.status.code().unwrap_or(-1), text(&o.stdout), text(&o.stderr))
}

#[test]
fn install_sh_is_posix_and_shellcheck_clean_and_no_cut_off_copy_runs() {
    let w = world();
    let script = w.v2.join("install.sh");
    let o = Command::new("shellcheck").args(["-s", "sh"]).arg(&script).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let o = Command::new("dash").arg("-n").arg(&script).output().unwrap();
    assert!(o.status.success());
    let text = std::fs::read(&script).unwrap();
    assert!(text.ends_with(b"\n}\n"), "the group must close on the last line");
    // The first command is the `{` that opens the group; before it are only comments, so a cut
    // up to it runs nothing and exits 0.
    let group = text.windows(3).position(|p| p == b"\n{\n").unwrap() + 1;
    assert!(String::from_utf8_lossy(&text[..group]).lines().all(|l| l.is_empty() || l.starts_with('#')));

    let env = Env::new("cut-off");
    // sh and dash at every byte (once if sh is dash); bash at every line end.
    let mut shells: Vec<(PathBuf, bool)> = Vec::new();
    for (name, every_byte) in [("sh", true), ("dash", true), ("bash", false)] {
        let real = std::fs::canonicalize(which(name)).unwrap();
        if !shells.iter().any(|(s, _)| *s == real) {
            shells.push((real, every_byte));
        }
    }
    // Every strict prefix: the whole script minus at least its closing brace.
    let last = text.len() - 2;
    let mut jobs: Vec<(PathBuf, usize)> = Vec::new();
    for (shell, every_byte) in &shells {
        for cut in 0..=last {
            if *every_byte || text[cut.saturating_sub(1)] == b'\n' {
                jobs.push((shell.clone(), cut));
            }
        }
    }
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((shell, cut)) = jobs.get(i) else { break };
                let (code, out, err) = run_piped(&env, shell, &text[..*cut]);
                let ok = if *cut <= group {
                    code == 0 && out.is_empty() && err.is_empty()
                } else {
                    code == 2 && out.is_empty() && !err.is_empty() && !err.contains("vikunja-install")
                };
                if !ok {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{} cut at {cut}: exit {code} {out:?} {err:?}", shell.display()));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} cuts ran: {:?}",
        failures.len(),
        jobs.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(std::fs::read_dir(&env.tmp).unwrap().next().is_none());
    // Control: the whole script, fed the same way, does run (and fails only for want of a URL).
    let env = env.set("VIKUNJA_INSTALLER_BASE_URL", "http://example.invalid");
    let (code, _, err) = run_piped(&env, &shells[0].0, &text);
    assert!(code == 3 && err.contains("refusing to download over plain http"), "exit {code}: {err}");
}

/// A directory of links to `tools` only, to use as PATH: a host with curl or with wget only.
fn path_with(dir: &Path, tools: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for tool in tools {
        std::os::unix::fs::symlink(which(tool), dir.join(tool)).unwrap();
    }
    dir.to_path_buf()
}

#[test]
fn install_sh_follows_https_redirects_and_refuses_plain_http_ones_with_curl_and_wget() {
    let w = world();
    let base = w.server.base_url();
    let boot = names::bootstrap(TARGET);
    for tool in ["curl", "wget"] {
        let env = Env::new(&format!("install-sh-{tool}"));
        let dir = env.tmp.parent().unwrap().to_path_buf();
        let common = ["uname", "mktemp", "rm", "chmod", "cut", "sh", "sha256sum", "sed", "tail", "tr", "cat"];
        let bin = path_with(&dir.join("bin"), &[&[tool][..], &common[..]].concat());
        std::fs::write(dir.join("wgetrc"), format!("ca_certificate = {}\n", w.ca.ca_pem.display())).unwrap();
        let env = env.set("PATH", bin.to_str().unwrap()).set("WGETRC", dir.join("wgetrc").to_str().unwrap());
        let run = |env: &Env, base: &str| {
            let env_base = Env { tmp: env.tmp.clone(), state: env.state.clone(), vars: env.vars.clone() }
                .set("VIKUNJA_INSTALLER_BASE_URL", base);
            let mut c = env_base.command(bin.join("sh"));
            c.arg(w.v2.join("install.sh")).args(["--", "about", "--json"]);
            env_base.run(c)
        };
        // Control: through an https -> https redirect, as github.com sends downloads to its CDN.
        let r = run(&env, &format!("{base}/hop"));
        assert_eq!(field(about_json(&r), "release_version"), V2, "{tool}");
        // No network (nothing answers): exit 6, and the way without one is the bootstrap's --bundle.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let r = run(&env, &format!("https://127.0.0.1:{closed}"));
        assert_eq!(r.code, 6, "{tool}: {}", r.stderr);
        assert!(r.stderr.contains("run: vikunja-bootstrap --bundle FILE -- ARGS"), "{tool}: {}", r.stderr);
        // Attack: a mirror that redirects to plain http.
        let r = run(&env, &format!("{base}/downgrade"));
        assert_eq!(r.code, 3, "{tool}: {}", r.stderr);
        let target = format!("http://127.0.0.1:{}/{OWNER}/{REPO}/releases/download/v{V2}/{boot}", w.server.port);
        assert!(r.stderr.contains(&format!("plain-http URL {target}")), "{tool}: {}", r.stderr);
        assert!(r.stdout.is_empty() && r.tmp_entries().is_empty(), "{tool}: {:?}", r.tmp_entries());
        let log = w.server.access_log().unwrap();
        assert!(
            !log.contains(&format!("\"GET /{OWNER}/{REPO}/releases/download/v{V2}/{boot} HTTP/1.1\" 400")),
            "{tool} followed the redirect"
        );
    }
}

#[test]
fn install_sh_refuses_to_run_unchecked_without_a_sha256_tool() {
    let w = world();
    let env = Env::new("no-sha-tool");
    let bin = env.tmp.parent().unwrap().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["curl", "uname", "mktemp", "rm", "chmod", "cut", "sh"] {
        let real = which(tool);
        std::os::unix::fs::symlink(real, bin.join(tool)).unwrap();
    }
    let env = env.set("PATH", bin.to_str().unwrap());
    let mut c = env.command(bin.join("sh"));
    c.arg(w.v2.join("install.sh")).args(["--", "about"]);
    let r = env.run(c);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("no sha256 tool"), "{}", r.stderr);
    assert!(r.tmp_entries().is_empty());
}

fn which(tool: &str) -> PathBuf {
    for dir in ["/usr/bin", "/bin", "/usr/sbin"] {
        let p = Path::new(dir).join(tool);
        if p.exists() {
            return p;
        }
    }
    panic!("{tool} not found")
}

#[test]
fn bundles_are_reproducible_with_source_date_epoch() {
    let w = world();
    let root = vikunja_e2e::workspace_root();
    let key = w.v2.parent().unwrap().join("keys").join(release::signing::SECRET_NAME);
    let mut outs = Vec::new();
    for i in 0..2 {
        let out = vikunja_e2e::TestDir::new(&format!("repro-{i}")).unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let o = Command::new(cargo)
            .current_dir(&root)
            .args(["xtask", "dist", "--out", out.to_str().unwrap(), "--key", key.to_str().unwrap(), "--version", V2])
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outs.push(std::fs::read(out.join(names::bundle(V2, TARGET))).unwrap());
    }
    assert_eq!(outs[0], outs[1], "two builds with one SOURCE_DATE_EPOCH differ");
    let text = std::fs::read_to_string(w.v2.join("release.toml")).unwrap();
    assert!(ReleaseManifest::parse(&text).unwrap().assets.len() == 3);
}

#[test]
fn sigterm_while_the_installer_runs_is_forwarded_and_cleans_up() {
    // A signed bundle whose installer is a long sleep: the bootstrap must pass SIGTERM on, exit
    // with 128+15 and remove the unpacked directory.
    let (env, owner) = attack_copy("sigterm");
    let dir = env.tmp.parent().unwrap().join("stage");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let script = dir.join("bin/vikunja-installer");
    std::fs::write(&script, "#!/bin/sh\necho started\nexec sleep 30\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut bytes = Vec::new();
    release::write_bundle(release::files_under(&dir.join("bin"), "bin").unwrap(), 0, &mut bytes).unwrap();
    replace_bundle(&owner, &bytes);

    let mut c = env.command(world().v2.join(names::bootstrap(TARGET)));
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line, "started\n");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15));
    let left: Vec<_> = std::fs::read_dir(&env.tmp).unwrap().collect();
    assert!(left.is_empty(), "temp dir left: {left:?}");
}

// ---- vikunja-installer upgrade: the installer updates itself through the same checks ----

/// A root with release 0.1.0 of the installer installed from its bundle, offline, the way an
/// air-gapped host would: the unpacked 0.1.0 installer runs `upgrade --bundle` on its own bundle.
fn installed_v1(env: &Env) -> PathBuf {
    let w = world();
    let dir = env.tmp.parent().unwrap();
    let (root, unpacked) = (dir.join("root"), dir.join("v1-unpacked"));
    std::fs::create_dir_all(&unpacked).unwrap();
    let bundle = w.v1.join(names::bundle(V1, TARGET));
    let ok = Command::new("tar").arg("xzf").arg(&bundle).arg("-C").arg(&unpacked).status().unwrap().success();
    assert!(ok);
    let mut c = env.command(unpacked.join("bin/vikunja-installer"));
    c.args(["upgrade", "--bundle"]).arg(&bundle).arg("--root").arg(&root);
    let r = env.run(c);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("Installed vikunja-installer {V1}")), "{}", r.stdout);
    root
}

/// Runs the installed command (`/usr/local/bin/vikunja-installer` under the root).
fn installed(env: &Env, root: &Path, args: &[&str]) -> Run {
    let mut c = env.command(root.join("usr/local/bin/vikunja-installer"));
    c.args(args);
    if args.first() == Some(&"upgrade") {
        c.arg("--root").arg(root);
    }
    env.run(c)
}

fn installed_version(env: &Env, root: &Path) -> String {
    let r = installed(env, root, &["--version"]);
    assert_eq!(r.code, 0, "the installed installer does not run: {}", r.stderr);
    r.stdout.split_whitespace().nth(1).unwrap_or("").to_string()
}

fn versions_dir(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("opt/vikunja-pve/versions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn upgrade_check_online_upgrade_and_rollback() {
    let w = world();
    let env = Env::new("upgrade-online");
    let root = installed_v1(&env);
    let key_id = manifests::Keyring::from_list(&w.key.public_b64()).unwrap().ids()[0].clone();
    let r = installed(&env, &root, &["--version"]);
    assert!(r.stdout.contains(&format!("vikunja-installer {V1} (stable, signed by key {key_id})")), "{}", r.stdout);

    let r = installed(&env, &root, &["upgrade", "--check"]);
    assert_eq!(r.code, 20, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("{V2} is available")), "{}", r.stdout);
    assert_eq!(installed_version(&env, &root), V1, "--check changed something");

    let r = installed(&env, &root, &["upgrade"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("Upgraded vikunja-installer {V1} -> {V2}")), "{}", r.stdout);
    assert_eq!(installed_version(&env, &root), V2);
    let receipt = std::fs::read_to_string(root.join(format!("opt/vikunja-pve/versions/{V2}/receipt.toml"))).unwrap();
    for needle in [
        format!("version = \"{V2}\""),
        "channel = \"stable\"".into(),
        "serial = 200".into(),
        format!("key_id = \"{key_id}\""),
        format!("/releases/download/v{V2}/{}", names::bundle(V2, TARGET)),
        "\"bin/vikunja-installer\"".into(),
    ] {
        assert!(receipt.contains(&needle), "receipt lacks {needle}: {receipt}");
    }
    // The templates of the active version are the ones next to its binary.
    let current = std::fs::read_link(root.join("opt/vikunja-pve/current")).unwrap();
    assert_eq!(current, PathBuf::from(format!("versions/{V2}")));
    assert_eq!(versions_dir(&root), [V1, V2], "the previous version is kept for --rollback");

    assert_eq!(installed(&env, &root, &["upgrade", "--check"]).code, 0);
    let r = installed(&env, &root, &["upgrade"]);
    assert!(r.code == 0 && r.stdout.contains("already installed"), "{}", r.stdout);

    let r = installed(&env, &root, &["upgrade", "--rollback"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(installed_version(&env, &root), V1);
    let r = installed(&env, &root, &["upgrade", "--rollback"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(installed_version(&env, &root), V2, "a second --rollback returns");
}

/// `upgrade --auto` (issue 16): the same signed release checks, but only within `--within` of the
/// installed version: 0.1.0 -> 0.2.0 is a minor step, held back by the default `patch` and taken
/// with `--within minor`; each run records its result beside the installed versions.
#[test]
fn upgrade_auto_stays_within_its_boundary_and_records_the_result() {
    let env = Env::new("upgrade-auto");
    let root = installed_v1(&env);
    let state = || std::fs::read_to_string(root.join("opt/vikunja-pve/auto-upgrade")).unwrap_or_default();
    let r = installed(&env, &root, &["upgrade", "--auto"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(&format!("nothing to upgrade within patch (v{V2} (outside channel patch")),
        "{}",
        r.stdout
    );
    assert_eq!(installed_version(&env, &root), V1, "the default patch boundary was crossed");
    assert!(state().contains(&format!("result: up to date: {V1}")), "{}", state());
    let r = installed(&env, &root, &["upgrade", "--auto", "--within", "major"]);
    assert_eq!(r.code, 2, "an unknown boundary: {}", r.stderr);
    assert!(r.stderr.contains("patch, minor or any"), "{}", r.stderr);
    let r = installed(&env, &root, &["upgrade", "--auto", "--within", "minor"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("Upgraded vikunja-installer {V1} -> {V2}")), "{}", r.stdout);
    assert_eq!(installed_version(&env, &root), V2);
    assert!(state().contains(&format!("result: upgraded {V1} -> {V2}")), "{}", state());
    let r = installed(&env, &root, &["upgrade", "--auto", "--within", "any"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(state().contains(&format!("result: up to date: {V2}")), "{}", state());
}

#[test]
fn upgrade_refuses_a_downgrade_unless_allowed_and_signed() {
    let w = world();
    let env = Env::new("upgrade-downgrade");
    let root = installed_v1(&env);
    let r = installed(&env, &root, &["upgrade", "--bundle", w.v2.join(names::bundle(V2, TARGET)).to_str().unwrap()]);
    assert_eq!(r.code, 0, "offline upgrade: {}", r.stderr);
    assert_eq!(installed_version(&env, &root), V2);
    let r = installed(&env, &root, &["upgrade", "--version", V1]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("--allow-downgrade"), "{}", r.stderr);
    assert_eq!(installed_version(&env, &root), V2);
    let r = installed(&env, &root, &["upgrade", "--allow-downgrade"]);
    assert_eq!(r.code, 2, "--allow-downgrade without a pinned version: {}", r.stderr);
    let r = installed(&env, &root, &["upgrade", "--version", V1, "--allow-downgrade"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(installed_version(&env, &root), V1);
}

#[test]
fn upgrade_refuses_tampered_foreign_expired_and_replayed_releases() {
    let w = world();
    let bundle = names::bundle(V2, TARGET);
    let check = |env: &Env, root: &Path, needle: &[&str], version: &str| {
        let r = installed(env, root, &["upgrade"]);
        assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
        assert!(needle.iter().any(|n| r.stderr.contains(n)), "{}", r.stderr);
        assert_eq!(installed_version(env, root), version, "the old installer must still work");
        let left: Vec<String> = versions_dir(root).into_iter().filter(|v| v.starts_with('.')).collect();
        assert!(left.is_empty(), "staging left behind: {left:?}");
    };
    let (env, owner) = attack_copy("upgrade-tampered");
    flip_byte(&served(&owner, &bundle), 5000);
    let root = installed_v1(&env);
    check(&env, &root, &["tampered", "sha256"], V1);

    let (env, owner) = attack_copy("upgrade-other-key");
    let other = SigningKey::throwaway_in(&env.tmp.parent().unwrap().join("evil-keys")).unwrap();
    let m = ReleaseManifest::parse(&std::fs::read_to_string(served(&owner, "release.toml")).unwrap()).unwrap();
    release::write_manifest(&m, &other, served(&owner, "release.toml").parent().unwrap(), None).unwrap();
    let root = installed_v1(&env);
    check(&env, &root, &["not trusted"], V1);

    let (env, owner) = attack_copy("upgrade-expired");
    let now = manifests::time::now_unix();
    resign_manifest(&owner, |m| m.expires = now - 60, None);
    let root = installed_v1(&env);
    check(&env, &root, &["expired"], V1);

    // Upgraded to 0.2.0 (serial 200), then a mirror serves the older 0.1.0 as the latest.
    let env = Env::new("upgrade-replay");
    let root = installed_v1(&env);
    assert_eq!(installed(&env, &root, &["upgrade"]).code, 0);
    let owner = "atk-upgrade-replay";
    w.server.publish(owner, REPO, &format!("v{V1}"), &w.v1).unwrap();
    w.server.publish(owner, REPO, &format!("v{V2}"), &w.v1).unwrap();
    let env = env.set("VIKUNJA_GITHUB_OWNER", owner);
    check(&env, &root, &["rollback", "serial"], V2);
}

#[test]
fn upgrade_survives_sigkill_at_every_point_and_a_second_upgrade_exits_5() {
    for (point, active) in [("unpacked", V1), ("placed", V1), ("switched", V2)] {
        let env = Env::new(&format!("upgrade-kill-{point}"));
        let root = installed_v1(&env);
        let env = env.set("VIKUNJA_INSTALLER_TEST_KILL_AT", point);
        let r = installed(&env, &root, &["upgrade"]);
        assert_eq!(r.code, -1, "{point}: not killed: {}", r.stderr);
        let env = env.set("VIKUNJA_INSTALLER_TEST_KILL_AT", "");
        assert_eq!(installed_version(&env, &root), active, "{point}");
        let r = installed(&env, &root, &["upgrade"]);
        assert_eq!(r.code, 0, "{point}: {}", r.stderr);
        assert_eq!(installed_version(&env, &root), V2, "{point}");
        assert!(versions_dir(&root).iter().all(|v| !v.starts_with('.')), "{point}: {:?}", versions_dir(&root));
    }

    let env = Env::new("upgrade-locked");
    let root = installed_v1(&env);
    let lock = std::fs::File::open(root.join("opt/vikunja-pve/upgrade.lock")).unwrap();
    lock.try_lock().unwrap();
    let r = installed(&env, &root, &["upgrade"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert!(r.stderr.contains("another upgrade is running"), "{}", r.stderr);
    drop(lock);
    assert_eq!(installed_version(&env, &root), V1);

    // A root whose /opt cannot be written: refused before anything changes, with what to do.
    let ro = env.tmp.parent().unwrap().join("ro-root");
    std::fs::create_dir_all(ro.join("opt")).unwrap();
    if Command::new("mount")
        .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
        .arg(ro.join("opt"))
        .status()
        .is_ok_and(|s| s.success())
    {
        let mut c = env.command(root.join("usr/local/bin/vikunja-installer"));
        c.args(["upgrade", "--root"]).arg(&ro);
        let r = env.run(c);
        let _ = Command::new("umount").arg("-l").arg(ro.join("opt")).status();
        assert_eq!(r.code, 4, "{}", r.stderr);
        assert!(r.stderr.contains("is not writable") && r.stderr.contains("run the upgrade as root"), "{}", r.stderr);
    } else {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root and can mount a tmpfs");
    }

    let env = env.set("VIKUNJA_INSTALLER_BASE_URL", "https://127.0.0.1:9");
    let r = installed(&env, &root, &["upgrade"]);
    assert_eq!(r.code, 6, "{}", r.stderr);
    assert!(r.stderr.contains("--bundle"), "no offline hint: {}", r.stderr);
}

#[test]
fn upgrade_refuses_link_bundles_other_channels_and_runaway_serials() {
    use vikunja_e2e::evil::{tarball_answering, Evil};
    let env = Env::new("upgrade-second-line");
    let root = installed_v1(&env);
    let serials = || std::fs::read_to_string(root.join("var/lib/vikunja-pve/trusted-serials")).unwrap();
    let before = serials();
    let upgrade = |bundle: &Path, extra: &[&str]| {
        let mut args = vec!["upgrade", "--bundle", bundle.to_str().unwrap()];
        args.extend_from_slice(extra);
        installed(&env, &root, &args)
    };
    let refused = |r: Run, needle: &str| {
        assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
        assert!(r.stderr.contains(needle), "{}", r.stderr);
        assert_eq!(installed_version(&env, &root), V1, "the old installer must stay active");
        assert!(versions_dir(&root).iter().all(|v| !v.starts_with('.')), "{:?}", versions_dir(&root));
        assert_eq!(serials(), before, "a refused release moved the guard");
    };
    // A link to its own directory made the upgrade's tree walk loop; a chain installed a binary
    // from outside the bundle. Both are refused at unpacking, quickly.
    let started = std::time::Instant::now();
    let looped = tarball_answering(V2, &[Evil::Symlink { name: "lib/a", target: "." }]);
    refused(upgrade(&offline_bundle(&env, "loop", &looped, |_| {}), &[]), "symbolic link");
    let chain = tarball_answering(
        V2,
        &[
            Evil::Symlink { name: "a1/a2/a3/a4/a5/a6/a7/a8/l", target: "../../../../../../../.." },
            Evil::Symlink { name: "x", target: "a1/a2/a3/a4/a5/a6/a7/a8/l/../../.." },
        ],
    );
    refused(upgrade(&offline_bundle(&env, "chain", &chain, |_| {}), &[]), "symbolic link");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());

    // Signed and unpacked, but its installer does not answer --version as 0.2.0: refused, and the
    // serial it carries is not recorded.
    let mute = vikunja_e2e::evil::tarball(&[]);
    refused(upgrade(&offline_bundle(&env, "mute", &mute, |_| {}), &[]), "answered");

    let high = offline_bundle(&env, "high", &genuine_v2_bundle(), |m| m.serial = u64::MAX);
    refused(upgrade(&high, &[]), "would lock this host out");

    let beta = offline_bundle(&env, "beta", &genuine_v2_bundle(), |m| m.channel = "beta".into());
    refused(upgrade(&beta, &[]), "--channel beta");
    // Control: asked for, the beta release is installed and guarded under its own channel.
    let r = upgrade(&beta, &["--channel", "beta"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("(channel beta"), "{}", r.stdout);
    assert_eq!(installed_version(&env, &root), V2);
    let after = serials();
    assert!(after.contains("beta = 200") && after.contains("stable = 100"), "{after}");

    // Control for the link cases: the same construction without links is installed.
    let env2 = Env::new("upgrade-second-line-control");
    let root2 = installed_v1(&env2);
    let plain = tarball_answering(V2, &[Evil::File { name: "lib/ok", data: b"x" }]);
    let mut c = env2.command(root2.join("usr/local/bin/vikunja-installer"));
    c.args(["upgrade", "--bundle"]).arg(offline_bundle(&env2, "plain", &plain, |_| {})).arg("--root").arg(&root2);
    let r = env2.run(c);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(installed_version(&env2, &root2), V2);
}
