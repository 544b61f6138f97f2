//! `time LEVEL: message` lines on stderr.
//!
//! Vikunja's own format differs in detail; tests and the deployment engine
//! only grep for message text (`Server error`, `Migration failed`, …), which
//! the stand-in keeps identical.

use std::io::Write;

fn emit(level: &str, msg: &str) {
    // One write per line so lines of concurrent threads never interleave.
    let line = format!("{} {level}: {msg}\n", timestamp());
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

pub fn info(msg: &str) {
    emit("INFO", msg);
}

pub fn warn(msg: &str) {
    emit("WARNING", msg);
}

/// Also what Vikunja's `log.Critical` does: it logs, and does NOT exit.
pub fn error(msg: &str) {
    emit("ERROR", msg);
}

/// Vikunja's `log.Fatalf`: log, then `os.Exit(1)` without unwinding.
pub fn fatal(msg: &str) -> ! {
    emit("CRITICAL", msg);
    std::process::exit(1)
}

/// Local wall-clock time, broken down, as Go's `time.Now()` would see it.
pub struct LocalTime {
    pub year: i32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    pub utc_offset_secs: i64,
}

pub fn now_local() -> LocalTime {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs() as libc::time_t;
    // SAFETY: localtime_r only writes into the zeroed struct we own; `tm` is
    // plain old data.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&secs, &mut tm);
        tm
    };
    LocalTime {
        year: tm.tm_year + 1900,
        month: (tm.tm_mon + 1) as u32,
        day: tm.tm_mday as u32,
        hour: tm.tm_hour as u32,
        minute: tm.tm_min as u32,
        second: tm.tm_sec as u32,
        millis: since_epoch.subsec_millis(),
        utc_offset_secs: tm.tm_gmtoff,
    }
}

/// RFC 3339 with milliseconds, e.g. `2026-05-20T10:11:12.345+00:00`; also
/// used for the `created` column.
pub fn timestamp() -> String {
    let t = now_local();
    let off = t.utc_offset_secs;
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.unsigned_abs();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{sign}{:02}:{:02}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.millis,
        off / 3600,
        off % 3600 / 60
    )
}
