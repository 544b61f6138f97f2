//! Running the unpacked installer: `bin/vikunja-installer ARGS…` with the release facts in the
//! environment. Its exit code becomes ours; a signal that killed it becomes 128+signal.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;

use crate::signals::CHILD;
use manifests::obtain::Release;

pub fn run(dir: &Path, release: &Release, args: &[OsString]) -> std::io::Result<u8> {
    let exe = dir.join("bin/vikunja-installer");
    let mut child = Command::new(&exe)
        .args(args)
        .env("VIKUNJA_BUNDLE_DIR", dir)
        .env("VIKUNJA_BOOTSTRAP_VERSION", manifests::build_info::version())
        .env("VIKUNJA_RELEASE_VERSION", release.version.to_string())
        .env("VIKUNJA_RELEASE_CHANNEL", &release.channel)
        .env("VIKUNJA_RELEASE_SERIAL", release.serial.to_string())
        .env("VIKUNJA_RELEASE_KEY_ID", &release.key_id)
        .env("VIKUNJA_RELEASE_SOURCE", &release.source)
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot start {}: {e}", exe.display())))?;
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    let status = child.wait();
    CHILD.store(0, Ordering::SeqCst);
    let status = status?;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => 1,
    })
}
