//! Signing keys in the minisign text formats: generating a throw-away pair, loading a secret key
//! (unencrypted, or password-protected as the minisign CLI writes them), and signing.

use std::io::Read;
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKey, SecretKey, SecretKeyBox};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("signing failed: {0}")]
    Sign(String),
}

pub struct SigningKey {
    pub public: PublicKey,
    secret: SecretKey,
}

pub const PUBLIC_NAME: &str = "minisign.pub";
pub const SECRET_NAME: &str = "minisign.key";

impl SigningKey {
    /// The base64 public key, as compiled into the binaries (`VIKUNJA_TRUSTED_KEYS`).
    pub fn public_b64(&self) -> String {
        self.public.to_base64()
    }

    /// Loads the pair in `dir`, or generates a throw-away one there, so repeated test builds sign
    /// with one key.
    pub fn throwaway_in(dir: &Path) -> Result<SigningKey, KeyError> {
        let sk_path = dir.join(SECRET_NAME);
        if sk_path.exists() {
            return SigningKey::load(&sk_path);
        }
        SigningKey::generate_in(dir, "vikunja-pve throw-away test key: never use for a real release")
    }

    /// Generates an unencrypted key pair into `dir` (`minisign.pub`, and `minisign.key` with mode 0600).
    pub fn generate_in(dir: &Path, comment: &str) -> Result<SigningKey, KeyError> {
        let sk_path = dir.join(SECRET_NAME);
        let file_err = |why: String| KeyError::File { path: dir.to_path_buf(), why };
        std::fs::create_dir_all(dir).map_err(|e| file_err(e.to_string()))?;
        let kp = KeyPair::generate_unencrypted_keypair().map_err(|e| file_err(e.to_string()))?;
        let pk_box = kp.pk.to_box().map_err(|e| file_err(e.to_string()))?.to_string();
        let sk_box = kp.sk.to_box(Some(comment)).map_err(|e| file_err(e.to_string()))?.to_string();
        manifests::atomic::write_atomic(&dir.join(PUBLIC_NAME), pk_box.as_bytes(), 0o644)
            .map_err(|e| file_err(e.to_string()))?;
        manifests::atomic::write_atomic(&sk_path, sk_box.as_bytes(), 0o600).map_err(|e| file_err(e.to_string()))?;
        Ok(SigningKey { public: kp.pk, secret: kp.sk })
    }

    /// Loads a secret key file. An encrypted key takes its password from
    /// `VIKUNJA_SIGNING_PASSWORD`, or asks on the terminal.
    pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
        let err = |why: String| KeyError::File { path: path.to_path_buf(), why };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let sk_box = || SecretKeyBox::from_string(&text).map_err(|e| err(format!("not a minisign secret key: {e}")));
        let secret = match SecretKey::from_unencrypted_box(sk_box()?) {
            Ok(sk) => sk,
            Err(_) => {
                let password = std::env::var("VIKUNJA_SIGNING_PASSWORD").ok();
                SecretKey::from_box(sk_box()?, password)
                    .map_err(|e| err(format!("cannot decrypt (wrong VIKUNJA_SIGNING_PASSWORD?): {e}")))?
            }
        };
        let public =
            PublicKey::from_secret_key(&secret).map_err(|e| err(format!("cannot derive the public key: {e}")))?;
        Ok(SigningKey { public, secret })
    }

    /// A prehashed (`ED`) signature in minisign's text format.
    pub fn sign(&self, data: impl Read, trusted_comment: &str) -> Result<String, KeyError> {
        minisign::sign(
            Some(&self.public),
            &self.secret,
            data,
            Some(trusted_comment),
            Some("signature from vikunja-pve release key"),
        )
        .map(|b| b.to_string())
        .map_err(|e| KeyError::Sign(e.to_string()))
    }
}
