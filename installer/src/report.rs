//! The one way below `commands/` to tell the user something: progress and result lines go to a
//! sink that the binary installs at start (`ui::Console`: stdout and stderr), so the engine,
//! host and services never write to a terminal themselves, and a front end whose stdout is not
//! for people (an MCP server, a test) installs its own.
//!
//! A process-wide sink rather than a parameter in every operation's options: the same lines come
//! from `recovery`, which every changing command (and `status`) runs first, and from helpers a few
//! calls deep; threading a reporter through all of them would change every signature for the same
//! effect. Without a sink (unit tests) the lines are dropped.

use std::sync::{Arc, RwLock};

/// Where a line belongs: `Out` for what the command produces, `Err` for progress and warnings
/// that must not mix with it (a recovery run inside `status --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

pub trait Sink: Send + Sync {
    /// `text` as given (lines end in `\n`).
    fn write(&self, stream: Stream, text: &str);
    /// Whether `Out` is a terminal that shows colours and cursor moves.
    fn fancy(&self) -> bool {
        false
    }
}

static SINK: RwLock<Option<Arc<dyn Sink>>> = RwLock::new(None);

/// Installs the sink every later line goes to.
pub fn set(sink: Arc<dyn Sink>) {
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
}

fn current() -> Option<Arc<dyn Sink>> {
    SINK.read().unwrap_or_else(|e| e.into_inner()).clone()
}

pub fn write(stream: Stream, text: &str) {
    if let Some(s) = current() {
        s.write(stream, text);
    }
}

/// Text for `Out`, as is (no newline added).
pub fn text(s: &str) {
    write(Stream::Out, s);
}

pub fn fancy() -> bool {
    current().is_some_and(|s| s.fancy())
}

/// A line for `Out` (what the command produces), formatted like `println!`.
macro_rules! say {
    () => { $crate::report::write($crate::report::Stream::Out, "\n") };
    ($($t:tt)*) => { $crate::report::write($crate::report::Stream::Out, &format!("{}\n", format_args!($($t)*))) };
}

/// A line for `Err` (progress, warnings), formatted like `eprintln!`.
macro_rules! note {
    () => { $crate::report::write($crate::report::Stream::Err, "\n") };
    ($($t:tt)*) => { $crate::report::write($crate::report::Stream::Err, &format!("{}\n", format_args!($($t)*))) };
}

pub(crate) use {note, say};

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Capture(Mutex<Vec<(Stream, String)>>);
    impl Sink for Capture {
        fn write(&self, stream: Stream, text: &str) {
            self.0.lock().unwrap().push((stream, text.to_string()));
        }
    }

    #[test]
    fn lines_reach_the_installed_sink_on_their_stream() {
        let c = Arc::new(Capture(Mutex::new(Vec::new())));
        set(c.clone());
        say!("report-test made {} of {}", 1, 2);
        note!("report-test warning: {}", "x");
        text("report-test raw");
        // Other tests of this binary may write meanwhile: only this test's lines are compared.
        let got: Vec<_> = c.0.lock().unwrap().iter().filter(|(_, t)| t.starts_with("report-test")).cloned().collect();
        assert_eq!(
            got,
            [
                (Stream::Out, "report-test made 1 of 2\n".into()),
                (Stream::Err, "report-test warning: x\n".into()),
                (Stream::Out, "report-test raw".into())
            ]
        );
        assert!(!fancy());
    }
}
