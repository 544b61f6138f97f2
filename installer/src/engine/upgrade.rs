//! `vikunja-installer upgrade`: the installer updates itself from a signed release, online or from
//! a bundle file, through the same checks as the bootstrap (`manifests::obtain`), into the
//! versioned layout of `selfinstall`.

use std::path::PathBuf;

use anyhow::Result;
use manifests::fetch::Fetcher;
use manifests::obtain::{self, Source};
use manifests::serial::SerialState;
use manifests::{build_info, Exit, Keyring, Policy, Version};

use crate::error::fail;
use crate::fault::kill_point;
use crate::report::say;
use crate::selfinstall::{
    check_answers, clean_leftovers, files_in, lock, not_writable, parse_version, place, rollback, running_version,
    write_receipt, Home, RemoveOnDrop,
};

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
            say!("vikunja-installer {v} is available (installed: {baseline}); run: vikunja-installer upgrade");
            Exit::UpdateAvailable.code()
        } else {
            say!("vikunja-installer {baseline} is up to date (latest {v} on channel {})", latest.manifest.channel);
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
        say!("vikunja-installer {new} is already installed and active: nothing to upgrade.");
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
        Some(old) => say!(
            "Upgraded vikunja-installer {old} -> {new} (channel {}, key {}); `vikunja-installer upgrade --rollback` goes back",
            release.channel, release.key_id
        ),
        None => say!(
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
