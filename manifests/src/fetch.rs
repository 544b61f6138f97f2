//! The HTTPS downloader shared by the bootstrap and the installer: HTTPS only (also on redirects),
//! webpki roots or the CA bundle in `SSL_CERT_FILE`, `HTTPS_PROXY`/`NO_PROXY` from the environment,
//! timeouts, retries with backoff on transient failures, hard size limits, and a progress line on
//! a terminal only.

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ureq::tls::{PemItem, RootCerts, TlsConfig};

use crate::exit::Exit;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("refusing plain-http URL {0}: releases are only fetched over HTTPS")]
    PlainHttp(String),
    #[error("{from} redirected to the plain-http URL {to}: refusing it, releases are only fetched over HTTPS; use a mirror that redirects to https:// only")]
    PlainHttpRedirect { from: String, to: String },
    #[error("{url}: server answered HTTP {code}{hint}")]
    Status { url: String, code: u16, hint: &'static str },
    #[error("{url}: {source}; check the network, the proxy settings (HTTPS_PROXY, NO_PROXY) and the CA bundle (SSL_CERT_FILE){}", offline_hint(offline))]
    Network { url: String, source: ureq::Error, offline: &'static str },
    #[error("{url}: larger than the {limit} byte limit; refusing it")]
    TooLarge { url: String, limit: u64 },
    #[error("SSL_CERT_FILE={path}: {why}")]
    CaFile { path: PathBuf, why: String },
    #[error("writing the download of {url}: {source}")]
    Write { url: String, source: io::Error },
    #[error("interrupted")]
    Interrupted,
}

/// What a program offers without network, in the words of its own options (each caller names its
/// own: the bootstrap's `--bundle`, `update --artifact`, ...), so no message suggests one that
/// does not exist where it is shown.
fn offline_hint(offline: &str) -> String {
    if offline.is_empty() {
        String::new()
    } else {
        format!("; with no network: {offline}")
    }
}

impl FetchError {
    pub fn exit(&self) -> Exit {
        match self {
            // Refusing endless data is a verification decision, like refusing a bad signature.
            FetchError::PlainHttp(_) | FetchError::PlainHttpRedirect { .. } | FetchError::TooLarge { .. } => {
                Exit::Verification
            }
            FetchError::CaFile { .. } => Exit::Prerequisite,
            FetchError::Interrupted => Exit::Interrupted,
            _ => Exit::Download,
        }
    }

    fn transient(&self) -> bool {
        match self {
            FetchError::Status { code, .. } => *code >= 500 || *code == 429 || *code == 408,
            FetchError::Network { source, .. } => !matches!(
                source,
                ureq::Error::RequireHttpsOnly(_)
                    | ureq::Error::BadUri(_)
                    | ureq::Error::Tls(_)
                    | ureq::Error::Rustls(_)
            ),
            _ => false,
        }
    }
}

pub struct Fetcher {
    agent: ureq::Agent,
    retries: u32,
    backoff: Duration,
    progress: bool,
    cancel: Option<&'static AtomicBool>,
    offline: &'static str,
}

fn roots_from_env() -> Result<RootCerts, FetchError> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()).map(PathBuf::from) else {
        return Ok(RootCerts::WebPki);
    };
    let err = |why: String| FetchError::CaFile { path: path.clone(), why };
    let pem = std::fs::read(&path).map_err(|e| err(format!("cannot read: {e}")))?;
    let certs: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// The TLS settings of every HTTPS client of ours: the built-in roots, or SSL_CERT_FILE's instead.
pub fn tls_config() -> Result<TlsConfig, FetchError> {
    Ok(TlsConfig::builder().root_certs(roots_from_env()?).build())
}

/// An HTTPS-only agent for JSON APIs (ACME): the same roots (`SSL_CERT_FILE` or webpki), name
/// resolution and timeouts as [`Fetcher`], but every status is handed back (an API's 4xx carries
/// its error document) and no redirect is followed (a 201's `Location` is data, not a hop).
pub fn api_agent(user_agent: &str) -> Result<ureq::Agent, FetchError> {
    let tls = tls_config()?;
    let config = ureq::Agent::config_builder()
        .https_only(true)
        .tls_config(tls)
        .user_agent(user_agent)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_response(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(30)))
        .timeout_global(Some(Duration::from_secs(120)))
        .build();
    Ok(ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        crate::resolve::StaticResolver::default(),
    ))
}

impl Fetcher {
    /// `user_agent` names the program; `cancel` lets a signal handler stop a download between reads.
    pub fn new(user_agent: &str, cancel: Option<&'static AtomicBool>) -> Result<Fetcher, FetchError> {
        // SSL_CERT_FILE replaces the built-in roots, as it does for OpenSSL and curl: corporate
        // bundles hold the public roots too, and a test CA must not be mixed with the public ones.
        let tls = tls_config()?;
        let config = ureq::Agent::config_builder()
            .https_only(true)
            .tls_config(tls)
            .user_agent(user_agent)
            .max_redirects(5)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(Duration::from_secs(30)))
            .timeout_global(Some(Duration::from_secs(1800)))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            ureq::unversioned::transport::DefaultConnector::default(),
            crate::resolve::StaticResolver::default(),
        );
        Ok(Fetcher {
            agent,
            retries: 3,
            backoff: Duration::from_millis(500),
            progress: io::stderr().is_terminal(),
            cancel,
            offline: "",
        })
    }

    /// How to do without the network what this fetcher is for, appended to network errors.
    pub fn offline(mut self, hint: &'static str) -> Fetcher {
        self.offline = hint;
        self
    }

    fn check_url(url: &str) -> Result<(), FetchError> {
        if url.starts_with("https://") {
            Ok(())
        } else {
            Err(FetchError::PlainHttp(url.to_string()))
        }
    }

    fn with_retries<T>(&self, url: &str, mut attempt: impl FnMut() -> Result<T, FetchError>) -> Result<T, FetchError> {
        Self::check_url(url)?;
        let mut delay = self.backoff;
        let mut tries = 0;
        loop {
            match attempt() {
                Err(e) if e.transient() && tries < self.retries => {
                    tries += 1;
                    eprintln!("warning: {e}; retrying in {} ms ({tries}/{})", delay.as_millis(), self.retries);
                    std::thread::sleep(delay);
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    fn get(&self, url: &str) -> Result<ureq::http::Response<ureq::Body>, FetchError> {
        self.agent.get(url).call().map_err(|source| match source {
            ureq::Error::StatusCode(code) => FetchError::Status {
                url: url.to_string(),
                code,
                hint: if code == 404 { " (not found: check the version, owner/repo and base URL)" } else { "" },
            },
            // ureq names the URL it refused: after a redirect that is the target, not `url`.
            ureq::Error::RequireHttpsOnly(to) => FetchError::PlainHttpRedirect { from: url.to_string(), to },
            source => FetchError::Network { url: url.to_string(), source, offline: self.offline },
        })
    }

    /// Fetches a small file (a manifest or a signature) whole, refusing more than `limit` bytes.
    pub fn get_small(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        self.with_retries(url, || {
            let mut resp = self.get(url)?;
            let mut out = Vec::new();
            // `take` rather than ureq's own limit: going over must read as TooLarge, not as a network error.
            resp.body_mut().as_reader().take(limit + 1).read_to_end(&mut out).map_err(|e| FetchError::Network {
                url: url.to_string(),
                source: ureq::Error::Io(e),
                offline: self.offline,
            })?;
            if out.len() as u64 > limit {
                return Err(FetchError::TooLarge { url: url.to_string(), limit });
            }
            Ok(out)
        })
    }

    /// Streams `url` into `sink` (rewound and truncated before each retry), reading at most
    /// `limit` bytes. Returns the byte count.
    pub fn download(&self, url: &str, limit: u64, label: &str, sink: &mut std::fs::File) -> Result<u64, FetchError> {
        use std::io::Seek;
        self.with_retries(url, || {
            let werr = |source| FetchError::Write { url: url.to_string(), source };
            sink.set_len(0).map_err(werr)?;
            sink.rewind().map_err(werr)?;
            let mut resp = self.get(url)?;
            let total = resp.body().content_length();
            if total.is_some_and(|t| t > limit) {
                return Err(FetchError::TooLarge { url: url.to_string(), limit });
            }
            let mut body = resp.body_mut().as_reader().take(limit + 1);
            let mut buf = vec![0u8; 64 * 1024];
            let mut n = 0u64;
            let mut last_draw = Instant::now();
            loop {
                if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                    return Err(FetchError::Interrupted);
                }
                let k = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(FetchError::Network {
                            url: url.to_string(),
                            source: ureq::Error::Io(e),
                            offline: self.offline,
                        })
                    }
                };
                n += k as u64;
                if n > limit {
                    return Err(FetchError::TooLarge { url: url.to_string(), limit });
                }
                sink.write_all(&buf[..k]).map_err(werr)?;
                if self.progress && last_draw.elapsed() > Duration::from_millis(100) {
                    draw_progress(label, n, total);
                    last_draw = Instant::now();
                }
            }
            if self.progress {
                draw_progress(label, n, total);
                eprintln!();
            }
            Ok(n)
        })
    }
}

fn draw_progress(label: &str, n: u64, total: Option<u64>) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    match total {
        Some(t) if t > 0 => eprint!("\r  {label}  {:.1}/{:.1} MiB  {:3}%", mib(n), mib(t), n * 100 / t),
        _ => eprint!("\r  {label}  {:.1} MiB", mib(n)),
    }
    let _ = io::stderr().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused connection names the way to do without the network that the caller offers, and
    /// only that: a fetcher given none suggests none.
    #[test]
    fn a_network_failure_suggests_the_callers_offline_option() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("https://127.0.0.1:{port}/x");
        let mut plain = Fetcher::new("test", None).unwrap();
        plain.retries = 0;
        let e = plain.get_small(&url, 10).unwrap_err();
        assert!(matches!(e, FetchError::Network { .. }), "{e}");
        assert!(!e.to_string().contains("with no network"), "{e}");
        let mut f = Fetcher::new("test", None).unwrap().offline("run `tool update --artifact ZIP`");
        f.retries = 0;
        let e = f.get_small(&url, 10).unwrap_err();
        assert!(e.to_string().ends_with("; with no network: run `tool update --artifact ZIP`"), "{e}");
        assert_eq!(e.exit(), Exit::Download);
    }
}
