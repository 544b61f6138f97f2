//! A small HTTP/1.1 server: one thread per connection, keep-alive,
//! Content-Length and chunked request bodies, `Expect: 100-continue`.
//!
//! Shutdown mirrors Go's `http.Server.Shutdown`: stop accepting, close idle
//! keep-alive connections, let requests that already started (a first byte
//! arrived) finish, and report whether that happened within the deadline.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::logger;

/// How often a blocked read wakes up to look at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);
/// An idle keep-alive connection is closed after this.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A request that stops sending for this long is dropped.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD: usize = 64 * 1024;

pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json; charset=UTF-8".into(),
            body: value.to_string().into_bytes(),
        }
    }

    /// Echo's error body shape: `{"message": "..."}`.
    pub fn message(status: u16, msg: &str) -> Response {
        Response::json(status, &serde_json::json!({ "message": msg }))
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response { status, content_type: "text/plain; charset=UTF-8".into(), body: body.as_bytes().to_vec() }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Unknown",
    }
}

pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Binds `service.interface` as Go's `net.Listen("tcp", …)` would: an empty
/// host (":3456") means every address, dual-stack where IPv6 exists.
pub fn bind(interface: &str) -> io::Result<TcpListener> {
    if let Some(port) = interface.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid port"))?;
        return match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)) {
            Err(e) if e.kind() != io::ErrorKind::AddrInUse && e.kind() != io::ErrorKind::PermissionDenied => {
                TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
            }
            other => other,
        };
    }
    TcpListener::bind(interface)
}

/// Go's wording for the common cases, so `Server error: listen tcp :3456:
/// bind: address already in use` reads as it does from Vikunja.
pub fn describe_bind_error(interface: &str, e: &io::Error) -> String {
    let what = match e.kind() {
        io::ErrorKind::AddrInUse => "address already in use".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AddrNotAvailable => "cannot assign requested address".to_owned(),
        _ => e.to_string(),
    };
    format!("listen tcp {interface}: bind: {what}")
}

struct Shared {
    shutting_down: AtomicBool,
    active: Mutex<usize>,
    idle: Condvar,
    handler: Handler,
    max_body: u64,
}

/// Counts a request as in flight for as long as it lives.
struct Active<'a>(&'a Shared);

impl<'a> Active<'a> {
    fn new(s: &'a Shared) -> Self {
        *s.active.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Active(s)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        *self.0.active.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.idle.notify_all();
    }
}

pub struct Server {
    listener: Arc<TcpListener>,
    shared: Arc<Shared>,
}

impl Server {
    pub fn start(listener: TcpListener, handler: Handler, max_body: u64) -> Server {
        let listener = Arc::new(listener);
        let shared = Arc::new(Shared {
            shutting_down: AtomicBool::new(false),
            active: Mutex::new(0),
            idle: Condvar::new(),
            handler,
            max_body,
        });
        let (l, s) = (listener.clone(), shared.clone());
        std::thread::spawn(move || accept_loop(&l, &s));
        Server { listener, shared }
    }

    /// Stops accepting and waits up to `grace` for in-flight requests.
    /// Returns false if some were still running at the deadline.
    pub fn shutdown(&self, grace: Duration) -> bool {
        self.shared.shutting_down.store(true, Ordering::SeqCst);
        // shutdown(2) on a listening socket wakes a blocked accept(2) on
        // Linux and makes new connection attempts fail at once. The Arc keeps
        // the fd open, so this cannot hit a reused descriptor.
        // SAFETY: a plain syscall on a descriptor we own.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        let deadline = Instant::now() + grace;
        let mut active = self.shared.active.lock().unwrap_or_else(|e| e.into_inner());
        while *active > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            active = self.shared.idle.wait_timeout(active, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if shared.shutting_down.load(Ordering::SeqCst) {
                    return;
                }
                let s = shared.clone();
                std::thread::spawn(move || {
                    let _ = connection(stream, &s);
                });
            }
            Err(_) if shared.shutting_down.load(Ordering::SeqCst) => return,
            Err(e) => {
                // EMFILE and friends: back off rather than spin.
                logger::error(&format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

enum Read1 {
    Data,
    Eof,
    Timeout,
}

fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Read1> {
    let mut chunk = [0u8; 64 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) => Ok(Read1::Eof),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(Read1::Data)
        }
        Err(e)
            if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) =>
        {
            Ok(Read1::Timeout)
        }
        Err(e) => Err(e),
    }
}

/// Reads until `buf` holds at least `want` bytes; an error if the peer
/// closes or stalls. In-flight requests keep reading during shutdown.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, want: usize) -> io::Result<()> {
    let mut last = Instant::now();
    while buf.len() < want {
        match read_some(stream, buf)? {
            Read1::Data => last = Instant::now(),
            Read1::Eof => return Err(io::ErrorKind::UnexpectedEof.into()),
            Read1::Timeout if last.elapsed() > STALL_TIMEOUT => return Err(io::ErrorKind::TimedOut.into()),
            Read1::Timeout => {}
        }
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn write_response(stream: &mut TcpStream, resp: &Response, head_only: bool, keep_alive: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type,
        resp.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&resp.body);
    }
    stream.write_all(&out)
}

fn connection(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(POLL))?;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Idle: nothing of the next request yet. Shutdown closes us here.
        let idle_since = Instant::now();
        while buf.is_empty() {
            if shared.shutting_down.load(Ordering::SeqCst) {
                return Ok(());
            }
            match read_some(&mut stream, &mut buf)? {
                Read1::Data => {}
                Read1::Eof => return Ok(()),
                Read1::Timeout if idle_since.elapsed() > IDLE_TIMEOUT => return Ok(()),
                Read1::Timeout => {}
            }
        }
        let _active = Active::new(shared);

        let head_end = loop {
            if let Some(p) = find(&buf, b"\r\n\r\n") {
                break p + 4;
            }
            if buf.len() > MAX_HEAD {
                return write_response(&mut stream, &Response::message(431, "request head too large"), false, false);
            }
            let want = buf.len() + 1;
            fill(&mut stream, &mut buf, want)?;
        };
        let head = String::from_utf8_lossy(&buf[..head_end - 4]).into_owned();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let mut parts = lines.next().unwrap_or("").split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return write_response(&mut stream, &Response::message(400, "malformed request line"), false, false);
        };
        let mut headers = Vec::new();
        for line in lines {
            let Some((k, v)) = line.split_once(':') else {
                return write_response(&mut stream, &Response::message(400, "malformed header"), false, false);
            };
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
        let mut req = Request {
            method: method.to_owned(),
            path: target.split('?').next().unwrap_or("/").to_owned(),
            headers,
            body: Vec::new(),
        };

        let conn_hdr = req.header("connection").unwrap_or("").to_ascii_lowercase();
        let mut keep_alive =
            if version == "HTTP/1.0" { conn_hdr.contains("keep-alive") } else { !conn_hdr.contains("close") };
        let expect_continue = req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        let chunked = req.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));

        if chunked {
            if expect_continue {
                stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            match read_chunked(&mut stream, &mut buf, shared.max_body)? {
                Some(body) => req.body = body,
                None => {
                    return write_response(&mut stream, &too_large(), false, false);
                }
            }
        } else {
            let len: u64 = match req.header("content-length").map(|v| v.parse::<u64>()) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => {
                    return write_response(
                        &mut stream,
                        &Response::message(400, "invalid Content-Length"),
                        false,
                        false,
                    );
                }
            };
            if len > shared.max_body {
                if !expect_continue {
                    // Swallow a bounded body first so the client reads our
                    // answer instead of a connection reset.
                    let _ = discard(&mut stream, &mut buf, len.min(shared.max_body.saturating_mul(4)));
                }
                return write_response(&mut stream, &too_large(), false, false);
            }
            if len > 0 && expect_continue {
                stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
            }
            fill(&mut stream, &mut buf, len as usize)?;
            req.body = buf.drain(..len as usize).collect();
        }

        let resp = (shared.handler)(&req);
        if shared.shutting_down.load(Ordering::SeqCst) {
            keep_alive = false;
        }
        write_response(&mut stream, &resp, req.method == "HEAD", keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

fn too_large() -> Response {
    Response::message(413, "Request Entity Too Large")
}

fn discard(stream: &mut TcpStream, buf: &mut Vec<u8>, mut n: u64) -> io::Result<()> {
    let take = (buf.len() as u64).min(n) as usize;
    buf.drain(..take);
    n -= take as u64;
    while n > 0 {
        fill(stream, buf, 1)?;
        let take = (buf.len() as u64).min(n) as usize;
        buf.drain(..take);
        n -= take as u64;
    }
    Ok(())
}

/// Decodes a chunked body; `None` when it exceeds `max`.
fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>, max: u64) -> io::Result<Option<Vec<u8>>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "bad chunk");
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(p) = find(buf, b"\r\n") {
                break p;
            }
            let want = buf.len() + 1;
            fill(stream, buf, want)?;
        };
        let size_field = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        let size = u64::from_str_radix(size_field.split(';').next().unwrap_or("").trim(), 16).map_err(|_| bad())?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            loop {
                fill(stream, buf, 2)?;
                let p = loop {
                    if let Some(p) = find(buf, b"\r\n") {
                        break p;
                    }
                    let want = buf.len() + 1;
                    fill(stream, buf, want)?;
                };
                buf.drain(..p + 2);
                if p == 0 {
                    return Ok(Some(body));
                }
            }
        }
        if body.len() as u64 + size > max {
            return Ok(None);
        }
        fill(stream, buf, size as usize + 2)?;
        body.extend(buf.drain(..size as usize));
        if buf.drain(..2).as_slice() != b"\r\n" {
            return Err(bad());
        }
    }
}
