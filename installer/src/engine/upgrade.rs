//! `vikunja-installer upgrade`: the installer updates itself from a signed release, online or from
//! a bundle file, through the same checks as the bootstrap (`manifests::obtain`).
//!
//! Installed layout (under `--root`): every version in its own directory, the active one selected
//! by one symlink that is replaced atomically, so the binary and its templates always match:
//!
//! ```text
//! /opt/vikunja-pve/versions/<version>/{bin/vikunja-installer, templates/, receipt.toml}
//! /opt/vikunja-pve/current -> versions/<version>
//! /opt/vikunja-pve/previous            (the version `upgrade --rollback` goes back to)
//! /usr/local/bin/vikunja-installer -> /opt/vikunja-pve/current/bin/vikunja-installer
//! ```
//!
//! A new version is unpacked into a hidden staging directory, must answer `--version` with the
//! expected version, is renamed into `versions/`, and only then does `current` switch. A SIGKILL at
//! any point leaves `current` on the old or the new version, both complete; staging leftovers are
//! removed by the next run.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, Context, Result};
use manifests::fetch::Fetcher;
use manifests::obtain::{self, Release, Source};
use manifests::serial::{default_state_dir, SerialState};
use manifests::{build_info, Exit, Keyring, Policy, Version};

use crate::error::fail;

pub struct Options {
    pub root: PathBuf,
    pub check: bool,
    pub version: Option<String>,
    pub bundle: Option<PathBuf>,
    pub rollback: bool,
    pub allow_downgrade: bool,
    pub allow_expired: bool,
    /// The channel to accept instead of the compiled-in one.
    pub channel: Option<String>,
    pub base_url: Option<String>,
}

/// Where the installer lives under a root.
pub struct Home {
    pub root: PathBuf,
    pub dir: PathBuf,
}

impl Home {
    pub fn new(root: &Path) -> Home {
        Home { root: root.to_path_buf(), dir: root.join("opt/vikunja-pve") }
    }
    fn versions(&self) -> PathBuf {
        self.dir.join("versions")
    }
    fn version_dir(&self, v: &str) -> PathBuf {
        self.versions().join(v)
    }
    fn current_link(&self) -> PathBuf {
        self.dir.join("current")
    }
    fn previous_file(&self) -> PathBuf {
        self.dir.join("previous")
    }
    fn bin_link(&self) -> PathBuf {
        self.root.join("usr/local/bin/vikunja-installer")
    }
    fn state_dir(&self) -> PathBuf {
        if self.root == Path::new("/") {
            default_state_dir()
        } else {
            self.root.join("var/lib/vikunja-pve")
        }
    }
    /// The active version, from the `current` link.
    pub fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.current_link()).ok()?;
        target.file_name()?.to_str().map(str::to_string)
    }
    fn previous(&self) -> Option<String> {
        std::fs::read_to_string(self.previous_file()).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
    }
}

use crate::fault::kill_point;
use crate::instance::lock::{FlockError, OperationLock};

fn lock(h: &Home) -> Result<OperationLock> {
    let path = h.dir.join("upgrade.lock");
    match OperationLock::flock(&path, &format!("PID: {}\n", std::process::id())) {
        Ok((lock, _)) => Ok(lock),
        Err(FlockError::Busy { holder }) => {
            Err(fail(Exit::Locked, format!("another upgrade is running ({holder}); wait for it to finish")))
        }
        Err(FlockError::Open(e)) => Err(not_writable(&path, e)),
        Err(FlockError::Write(e)) => Err(anyhow!(e).context(format!("write {}", path.display()))),
    }
}

fn not_writable(path: &Path, e: std::io::Error) -> anyhow::Error {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    if matches!(e.kind(), PermissionDenied | ReadOnlyFilesystem) {
        fail(
            Exit::Prerequisite,
            format!("{} is not writable ({e}): run the upgrade as root, on a writable disk", path.display()),
        )
    } else {
        anyhow!(e).context(format!("open {}", path.display()))
    }
}

fn parse_version(v: &str) -> Result<Version> {
    Version::parse(v.trim_start_matches('v')).map_err(|e| fail(Exit::Usage, format!("--version: {e}")))
}

fn running_version() -> Version {
    Version::parse(build_info::version()).unwrap_or(Version { major: 0, minor: 0, patch: 0, pre: None })
}

pub fn run(o: &Options) -> Result<u8> {
    let h = Home::new(&o.root);
    if o.rollback {
        let _lock = lock(&h)?;
        return rollback(&h).map(|()| 0);
    }
    let keys = Keyring::embedded().map_err(|e| fail(Exit::Prerequisite, e.to_string()))?;
    let installed = h.current().and_then(|v| Version::parse(&v).ok());
    let baseline = installed.clone().unwrap_or_else(running_version);
    let pinned = o.version.as_deref().map(parse_version).transpose()?;
    if o.allow_downgrade && pinned.is_none() {
        // Without a pin, lifting the serial check would let a mirror pick any old signed release.
        return Err(fail(Exit::Usage, "--allow-downgrade needs --version X.Y.Z: the release to go back to"));
    }
    if let Some(p) = &pinned {
        if *p < baseline && !o.allow_downgrade {
            return Err(fail(
                Exit::Verification,
                format!("{p} is older than the installed {baseline}: a downgrade is refused unless --allow-downgrade is given"),
            ));
        }
    }
    let channel = o.channel.clone().unwrap_or_else(|| build_info::channel().to_string());
    if !manifests::manifest::is_safe_name(&channel) {
        return Err(fail(
            Exit::Usage,
            format!("--channel {channel:?}: a channel name is letters, digits, '.', '_', '-' or '+'"),
        ));
    }
    let mut state = SerialState::load(&h.state_dir()).map_err(|e| fail(Exit::Prerequisite, e.to_string()))?;
    let policy = Policy {
        now: manifests::time::now_unix(),
        allow_expired: o.allow_expired && o.bundle.is_some(),
        // An explicit downgrade names an older release, whose serial is lower by design; every
        // other check (signature, hash, size, expiry) still applies.
        last_serial: if o.allow_downgrade { None } else { state.last(&channel) },
        channel,
        client_version: running_version(),
        pinned: pinned.clone(),
    };
    if o.allow_expired && o.bundle.is_none() {
        return Err(fail(Exit::Usage, "--allow-expired is for air-gapped upgrades with --bundle only"));
    }
    let fetcher = || -> Result<Fetcher> {
        Fetcher::new(&format!("vikunja-installer/{}", build_info::version()), None)
            .map_err(|e| fail(e.exit(), e.to_string()))
    };
    let offline_hint = |e: obtain::ObtainError| {
        let code = e.exit();
        let hint = if code == Exit::Download {
            "\nNo network? Copy the release's bundle and .minisig to this machine and run: vikunja-installer upgrade --bundle FILE"
        } else {
            ""
        };
        fail(code, format!("{e}{hint}\nnothing was changed"))
    };
    if o.check {
        let src = Source::from_env(o.base_url.as_deref()).map_err(offline_hint)?;
        let state_path = state.path.display().to_string();
        let latest = obtain::check_latest(&keys, &policy, &state_path, &src, &fetcher()?).map_err(offline_hint)?;
        let v = latest.manifest.version;
        return Ok(if v > baseline {
            println!("vikunja-installer {v} is available (installed: {baseline}); run: vikunja-installer upgrade");
            Exit::UpdateAvailable.code()
        } else {
            println!("vikunja-installer {baseline} is up to date (latest {v} on channel {})", latest.manifest.channel);
            0
        });
    }

    let _lock = lock(&h)?;
    clean_leftovers(&h);
    let staging = h.versions().join(format!(".staging-{}", std::process::id()));
    std::fs::create_dir_all(&staging).map_err(|e| not_writable(&staging, e))?;
    let _cleanup = RemoveOnDrop(staging.clone());
    let cx = obtain::Context { who: "vikunja-installer", keys: &keys, policy, state: &state, dest: &staging };
    let release = match &o.bundle {
        Some(b) => obtain::offline(cx, b, None),
        None => Source::from_env(o.base_url.as_deref()).and_then(|src| {
            let f = Fetcher::new(&format!("vikunja-installer/{}", build_info::version()), None)?;
            obtain::online(cx, &src, &f)
        }),
    }
    .map_err(offline_hint)?;
    let new = release.version.to_string();
    let record = |state: &mut SerialState| {
        release.record(state).map_err(|e| fail(Exit::Prerequisite, format!("{e}\nnothing was changed")))
    };
    if installed.as_ref() == Some(&release.version) {
        record(&mut state)?;
        println!("vikunja-installer {new} is already installed and active: nothing to upgrade.");
        return Ok(0);
    }
    if release.version < baseline && !o.allow_downgrade {
        return Err(fail(
            Exit::Verification,
            format!("the release offered is {new}, older than the installed {baseline}: refused (pass --allow-downgrade to go back on purpose)"),
        ));
    }
    kill_point("unpacked");
    // Listed before anything of the new version runs: the listing refuses links, so neither the
    // check below nor the receipt and sync later can reach outside the staging directory.
    let files = files_in(&staging)?;
    check_answers(&staging.join("bin/vikunja-installer"), &new)?;
    // Accepted as a whole only now: a release refused above moved no rollback guard.
    record(&mut state)?;
    write_receipt(&staging, &release, &files)?;
    let old = place(&h, &staging, &new, &files)?;
    match &old {
        Some(old) => println!(
            "Upgraded vikunja-installer {old} -> {new} (channel {}, key {}); `vikunja-installer upgrade --rollback` goes back",
            release.channel, release.key_id
        ),
        None => println!(
            "Installed vikunja-installer {new} (channel {}, key {}) as {}",
            release.channel,
            release.key_id,
            h.bin_link().display()
        ),
    }
    Ok(0)
}

/// The newest release of the channel (signature, expiry and rollback guard checked as for
/// `--check`), for `upgrade --auto` to judge before it upgrades; nothing changes.
pub fn latest(o: &Options) -> Result<Version> {
    let h = Home::new(&o.root);
    let keys = Keyring::embedded().map_err(|e| fail(Exit::Prerequisite, e.to_string()))?;
    let channel = o.channel.clone().unwrap_or_else(|| build_info::channel().to_string());
    if !manifests::manifest::is_safe_name(&channel) {
        return Err(fail(Exit::Usage, format!("--channel {channel:?}: not a channel name")));
    }
    let state = SerialState::load(&h.state_dir()).map_err(|e| fail(Exit::Prerequisite, e.to_string()))?;
    let policy = Policy {
        now: manifests::time::now_unix(),
        allow_expired: false,
        last_serial: state.last(&channel),
        channel,
        client_version: running_version(),
        pinned: None,
    };
    let src = Source::from_env(o.base_url.as_deref()).map_err(|e| fail(e.exit(), e.to_string()))?;
    let f = Fetcher::new(&format!("vikunja-installer/{}", build_info::version()), None)
        .map_err(|e| fail(e.exit(), e.to_string()))?;
    let latest = obtain::check_latest(&keys, &policy, &state.path.display().to_string(), &src, &f)
        .map_err(|e| fail(e.exit(), e.to_string()))?;
    Ok(latest.manifest.version)
}

/// Moves a complete, checked staging directory into `versions/<new>` and switches `current` (and
/// the command in /usr/local/bin) to it; the version it replaces becomes `previous`. Returns that.
fn place(h: &Home, staging: &Path, new: &str, files: &[PathBuf]) -> Result<Option<String>> {
    let dest = h.version_dir(new);
    if dest.exists() {
        // A complete earlier copy of the same version (kept for rollback): replaced by the fresh one.
        let aside = h.versions().join(format!(".replaced-{new}-{}", std::process::id()));
        std::fs::rename(&dest, &aside).with_context(|| format!("move {} aside", dest.display()))?;
        let _ = std::fs::remove_dir_all(&aside);
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(staging, &dest).with_context(|| format!("rename into {}", dest.display()))?;
    kill_point("placed");
    let old = h.current().filter(|o| o != new);
    // Recorded before the switch, so a kill right after it still rolls back one version, not two.
    if let Some(old) = &old {
        manifests::atomic::write_atomic(&h.previous_file(), format!("{old}\n").as_bytes(), 0o644)?;
    }
    sync_tree(&dest, files);
    switch(h, new)?;
    kill_point("switched");
    prune(h);
    Ok(old)
}

/// The first run on a host: the running installer (binary, and the templates beside it) goes into
/// the versioned layout and becomes the active one, so `vikunja-installer` is on PATH afterwards
/// and `upgrade` replaces it like any version. Nothing happens when this version is already active.
/// Returns the command's path when it installed.
pub fn install_running(root: &Path, templates: Option<&Path>) -> Result<Option<PathBuf>> {
    let h = Home::new(root);
    let v = build_info::version();
    if h.current().as_deref() == Some(v) && h.bin_link().exists() {
        return Ok(None);
    }
    if h.current().and_then(|c| Version::parse(&c).ok()).is_some_and(|c| c > running_version()) {
        // An older one-liner never downgrades the host's installer; `upgrade` is the way to move it.
        return Ok(None);
    }
    let _lock = lock(&h)?;
    clean_leftovers(&h);
    let staging = h.versions().join(format!(".staging-{}", std::process::id()));
    std::fs::create_dir_all(staging.join("bin")).map_err(|e| not_writable(&staging, e))?;
    let _cleanup = RemoveOnDrop(staging.clone());
    let mut exe = std::env::current_exe().context("find this installer's own binary")?;
    if !exe.is_file() {
        // Replaced on disk while we run: our own image is still readable here.
        exe = PathBuf::from(format!("/proc/{}/exe", std::process::id()));
    }
    let bin = staging.join("bin/vikunja-installer");
    std::fs::copy(&exe, &bin).with_context(|| format!("copy {} to {}", exe.display(), bin.display()))?;
    if let Some(t) = templates {
        copy_tree(t, &staging.join("templates"))?;
    }
    check_answers(&bin, v)?;
    let var = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    let release = Release {
        version: running_version(),
        channel: var("VIKUNJA_RELEASE_CHANNEL").unwrap_or_else(|| build_info::channel().to_string()),
        serial: var("VIKUNJA_RELEASE_SERIAL").and_then(|s| s.parse().ok()).unwrap_or(0),
        // Empty: this copy was not verified by the bootstrap (a build run by hand).
        key_id: var("VIKUNJA_RELEASE_KEY_ID").unwrap_or_default(),
        source: var("VIKUNJA_RELEASE_SOURCE").unwrap_or_else(|| exe.display().to_string()),
    };
    // Listed like a downloaded release: links refused, nothing outside the staging directory.
    let files = files_in(&staging)?;
    write_receipt(&staging, &release, &files)?;
    place(&h, &staging, v, &files)?;
    Ok(Some(h.bin_link()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("create {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type()?.is_dir() {
            copy_tree(&src, &dst)?;
        } else if e.file_type()?.is_file() {
            std::fs::copy(&src, &dst).with_context(|| format!("copy {}", src.display()))?;
        }
    }
    Ok(())
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Staging directories of a run that was killed: never complete, never active.
fn clean_leftovers(h: &Home) {
    for e in std::fs::read_dir(h.versions()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(".staging-") || name.starts_with(".replaced-") {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    let _ = std::fs::remove_file(h.dir.join("current.new"));
}

/// The new binary must run here and say it is the version the signed release names.
fn check_answers(bin: &Path, expected: &str) -> Result<()> {
    let out = Command::new(bin).arg("--version").env_remove(crate::fault::KILL_AT).output().map_err(|e| {
        fail(Exit::Verification, format!("the new installer {} does not run: {e}; nothing was changed", bin.display()))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap_or("");
    if !out.status.success() || first.split_whitespace().nth(1) != Some(expected) {
        return Err(fail(
            Exit::Verification,
            format!(
                "the new installer answered {first:?} to --version, not version {expected}; the old one stays active"
            ),
        ));
    }
    Ok(())
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn write_receipt(dir: &Path, r: &Release, files: &[PathBuf]) -> Result<()> {
    let list: Vec<String> = files.iter().map(|f| format!("  {},", toml_str(&f.to_string_lossy()))).collect();
    let text = format!(
        "# vikunja-installer receipt: what was installed, from where, verified by which key\n\
         version = {}\nchannel = {}\nserial = {}\nkey_id = {}\nsource = {}\ninstalled_at = {}\nfiles = [\n{}\n]\n",
        toml_str(&r.version.to_string()),
        toml_str(&r.channel),
        r.serial,
        toml_str(&r.key_id),
        toml_str(&r.source),
        toml_str(&manifests::time::format_rfc3339(manifests::time::now_unix())),
        list.join("\n")
    );
    manifests::atomic::write_atomic(&dir.join("receipt.toml"), text.as_bytes(), 0o644)?;
    Ok(())
}

/// Every regular file under `base`, relative to it and sorted. The walk never follows a link (a
/// directory entry's `file_type` is the entry's own type), so a link to a directory cannot make it
/// loop and a link to elsewhere cannot make it read outside `base`. Unpacking already refuses
/// links, so one here means the tree changed under us: refused, like any other special file.
fn files_in(base: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![base.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("list {}", dir.display()))? {
            let e = e.with_context(|| format!("list {}", dir.display()))?;
            let path = e.path();
            let ty = e.file_type().with_context(|| format!("stat {}", path.display()))?;
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() {
                out.push(path.strip_prefix(base)?.to_path_buf());
            } else {
                return Err(fail(
                    Exit::Verification,
                    format!(
                        "{} in the new version is a link or special file, not a regular file: refusing the release; nothing was changed",
                        path.display()
                    ),
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The receipt of the version this binary was installed as, if it runs from the installed layout.
pub fn own_receipt() -> Option<Vec<(String, String)>> {
    let exe = std::env::current_exe().ok()?;
    let text = std::fs::read_to_string(exe.parent()?.parent()?.join("receipt.toml")).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once(" = "))
            .filter(|(_, v)| v.starts_with('"') || v.chars().all(|c| c.is_ascii_digit()))
            .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
            .collect(),
    )
}

/// Points `current` (and the command in /usr/local/bin) at `version` with atomic renames.
fn switch(h: &Home, version: &str) -> Result<()> {
    let tmp = h.dir.join("current.new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(Path::new("versions").join(version), &tmp)?;
    std::fs::rename(&tmp, h.current_link()).context("switch the current version")?;
    let bin = h.bin_link();
    if std::fs::read_link(&bin).ok().as_deref() != Some(Path::new(BIN_TARGET)) {
        if let Some(dir) = bin.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = bin.with_file_name(".vikunja-installer.new");
        let _ = std::fs::remove_file(&tmp);
        // Relative, so the same layout works under a test root.
        std::os::unix::fs::symlink(BIN_TARGET, &tmp)?;
        std::fs::rename(&tmp, &bin).with_context(|| format!("link {}", bin.display()))?;
    }
    if let Ok(d) = File::open(&h.dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The new version's files reach the disk before `current` points at them (a power cut, unlike a
/// SIGKILL, could otherwise leave `current` on empty files). `files` is the no-follow listing made
/// in staging, so nothing outside the version directory is opened.
fn sync_tree(dir: &Path, files: &[PathBuf]) {
    let mut dirs = vec![dir.to_path_buf()];
    for f in files {
        let p = dir.join(f);
        if let Ok(file) = File::open(&p) {
            let _ = file.sync_all();
        }
        if let Some(parent) = p.parent().filter(|d| !dirs.iter().any(|x| x == d)) {
            dirs.push(parent.to_path_buf());
        }
    }
    for d in dirs.iter().rev() {
        if let Ok(d) = File::open(d) {
            let _ = d.sync_all();
        }
    }
}

const BIN_TARGET: &str = "../../../opt/vikunja-pve/current/bin/vikunja-installer";

/// Keeps the active and the previous version; older ones go.
fn prune(h: &Home) {
    let keep = [h.current(), h.previous()];
    for e in std::fs::read_dir(h.versions()).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || keep.iter().flatten().any(|k| *k == name) {
            continue;
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

fn rollback(h: &Home) -> Result<()> {
    let current = h
        .current()
        .ok_or_else(|| fail(Exit::Error, "vikunja-installer is not installed here; nothing to roll back"))?;
    let prev =
        h.previous().ok_or_else(|| fail(Exit::Error, "no previous version is recorded: nothing to roll back to"))?;
    let dir = h.version_dir(&prev);
    if !dir.join("receipt.toml").is_file() {
        return Err(fail(
            Exit::Error,
            format!("the previous version {prev} is no longer in {}", h.versions().display()),
        ));
    }
    check_answers(&dir.join("bin/vikunja-installer"), &prev)?;
    switch(h, &prev)?;
    manifests::atomic::write_atomic(&h.previous_file(), format!("{current}\n").as_bytes(), 0o644)?;
    println!("Rolled vikunja-installer back {current} -> {prev}; `vikunja-installer upgrade --rollback` returns to {current}");
    Ok(())
}

/// For `--version`: the signing key, when this binary runs from the installed layout or was
/// started by the bootstrap.
pub fn signing_key() -> Option<String> {
    std::env::var("VIKUNJA_RELEASE_KEY_ID")
        .ok()
        .or_else(|| own_receipt()?.into_iter().find(|(k, _)| k == "key_id").map(|(_, v)| v))
        .filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_staging_walk_lists_plain_trees_and_refuses_links_without_following_them() {
        let dir = std::env::temp_dir().join(format!("upgrade-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("templates/nginx")).unwrap();
        std::fs::write(dir.join("bin/vikunja-installer"), "x").unwrap();
        std::fs::write(dir.join("templates/nginx/site.conf"), "x").unwrap();
        let files = files_in(&dir).unwrap();
        assert_eq!(files, [PathBuf::from("bin/vikunja-installer"), PathBuf::from("templates/nginx/site.conf")]);

        // A link to its own directory made the old walk recurse until the path was too long; a
        // link outside made it list (and sync) files of the host.
        for (name, target) in [("lib-loop", "."), ("lib-out", "/etc")] {
            let link = dir.join("templates").join(name);
            std::os::unix::fs::symlink(target, &link).unwrap();
            let started = std::time::Instant::now();
            let err = files_in(&dir).unwrap_err().to_string();
            assert!(err.contains("is a link or special file") && err.contains(name), "{err}");
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
            std::fs::remove_file(&link).unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
