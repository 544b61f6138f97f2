//! The certificate nginx serves: the user's, or a self-signed one for the domain made once and kept
//! (a new one on every run would make browsers complain again each time).

use std::io;
use std::path::PathBuf;

use manifests::atomic::write_atomic;

use crate::config::Deployment;
use crate::layout::Layout;

pub struct CertPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub self_signed: bool,
}

pub fn ensure(l: &Layout, d: &Deployment) -> io::Result<(CertPaths, bool)> {
    if let (Some(cert), Some(key)) = (&d.ssl.cert_path, &d.ssl.key_path) {
        return Ok((CertPaths { cert: cert.clone(), key: key.clone(), self_signed: false }, false));
    }
    let cert = l.ssl_dir().join("cert.pem");
    let key = l.ssl_dir().join("key.pem");
    let paths = CertPaths { cert: cert.clone(), key: key.clone(), self_signed: true };
    if cert.is_file() && key.is_file() {
        return Ok((paths, false));
    }
    let names = vec![d.network.domain.clone(), "localhost".to_string()];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| io::Error::other(format!("self-signed certificate: {e}")))?;
    write_atomic(&key, made.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_atomic(&cert, made.cert.pem().as_bytes(), 0o644)?;
    Ok((paths, true))
}
