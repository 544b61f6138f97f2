//! A keep-alive reader for blue-green benchmarks: unlike `load`, which opens a connection per
//! request, each reader keeps one HTTPS connection to the instance's nginx open across many
//! requests, as a browser does. That is the harder case for a switch: an nginx reload makes the old
//! workers close their idle keep-alive connections, and a request sent at that moment finds the
//! connection gone.
//!
//! The client is our own HTTP/1.1 over rustls, not curl: libcurl silently resends a request when a
//! reused connection turns out closed before any byte of the answer, so with curl those closes are
//! invisible. This client does what libcurl does up to that point (before reusing a connection it
//! checks the socket for a close that already arrived, and then opens a new one without counting a
//! failure) but does not resend by itself. A failed read is then retried once on a new connection,
//! as a browser retries an idempotent request, and failures before and after that retry are
//! counted apart, so both what an application sees without a retry and with one is known.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::load::Target;

const PATH: &str = "/api/v1/tasks/all";
const TIMEOUT: Duration = Duration::from_secs(10);

/// One failed read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status, 0 when no answer came.
    pub status: u16,
    /// What went wrong when there was no (complete) answer; empty when the server answered `status`.
    pub detail: String,
    /// The request was sent on a connection that had served earlier requests, and the connection
    /// closed before any byte of the answer: the case libcurl and browsers resend silently.
    pub closed_reused: bool,
    /// Since the load started, when the failure was seen.
    pub at: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Reads sent (first attempts; retries not counted).
    pub reads: u64,
    /// Reads whose first attempt failed.
    pub failed_first: Vec<Failure>,
    /// Reads whose retry failed too.
    pub failed_after_retry: Vec<Failure>,
    /// TCP connections opened for first attempts; far below `reads` shows the connections really
    /// were kept alive.
    pub connections: u64,
    /// Kept-alive connections found closed by the server before a request was sent on them (the
    /// check a careful client makes before reuse): a new one was opened, nothing failed.
    pub closed_idle: u64,
    /// Connections the server closed after an answer that said so (`Connection: close`, as nginx's
    /// old workers answer while they shut down): nothing failed.
    pub closed_announced: u64,
    pub elapsed: Duration,
}

pub struct KeepAlive {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

/// How one request ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Status, and whether the connection may carry another request.
    Answer(u16, bool),
    /// Closed (or reset) before any byte of the answer.
    ClosedBeforeAnswer(String),
    /// Anything else: connect, TLS, closed mid-answer, unparsable answer, timeout.
    Broken(String),
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// One client: a TLS configuration that trusts the instance's certificate and the address to reach.
#[derive(Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    host: String,
    port: u16,
}

impl Client {
    pub fn new(t: &Target) -> Result<Client, String> {
        let authority = t.base.strip_prefix("https://").ok_or_else(|| format!("not an https URL: {}", t.base))?;
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| format!("no port in {}", t.base))?;
        let port = port.parse().map_err(|e| format!("port of {}: {e}", t.base))?;
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("server name {host}: {e}"))?;
        Ok(Client { config: tls_config(&t.cacert)?, name, host: host.to_string(), port })
    }

    fn connect(&self) -> Result<Tls, String> {
        // `Target::resolve` maps the domain to loopback, as curl's --resolve does.
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| format!("connect: {e}"))?;
        tcp.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let conn = ClientConnection::new(Arc::clone(&self.config), self.name.clone()).map_err(|e| e.to_string())?;
        let mut tls = StreamOwned::new(conn, tcp);
        // Handshake now, so that a failure here is a connect failure and not the request's.
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).map_err(|e| format!("TLS handshake: {e}"))?;
        }
        Ok(tls)
    }

    /// One GET on `tls`; `reused` says whether it served a request before.
    fn get(&self, tls: &mut Tls, reused: bool) -> Outcome {
        let req = format!("GET {PATH} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n", self.host);
        if let Err(e) = tls.write_all(req.as_bytes()).and_then(|_| tls.flush()) {
            return if reused {
                Outcome::ClosedBeforeAnswer(format!("send: {e}"))
            } else {
                Outcome::Broken(format!("send: {e}"))
            };
        }
        read_answer(tls, reused)
    }
}

fn tls_config(cacert: &Path) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(cacert).map_err(|e| format!("read {}: {e}", cacert.display()))?;
    for c in certs {
        let c = c.map_err(|e| format!("certificate in {}: {e}", cacert.display()))?;
        roots.add(c).map_err(|e| format!("certificate in {}: {e}", cacert.display()))?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Whether the server already closed an idle connection (EOF, a reset, or bytes it sent unasked,
/// which on an idle HTTP/1.1 connection can only be a TLS alert before the close), checked without
/// blocking, as libcurl checks a connection before reusing it.
fn closed_while_idle(tls: &Tls) -> bool {
    let s = &tls.sock;
    if s.set_nonblocking(true).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    let closed = !matches!(s.peek(&mut b), Err(e) if e.kind() == io::ErrorKind::WouldBlock);
    closed || s.set_nonblocking(false).is_err()
}

/// Reads one answer: status line, headers, and a body by Content-Length or chunked encoding.
fn read_answer(r: &mut impl Read, reused: bool) -> Outcome {
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match r.read(&mut chunk) {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Outcome::Broken(format!("no answer within {} s", TIMEOUT.as_secs()))
            }
            end if buf.is_empty() && reused => {
                let how = end.err().map_or("closed".to_string(), |e| e.to_string());
                return Outcome::ClosedBeforeAnswer(format!("{how} before any byte of the answer"));
            }
            Ok(_) => return Outcome::Broken(format!("closed after {} bytes of the answer's head", buf.len())),
            Err(e) => return Outcome::Broken(format!("reading the answer: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let Some(status) = head.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok()) else {
        return Outcome::Broken(format!("no status line in {:?}", head.lines().next().unwrap_or("")));
    };
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')).map(str::trim))
    };
    let keep = !header("connection").is_some_and(|v| v.contains("close"));
    let mut body = buf.split_off(head_end);
    let done = |body: &[u8]| -> Option<Result<(), String>> {
        if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            chunked_complete(body)
        } else {
            let len: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            (body.len() >= len).then_some(Ok(()))
        }
    };
    loop {
        match done(&body) {
            Some(Ok(())) => return Outcome::Answer(status, keep),
            Some(Err(e)) => return Outcome::Broken(e),
            None => {}
        }
        match r.read(&mut chunk) {
            Ok(0) => return Outcome::Broken(format!("closed after {} bytes of the body", body.len())),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) => return Outcome::Broken(format!("reading the body: {e}")),
        }
    }
}

/// `Some(Ok)` once a chunked body is complete, `None` while more is needed.
fn chunked_complete(mut b: &[u8]) -> Option<Result<(), String>> {
    loop {
        let line_end = find(b, b"\r\n")?;
        let size_text = String::from_utf8_lossy(&b[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            return Some(Err(format!("bad chunk size {size_hex:?}")));
        };
        b = &b[line_end + 2..];
        if size == 0 {
            // No trailers from nginx: the body ends with the empty line after the last chunk.
            return find(b, b"\r\n").map(|_| Ok(()));
        }
        if b.len() < size + 2 {
            return None;
        }
        b = &b[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One reader: a connection kept across requests, reopened when the server closes it.
struct Reader {
    client: Client,
    conn: Option<Tls>,
    /// The connection has served at least one request.
    reused: bool,
}

impl Reader {
    /// One read, first attempt only; updates `r`'s connection counts.
    fn read(&mut self, r: &mut Report) -> Outcome {
        if let Some(c) = &self.conn {
            if closed_while_idle(c) {
                r.closed_idle += 1;
                self.conn = None;
            }
        }
        if self.conn.is_none() {
            r.connections += 1;
            match self.client.connect() {
                Ok(c) => (self.conn, self.reused) = (Some(c), false),
                Err(e) => return Outcome::Broken(e),
            }
        }
        let Some(conn) = self.conn.as_mut() else { return Outcome::Broken("no connection".into()) };
        let out = self.client.get(conn, self.reused);
        match out {
            Outcome::Answer(_, true) => self.reused = true,
            Outcome::Answer(_, false) => {
                r.closed_announced += 1;
                self.conn = None;
            }
            _ => self.conn = None,
        }
        out
    }
}

/// The retry: one request on a new connection, as an application retries an idempotent read.
fn retry(client: &Client) -> Outcome {
    match client.connect() {
        Ok(mut c) => client.get(&mut c, false),
        Err(e) => Outcome::Broken(e),
    }
}

fn failure(o: Outcome, at: Duration) -> Option<Failure> {
    match o {
        Outcome::Answer(s, _) if (200..300).contains(&s) => None,
        Outcome::Answer(status, _) => Some(Failure { status, detail: String::new(), closed_reused: false, at }),
        Outcome::ClosedBeforeAnswer(detail) => Some(Failure { status: 0, detail, closed_reused: true, at }),
        Outcome::Broken(detail) => Some(Failure { status: 0, detail, closed_reused: false, at }),
    }
}

impl KeepAlive {
    /// Starts `readers` threads; fails when the instance's certificate cannot be read.
    pub fn start(t: &Target, readers: usize) -> Result<KeepAlive, String> {
        let client = Client::new(t)?;
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(Report::default()));
        let started = Instant::now();
        let threads = (0..readers)
            .map(|_| {
                let (client, stop, report) = (client.clone(), Arc::clone(&stop), Arc::clone(&report));
                std::thread::spawn(move || {
                    let mut reader = Reader { client: client.clone(), conn: None, reused: false };
                    while !stop.load(Ordering::SeqCst) {
                        let mut mine = Report::default();
                        let first = reader.read(&mut mine);
                        mine.reads = 1;
                        if let Some(f) = failure(first, started.elapsed()) {
                            mine.failed_first.push(f);
                            if let Some(f) = failure(retry(&client), started.elapsed()) {
                                mine.failed_after_retry.push(f);
                            }
                        }
                        let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                        r.reads += mine.reads;
                        r.connections += mine.connections;
                        r.closed_idle += mine.closed_idle;
                        r.closed_announced += mine.closed_announced;
                        r.failed_first.extend(mine.failed_first);
                        r.failed_after_retry.extend(mine.failed_after_retry);
                    }
                })
            })
            .collect();
        Ok(KeepAlive { stop, report, threads, started })
    }

    /// Lets the readers run a little so they are seen before and after an operation.
    pub fn warm_up(&self, min_reads: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.report.lock().unwrap_or_else(|e| e.into_inner()).reads < min_reads && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops after the requests in flight; their results count.
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let mut r = self.report.lock().unwrap_or_else(|e| e.into_inner()).clone();
        r.elapsed = self.started.elapsed();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(bytes: &[u8], reused: bool) -> Outcome {
        read_answer(&mut io::Cursor::new(bytes.to_vec()), reused)
    }

    #[test]
    fn answers_by_length_and_chunked_are_read_whole() {
        let a = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true);
        assert_eq!(a, Outcome::Answer(200, true));
        let a = answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", true);
        assert_eq!(a, Outcome::Answer(200, true));
        let a = answer(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false);
        assert_eq!(a, Outcome::Answer(503, false));
    }

    #[test]
    fn a_close_before_the_answer_is_told_apart_from_one_in_the_middle() {
        // On a reused connection, nothing at all: the case libcurl resends silently.
        assert!(matches!(answer(b"", true), Outcome::ClosedBeforeAnswer(_)));
        // On a new connection nothing was reused, so it is a plain failure.
        assert!(matches!(answer(b"", false), Outcome::Broken(_)));
        // Part of an answer: the request reached the server; not the resendable case.
        assert!(matches!(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", true), Outcome::Broken(_)));
        assert!(matches!(answer(b"HTTP/1.1 200", true), Outcome::Broken(_)));
    }

    /// Against real nginx: a reload closes a kept-alive connection; a request sent on it then fails
    /// as "closed before any byte of the answer" (what libcurl would resend without a word), the
    /// check before reuse sees the close, and the same requests before the reload are answered.
    #[test]
    fn a_reload_closes_kept_connections_and_the_reader_reports_it() {
        let dir = crate::TestDir::new("keepalive-reload").unwrap();
        let ca = crate::ca::TestCa::create(&dir.join("ca")).unwrap();
        let server = crate::nginx::ReleaseServer::start(&dir.join("nginx"), &ca).unwrap();
        let t = Target::new("localhost", server.port, ca.ca_pem.clone());
        let client = Client::new(&t).unwrap();
        let (mut checked, mut blind) = (client.connect().unwrap(), client.connect().unwrap());
        // Control: both connections answer and stay open across requests (any status will do:
        // the release server has no such path).
        for c in [&mut checked, &mut blind] {
            assert!(matches!(client.get(c, false), Outcome::Answer(_, true)));
            assert!(matches!(client.get(c, true), Outcome::Answer(_, true)));
            assert!(!closed_while_idle(c), "an idle connection looked closed before any reload");
        }
        server.reload().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !closed_while_idle(&checked) {
            assert!(Instant::now() < deadline, "the reload did not close the idle kept-alive connection");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The other one, used without the check, loses its request.
        let o = client.get(&mut blind, true);
        assert!(matches!(o, Outcome::ClosedBeforeAnswer(_)), "{o:?}");
        // A new connection is served by the new workers.
        let mut fresh = client.connect().unwrap();
        assert!(matches!(client.get(&mut fresh, false), Outcome::Answer(_, true)));
        server.stop();
    }

    #[test]
    fn a_bad_chunk_size_is_an_error_not_a_hang() {
        let a = answer(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", true);
        assert!(matches!(a, Outcome::Broken(_)), "{a:?}");
    }
}
