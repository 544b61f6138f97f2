//! A small load generator for blue-green tests and benchmarks: reader and writer threads that run
//! the real curl against the instance's nginx over HTTPS, each request on a new connection
//! (`Connection: close` semantics, HTTP/1.1), until stopped. Writers remember every task the server
//! acknowledged (2xx), so a test can prove none was lost; a 503 during the write freeze is
//! counted and retried later, as a client honouring `Retry-After` would.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How to reach the instance through nginx.
#[derive(Clone, Debug)]
pub struct Target {
    /// `https://vikunja.test:PORT`
    pub base: String,
    /// curl `--resolve` entry mapping the domain to 127.0.0.1.
    pub resolve: String,
    pub cacert: PathBuf,
}

impl Target {
    pub fn new(domain: &str, https_port: u16, cacert: PathBuf) -> Target {
        Target {
            base: format!("https://{domain}:{https_port}"),
            resolve: format!("{domain}:{https_port}:127.0.0.1"),
            cacert,
        }
    }

    /// One request with curl: (HTTP status, body). Status 0 when curl itself failed.
    pub fn request(&self, method: &str, path: &str, json: Option<&str>) -> (u16, String) {
        let mut c = self.curl();
        c.args(["-X", method, "-w", "\n%{http_code}"]);
        if let Some(body) = json {
            c.args(["-H", "Content-Type: application/json", "--data-binary", body]);
        }
        c.arg(format!("{}{path}", self.base));
        let Ok(o) = c.output() else { return (0, "curl did not run".into()) };
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        (code.trim().parse().unwrap_or(0), format!("{body}{}", String::from_utf8_lossy(&o.stderr)))
    }

    /// Titles of every task the server lists.
    pub fn task_titles(&self) -> Result<Vec<String>, String> {
        let (code, body) = self.request("GET", "/api/v1/tasks/all", None);
        if code != 200 {
            return Err(format!("listing tasks answered {code}: {body}"));
        }
        let body = body.trim();
        // Titles are ours ("load-…"), so a plain scan of the JSON is enough.
        Ok(body.split("\"title\":\"").skip(1).filter_map(|s| s.split('"').next()).map(str::to_string).collect())
    }

    /// Uploads `file` as an attachment of task `task`; returns the attachment id.
    pub fn upload(&self, task: i64, file: &std::path::Path) -> Result<i64, String> {
        let o = self
            .curl()
            .args(["-X", "PUT", "-w", "\n%{http_code}", "-F"])
            .arg(format!("files=@{}", file.display()))
            .arg(format!("{}/api/v1/tasks/{task}/attachments", self.base))
            .output()
            .map_err(|e| e.to_string())?;
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let (body, code) = out.rsplit_once('\n').unwrap_or(("", &out));
        if code.trim() != "201" {
            return Err(format!("upload answered {code}: {body}"));
        }
        id_in(body).ok_or_else(|| format!("no id in {body}"))
    }

    /// The bytes of an attachment as the server returns them.
    pub fn download(&self, task: i64, attachment: i64) -> Result<Vec<u8>, String> {
        let o = self
            .curl()
            .arg("-f")
            .arg(format!("{}/api/v1/tasks/{task}/attachments/{attachment}", self.base))
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!("download failed: {}", String::from_utf8_lossy(&o.stderr)));
        }
        Ok(o.stdout)
    }

    /// HTTP/1.1: on an nginx reload, an HTTP/2 connection an old worker had just accepted is
    /// closed with GOAWAY, which browsers retry but curl reports as a framing error.
    fn curl(&self) -> Command {
        let mut c = Command::new("curl");
        c.args(["-sS", "--http1.1", "--max-time", "10", "--cacert"])
            .arg(&self.cacert)
            .args(["--resolve", &self.resolve]);
        c
    }

    pub fn create_task(&self, title: &str) -> (u16, String) {
        self.request("PUT", "/api/v1/projects/1/tasks", Some(&format!("{{\"title\":\"{title}\"}}")))
    }
}

/// The first `"id":N` of a JSON answer (task and attachment answers start with their own id).
pub fn id_in(body: &str) -> Option<i64> {
    let rest = body.split("\"id\":").nth(1)?;
    rest.chars().take_while(|c| c.is_ascii_digit()).collect::<String>().parse().ok()
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub reads_ok: u64,
    /// Non-2xx reads: (status, body), status 0 for a connection failure.
    pub reads_failed: Vec<(u16, String)>,
    /// Titles of tasks the server acknowledged with 2xx.
    pub writes_acked: Vec<String>,
    /// Writes answered 503 (the freeze).
    pub writes_frozen: u64,
    /// Writes that failed otherwise.
    pub writes_failed: Vec<(u16, String)>,
    pub elapsed: Duration,
    /// Times (since start) of the first and last frozen write.
    pub freeze_seen: Option<(Duration, Duration)>,
}

pub struct Load {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

impl Load {
    pub fn start(t: &Target, readers: usize, writers: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(Report::default()));
        let started = Instant::now();
        let mut threads = Vec::new();
        for _ in 0..readers {
            let (t, stop, report) = (t.clone(), Arc::clone(&stop), Arc::clone(&report));
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let (code, body) = t.request("GET", "/api/v1/tasks/all", None);
                    let mut r = report.lock().unwrap();
                    if (200..300).contains(&code) {
                        r.reads_ok += 1;
                    } else {
                        r.reads_failed.push((code, body));
                    }
                }
            }));
        }
        for w in 0..writers {
            let (t, stop, report) = (t.clone(), Arc::clone(&stop), Arc::clone(&report));
            threads.push(std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let title = format!("load-{w}-{n}");
                    let (code, body) = t.create_task(&title);
                    let now = started.elapsed();
                    let mut r = report.lock().unwrap();
                    match code {
                        200..=299 => r.writes_acked.push(title),
                        503 => {
                            r.writes_frozen += 1;
                            r.freeze_seen = Some(match r.freeze_seen {
                                None => (now, now),
                                Some((a, _)) => (a, now),
                            });
                            drop(r);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        _ => r.writes_failed.push((code, body)),
                    }
                }
            }));
        }
        Load { stop, report, threads, started }
    }

    /// Lets the load run a little so it is seen before and after an operation.
    pub fn warm_up(&self, min_reads: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.report.lock().unwrap().reads_ok < min_reads && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        let mut r = self.report.lock().unwrap().clone();
        r.elapsed = self.started.elapsed();
        r
    }
}
