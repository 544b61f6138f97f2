//! Command line of the bootstrap, parsed by hand: an argument parser would cost the size budget more
//! than these few flags are worth.

use std::ffi::OsString;
use std::path::PathBuf;

use manifests::Version;

pub const USAGE: &str = "\
vikunja-bootstrap: verify a signed vikunja-pve release and hand off to its installer

Usage: vikunja-bootstrap [OPTIONS] [-- INSTALLER ARGUMENTS...]

Options:
  --version VERSION   install this release instead of the latest (env VIKUNJA_INSTALLER_VERSION)
  --base-url URL      download from this mirror instead of https://github.com (env VIKUNJA_INSTALLER_BASE_URL)
  --bundle FILE       air-gapped: use this bundle, checked against FILE.minisig (and release.toml beside it, if present)
  --signature FILE    the bundle's signature, when it is not FILE.minisig
  --channel NAME      accept releases of channel NAME (e.g. beta) instead of this bootstrap's own channel
  --allow-expired     with --bundle only: accept a release past its expiry date (the freeze check is waived)
  --keep-temp         keep the unpacked bundle directory after the installer exits
  -V, --version       print the bootstrap's version (when --version has no value)
  -h, --help          print this help

Environment: VIKUNJA_GITHUB_OWNER, VIKUNJA_GITHUB_REPO, HTTPS_PROXY, NO_PROXY, SSL_CERT_FILE, TMPDIR,
VIKUNJA_STATE_DIR (where the highest accepted release serial is kept).

Exit codes: 0 ok, 1 error, 2 usage, 3 verification failed, 4 prerequisite missing, 6 download failed,
130 interrupted; otherwise the installer's own exit code.";

#[derive(Debug, Default, PartialEq)]
pub struct Cli {
    pub pin: Option<Version>,
    pub base_url: Option<String>,
    pub bundle: Option<PathBuf>,
    pub signature: Option<PathBuf>,
    pub channel: Option<String>,
    pub allow_expired: bool,
    pub keep_temp: bool,
    pub installer_args: Vec<OsString>,
}

pub enum Parsed {
    Run(Cli),
    Help,
    PrintVersion,
}

pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Parsed, String> {
    let mut cli = Cli::default();
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        let Some(a) = arg.to_str() else { return Err(format!("unexpected argument {arg:?}")) };
        let mut value = |flag: &str| -> Result<OsString, String> {
            it.next().filter(|v| !v.to_string_lossy().starts_with("--")).ok_or(format!("{flag} needs a value"))
        };
        match a {
            "--" => {
                cli.installer_args = it.collect();
                break;
            }
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" => return Ok(Parsed::PrintVersion),
            "--version" => match it.peek().map(|v| v.to_string_lossy().into_owned()) {
                Some(v) if !v.starts_with('-') => {
                    it.next();
                    cli.pin = Some(Version::parse(v.trim_start_matches('v')).map_err(|e| e.to_string())?);
                }
                _ => return Ok(Parsed::PrintVersion),
            },
            "--base-url" => cli.base_url = Some(value(a)?.to_string_lossy().into_owned()),
            "--bundle" => cli.bundle = Some(value(a)?.into()),
            "--signature" => cli.signature = Some(value(a)?.into()),
            "--channel" => {
                let c = value(a)?.to_string_lossy().into_owned();
                if !manifests::manifest::is_safe_name(&c) {
                    return Err(format!("--channel {c:?}: a channel name is letters, digits, '.', '_', '-' or '+'"));
                }
                cli.channel = Some(c);
            }
            "--allow-expired" => cli.allow_expired = true,
            "--keep-temp" => cli.keep_temp = true,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; installer arguments go after `--` (vikunja-bootstrap -- {other})"
                ))
            }
        }
    }
    if cli.allow_expired && cli.bundle.is_none() {
        return Err(
            "--allow-expired is only for air-gapped installs with --bundle FILE; online releases must be fresh".into(),
        );
    }
    if cli.signature.is_some() && cli.bundle.is_none() {
        return Err("--signature goes with --bundle FILE".into());
    }
    Ok(Parsed::Run(cli))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Cli, String> {
        match parse(args.iter().map(OsString::from))? {
            Parsed::Run(c) => Ok(c),
            _ => Err("not a run".into()),
        }
    }

    #[test]
    fn passes_everything_after_the_separator_through() {
        let c = run(&["--version", "v1.2.3", "--", "install", "--yes", "--version"]).unwrap();
        assert_eq!(c.pin, Some(Version::parse("1.2.3").unwrap()));
        assert_eq!(c.installer_args, ["install", "--yes", "--version"].map(OsString::from));
    }

    #[test]
    fn version_without_value_prints_our_version() {
        assert!(matches!(parse(["--version".into()]), Ok(Parsed::PrintVersion)));
        assert!(matches!(parse(["--version".into(), "--".into()]), Ok(Parsed::PrintVersion)));
    }

    #[test]
    fn refuses_expiry_waiver_online_and_unknown_flags() {
        assert!(run(&["--allow-expired"]).unwrap_err().contains("air-gapped"));
        assert!(run(&["--yes"]).unwrap_err().contains("after `--`"));
        assert!(run(&["--version", "1.2"]).is_err());
    }

    #[test]
    fn channel_takes_a_safe_name() {
        assert_eq!(run(&["--channel", "beta"]).unwrap().channel.as_deref(), Some("beta"));
        assert!(run(&["--channel", "../beta"]).unwrap_err().contains("--channel"));
        assert!(run(&["--channel"]).unwrap_err().contains("needs a value"));
    }
}
