//! `dump` and `restore`: contents of the zip, the round trip, and the
//! refusals — all of which exit 0 (vikunja.md §3.1, §3.5).

mod common;

use std::io::Read;
use std::path::Path;

use common::*;

const URL: (&str, &str) = ("VIKUNJA_SERVICE_PUBLICURL", "http://127.0.0.1/");
const YES: &[u8] = b"Yes, I understand\n";

fn zip_entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut e = z.by_index(i).unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (e.name().unwrap().into_owned(), data)
        })
        .collect()
}

/// A v2.5.0 instance with two tasks and one attachment, stopped.
fn populated(sb: &Sandbox) -> (std::path::PathBuf, Vec<u8>) {
    let bin = sb.release("v2.5.0");
    let srv = Server::start(&bin, &sb.root(), &[]);
    create_task(srv.port, 1, "alpha");
    create_task(srv.port, 2, "beta");
    let data = awkward_bytes(50_000);
    assert_eq!(upload(srv.port, 2, "b.bin", &data).status, 201);
    srv.stop();
    (bin, data)
}

#[test]
fn dump_then_restore_round_trip() {
    let sb = Sandbox::new("roundtrip");
    let (bin, data) = populated(&sb);
    std::fs::write(sb.root().join("config.yml"), "service:\n  motd: dumped\n").unwrap();
    let out_dir = sb.dir.join("dumps");
    std::fs::create_dir_all(&out_dir).unwrap();
    let env = [URL, ("VIKUNJA_SERVICE_SECRET", "hunter2")];

    let out = run(&bin, &sb.root(), &["dump", "-p", out_dir.to_str().unwrap(), "-f", "mine"], &env, None);
    assert!(out.status.success(), "{}", text(&out));
    let dump = out_dir.join("mine.zip");
    let entries = zip_entries(&dump);
    let get = |name: &str| entries.iter().find(|(n, _)| n == name).map(|(_, d)| d.clone());
    assert_eq!(get("VERSION").unwrap(), b"v2.5.0");
    assert_eq!(get("config.yml").unwrap(), b"service:\n  motd: dumped\n");
    let env_file = String::from_utf8(get(".env").unwrap()).unwrap();
    assert!(env_file.contains("VIKUNJA_SERVICE_SECRET=hunter2\n"), "secrets included: {env_file}");
    assert!(env_file.lines().all(|l| l.starts_with("VIKUNJA_")), "only VIKUNJA_ variables: {env_file}");
    let tasks_json: serde_json::Value = serde_json::from_slice(&get("database/tasks.json").unwrap()).unwrap();
    assert_eq!(tasks_json.as_array().unwrap().len(), 2);
    let mig: serde_json::Value = serde_json::from_slice(&get("database/migration.json").unwrap()).unwrap();
    assert_eq!(mig.as_array().unwrap().len(), 5);
    assert!(get("database/task_attachments.json").is_some());
    assert_eq!(get("files/1").unwrap(), data);

    // Default name, in rootpath.
    let out = run(&bin, &sb.root(), &["dump"], &env, None);
    assert!(out.status.success());
    let names: Vec<String> = std::fs::read_dir(sb.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("vikunja-dump_") && n.ends_with(".zip"))
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(names[0].len(), "vikunja-dump_2006-01-02_15-03-05.zip".len(), "{names:?}");

    // Change things after the dump.
    let srv = Server::start(&bin, &sb.root(), &[]);
    create_task(srv.port, 1, "after the dump");
    srv.stop();
    std::fs::remove_file(sb.root().join("files/1")).unwrap();

    let out = run(&bin, &sb.root(), &["restore", dump.to_str().unwrap(), "--preserve-config"], &env, Some(YES));
    assert!(out.status.success());
    assert!(text(&out).contains("Done restoring dump."), "{}", text(&out));
    assert!(!text(&out).contains("ERROR"), "{}", text(&out));

    let srv = Server::start(&bin, &sb.root(), &[]);
    assert_eq!(titles(srv.port), ["alpha", "beta"], "back to the dumped state");
    assert_eq!(get_bytes(srv.port, "/api/v1/tasks/2/attachments/1"), data);
    // Ids continue after the restored ones.
    assert_eq!(create_task(srv.port, 1, "gamma")["id"], 3);
    srv.stop();
}

fn get_bytes(port: u16, path: &str) -> Vec<u8> {
    let r = common::get(port, path).unwrap();
    assert_eq!(r.status, 200);
    r.body
}

#[test]
fn restore_refusals_exit_0_and_change_nothing() {
    let sb = Sandbox::new("refusals");
    let (bin, _) = populated(&sb);
    let dump = sb.dir.join("d.zip");
    let out = run(&bin, &sb.root(), &["dump", "-p", sb.dir.to_str().unwrap(), "-f", "d.zip"], &[URL], None);
    assert!(out.status.success());
    let srv = Server::start(&bin, &sb.root(), &[]);
    create_task(srv.port, 1, "after the dump");
    srv.stop();
    let expect = ["alpha", "beta", "after the dump"];
    let d = dump.to_str().unwrap();

    let cases: [(&Path, &[u8], &str); 4] = [
        (&bin, b"yes\n", "invalid confirmation message"),
        (&bin, b"Yes, I understand", "could not read confirmation message"),
        (&bin, b"Yes, I understand \n", "invalid confirmation message"),
        (
            &sb.release("v2.5.1"),
            YES,
            "export was created with version 2.5.0 but this is 2.5.1 - please make sure you are running the same Vikunja version before restoring",
        ),
    ];
    for (b, input, why) in cases {
        let out = run(b, &sb.root(), &["restore", d, "--preserve-config"], &[URL], Some(input));
        assert_eq!(out.status.code(), Some(0), "errors exit 0: {}", text(&out));
        assert!(text(&out).contains(why), "{why}: {}", text(&out));
        assert!(text(&out).contains("ERROR"), "logged at error level");
    }

    // Without --preserve-config the dump's .env must be confirmed with a
    // second line, which Go's per-prompt bufio reader has already swallowed
    // when the input arrives in one piece.
    let out = run(&bin, &sb.root(), &["restore", d], &[URL], Some(b"Yes, I understand\n\n"));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("could not read from stdin"), "{}", text(&out));

    let out = run(&bin, &sb.root(), &["restore", &sb.dir.join("missing.zip").display().to_string()], &[URL], Some(YES));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("could not open zip file"));

    let srv = Server::start(&bin, &sb.root(), &[]);
    assert_eq!(titles(srv.port), expect, "nothing was restored");
    srv.stop();
}

#[test]
fn dump_errors_exit_0() {
    let sb = Sandbox::new("dumperr");
    let (bin, _) = populated(&sb);
    let out = run(&bin, &sb.root(), &["dump", "--path", "/nonexistent/dir"], &[URL], None);
    assert_eq!(out.status.code(), Some(0), "log.Critical does not exit non-zero");
    assert!(text(&out).contains("ERROR: error opening dump file"), "{}", text(&out));

    // A missing attachment file fails the dump half-way, still with exit 0.
    std::fs::remove_file(sb.root().join("files/1")).unwrap();
    let out = run(&bin, &sb.root(), &["dump", "-f", "partial"], &[URL], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("ERROR: error saving file"), "{}", text(&out));
    assert!(!text(&out).contains("Done creating dump"));
}

#[test]
fn dump_runs_pending_migrations_first() {
    // FullInit migrates, so dumping an old database with a new binary
    // upgrades it — and the dump then carries the new VERSION.
    let sb = Sandbox::new("dumpmig");
    let old = sb.release("v0.24.6");
    let srv = Server::start(&old, &sb.root(), &[]);
    create_task(srv.port, 1, "old");
    srv.stop();
    let new = sb.release("v2.5.0");
    let out = run(&new, &sb.root(), &["dump", "-f", "x"], &[URL], None);
    assert!(out.status.success() && text(&out).contains("Running migrations…"), "{}", text(&out));
    let entries = zip_entries(&sb.root().join("x.zip"));
    let mig = entries.iter().find(|(n, _)| n == "database/migration.json").unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&mig.1).unwrap().as_array().unwrap().len(), 5);
}
