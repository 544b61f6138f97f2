//! A throwaway certificate authority, so the release server can speak real
//! HTTPS and clients verify it exactly as they verify GitHub, without touching
//! the host's trust store.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::run_checked;

/// Extensions of the leaf certificate. IP SANs matter: clients connect to
/// `https://127.0.0.1:PORT`, and hostname checks fail without them.
const LEAF_EXT: &str = "basicConstraints=critical,CA:FALSE\n\
keyUsage=critical,digitalSignature\n\
extendedKeyUsage=serverAuth\n\
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n";

/// Paths of a test CA and of one server certificate it issued.
///
/// Tests hand `ca_pem` to clients (`curl --cacert`, `CURL_CA_BUNDLE`, a chroot's
/// trust store); nginx uses `leaf_pem` / `leaf_key`.
#[derive(Debug, Clone)]
pub struct TestCa {
    /// Directory holding all files below (plus the CA key and the CSR).
    pub dir: PathBuf,
    /// The self-signed CA certificate clients must trust.
    pub ca_pem: PathBuf,
    /// Server certificate for `localhost`, `127.0.0.1` and `::1`.
    pub leaf_pem: PathBuf,
    /// Unencrypted private key of `leaf_pem`.
    pub leaf_key: PathBuf,
}

impl TestCa {
    /// Creates an EC P-256 CA and a leaf certificate in `dir` with the
    /// `openssl` CLI, valid for 2 days so a leaked file is useless soon.
    ///
    /// The CLI (rather than a Rust crate) keeps the harness std-only and mirrors
    /// the commands measured in the shared test-harness reference.
    pub fn create(dir: &Path) -> Result<TestCa> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let openssl = |args: &[&str]| {
            let mut cmd = Command::new("openssl");
            cmd.args(args).current_dir(dir);
            run_checked(&mut cmd).map_err(|e| {
                if which_openssl_missing() {
                    e.context("openssl not found: install it with `apt-get install -y openssl`")
                } else {
                    e
                }
            })
        };

        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=vikunja-e2e test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ])?;
        let ext = dir.join("leaf.ext");
        std::fs::write(&ext, LEAF_EXT).with_context(|| format!("writing {}", ext.display()))?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ])?;

        Ok(TestCa {
            dir: dir.to_path_buf(),
            ca_pem: dir.join("ca.pem"),
            leaf_pem: dir.join("leaf.pem"),
            leaf_key: dir.join("leaf.key"),
        })
    }
}

/// Same as [`TestCa::create`], for callers that read better as `ca::create(dir)`.
pub fn create(dir: &Path) -> Result<TestCa> {
    TestCa::create(dir)
}

/// Distinguishes "openssl is not installed" from "openssl rejected the
/// arguments", so the error tells the reader what to fix.
fn which_openssl_missing() -> bool {
    Command::new("openssl").arg("version").output().map(|o| !o.status.success()).unwrap_or(true)
}
