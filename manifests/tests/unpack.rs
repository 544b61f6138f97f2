//! Safe unpacking against hostile tarballs: each must be refused, and nothing may appear outside
//! the destination.

use manifests::unpack::{unpack_tar_gz, Limits, UnpackError};
use vikunja_e2e::evil::{tarball, Evil};

fn try_unpack(entries: &[Evil], limits: Limits) -> (Result<u64, UnpackError>, vikunja_e2e::TestDir) {
    let outer = vikunja_e2e::TestDir::new("unpack").unwrap();
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
fn refuses_every_symlink_even_one_that_looks_inside() {
    assert_refused(&[Evil::Symlink { name: "lib/out", target: "../../etc" }], "symbolic link");
    assert_refused(&[Evil::Symlink { name: "lib/out", target: "/etc/passwd" }], "symbolic link");
    assert_refused(&[Evil::Symlink { name: "lib/in", target: "../bin" }], "symbolic link");
    assert_refused(&[Evil::Symlink { name: "lib/a", target: "." }], "symbolic link");
    // A chain as in issue 11: each link alone stays inside, together they resolve to `/`.
    let chain = [
        Evil::Symlink { name: "a1/a2/a3/a4/a5/a6/a7/a8/l", target: "../../../../../../../.." },
        Evil::Symlink { name: "x", target: "a1/a2/a3/a4/a5/a6/a7/a8/l/../../.." },
        Evil::Symlink { name: "lib/sh", target: "../x/bin/sh" },
    ];
    assert_refused(&chain, "symbolic link");
}

#[test]
fn refuses_an_entry_named_twice() {
    // A second copy could replace a checked file after a reader looked at the first.
    let twice = [Evil::File { name: "lib/a", data: b"1" }, Evil::File { name: "lib/a", data: b"2" }];
    assert_refused(&twice, "named twice");
    assert_refused(&[Evil::File { name: "bin/vikunja-installer", data: b"x" }], "named twice");
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
