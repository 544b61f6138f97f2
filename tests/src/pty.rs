//! A command line on its own pseudo-terminal (util-linux `script`), driven like a person at the
//! keyboard: wait for text on the screen, type. Shared by the first-run and host tests and by
//! `cargo xtask demo --containers`, which also shows the screen live.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Pty {
    child: Child,
    keys: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    seen: usize,
}

impl Pty {
    /// Runs `line` with sh on a new terminal; `setup` sets its environment.
    pub fn start(line: &str, setup: impl FnOnce(&mut Command)) -> Pty {
        Pty::spawn(line, setup, false).unwrap_or_else(|e| panic!("{e}"))
    }

    /// As `start`, and everything the terminal shows (questions, typed answers as the terminal
    /// echoes them, the installer's output) is copied to this process's stdout as it comes.
    pub fn start_live(line: &str, setup: impl FnOnce(&mut Command)) -> Result<Pty, String> {
        Pty::spawn(line, setup, true)
    }

    fn spawn(line: &str, setup: impl FnOnce(&mut Command), live: bool) -> Result<Pty, String> {
        let mut c = Command::new("script");
        c.args(["-qefc", line, "/dev/null"]);
        setup(&mut c);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = c.spawn().map_err(|e| format!("run `script` (util-linux): {e}"))?;
        let out = Arc::new(Mutex::new(Vec::new()));
        let (mut from, sink) = (child.stdout.take().expect("piped stdout"), out.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if live {
                    let mut o = std::io::stdout().lock();
                    let _ = o.write_all(&buf[..n]);
                    let _ = o.flush();
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(&buf[..n]);
            }
        });
        Ok(Pty { keys: child.stdin.take(), child, out, seen: 0 })
    }

    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// Waits until `what` is on the screen after what was already matched.
    pub fn expect(&mut self, what: &str) {
        self.expect_within(what, Duration::from_secs(30));
    }

    pub fn expect_within(&mut self, what: &str, limit: Duration) {
        if let Err(e) = self.try_expect_within(what, limit) {
            panic!("{e}");
        }
    }

    pub fn try_expect_within(&mut self, what: &str, limit: Duration) -> Result<(), String> {
        let end = Instant::now() + limit;
        loop {
            let s = self.screen();
            if let Some(i) = s.get(self.seen..).and_then(|rest| rest.find(what)) {
                self.seen += i + what.len();
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(format!("{what:?} did not appear within {limit:?}; the screen:\n{s}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The next question the program waits on: the unmatched screen ends in `]: ` and nothing more
    /// came for a moment. Returns that last line (and marks it matched), or None once the program
    /// has ended.
    pub fn next_prompt(&mut self, limit: Duration) -> Result<Option<String>, String> {
        let end = Instant::now() + limit;
        loop {
            let before = self.screen();
            let waiting = before.get(self.seen..).is_some_and(|rest| rest.ends_with("]: "));
            if waiting {
                std::thread::sleep(Duration::from_millis(150));
                let after = self.screen();
                if after == before {
                    let line = after[self.seen..].rsplit(['\n', '\r']).next().unwrap_or_default().to_string();
                    self.seen = after.len();
                    return Ok(Some(line));
                }
                continue;
            }
            if self.child.try_wait().map_err(|e| e.to_string())?.is_some() {
                return Ok(None);
            }
            if Instant::now() >= end {
                return Err(format!("no question within {limit:?}; the screen:\n{before}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn send(&mut self, keys: &str) {
        let k = self.keys.as_mut().expect("the terminal's keyboard is open until finish");
        k.write_all(keys.as_bytes()).expect("type on the terminal");
        k.flush().expect("type on the terminal");
    }

    pub fn answer(&mut self, question: &str, keys: &str) {
        self.expect(question);
        self.send(&format!("{keys}\r"));
    }

    pub fn finish(self) -> (Option<i32>, String) {
        self.finish_within(Duration::from_secs(60))
    }

    pub fn finish_within(self, limit: Duration) -> (Option<i32>, String) {
        let (status, s) = self.try_finish_within(limit).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("--- the terminal ({status:?}) ---\n{s}");
        (status, s)
    }

    /// Waits for the program to end (killing it after `limit`); its exit code and the screen.
    pub fn try_finish_within(mut self, limit: Duration) -> Result<(Option<i32>, String), String> {
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().map_err(|e| e.to_string())? {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("the program did not end within {limit:?}; the screen:\n{}", self.screen()));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(self.keys.take());
        std::thread::sleep(Duration::from_millis(100));
        Ok((status.code(), self.screen()))
    }
}
