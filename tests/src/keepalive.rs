//! A keep-alive reader for blue-green benchmarks: unlike `load`, which opens a connection per
//! request, each reader keeps one HTTPS connection to the instance's nginx open across many
//! requests, as a browser does. That is the harder case for a switch: an nginx reload closes idle
//! keep-alive connections of the old workers, and a request sent at that moment finds the
//! connection gone. A failed read is retried once on a new connection, as browsers retry an
//! idempotent request; failures before and after that retry are counted apart.
//!
//! Every reader runs the real curl over HTTP/1.1 (see `load::Target::request` for why not HTTP/2)
//! with a batch of URLs on one command line: curl sends them one after the other over the same
//! connection and writes one result line per URL, failed ones included.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::load::Target;

/// Requests per curl process, so per connection unless one breaks. Small enough that a failed
/// read is retried within about a tenth of a second (the retry waits for the batch to end) and
/// that `stop` returns promptly; large enough that nearly every request reuses a connection.
pub const BATCH: usize = 25;

const PATH: &str = "/api/v1/tasks/all";

/// One failed read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status, 0 when no answer came.
    pub status: u16,
    /// curl's exit code or message, for telling a refused connection from a reset one; empty when
    /// the server answered with `status`.
    pub detail: String,
    /// Since the load started, when the answer came (approximate: curl start-up is not counted).
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
    /// TCP connections curl opened for first attempts; far below `reads` shows the connections
    /// really were kept alive.
    pub connections: u64,
    pub elapsed: Duration,
}

pub struct KeepAlive {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
}

/// One request's result as curl's `-w` reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Answer {
    status: u16,
    curl_exit: i32,
    /// Connections opened for it: 0 when an open one was reused.
    connects: u64,
    /// curl's `time_total` of the request.
    took: Duration,
}

/// One result line per URL, as `-w` writes it: `<status> <exit code> <connections opened> <seconds>`.
fn parse_line(line: &str) -> Option<Answer> {
    let mut f = line.split_whitespace();
    Some(Answer {
        status: f.next()?.parse().ok()?,
        curl_exit: f.next()?.parse().ok()?,
        connects: f.next()?.parse().ok()?,
        took: Duration::try_from_secs_f64(f.next()?.parse().ok()?).ok()?,
    })
}

fn batch(t: &Target) -> Vec<Answer> {
    let mut c = Command::new("curl");
    c.args(["-s", "--http1.1", "--max-time", "10", "--cacert"]).arg(&t.cacert).args([
        "--resolve",
        &t.resolve,
        "-w",
        "%{http_code} %{exitcode} %{num_connects} %{time_total}\n",
    ]);
    for _ in 0..BATCH {
        c.args(["-o", "/dev/null", &format!("{}{PATH}", t.base)]);
    }
    let out = match c.stdin(Stdio::null()).stderr(Stdio::null()).output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).into_owned(),
        // curl could not even be started: count the whole batch as failed connections.
        Err(_) => String::new(),
    };
    let mut results: Vec<Answer> = out.lines().filter_map(parse_line).collect();
    // A curl killed mid-batch writes fewer lines; the missing requests did not succeed.
    results.resize(BATCH, Answer { status: 0, curl_exit: -1, connects: 0, took: Duration::ZERO });
    results
}

impl KeepAlive {
    pub fn start(t: &Target, readers: usize) -> KeepAlive {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(Report::default()));
        let started = Instant::now();
        let threads = (0..readers)
            .map(|_| {
                let (t, stop, report) = (t.clone(), Arc::clone(&stop), Arc::clone(&report));
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        // A request's time is placed by adding up curl's own times of the requests
                        // before it in the batch; starting curl is not counted, so it is early by that.
                        let mut at = started.elapsed();
                        let results = batch(&t);
                        let mut first = Vec::new();
                        let mut after = Vec::new();
                        let mut connections = 0;
                        for Answer { status, curl_exit, connects, took } in results {
                            connections += connects;
                            at += took;
                            if (200..300).contains(&status) {
                                continue;
                            }
                            let detail = if curl_exit == 0 { String::new() } else { format!("curl exit {curl_exit}") };
                            first.push(Failure { status, detail, at });
                            let (code, body) = t.request("GET", PATH, None);
                            if !(200..300).contains(&code) {
                                let detail = body.trim().chars().take(200).collect();
                                after.push(Failure { status: code, detail, at: started.elapsed() });
                            }
                        }
                        let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                        r.reads += BATCH as u64;
                        r.connections += connections;
                        r.failed_first.extend(first);
                        r.failed_after_retry.extend(after);
                    }
                })
            })
            .collect();
        KeepAlive { stop, report, threads, started }
    }

    /// Lets the readers run a little so they are seen before and after an operation.
    pub fn warm_up(&self, min_reads: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.report.lock().unwrap_or_else(|e| e.into_inner()).reads < min_reads && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops after the batches in flight; their results count.
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
    use super::parse_line;

    #[test]
    fn result_lines_parse_and_garbage_does_not() {
        let r = parse_line("200 0 0 0.001500").unwrap();
        assert_eq!((r.status, r.curl_exit, r.connects, r.took.as_micros()), (200, 0, 0, 1500));
        let r = parse_line("000 52 1 0.000000").unwrap();
        assert_eq!((r.status, r.curl_exit, r.connects), (0, 52, 1));
        assert_eq!(parse_line("curl: (7) Failed"), None);
        assert_eq!(parse_line(""), None);
    }
}
