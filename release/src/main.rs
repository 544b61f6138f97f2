//! `vikunja-release`: key generation and signing for release managers, outside of `cargo xtask`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use argh::FromArgs;

/// vikunja-pve release tool.
#[derive(FromArgs)]
struct Cli {
    #[argh(subcommand)]
    cmd: Cmd,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Keygen(Keygen),
    PublicKey(PublicKeyCmd),
}

/// Generate an unencrypted minisign key pair (minisign.pub, minisign.key) in DIR. Keep the secret
/// key offline; encrypt it with `minisign -C` if it is stored anywhere.
#[derive(FromArgs)]
#[argh(subcommand, name = "keygen")]
struct Keygen {
    /// output directory
    #[argh(option)]
    out: PathBuf,
}

/// Print the base64 public key of a secret key file, for VIKUNJA_TRUSTED_KEYS.
#[derive(FromArgs)]
#[argh(subcommand, name = "public-key")]
struct PublicKeyCmd {
    /// minisign secret key file
    #[argh(option)]
    key: PathBuf,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = match Cli::from_args(&argv[..1], &argv[1..]) {
        Ok(c) => c,
        Err(e) => {
            let ok = e.status.is_ok();
            if ok {
                println!("{}", e.output)
            } else {
                eprintln!("{}", e.output)
            }
            return ExitCode::from(if ok { 0 } else { 2 });
        }
    };
    let result = match cli.cmd {
        Cmd::Keygen(k) => {
            if k.out.join(release::signing::SECRET_NAME).exists() {
                eprintln!("error: {} already holds a key; refusing to overwrite it", k.out.display());
                return ExitCode::from(1);
            }
            release::SigningKey::generate_in(&k.out, "vikunja-pve release key")
                .map(|key| println!("{}", key.public_b64()))
                .context("keygen")
        }
        Cmd::PublicKey(p) => {
            release::SigningKey::load(&p.key).map(|k| println!("{}", k.public_b64())).context("public-key")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
