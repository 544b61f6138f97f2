//! A minimal HTTP CONNECT proxy, so tests can prove that HTTPS_PROXY is
//! honoured (the proxy records every tunnel) without any external software.
//!
//! It only tunnels to loopback: a test that accidentally points a client at
//! the internet gets a 403 instead of network traffic.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, Result};

/// A request head larger than this is not a CONNECT from a real client.
const MAX_HEAD: usize = 16 * 1024;

/// A client that connects and says nothing should not pin a thread forever.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A running CONNECT proxy on `127.0.0.1:port`; stops accepting on drop.
#[derive(Debug)]
pub struct ConnectProxy {
    /// Loopback port the proxy listens on.
    pub port: u16,
    connects: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    /// Connections still to be dropped without an answer (a flaky network for retry tests).
    drop_next: Arc<std::sync::atomic::AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

/// Same as [`ConnectProxy::start`], for callers that read better as `proxy::start()`.
pub fn start() -> Result<ConnectProxy> {
    ConnectProxy::start()
}

impl ConnectProxy {
    /// Binds an ephemeral loopback port and serves CONNECT requests on
    /// background threads until dropped.
    pub fn start() -> Result<ConnectProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the CONNECT proxy")?;
        let port = listener.local_addr()?.port();
        let connects = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let drop_next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let acceptor = {
            let connects = Arc::clone(&connects);
            let stop = Arc::clone(&stop);
            let drop_next = Arc::clone(&drop_next);
            thread::Builder::new()
                .name(format!("connect-proxy-{port}"))
                .spawn(move || accept_loop(listener, connects, stop, drop_next))
                .context("spawning the proxy accept thread")?
        };
        Ok(ConnectProxy { port, connects, stop, drop_next, acceptor: Some(acceptor) })
    }

    /// Makes the next `n` connections close at once without an answer, as a flaky network does.
    pub fn drop_next(&self, n: usize) {
        self.drop_next.store(n, Ordering::SeqCst);
    }

    /// Targets (`host:port`) of the tunnels opened so far, in order, so a test
    /// can assert the client really went through the proxy.
    pub fn connects(&self) -> Vec<String> {
        self.connects.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The value for `HTTPS_PROXY` / `curl --proxy`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ConnectProxy {
    /// Tunnels already open keep running until their peers close them; only
    /// new connections are refused, which is all a finished test needs.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // accept() has no timeout; a connection of our own wakes it up.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    connects: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    drop_next: Arc<std::sync::atomic::AtomicUsize>,
) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        if drop_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            drop(client);
            continue;
        }
        let connects = Arc::clone(&connects);
        // A failed tunnel only affects its own client, which sees the error.
        let _ = thread::Builder::new().name("connect-proxy-conn".into()).spawn(move || {
            let _ = handle(client, &connects);
        });
    }
}

fn handle(mut client: TcpStream, connects: &Mutex<Vec<String>>) -> io::Result<()> {
    client.set_read_timeout(Some(HEAD_TIMEOUT))?;
    let head = match read_head(&mut client)? {
        Some(h) => h,
        None => return respond(&mut client, "400 Bad Request"),
    };
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    let (Some("CONNECT"), Some(target)) = (method, target) else {
        return respond(&mut client, "405 Method Not Allowed");
    };
    let Some(addr) = loopback_target(target) else {
        return respond(&mut client, "403 Forbidden");
    };
    connects.lock().unwrap_or_else(|e| e.into_inner()).push(target.to_string());
    let upstream = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(_) => return respond(&mut client, "502 Bad Gateway"),
    };
    client.set_read_timeout(None)?;
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    pipe(client, upstream)
}

/// Reads byte by byte up to the blank line, so no byte of the tunnelled
/// stream that follows the head is swallowed by a buffer.
fn read_head(client: &mut TcpStream) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && !head.ends_with(b"\n\n") {
        if head.len() >= MAX_HEAD || client.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8(head).ok())
}

/// Resolves `127.0.0.1:PORT` or `localhost:PORT`; everything else is refused
/// so tests can never reach beyond the machine through the proxy.
fn loopback_target(target: &str) -> Option<SocketAddr> {
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    match host {
        "127.0.0.1" | "localhost" => Some(SocketAddr::from(([127, 0, 0, 1], port))),
        _ => None,
    }
}

fn respond(client: &mut TcpStream, status: &str) -> io::Result<()> {
    write!(client, "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    client.flush()
}

/// Copies both directions until each side has finished sending, passing the
/// half-close on so TLS close_notify and EOF reach the other end.
fn pipe(client: TcpStream, upstream: TcpStream) -> io::Result<()> {
    let (mut c_read, mut c_write) = (client.try_clone()?, client);
    let (mut u_read, mut u_write) = (upstream.try_clone()?, upstream);
    let upload = thread::Builder::new().name("connect-proxy-up".into()).spawn(move || {
        let _ = io::copy(&mut c_read, &mut u_write);
        let _ = u_write.shutdown(Shutdown::Write);
    })?;
    let _ = io::copy(&mut u_read, &mut c_write);
    let _ = c_write.shutdown(Shutdown::Write);
    let _ = upload.join();
    Ok(())
}
