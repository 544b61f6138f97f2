//! `cargo xtask dist`: builds the static release binaries with the trusted key, version and channel
//! compiled in (the bootstrap with musl and a size-built std, the installer with static glibc),
//! then assembles and signs every release asset.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use argh::FromArgs;
use manifests::{build_info::TARGET, Version};
use release::{Inputs, ReleaseSpec, SigningKey};

/// Build, assemble and sign a release into a directory.
#[derive(FromArgs, Debug, Clone)]
#[argh(subcommand, name = "dist")]
pub struct Dist {
    /// output directory for the release assets
    #[argh(option)]
    pub out: PathBuf,
    /// minisign secret key; without it a throw-away pair is made (or reused) in OUT/keys/
    #[argh(option)]
    pub key: Option<PathBuf>,
    /// release version (default: the workspace version)
    #[argh(option)]
    pub version: Option<String>,
    /// release channel (default: stable)
    #[argh(option, default = "String::from(\"stable\")")]
    pub channel: String,
    /// manifest serial (default: the publish time in seconds, which only grows)
    #[argh(option)]
    pub serial: Option<u64>,
    /// days until the manifest expires (default 180)
    #[argh(option, default = "180")]
    pub expires_days: i64,
    /// oldest bootstrap/installer that can read this release (default 0.1.0: manifest format 1)
    #[argh(option, default = "String::from(\"0.1.0\")")]
    pub min_bootstrap_version: String,
    /// extra public keys to trust besides the signing key (base64, comma separated): the next key, for rotation
    #[argh(option)]
    pub next_keys: Option<String>,
    /// the GitHub owner compiled into install.sh and the bootstrap
    #[argh(option, default = "String::from(\"vikunja-pve\")")]
    pub owner: String,
    /// the GitHub repository compiled into install.sh and the bootstrap
    #[argh(option, default = "String::from(\"vikunja-pve\")")]
    pub repo: String,
    /// base URL compiled into install.sh
    #[argh(option, default = "String::from(\"https://github.com\")")]
    pub base_url: String,
    /// extra file to ship in the bundle under lib/ (repeatable; the benchmark pads bundles with it)
    #[argh(option)]
    pub extra_lib: Vec<PathBuf>,
}

/// The bootstrap's toolchain: the distribution's own Rust (`rustc-web`, `cargo-web`, with the
/// standard library's source in `rust-web-src`) so std is rebuilt for size with build-std, and
/// musl (`musl-tools`) so the binary is static without glibc's NSS. Pinned: a different compiler
/// is refused, because the release must be rebuildable bit for bit from these recorded inputs.
pub mod musl {
    /// Debian's rustc, not rustup's proxy, which may come first on PATH.
    pub const RUSTC: &str = "/usr/bin/rustc";
    pub const CARGO: &str = "/usr/bin/cargo";
    /// `rustc -V` must start with this (bookworm's rustc-web 1.96.0+dfsg1-1~deb12u2).
    pub const RUSTC_VERSION: &str = "rustc 1.96.0 ";
    pub const TARGET: &str = "x86_64-unknown-linux-musl";
    /// The musl std links `-lunwind` statically in every configuration. LLVM's libunwind from the
    /// distribution is what rustup's musl target ships too; under immediate-abort nothing unwinds,
    /// so the linker takes no member of it (0 bytes) but the link is an honest one.
    pub const LIBUNWIND_DIR: &str = "/usr/lib/llvm-22/lib";
    /// `-Cpanic=immediate-abort`: a panic is an abort without message formatting (the bootstrap
    /// reports every error itself and never panics on input). Nothing unwinds then, so no unwind
    /// tables either (`force-unwind-tables=no`, and [`CFLAGS`] for the C in ring): they were
    /// 170 KB of .eh_frame. The default relocation model (PIC) with crt-static makes rustc link a
    /// static-pie: ASLR is kept.
    pub const RUSTFLAGS: &str = "-Zunstable-options -Cpanic=immediate-abort -Cforce-unwind-tables=no \
        -Ctarget-feature=+crt-static -Clink-self-contained=no";
    pub const CFLAGS: &str = "-fno-asynchronous-unwind-tables -fno-unwind-tables";
    /// gcc specs for linking against musl: Debian's musl-gcc.specs, plus what it lacks for
    /// `-static-pie` (musl's rcrt1.o, which relocates the binary itself, and no dynamic loader).
    /// musl-gcc's own specs always name `/lib/ld-musl-x86_64.so.1`, which makes a PIE dynamic.
    pub const SPECS: &str = "%rename cpp_options old_cpp_options

*cpp_options:
-nostdinc -isystem /usr/include/x86_64-linux-musl -isystem include%s %(old_cpp_options)

*cc1:
%(cc1_cpu) -nostdinc -isystem /usr/include/x86_64-linux-musl -isystem include%s

*link_libgcc:
-L/usr/lib/x86_64-linux-musl -L .%s

*libgcc:
libgcc.a%s %:if-exists(libgcc_eh.a%s)

*startfile:
%{static-pie: /usr/lib/x86_64-linux-musl/rcrt1.o; !shared: /usr/lib/x86_64-linux-musl/Scrt1.o} /usr/lib/x86_64-linux-musl/crti.o crtbeginS.o%s

*endfile:
crtendS.o%s /usr/lib/x86_64-linux-musl/crtn.o

*link:
%{!static-pie:-dynamic-linker /lib/ld-musl-x86_64.so.1} -nostdlib %{static-pie:-static -pie --no-dynamic-linker -z text} %{shared:-shared} %{static:-static} %{rdynamic:-export-dynamic}

";
    /// What the build needs, as (file, Debian package) for prereq::ensure.
    pub const PACKAGES: &[(&str, &str)] = &[
        ("/usr/bin/rustc", "rustc-web"),
        ("/usr/bin/cargo", "cargo-web"),
        ("/usr/lib/rustlib/src/rust/library/std/Cargo.toml", "rust-web-src"),
        ("/usr/bin/musl-gcc", "musl-tools"),
        ("/usr/lib/x86_64-linux-musl/rcrt1.o", "musl-dev"),
        ("/usr/lib/llvm-22/lib/libunwind.a", "libunwind-22-dev"),
    ];
}

/// Compile-time inputs of both binaries.
pub struct BuildEnv<'a> {
    pub trusted_keys: &'a str,
    pub version: &'a str,
    pub channel: &'a str,
    pub owner: &'a str,
    pub repo: &'a str,
}

impl BuildEnv<'_> {
    fn apply(&self, c: &mut Command) {
        c.env("VIKUNJA_TRUSTED_KEYS", self.trusted_keys)
            .env("VIKUNJA_RELEASE_VERSION", self.version)
            .env("VIKUNJA_RELEASE_CHANNEL", self.channel)
            .env("VIKUNJA_DEFAULT_OWNER", self.owner)
            .env("VIKUNJA_DEFAULT_REPO", self.repo)
            .env_remove("CARGO_ENCODED_RUSTFLAGS");
    }
}

fn run_build(mut c: Command, what: &str) -> Result<()> {
    let status = c.status().with_context(|| format!("run cargo build ({what})"))?;
    if !status.success() {
        bail!("cargo build of {what} failed");
    }
    Ok(())
}

/// `cargo build --release` of `packages` as static glibc (static-pie) binaries with rustup's
/// toolchain, in `target_dir`; returns the directory the binaries are in.
pub fn build_glibc(root: &Path, target_dir: &Path, packages: &[&str], env: &BuildEnv) -> Result<PathBuf> {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root).args(["build", "--release", "--locked", "--target", TARGET]);
    for p in packages {
        c.args(["-p", p]);
    }
    c.env("CARGO_TARGET_DIR", target_dir)
        // With --target, RUSTFLAGS reach only the target binaries, not build scripts or proc macros.
        .env("RUSTFLAGS", "-C target-feature=+crt-static -C link-arg=-Wl,--icf=all");
    env.apply(&mut c);
    run_build(c, &packages.join(", "))?;
    Ok(target_dir.join(TARGET).join("release"))
}

/// The bootstrap as a static musl binary with std rebuilt for size (see [`musl`]), in
/// `target_dir`. The linker also writes `bootstrap.map` there, which the benchmark reads to size
/// the parts of the binary. Returns the binary.
pub fn build_musl_bootstrap(root: &Path, target_dir: &Path, env: &BuildEnv) -> Result<PathBuf> {
    crate::prereq::ensure(musl::PACKAGES)?;
    let v = Command::new(musl::RUSTC).arg("-V").output().with_context(|| format!("run {} -V", musl::RUSTC))?;
    let v = String::from_utf8_lossy(&v.stdout);
    if !v.starts_with(musl::RUSTC_VERSION) {
        bail!(
            "the bootstrap is built with the pinned {}(Debian's rustc-web), but {} is {}; install that \
             version (apt-get install rustc-web cargo-web rust-web-src) or update the pin in xtask/src/dist.rs",
            musl::RUSTC_VERSION,
            musl::RUSTC,
            v.trim()
        );
    }
    let map = target_dir.join("bootstrap.map");
    std::fs::create_dir_all(target_dir).with_context(|| format!("create {}", target_dir.display()))?;
    let specs = target_dir.join("musl-static-pie.specs");
    std::fs::write(&specs, musl::SPECS).with_context(|| format!("write {}", specs.display()))?;
    let mut c = Command::new(musl::CARGO);
    c.current_dir(root)
        .args(["build", "--release", "--locked", "--target", musl::TARGET, "-p", "vikunja-bootstrap"])
        .args(["-Zbuild-std=std,panic_abort"])
        .env("CARGO_TARGET_DIR", target_dir)
        .env("RUSTC", musl::RUSTC)
        .env_remove("RUSTC_WRAPPER")
        // Lets the distribution's stable compiler take -Z flags; the compiler is pinned above.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CC_x86_64_unknown_linux_musl", "musl-gcc")
        .env("CFLAGS_x86_64_unknown_linux_musl", musl::CFLAGS)
        .env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER", "gcc")
        .env(
            "RUSTFLAGS",
            format!(
                "{} -L{} -Clink-arg=-specs={} -Clink-arg=-Wl,-Map={}",
                musl::RUSTFLAGS,
                musl::LIBUNWIND_DIR,
                specs.display(),
                map.display()
            ),
        );
    env.apply(&mut c);
    run_build(c, "the musl bootstrap")?;
    Ok(target_dir.join(musl::TARGET).join("release/vikunja-bootstrap"))
}

pub struct Built {
    pub bootstrap: PathBuf,
    pub installer: PathBuf,
}

/// The release binaries: the bootstrap static musl, the installer static glibc, each in a target
/// dir of its own so the static flags and compiled-in keys never invalidate the normal build.
pub fn build_static(root: &Path, env: &BuildEnv) -> Result<Built> {
    let bin = build_glibc(root, &root.join("target/dist").join(env.version), &["vikunja-installer"], env)?;
    let bootstrap = build_musl_bootstrap(root, &root.join("target/dist-musl").join(env.version), env)?;
    let built = Built { bootstrap, installer: bin.join("vikunja-installer") };
    for b in [&built.bootstrap, &built.installer] {
        assert_static(b)?;
    }
    Ok(built)
}

/// `file` must call the binary statically linked: a dynamic one would not start on older hosts.
fn assert_static(bin: &Path) -> Result<()> {
    let out = Command::new("file").arg("-b").arg(bin).output().context("run `file` (apt-get install -y file)")?;
    let desc = String::from_utf8_lossy(&out.stdout);
    if !desc.contains("statically linked") && !desc.contains("static-pie linked") {
        bail!("{} is not statically linked: {desc}", bin.display());
    }
    Ok(())
}

pub fn run(root: &Path, d: &Dist) -> Result<release::ReleaseSpec> {
    let key = match &d.key {
        Some(k) => SigningKey::load(k)?,
        None => SigningKey::throwaway_in(&d.out.join("keys"))?,
    };
    let version = d.version.clone().unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string());
    let version = Version::parse(&version)?;
    let mut trusted = key.public_b64();
    if let Some(next) = &d.next_keys {
        trusted = format!("{trusted},{next}");
    }
    manifests::Keyring::from_list(&trusted).context("--next-keys")?;
    let version_s = version.to_string();
    let env =
        BuildEnv { trusted_keys: &trusted, version: &version_s, channel: &d.channel, owner: &d.owner, repo: &d.repo };
    let built = build_static(root, &env)?;
    let published = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => s.parse().context("SOURCE_DATE_EPOCH must be seconds since 1970")?,
        Err(_) => manifests::time::now_unix(),
    };
    let spec = ReleaseSpec {
        version: version.clone(),
        channel: d.channel.clone(),
        serial: d.serial.unwrap_or(published as u64),
        published,
        expires: published + d.expires_days * 86400,
        min_bootstrap_version: Version::parse(&d.min_bootstrap_version)?,
        target: TARGET.to_string(),
        base_url: d.base_url.clone(),
        owner: d.owner.clone(),
        repo: d.repo.clone(),
    };
    let mut extra = Vec::new();
    let templates = root.join("installer/templates");
    if templates.is_dir() {
        extra.extend(release::files_under(&templates, "templates")?);
    }
    for f in &d.extra_lib {
        let name = f.file_name().and_then(|n| n.to_str()).context("--extra-lib needs a file name")?;
        extra.push(release::BundleFile { dest: format!("lib/{name}"), source: f.clone() });
    }
    let assets = d.out.clone();
    release::assemble(&spec, Inputs { bootstrap: built.bootstrap, installer: built.installer, extra }, &key, &assets)?;
    eprintln!("dist: release {} (serial {}) written to {}", spec.version, spec.serial, assets.display());
    Ok(spec)
}
