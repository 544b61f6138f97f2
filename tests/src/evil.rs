//! Hostile bundles for the attack tests: tarballs that try to escape the unpack directory or
//! exhaust the disk. Headers are written raw, because tar libraries refuse to build most of these.

use std::io::Write;

/// One hostile entry.
pub enum Evil {
    /// A regular file whose stored name is `name` verbatim (e.g. `../x` or `/etc/x`).
    File {
        name: &'static str,
        data: &'static [u8],
    },
    Symlink {
        name: &'static str,
        target: &'static str,
    },
    HardLink {
        name: &'static str,
        target: &'static str,
    },
    CharDevice {
        name: &'static str,
    },
    /// `count` files of `size` zero bytes each: compresses about 1000:1.
    Zeros {
        count: usize,
        size: u64,
    },
}

fn raw_header(name: &str, ty: tar::EntryType, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    let bytes = h.as_old_mut();
    bytes.name = [0; 100];
    bytes.name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(ty);
    h.set_mode(0o755);
    h.set_size(size);
    h.set_mtime(0);
    h
}

/// A `.tar.gz` that starts with a harmless `bin/vikunja-installer` (a shell script that would print
/// `EVIL RAN` if anything ever ran it) followed by the hostile entries.
pub fn tarball(entries: &[Evil]) -> Vec<u8> {
    tarball_with_installer(b"#!/bin/sh\necho EVIL RAN\n", entries)
}

/// Like [`tarball`], with an installer script that answers `--version` as `version` would (so that
/// `vikunja-installer upgrade` accepts it) and prints `EVIL RAN` for anything else.
pub fn tarball_answering(version: &str, entries: &[Evil]) -> Vec<u8> {
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in --version) echo 'vikunja-installer {version} (test)' ;; *) echo EVIL RAN ;; esac\n"
    );
    tarball_with_installer(script.as_bytes(), entries)
}

fn tarball_with_installer(script: &[u8], entries: &[Evil]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    let mut h = raw_header("bin/vikunja-installer", tar::EntryType::Regular, script.len() as u64);
    h.set_cksum();
    b.append(&h, script).unwrap();
    for e in entries {
        let (mut h, data): (tar::Header, Box<dyn std::io::Read>) = match e {
            Evil::File { name, data } => {
                (raw_header(name, tar::EntryType::Regular, data.len() as u64), Box::new(*data))
            }
            Evil::Symlink { name, target } | Evil::HardLink { name, target } => {
                let ty = if matches!(e, Evil::Symlink { .. }) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                let mut h = raw_header(name, ty, 0);
                h.set_link_name(target).unwrap();
                (h, Box::new(std::io::empty()))
            }
            Evil::CharDevice { name } => {
                let mut h = raw_header(name, tar::EntryType::Char, 0);
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                (h, Box::new(std::io::empty()))
            }
            Evil::Zeros { count, size } => {
                for i in 0..*count {
                    let mut h = raw_header(&format!("lib/zeros-{i}"), tar::EntryType::Regular, *size);
                    h.set_cksum();
                    b.append(&h, std::io::Read::take(std::io::repeat(0), *size)).unwrap();
                }
                continue;
            }
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let mut gz = b.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}
