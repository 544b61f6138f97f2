//! A command line on its own pseudo-terminal (util-linux `script`), driven like a person at the
//! keyboard: wait for text on the screen, type. Shared by the first-run and host tests.

// Each test crate that includes this uses a part of it.
#![allow(dead_code)]

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
        let mut c = Command::new("script");
        c.args(["-qefc", line, "/dev/null"]);
        setup(&mut c);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = c.spawn().unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let (mut from, sink) = (child.stdout.take().unwrap(), out.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { keys: child.stdin.take(), child, out, seen: 0 }
    }
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }
    /// Waits until `what` is on the screen after what was already matched.
    pub fn expect(&mut self, what: &str) {
        self.expect_within(what, Duration::from_secs(30));
    }
    pub fn expect_within(&mut self, what: &str, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            let s = self.screen();
            if let Some(i) = s.get(self.seen..).and_then(|rest| rest.find(what)) {
                self.seen += i + what.len();
                return;
            }
            assert!(Instant::now() < end, "{what:?} did not appear; the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    pub fn send(&mut self, keys: &str) {
        let k = self.keys.as_mut().unwrap();
        k.write_all(keys.as_bytes()).unwrap();
        k.flush().unwrap();
    }
    pub fn answer(&mut self, question: &str, keys: &str) {
        self.expect(question);
        self.send(&format!("{keys}\r"));
    }
    pub fn finish(self) -> (Option<i32>, String) {
        self.finish_within(Duration::from_secs(60))
    }
    pub fn finish_within(mut self, limit: Duration) -> (Option<i32>, String) {
        let end = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                panic!("the installer did not end; the screen:\n{}", self.screen());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(self.keys.take());
        std::thread::sleep(Duration::from_millis(100));
        let s = self.screen();
        eprintln!("--- the terminal ({status:?}) ---\n{s}");
        (status.code(), s)
    }
}
