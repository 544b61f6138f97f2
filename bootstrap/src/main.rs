//! vikunja-bootstrap: the small static program `install.sh` runs. It finds a release, checks its
//! signature, hashes, expiry and serial against the keys compiled in, unpacks the installer bundle
//! into a private directory and hands off to `bin/vikunja-installer`. See ARCHITECTURE.md.

mod cli;
mod handoff;
mod signals;
mod tempdir;

use std::process::ExitCode;

use manifests::fetch::Fetcher;
use manifests::obtain::{self, ObtainError};
use manifests::policy::Policy;
use manifests::serial::{default_state_dir, SerialState};
use manifests::{build_info, Exit, Keyring, Version};

fn fail(code: Exit, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("vikunja-bootstrap: error: {msg}");
    code.into()
}

fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os().skip(1)) {
        Ok(cli::Parsed::Run(c)) => c,
        Ok(cli::Parsed::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Parsed::PrintVersion) => {
            println!("vikunja-bootstrap {} ({})", build_info::version(), build_info::channel());
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(Exit::Usage, format!("{e}\n\n{}", cli::USAGE)),
    };
    if let Err(e) = signals::install() {
        return fail(Exit::Error, format!("cannot install signal handlers: {e}"));
    }
    let keys = match Keyring::embedded() {
        Ok(k) => k,
        Err(e) => return fail(Exit::Prerequisite, e),
    };
    let pinned = match pinned_version(&cli) {
        Ok(p) => p,
        Err(e) => return fail(e.exit(), e),
    };
    let state_dir = default_state_dir();
    let mut state = match SerialState::load(&state_dir) {
        Ok(s) => s,
        Err(e) => return fail(Exit::Prerequisite, e),
    };
    let client_version =
        Version::parse(build_info::version()).unwrap_or(Version { major: 0, minor: 0, patch: 0, pre: None });
    let dir = match tempdir::PrivateDir::create(cli.keep_temp) {
        Ok(d) => d,
        Err(e) => return fail(Exit::Prerequisite, e),
    };
    // The compiled-in channel unless the user names another: a beta release signed by the same key
    // must not reach a stable host by accident, and its serial is guarded per channel.
    let channel = cli.channel.clone().unwrap_or_else(|| build_info::channel().to_string());
    let policy = Policy {
        now: manifests::time::now_unix(),
        allow_expired: cli.allow_expired,
        last_serial: state.last(&channel),
        channel,
        client_version,
        pinned,
    };
    let cx = obtain::Context { who: "vikunja-bootstrap", keys: &keys, policy, state: &state, dest: &dir.path };
    let result = match &cli.bundle {
        Some(b) => obtain::offline(cx, b, cli.signature.clone()),
        None => obtain::Source::from_env(cli.base_url.as_deref()).and_then(|src| {
            let ua = format!("vikunja-bootstrap/{}", build_info::version());
            let fetcher = Fetcher::new(&ua, Some(&signals::CANCEL))?.offline(
                "copy the release's bundle and its .minisig here and run `vikunja-bootstrap --bundle FILE -- ARGS`",
            );
            obtain::online(cx, &src, &fetcher)
        }),
    };
    let release = match result {
        Ok(r) => r,
        Err(e) => return fail(e.exit(), format!("{e}\nnothing was run")),
    };
    if let Err(e) = release.record(&mut state) {
        return fail(Exit::Prerequisite, format!("{e}\nnothing was run"));
    }
    eprintln!(
        "vikunja-bootstrap: verified vikunja-installer {} (channel {}, serial {}, key {})",
        release.version, release.channel, release.serial, release.key_id
    );
    match handoff::run(&dir.path, &release, &cli.installer_args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fail(Exit::Error, e),
    }
}

fn pinned_version(cli: &cli::Cli) -> Result<Option<Version>, ObtainError> {
    if cli.pin.is_some() {
        return Ok(cli.pin.clone());
    }
    match std::env::var("VIKUNJA_INSTALLER_VERSION") {
        Ok(v) if !v.is_empty() => Version::parse(v.trim_start_matches('v'))
            .map(Some)
            .map_err(|e| ObtainError::Usage(format!("VIKUNJA_INSTALLER_VERSION: {e}"))),
        _ => Ok(None),
    }
}
