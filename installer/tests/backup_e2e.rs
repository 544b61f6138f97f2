//! `backup`, `backup list/verify` and `restore` for real: a sandbox root, real nginx with TLS, the
//! Vikunja stand-in under the installer's supervisor, tasks and attachments written through nginx,
//! SQLite and a real PostgreSQL server. Round trips must give back every task and byte-identical
//! attachments; every damaged, tampered, unsafe or wrongly-unlocked archive must be refused (exit 3)
//! without changing anything; SIGKILL during a backup or a restore is cleaned up or undone by the
//! next command.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use vikunja_e2e::load::Target;
use vikunja_e2e::sandbox::{DownloadSite, Sandbox};

const V1: &str = "v2.4.0";
const V2: &str = "v2.5.0";
const INSTANCE: &str = "bk";
const PASSPHRASE: &str = "correct horse battery staple";

fn site() -> &'static DownloadSite {
    static S: OnceLock<DownloadSite> = OnceLock::new();
    S.get_or_init(|| {
        let dir = vikunja_e2e::scratch_dir("backup-site").unwrap();
        DownloadSite::start(&dir, &[V1, V2]).unwrap()
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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn installed(name: &str, version: &str, extra: &str) -> Sandbox {
    let sb = Sandbox::new(name).unwrap();
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, version, &site().base(), extra)).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "install failed");
    sb
}

fn base(sb: &Sandbox) -> PathBuf {
    sb.instance_dir(INSTANCE)
}

fn target(sb: &Sandbox) -> Target {
    Target::new("vikunja.test", sb.ports.https, base(sb).join("config/ssl/cert.pem"))
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut v).unwrap();
    v
}

/// A task with an attachment uploaded through nginx, and the bytes it must keep.
#[derive(Debug, Clone)]
struct Attached {
    task: i64,
    id: i64,
    bytes: Vec<u8>,
}

fn attach(sb: &Sandbox, t: &Target, title: &str, size: usize) -> Attached {
    let (code, body) = t.create_task(title);
    assert_eq!(code, 201, "{body}");
    let task = vikunja_e2e::load::id_in(&body).unwrap();
    let bytes = random(size);
    let file = sb.root.join(format!("upload-{title}.bin"));
    std::fs::write(&file, &bytes).unwrap();
    let id = t.upload(task, &file).unwrap();
    Attached { task, id, bytes }
}

fn assert_intact(t: &Target, a: &[Attached]) {
    for x in a {
        let got = t.download(x.task, x.id).unwrap_or_else(|e| panic!("attachment {}: {e}", x.id));
        assert!(got == x.bytes, "attachment {} changed ({} bytes, expected {})", x.id, got.len(), x.bytes.len());
    }
}

fn backend_pid(sb: &Sandbox, colour: &str) -> Option<String> {
    let f = base(sb).join(format!("logs/vikunja-{INSTANCE}-backend-{colour}.pid"));
    std::fs::read_to_string(f).ok()?.split_whitespace().nth(1).map(str::to_string)
}

/// What a refused restore must leave exactly as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    titles: Vec<String>,
    pid: Option<String>,
    deployment: String,
    files: Vec<String>,
}

fn snapshot(sb: &Sandbox, t: &Target, a: &[Attached]) -> Snapshot {
    assert_intact(t, a);
    let mut files: Vec<String> = std::fs::read_dir(base(sb).join("data/files"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    Snapshot {
        titles: t.task_titles().unwrap(),
        pid: backend_pid(sb, "blue"),
        deployment: std::fs::read_to_string(base(sb).join("config/deployment.toml")).unwrap(),
        files,
    }
}

fn leftovers(sb: &Sandbox) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(base(sb))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".restore-"))
        .collect();
    for j in ["state/journal", "state/restore-journal", "state/backup-journal"] {
        if base(sb).join(j).exists() {
            v.push(j.into());
        }
    }
    v
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("vikunja-backup-"))
        .collect();
    v.sort();
    v
}

fn backup(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> PathBuf {
    let before = backups(&base(sb).join("backups"));
    let mut all = vec!["backup"];
    all.extend_from_slice(args);
    let o = installer_env(sb, &all, env);
    assert!(o.status.success(), "backup failed");
    let after = backups(&base(sb).join("backups"));
    let new: Vec<&PathBuf> = after.iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1, "one new backup: {after:?}");
    assert!(stdout(&o).contains(&new[0].display().to_string()), "the backup's path is reported");
    new[0].clone()
}

fn assert_serving(sb: &Sandbox, colour: &str, version: &str) {
    let o = installer(sb, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["healthy"], true, "{v}");
    assert_eq!((v["colour"].as_str(), v["version"].as_str()), (Some(colour), Some(version)), "{v}");
}

// ---------------------------------------------------------------- archives made by hand

/// Every entry of a plain backup: (tar header, data).
fn entries(archive: &Path) -> Vec<(tar::Header, Vec<u8>)> {
    let f = std::fs::File::open(archive).unwrap();
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(f));
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (e.header().clone(), data)
        })
        .collect()
}

fn path_of(h: &tar::Header) -> String {
    h.path().unwrap().to_string_lossy().trim_end_matches('/').to_string()
}

fn write_archive(dest: &Path, entries: &[(tar::Header, Vec<u8>)]) {
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(dest).unwrap(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (h, data) in entries {
        let mut h = h.clone();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap();
}

/// A header whose stored name is `name` verbatim (tar libraries refuse to build `../x`).
fn raw_header(name: &str, ty: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let bytes = h.as_old_mut();
    bytes.name = [0; 100];
    bytes.name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(ty);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h
}

fn flip_bit(src: &Path, dest: &Path, at: usize) {
    let mut b = std::fs::read(src).unwrap();
    b[at] ^= 0x10;
    std::fs::write(dest, b).unwrap();
}

// ---------------------------------------------------------------- tests

#[test]
fn a_sqlite_backup_restores_every_task_and_byte_identical_attachments() {
    let sb = installed("backup-sqlite", V2, "\n[retention]\nbackups = 2\n");
    let t = target(&sb);
    let a = vec![attach(&sb, &t, "with-small-file", 300_000), attach(&sb, &t, "with-big-file", 5_000_000)];
    let (code, _) = t.create_task("plain task");
    assert_eq!(code, 201);
    let at_backup = t.task_titles().unwrap();

    let file = backup(&sb, &[], &[]);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("vikunja-backup-{INSTANCE}-")) && name.ends_with(".tar.gz"), "{name}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600, "a backup holds secrets");
    // A plain tar.gz any tar reads: header first, manifest last, attachments, config with
    // secrets, state without locks or journals; never releases.
    let o = Command::new("tar").arg("tzf").arg(&file).output().unwrap();
    assert!(o.status.success(), "tar cannot read the backup");
    let names: Vec<String> = stdout(&o).lines().map(|l| l.trim_end_matches('/').to_string()).collect();
    assert_eq!(names.first().map(String::as_str), Some("backup-header.json"));
    assert_eq!(names.last().map(String::as_str), Some("backup-manifest.json"));
    for want in
        ["database/vikunja.sqlite", "config/.service-secret", "config/deployment.toml", "state/deployed-version"]
    {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    for a in &a {
        assert!(names.contains(&format!("files/{}", a.id)), "attachment {} missing", a.id);
    }
    assert!(!names.iter().any(|n| n.starts_with("state/locks") || n.starts_with("releases") || n.starts_with("logs")));
    let manifest: serde_json::Value = serde_json::from_slice(
        &entries(&file).into_iter().find(|(h, _)| path_of(h) == "backup-manifest.json").unwrap().1,
    )
    .unwrap();
    assert_eq!(manifest["format"], 1);
    assert_eq!(manifest["instance"], INSTANCE);
    assert_eq!(manifest["vikunja_version"], V2);
    let big =
        manifest["entries"].as_array().unwrap().iter().find(|e| e["path"] == format!("files/{}", a[1].id)).unwrap();
    assert_eq!(big["size"], 5_000_000);
    assert_eq!(big["sha256"].as_str().unwrap().len(), 64);

    let o = installer(&sb, &["backup", "verify", &file.to_string_lossy()]);
    assert!(o.status.success() && stdout(&o).starts_with("OK "), "verify");
    let o = installer(&sb, &["backup", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(listed[0]["name"], name.as_str());
    assert_eq!(listed[0]["vikunja_version"], V2);

    // Changes after the backup: gone after the restore.
    let later = attach(&sb, &t, "after-backup", 1000);
    assert!(t.task_titles().unwrap().contains(&"after-backup".to_string()));

    // Without --yes and without a terminal: refused before anything happens.
    let o = installer(&sb, &["restore", &file.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--yes"));
    assert!(t.task_titles().unwrap().contains(&"after-backup".to_string()));

    let o = installer(&sb, &["restore", &name, "--yes"]); // a bare name is found in backups/
    assert!(o.status.success(), "restore failed");
    assert!(stdout(&o).contains("healthy"), "{}", stdout(&o));
    assert_eq!(t.task_titles().unwrap(), at_backup, "tasks differ from the backup's");
    assert_intact(&t, &a);
    assert!(t.download(later.task, later.id).is_err(), "an attachment made after the backup survived");
    assert!(leftovers(&sb).is_empty(), "left behind: {:?}", leftovers(&sb));
    assert_serving(&sb, "blue", V2);
    let o = installer(&sb, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["last_operation"]["operation"], "restore");
    // Writes work after the restore.
    let (code, _) = t.create_task("after-restore");
    assert_eq!(code, 201);

    // Retention: keep the newest 2.
    let second = backup(&sb, &["--include-logs"], &[]);
    let third = backup(&sb, &[], &[]);
    assert_eq!(backups(&base(&sb).join("backups")), vec![second.clone(), third], "retention.backups = 2");
    let o = Command::new("tar").arg("tzf").arg(&second).output().unwrap();
    let names = stdout(&o);
    assert!(names.contains("logs/") && !names.contains(".pid"), "--include-logs without pid files: {names}");

    // --output DIR, and the lock: a held operation lock refuses with exit 5.
    let elsewhere = sb.root.join("elsewhere");
    let o = installer(&sb, &["backup", "--output", &elsewhere.to_string_lossy()]);
    assert!(o.status.success());
    assert_eq!(backups(&elsewhere).len(), 1);
    let lock = base(&sb).join("state/locks/operation.lock");
    let mut holder = Command::new("flock").arg("-n").arg(&lock).args(["sleep", "20"]).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let o = installer(&sb, &["backup"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    let o = installer(&sb, &["restore", &name, "--yes"]);
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    holder.kill().unwrap();
    holder.wait().unwrap();
}

#[test]
fn damaged_tampered_unsafe_or_wrongly_unlocked_backups_change_nothing() {
    let sb = installed("backup-refusals", V2, "");
    let t = target(&sb);
    let a = vec![attach(&sb, &t, "kept", 200_000)];
    let pass = sb.root.join("passphrase");
    std::fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    let sealed = backup(&sb, &["--encrypt"], &[("VIKUNJA_BACKUP_PASSPHRASE", PASSPHRASE)]);
    assert!(sealed.to_string_lossy().ends_with(".tar.gz.age"));
    let bytes = std::fs::read(&sealed).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"), "not an age file");
    let secret = std::fs::read(base(&sb).join("config/.service-secret")).unwrap();
    assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_slice()), "the secret is readable in the backup");
    let plain = backup(&sb, &[], &[]);
    // Listing an encrypted backup needs no passphrase.
    let o = installer(&sb, &["backup", "list"]);
    assert!(stdout(&o).contains("encrypted"), "{}", stdout(&o));

    // Changed since the backups: every refused restore must leave exactly this.
    let (code, _) = t.create_task("after-backup");
    assert_eq!(code, 201);
    let before = snapshot(&sb, &t, &a);
    let work = sb.root.join("bad");
    std::fs::create_dir_all(&work).unwrap();

    // (what, file, environment, what the error must say)
    type Case<'a> = (&'a str, PathBuf, Vec<(&'a str, String)>, &'a str);
    let mut cases: Vec<Case> = Vec::new();
    let wrong = ("VIKUNJA_BACKUP_PASSPHRASE", "not the passphrase".to_string());
    let right = ("VIKUNJA_BACKUP_PASSPHRASE", PASSPHRASE.to_string());
    cases.push(("wrong passphrase", sealed.clone(), vec![wrong], "wrong passphrase"));
    let f = work.join("flipped.tar.gz.age");
    flip_bit(&sealed, &f, bytes.len() / 2);
    cases.push(("flipped bit, encrypted", f, vec![right.clone()], "damaged"));
    let f = work.join("truncated.tar.gz.age");
    std::fs::write(&f, &bytes[..bytes.len() - 2000]).unwrap();
    cases.push(("truncated, encrypted", f, vec![right.clone()], "damaged"));
    let plain_bytes = std::fs::read(&plain).unwrap();
    let f = work.join("flipped.tar.gz");
    flip_bit(&plain, &f, plain_bytes.len() / 2);
    cases.push(("flipped bit", f, vec![], "damaged"));
    let f = work.join("truncated.tar.gz");
    std::fs::write(&f, &plain_bytes[..plain_bytes.len() * 2 / 3]).unwrap();
    cases.push(("truncated", f, vec![], "damaged"));

    let good = entries(&plain);
    let attachment = format!("files/{}", a[0].id);
    // An attachment changed, its manifest entry not.
    let mut changed = good.clone();
    let i = changed.iter().position(|(h, _)| path_of(h) == attachment).unwrap();
    changed[i].1[0] ^= 1;
    let f = work.join("content-changed.tar.gz");
    write_archive(&f, &changed);
    cases.push(("content differs from the manifest", f, vec![], "sha256 differs"));
    // The manifest changed, the content not.
    let mut changed = good.clone();
    let m = changed.len() - 1;
    let text = String::from_utf8(changed[m].1.clone()).unwrap().replacen("\"size\": 200000", "\"size\": 200001", 1);
    changed[m].1 = text.into_bytes();
    let f = work.join("manifest-changed.tar.gz");
    write_archive(&f, &changed);
    cases.push(("manifest differs from the content", f, vec![], "the manifest says"));
    // An extra entry escaping with ../, one with an absolute path, a symlink.
    for (label, name, ty, why) in [
        ("../ path", "files/../../../escaped", tar::EntryType::Regular, "'..'"),
        ("absolute path", "/tmp/vikunja-backup-escaped", tar::EntryType::Regular, "absolute"),
        ("symlink", "files/link", tar::EntryType::Symlink, "links are not allowed"),
    ] {
        let mut evil = good.clone();
        let mut h = raw_header(name, ty, if ty == tar::EntryType::Symlink { 0 } else { 6 });
        if ty == tar::EntryType::Symlink {
            h.set_link_name("/etc/passwd").unwrap();
        }
        let data = if ty == tar::EntryType::Symlink { Vec::new() } else { b"EVIL!\n".to_vec() };
        let m = evil.len() - 1;
        evil.insert(m, (h, data));
        let f = work.join(format!("{}.tar.gz", label.replace(['/', ' ', '.'], "_")));
        write_archive(&f, &evil);
        cases.push((label, f, vec![], why));
    }
    // Not a backup at all.
    let f = work.join("random.tar.gz");
    std::fs::write(&f, random(10_000)).unwrap();
    cases.push(("random bytes", f, vec![], "not a backup"));

    for (label, file, env, why) in &cases {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let o = installer_env(&sb, &["backup", "verify", &file.to_string_lossy()], &env);
        assert_eq!(o.status.code(), Some(3), "{label}: backup verify exit code");
        let o = installer_env(&sb, &["restore", &file.to_string_lossy(), "--yes"], &env);
        assert_eq!(o.status.code(), Some(3), "{label}: restore exit code");
        let err = stderr(&o);
        assert!(err.contains(why) && err.contains("nothing was changed"), "{label}: {err}");
        assert_eq!(snapshot(&sb, &t, &a), before, "{label}: the instance changed");
        assert!(leftovers(&sb).is_empty(), "{label}: left behind {:?}", leftovers(&sb));
    }
    for escaped in [sb.root.join("escaped"), base(&sb).join("escaped"), PathBuf::from("/tmp/vikunja-backup-escaped")] {
        assert!(!escaped.exists(), "{} was written", escaped.display());
    }
    // No passphrase at all: a usage error that says how to give one.
    let o = installer(&sb, &["restore", &sealed.to_string_lossy(), "--yes"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--passphrase-file"), "{}", stderr(&o));

    // The right passphrase from a file: restored as it was at backup time.
    let o =
        installer(&sb, &["restore", &sealed.to_string_lossy(), "--yes", "--passphrase-file", &pass.to_string_lossy()]);
    assert!(o.status.success(), "encrypted restore failed");
    let titles = t.task_titles().unwrap();
    assert!(titles.contains(&"kept".to_string()) && !titles.contains(&"after-backup".to_string()), "{titles:?}");
    assert_intact(&t, &a);
    assert!(leftovers(&sb).is_empty());
}

#[test]
fn recipient_keys_encrypt_and_an_identity_file_restores() {
    let sb = installed("backup-recipients", V2, "");
    let t = target(&sb);
    let a = vec![attach(&sb, &t, "to-a-key", 50_000)];
    // A key pair in age's formats (the public key's checksum must match the secret key's).
    let key_file = sb.root.join("key.txt");
    std::fs::write(
        &key_file,
        "# public key: age13lfqemhzat5zy3lrcxsan00zuq3ffcfyxlf54paujsq4pnyf3gdszrmqwc\n\
         AGE-SECRET-KEY-1PX7GLPZXGGZ766443FMJS5XLTR3KFXF7X8XTTJ09V7DCF0GWHRTQ764URP\n",
    )
    .unwrap();
    let o = installer(&sb, &["backup", "--recipient", "age1notakey"]);
    assert_eq!(o.status.code(), Some(2), "a malformed recipient is a usage error");
    let sealed = backup(&sb, &["--recipient", "age13lfqemhzat5zy3lrcxsan00zuq3ffcfyxlf54paujsq4pnyf3gdszrmqwc"], &[]);
    let o = installer(&sb, &["backup", "verify", &sealed.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(2), "no identity given");
    assert!(stderr(&o).contains("--identity"));
    let o = installer(&sb, &["backup", "verify", &sealed.to_string_lossy(), "--identity", &key_file.to_string_lossy()]);
    assert!(o.status.success());
    let (code, _) = t.create_task("after-backup");
    assert_eq!(code, 201);
    let o = installer(&sb, &["restore", &sealed.to_string_lossy(), "--yes", "--identity", &key_file.to_string_lossy()]);
    assert!(o.status.success());
    assert!(!t.task_titles().unwrap().contains(&"after-backup".to_string()));
    assert_intact(&t, &a);
}

#[test]
fn a_postgresql_backup_round_trips() {
    use vikunja_e2e::postgres::PgCluster;
    let Some(pg) = PgCluster::for_test() else { return };
    let sb = Sandbox::new("backup-postgres").unwrap();
    let extra = format!(
        "\n[database]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\nname = \"vikunja\"\nuser = \"postgres\"\npassword_file = \"{}\"\n",
        pg.port,
        pg.dir.join("pwfile").display()
    );
    let cfg = sb.root.join("d.toml");
    std::fs::write(&cfg, sb.config(INSTANCE, V2, &site().base(), &extra)).unwrap();
    let o = installer(&sb, &["install", "--init", "process", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "install failed");
    let t = target(&sb);
    let a = vec![attach(&sb, &t, "pg-one", 400_000), attach(&sb, &t, "pg-two", 2_000_000)];
    let psql = |sql: &str| pg.query(sql);
    let at_backup = psql("SELECT string_agg(title, ',' ORDER BY id) FROM tasks");
    assert_eq!(at_backup, "pg-one,pg-two");
    let file = backup(&sb, &["--encrypt"], &[("VIKUNJA_BACKUP_PASSPHRASE", PASSPHRASE)]);
    let names = {
        let o = installer_env(
            &sb,
            &["backup", "verify", &file.to_string_lossy()],
            &[("VIKUNJA_BACKUP_PASSPHRASE", PASSPHRASE)],
        );
        assert!(o.status.success());
        stdout(&o)
    };
    assert!(names.contains("postgres"), "{names}");
    attach(&sb, &t, "pg-after", 1000);
    psql("CREATE TABLE made_after_the_backup (x int)");
    let o = installer_env(
        &sb,
        &["restore", &file.to_string_lossy(), "--yes"],
        &[("VIKUNJA_BACKUP_PASSPHRASE", PASSPHRASE)],
    );
    assert!(o.status.success(), "restore failed");
    assert_eq!(psql("SELECT string_agg(title, ',' ORDER BY id) FROM tasks"), at_backup);
    assert_eq!(psql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'made_after_the_backup'"), "0");
    assert_intact(&t, &a);
    assert_eq!(t.task_titles().unwrap(), ["pg-one", "pg-two"]);
    assert!(leftovers(&sb).is_empty(), "{:?}", leftovers(&sb));
    assert_serving(&sb, "blue", V2);
}

#[test]
fn a_backup_killed_midway_never_looks_complete_and_the_next_command_cleans_up() {
    let sb = installed("backup-kill", V2, "");
    let t = target(&sb);
    let a = vec![attach(&sb, &t, "survivor", 100_000)];
    let dir = base(&sb).join("backups");
    for point in ["backup-dumped", "backup-archiving"] {
        let o = installer_env(&sb, &["backup"], &[("VIKUNJA_INSTALLER_TEST_KILL_AT", point)]);
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(9), "{point}: not killed");
        assert!(backups(&dir).is_empty(), "{point}: a killed backup looks complete");
        let partial: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert!(!partial.is_empty(), "{point}: nothing partial to clean up (the fault point is too early)");
        let journal = std::fs::read_to_string(base(&sb).join("state/journal")).unwrap_or_default();
        assert!(journal.contains("operation: backup"), "{point}: no backup journal: {journal:?}");
        // The next command (a read-only one here) removes the leftovers.
        let o = installer(&sb, &["backup", "list"]);
        assert!(o.status.success());
        assert!(stderr(&o).contains("interrupted backup"), "{point}: {}", stderr(&o));
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "{point}: left behind {left:?}");
        assert!(leftovers(&sb).is_empty());
    }
    let file = backup(&sb, &[], &[]);
    let o = installer(&sb, &["backup", "verify", &file.to_string_lossy()]);
    assert!(o.status.success());
    assert_intact(&t, &a);
}

#[test]
fn a_restore_killed_at_any_step_is_undone_or_finished_by_the_next_command() {
    let sb = installed("backup-restore-kill", V2, "");
    let t = target(&sb);
    // More than the 1 MiB after which `restore-unpacking` strikes.
    let a = vec![attach(&sb, &t, "in-backup", 1_500_000)];
    let file = backup(&sb, &[], &[]);
    let after = attach(&sb, &t, "after-backup", 150_000);
    let mut all = a.clone();
    all.push(after.clone());
    let before = snapshot(&sb, &t, &all);
    for point in [
        "restore-unpacking",
        "restore-stopping",
        "restore-swapping",
        "restore-mid-swap",
        "restore-db-restoring",
        "restore-starting",
    ] {
        let o = installer_env(
            &sb,
            &["restore", &file.to_string_lossy(), "--yes"],
            &[("VIKUNJA_INSTALLER_TEST_KILL_AT", point)],
        );
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(9), "{point}: not killed");
        let journal = std::fs::read_to_string(base(&sb).join("state/journal")).unwrap_or_default();
        assert!(journal.contains("operation: restore"), "{point}: no restore journal: {journal:?}");
        let o = installer(&sb, &["backup", "list"]);
        assert!(o.status.success(), "{point}: the next command failed");
        assert!(stderr(&o).contains("undoing it"), "{point}: {}", stderr(&o));
        let now = snapshot(&sb, &t, &all);
        assert_eq!(now.titles, before.titles, "{point}: tasks");
        assert_eq!(now.files, before.files, "{point}: attachments");
        assert_eq!(now.deployment, before.deployment, "{point}: deployment.toml");
        assert!(leftovers(&sb).is_empty(), "{point}: left behind {:?}", leftovers(&sb));
        assert_serving(&sb, "blue", V2);
    }
    // Killed after the restored instance was found healthy: the next command finishes it.
    let o = installer_env(
        &sb,
        &["restore", &file.to_string_lossy(), "--yes"],
        &[("VIKUNJA_INSTALLER_TEST_KILL_AT", "restore-committed")],
    );
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&o.status), Some(9));
    let o = installer(&sb, &["backup", "list"]);
    assert!(stderr(&o).contains("finishing it"), "{}", stderr(&o));
    assert!(!t.task_titles().unwrap().contains(&"after-backup".to_string()));
    assert_intact(&t, &a);
    assert!(leftovers(&sb).is_empty(), "left behind {:?}", leftovers(&sb));
    assert_serving(&sb, "blue", V2);
}

#[test]
fn a_backup_of_another_release_uses_it_when_present_and_is_refused_otherwise() {
    let sb = installed("backup-versions", V1, "");
    let t = target(&sb);
    let a = vec![attach(&sb, &t, "made-on-v1", 80_000)];
    let file = backup(&sb, &[], &[]);
    let o = installer(&sb, &["update", "--version", V2]);
    assert!(o.status.success(), "update failed");
    assert_serving(&sb, "green", V2);
    let (code, _) = t.create_task("made-on-v2");
    assert_eq!(code, 201);

    // Without the backup's release: refused with what to do, nothing changed.
    let releases = base(&sb).join("releases");
    let kept = sb.root.join("v1-release");
    std::fs::rename(releases.join(V1), &kept).unwrap();
    let o = installer(&sb, &["restore", &file.to_string_lossy(), "--yes"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("vikunja-installer update --version {V1}")) && err.contains("nothing was changed"),
        "{err}"
    );
    assert!(t.task_titles().unwrap().contains(&"made-on-v2".to_string()));
    assert_serving(&sb, "green", V2);
    assert!(leftovers(&sb).is_empty());

    // With it: the restore runs the backup's release, and says so.
    std::fs::rename(&kept, releases.join(V1)).unwrap();
    let o = installer(&sb, &["restore", &file.to_string_lossy(), "--yes"]);
    assert!(o.status.success());
    // Progress goes to stderr (a recovery may run inside `status --json`).
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains(&format!("release {V1} is present")), "{said}");
    assert_serving(&sb, "blue", V1);
    assert!(!t.task_titles().unwrap().contains(&"made-on-v2".to_string()));
    assert_intact(&t, &a);
    assert!(std::fs::read_to_string(base(&sb).join("config/deployment.toml")).unwrap().contains(V1));
}
