//! Helpers shared by the stand-in's integration tests: a scratch directory
//! with "installed releases" (copies of the binary under release names), a
//! child-process wrapper, and a raw HTTP/1.1 client (raw, so tests control
//! exactly when bytes are sent — the drain test depends on that).

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_vikunja-standin");

/// A scratch directory under `target/tmp`, removed when the test passed
/// and kept (for its logs) when it failed.
pub struct Sandbox {
    pub dir: PathBuf,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "standin-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        Sandbox { dir }
    }

    /// `service.rootpath` of the instance under test.
    pub fn root(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Installs the stand-in as `releases/<version>/vikunja-<version>-linux-amd64`,
    /// the name the release zip gives it, so it reports that version.
    pub fn release(&self, version: &str) -> PathBuf {
        let dir = self.dir.join("releases").join(version);
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join(format!("vikunja-{version}-linux-amd64"));
        if !bin.exists() {
            // A hard link, not a copy: a copy's write fd can leak into a child
            // forked meanwhile by another test thread, and exec of the copy
            // then fails with ETXTBSY. The copy fallback is covered by
            // `spawn_retrying`.
            if std::fs::hard_link(BIN, &bin).is_err() {
                std::fs::copy(BIN, &bin).unwrap();
            }
        }
        bin
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("kept {} for inspection", self.dir.display());
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A command with a clean environment: no inherited `VIKUNJA_*`, HOME and
/// the working directory inside the sandbox, rootpath set.
pub fn command(bin: &Path, root: &Path, env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", root)
        .env("VIKUNJA_SERVICE_ROOTPATH", root)
        .current_dir(root);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// `spawn`, retried briefly on ETXTBSY (see [`Sandbox::release`]).
pub fn spawn_retrying(c: &mut Command) -> Child {
    let mut tries = 0;
    loop {
        match c.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other.unwrap(),
        }
    }
}

/// Runs a one-shot command (`version`, `dump`, …) with optional stdin.
pub fn run(bin: &Path, root: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut c = command(bin, root, env);
    c.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn_retrying(&mut c);
    if let Some(input) = stdin {
        let mut s = child.stdin.take().unwrap();
        // A command that fails before reading stdin closes the pipe early.
        if let Err(e) = s.write_all(input) {
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "writing stdin: {e}");
        }
    }
    child.wait_with_output().unwrap()
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A running `web` process whose stderr goes to a file.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    /// Starts `bin` on 127.0.0.1 with port 0 (the kernel picks a free one,
    /// so parallel tests never race for ports) and publicurl
    /// `http://standin.test`, plus `env` (later entries win). `port` is 0
    /// until [`Server::wait_bound`].
    pub fn spawn(bin: &Path, root: &Path, env: &[(&str, &str)]) -> Server {
        let mut all =
            vec![("VIKUNJA_SERVICE_INTERFACE", "127.0.0.1:0"), ("VIKUNJA_SERVICE_PUBLICURL", "http://standin.test")];
        all.extend_from_slice(env);
        Server::spawn_plain(bin, root, &all)
    }

    /// Starts `bin` with only `env`.
    pub fn spawn_plain(bin: &Path, root: &Path, env: &[(&str, &str)]) -> Server {
        static N: AtomicUsize = AtomicUsize::new(0);
        let log = root.join(format!("standin-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let mut c = command(bin, root, env);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
        let child = spawn_retrying(&mut c);
        Server { child, port: 0, log }
    }

    /// Spawns, learns the port and waits until `/health` answers 200.
    pub fn start(bin: &Path, root: &Path, env: &[(&str, &str)]) -> Server {
        let mut s = Server::spawn(bin, root, env);
        s.wait_bound(Duration::from_secs(20));
        s.wait_healthy(Duration::from_secs(20));
        s
    }

    /// Waits for the stand-in's `bound <addr>` log line and takes the port.
    pub fn wait_bound(&mut self, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log_text();
            if let Some(addr) = log.lines().find_map(|l| l.split("vikunja-standin: bound ").nth(1)) {
                self.port = addr.trim().rsplit(':').next().unwrap().parse().unwrap();
                return self.port;
            }
            assert!(!log.contains("Server error"), "could not bind:\n{log}");
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("stand-in exited with {st} before listening:\n{log}");
            }
            assert!(Instant::now() < deadline, "not listening within {timeout:?}:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = get(self.port, "/health") {
                if r.status == 200 {
                    return;
                }
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("stand-in exited with {st} before it was healthy:\n{}", self.log_text());
            }
            assert!(Instant::now() < deadline, "not healthy within {timeout:?}:\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({sig})");
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGINT and the clean exit 0 that must follow.
    pub fn stop(mut self) {
        self.signal(libc::SIGINT);
        let st = self.wait_exit(Duration::from_secs(15)).expect("exited after SIGINT");
        assert!(st.success(), "exit after SIGINT: {st}\n{}", self.log_text());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(s)
}

pub fn write_request(
    s: &mut TcpStream,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    s.write_all(&bytes)
}

/// Reads one response (Content-Length framed) from a keep-alive connection.
pub fn read_response(s: &mut TcpStream) -> io::Result<Resp> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(Resp { status, headers, body })
}

pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Resp> {
    let mut s = connect(port)?;
    write_request(&mut s, method, path, headers, body)?;
    read_response(&mut s)
}

pub fn get(port: u16, path: &str) -> io::Result<Resp> {
    request(port, "GET", path, &[], b"")
}

pub fn create_task(port: u16, project: i64, title: &str) -> serde_json::Value {
    let body = serde_json::json!({ "title": title }).to_string();
    let r = request(
        port,
        "PUT",
        &format!("/api/v1/projects/{project}/tasks"),
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

pub fn tasks(port: u16) -> Vec<serde_json::Value> {
    let r = get(port, "/api/v1/tasks/all").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().as_array().unwrap().clone()
}

pub fn titles(port: u16) -> Vec<String> {
    tasks(port).iter().map(|t| t["title"].as_str().unwrap().to_owned()).collect()
}

/// A `multipart/form-data` body with one file in field `files`:
/// (content type, body).
pub fn multipart(filename: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----standin-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub fn upload(port: u16, task: i64, filename: &str, data: &[u8]) -> Resp {
    let (ct, body) = multipart(filename, data);
    request(port, "PUT", &format!("/api/v1/tasks/{task}/attachments"), &[("Content-Type", &ct)], &body).unwrap()
}

/// Deterministic bytes that include CR, LF, NUL and `--` sequences, the
/// things a sloppy multipart parser trips over.
pub fn awkward_bytes(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9E37_79B9;
    let mut v: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    for (i, chunk) in b"\r\n--\r\n\0--".iter().enumerate() {
        if i < v.len() {
            v[i * 7 % n.max(1)] = *chunk;
        }
    }
    v
}
