//! Backup encryption with age (<https://age-encryption.org/v1>): an authenticated format, so a
//! flipped bit, a truncated file or a wrong passphrase is an error and never a silently damaged
//! restore (the seed's AES-256-CBC had no authentication). A passphrase goes through scrypt; X25519
//! recipient keys (`age1…`) let a backup be written without any secret on the machine. Files are
//! readable with the `age`/`rage` command-line tools too (`age -d FILE | tar xz`).

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use age::secrecy::{ExposeSecret, SecretString};

/// The environment variable a passphrase may come from (after `--passphrase-file`).
pub const PASSPHRASE_ENV: &str = "VIKUNJA_BACKUP_PASSPHRASE";

/// What every age file starts with.
const MAGIC: &[u8] = b"age-encryption.org/";

#[derive(Debug, thiserror::Error)]
pub enum CryptError {
    #[error("no passphrase: give --passphrase-file FILE, set {PASSPHRASE_ENV}, or run on a terminal to be asked")]
    NoPassphrase,
    #[error("the passphrase is empty; choose one (it is needed to restore the backup)")]
    EmptyPassphrase,
    #[error("the two passphrases differ; run the command again")]
    Mismatch,
    #[error("cannot read the passphrase from {path}: {source}")]
    PassphraseFile { path: PathBuf, source: io::Error },
    #[error("reading the passphrase from the terminal failed: {0}")]
    Terminal(io::Error),
    #[error("{key:?} is not an age X25519 recipient (age1…): {why}")]
    BadRecipient { key: String, why: &'static str },
    #[error("cannot read identities from {path}: {why}; give a file with AGE-SECRET-KEY-1… lines")]
    BadIdentity { path: PathBuf, why: String },
    #[error(
        "the backup is encrypted to a passphrase: give it with --passphrase-file, {PASSPHRASE_ENV} or on the terminal"
    )]
    NeedPassphrase,
    #[error("the backup is encrypted to recipient keys: give the matching key file with --identity FILE")]
    NeedIdentity,
    #[error("wrong passphrase or key: it does not decrypt this backup")]
    WrongKey,
    #[error("the backup's encryption header is damaged or not age: {0}")]
    BadHeader(String),
    #[error("encryption failed: {0}")]
    Encrypt(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// How a backup is encrypted.
pub enum Seal {
    Passphrase(SecretString),
    Recipients(Vec<age::x25519::Recipient>),
}

/// What may open an encrypted backup; asked for only when the file is encrypted.
#[derive(Debug, Default, Clone)]
pub struct Unlock {
    pub passphrase_file: Option<PathBuf>,
    pub identity: Option<PathBuf>,
    /// Where a passphrase may be typed (the command's adapter gives `ui::secret`); None: nowhere.
    pub ask: Option<Ask>,
}

/// Asks for a secret on the terminal without echo: None when there is no terminal to ask on.
pub type Ask = fn(&str) -> Option<io::Result<String>>;

/// The passphrase from `--passphrase-file`, the environment or (with `confirm`, twice) `ask`.
pub fn passphrase(file: Option<&Path>, confirm: bool, ask: Option<Ask>) -> Result<SecretString, CryptError> {
    let text = if let Some(path) = file {
        let mut s = String::new();
        std::fs::File::open(path)
            .and_then(|f| io::BufReader::new(f).read_line(&mut s))
            .map_err(|source| CryptError::PassphraseFile { path: path.to_path_buf(), source })?;
        s.trim_end_matches(['\r', '\n']).to_string()
    } else if let Ok(v) = std::env::var(PASSPHRASE_ENV) {
        v
    } else if let Some(first) = ask.and_then(|a| a("Backup passphrase: ")) {
        let first = first.map_err(CryptError::Terminal)?;
        if confirm {
            let again = ask
                .and_then(|a| a("Repeat the passphrase: "))
                .unwrap_or_else(|| Err(io::ErrorKind::UnexpectedEof.into()))
                .map_err(CryptError::Terminal)?;
            if again != first {
                return Err(CryptError::Mismatch);
            }
        }
        first
    } else {
        return Err(CryptError::NoPassphrase);
    };
    if text.is_empty() {
        return Err(CryptError::EmptyPassphrase);
    }
    Ok(SecretString::from(text))
}

pub fn recipients(keys: &[String]) -> Result<Vec<age::x25519::Recipient>, CryptError> {
    keys.iter().map(|k| k.trim().parse().map_err(|why| CryptError::BadRecipient { key: k.clone(), why })).collect()
}

/// Whether a file starting with `prefix` is age-encrypted.
pub fn is_encrypted(prefix: &[u8]) -> bool {
    prefix.starts_with(MAGIC)
}

/// scrypt's cost for a passphrase: N = 2^15, 32 MiB of memory and about 0.1 s. age would calibrate
/// to about 1 s, which here means N = 2^18 and 256 MiB: four times the memory a backup may take on
/// a small container (and needed again to restore). Use a passphrase of several random words, or
/// recipient keys, which need no key derivation at all.
const SCRYPT_LOG_N: u8 = 15;

pub fn encrypt<W: Write>(w: W, seal: &Seal) -> Result<age::stream::StreamWriter<W>, CryptError> {
    let enc = match seal {
        Seal::Passphrase(p) => {
            let mut r = age::scrypt::Recipient::new(p.clone());
            r.set_work_factor(SCRYPT_LOG_N);
            age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
        }
        Seal::Recipients(r) => age::Encryptor::with_recipients(r.iter().map(|r| r as &dyn age::Recipient)),
    }
    .map_err(|e| CryptError::Encrypt(e.to_string()))?;
    Ok(enc.wrap_output(w)?)
}

fn identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>, CryptError> {
    let bad = |why: String| CryptError::BadIdentity { path: path.to_path_buf(), why };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let ids: Vec<Box<dyn age::Identity>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.parse::<age::x25519::Identity>().map(|i| Box::new(i) as Box<dyn age::Identity>))
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if ids.is_empty() {
        return Err(bad("it holds no key".into()));
    }
    Ok(ids)
}

/// A reader of the plaintext. Authentication is checked chunk by chunk (64 KiB); the end of the
/// stream is authenticated too, so a truncated file fails at its end.
pub fn decrypt<R: BufRead>(r: R, unlock: &Unlock) -> Result<age::stream::StreamReader<R>, CryptError> {
    let d = age::Decryptor::new_buffered(r).map_err(|e| match e {
        age::DecryptError::Io(e) => CryptError::Io(e),
        other => CryptError::BadHeader(other.to_string()),
    })?;
    let ids: Vec<Box<dyn age::Identity>> = if d.is_scrypt() {
        if unlock.identity.is_some() && unlock.passphrase_file.is_none() && std::env::var(PASSPHRASE_ENV).is_err() {
            return Err(CryptError::NeedPassphrase);
        }
        let p = passphrase(unlock.passphrase_file.as_deref(), false, unlock.ask).map_err(|e| match e {
            CryptError::NoPassphrase => CryptError::NeedPassphrase,
            other => other,
        })?;
        vec![Box::new(age::scrypt::Identity::new(p))]
    } else {
        match &unlock.identity {
            Some(path) => identities(path)?,
            None => return Err(CryptError::NeedIdentity),
        }
    };
    d.decrypt(ids.iter().map(|i| i.as_ref())).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys
        | age::DecryptError::DecryptionFailed
        | age::DecryptError::KeyDecryptionFailed => CryptError::WrongKey,
        age::DecryptError::Io(e) => CryptError::Io(e),
        other => CryptError::BadHeader(other.to_string()),
    })
}

/// For messages: never print a secret, but say where it came from.
pub fn describe(seal: &Seal) -> String {
    match seal {
        Seal::Passphrase(p) => format!("age, passphrase (scrypt), {} characters", p.expose_secret().chars().count()),
        Seal::Recipients(r) => format!("age, {} X25519 recipient key(s)", r.len()),
    }
}

/// Reads up to `n` bytes without consuming them from a buffered reader.
pub fn peek<R: BufRead>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let buf = r.fill_buf()?;
    Ok(buf[..buf.len().min(n)].to_vec())
}

/// Reads everything to the end (so trailers and the last authentication tag are checked).
pub fn drain(mut r: impl Read) -> io::Result<u64> {
    io::copy(&mut r, &mut io::sink())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_and_open(seal: &Seal, unlock: &Unlock) -> Result<Vec<u8>, CryptError> {
        let mut w = encrypt(Vec::new(), seal)?;
        w.write_all(b"attachment bytes").unwrap();
        let sealed = w.finish().unwrap();
        assert!(is_encrypted(&sealed));
        let mut out = Vec::new();
        decrypt(&sealed[..], unlock)?.read_to_end(&mut out).map_err(CryptError::Io)?;
        Ok(out)
    }

    #[test]
    fn a_recipient_key_seals_and_only_its_identity_opens() {
        let dir = std::env::temp_dir().join(format!("crypt-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let id = age::x25519::Identity::generate();
        let other = age::x25519::Identity::generate();
        let key = dir.join("key.txt");
        std::fs::write(&key, format!("# a comment\n{}\n", id.to_string().expose_secret())).unwrap();
        let wrong = dir.join("wrong.txt");
        std::fs::write(&wrong, format!("{}\n", other.to_string().expose_secret())).unwrap();
        let seal = Seal::Recipients(recipients(&[id.to_public().to_string()]).unwrap());
        let open = |p: &Path| Unlock { identity: Some(p.to_path_buf()), ..Unlock::default() };
        assert_eq!(seal_and_open(&seal, &open(&key)).unwrap(), b"attachment bytes");
        assert!(matches!(seal_and_open(&seal, &open(&wrong)), Err(CryptError::WrongKey)));
        assert!(matches!(seal_and_open(&seal, &Unlock::default()), Err(CryptError::NeedIdentity)));
        assert!(matches!(recipients(&["age1nope".into()]), Err(CryptError::BadRecipient { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_passphrase_file_opens_and_a_wrong_one_is_named() {
        let dir = std::env::temp_dir().join(format!("crypt-pass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (good, bad) = (dir.join("good"), dir.join("bad"));
        std::fs::write(&good, "s3cret\n").unwrap();
        std::fs::write(&bad, "other\n").unwrap();
        let seal = Seal::Passphrase(passphrase(Some(&good), false, None).unwrap());
        let open = |p: &Path| Unlock { passphrase_file: Some(p.to_path_buf()), ..Unlock::default() };
        assert_eq!(seal_and_open(&seal, &open(&good)).unwrap(), b"attachment bytes");
        assert!(matches!(seal_and_open(&seal, &open(&bad)), Err(CryptError::WrongKey)));
        std::fs::write(&bad, "\n").unwrap();
        assert!(matches!(passphrase(Some(&bad), false, None), Err(CryptError::EmptyPassphrase)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
