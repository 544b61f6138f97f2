//! Safe unpacking against hostile tarballs: each must be refused, and nothing may appear outside
//! the destination.

use manifests::unpack::{unpack_tar_gz, Limits, UnpackError};
use vikunja_e2e::evil::{tarball, Evil};

fn try_unpack(entries: &[Evil], limits: Limits) -> (Result<u64, UnpackError>, std::path::PathBuf) {
    let outer = vikunja_e2e::scratch_dir("unpack").unwrap();
    let dest = outer.join("dest");
    std::fs::create_dir(&dest).unwrap();
    let r = unpack_tar_gz(&tarball(entries)[..], &dest, limits);
    (r, outer)
}

fn assert_refused(entries: &[Evil], what: &str) {
    let (r, outer) = try_unpack(entries, Limits::default());
    match r {
        Err(UnpackError::Unsafe { why, .. }) => assert!(why.contains(what), "{why}"),
        other => panic!("expected refusal ({what}), got {other:?}"),
    }
    let outside: Vec<_> = std::fs::read_dir(&outer).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(outside, ["dest"], "something was written beside the destination");
}

#[test]
fn a_plain_bundle_unpacks() {
    let (r, outer) = try_unpack(&[Evil::File { name: "templates/a.txt", data: b"hi" }], Limits::default());
    assert_eq!(r.unwrap(), 2);
    assert_eq!(std::fs::read(outer.join("dest/templates/a.txt")).unwrap(), b"hi");
}

#[test]
fn refuses_parent_dir_components() {
    assert_refused(&[Evil::File { name: "../escaped", data: b"x" }], "'..'");
    assert_refused(&[Evil::File { name: "lib/../../escaped", data: b"x" }], "'..'");
}

#[test]
fn refuses_absolute_paths() {
    assert_refused(&[Evil::File { name: "/tmp/escaped-abs", data: b"x" }], "absolute");
}

#[test]
fn refuses_symlinks_leaving_the_tree_and_writing_through_links() {
    assert_refused(&[Evil::Symlink { name: "lib/out", target: "../../etc" }], "outside");
    assert_refused(&[Evil::Symlink { name: "lib/out", target: "/etc/passwd" }], "outside");
    // A link that stays inside is fine, but nothing may be written through it.
    assert_refused(
        &[Evil::Symlink { name: "lib/in", target: "../bin" }, Evil::File { name: "lib/in/x", data: b"x" }],
        "not a directory",
    );
}

#[test]
fn refuses_hard_links_and_devices() {
    assert_refused(&[Evil::HardLink { name: "lib/passwd", target: "/etc/passwd" }], "hard link");
    assert_refused(&[Evil::HardLink { name: "lib/copy", target: "bin/vikunja-installer" }], "hard link");
    assert_refused(&[Evil::CharDevice { name: "lib/null" }], "device");
}

#[test]
fn stops_a_gzip_bomb_at_the_cap() {
    let limits = Limits { max_total: 8 * 1024 * 1024, max_entries: 100 };
    let (r, _) = try_unpack(&[Evil::Zeros { count: 4, size: 3 * 1024 * 1024 }], limits);
    assert!(matches!(r, Err(UnpackError::TooLarge { .. })), "{r:?}");
    let (r, _) = try_unpack(&[Evil::Zeros { count: 1, size: 9 * 1024 * 1024 }], limits);
    assert!(matches!(r, Err(UnpackError::TooLarge { .. })), "{r:?}");
}

#[test]
fn the_cap_follows_the_compressed_size() {
    assert_eq!(Limits::for_compressed(1024).max_total, 64 * 1024 * 1024);
    assert_eq!(Limits::for_compressed(10 << 20).max_total, 200 << 20);
    assert_eq!(Limits::for_compressed(1 << 40).max_total, 512 << 20);
}
