//! Test-only fault injection, the one hook: `VIKUNJA_INSTALLER_TEST_KILL_AT=<point>` makes the
//! installer SIGKILL itself at that point, so tests can prove recovery from every step. Unset in
//! production, where it does nothing. Every point is a literal, `step.name()` of a journal's step
//! table or a colour's name at the call site: `installer/tests/fault_points.rs` reads them there and
//! fails when a SIGKILL test exercises none of them.

/// The variable naming the point to die at.
pub const KILL_AT: &str = "VIKUNJA_INSTALLER_TEST_KILL_AT";

/// Whether the tests asked to die at `point` (for a kill that must happen later, mid-stream).
pub fn armed(point: &str) -> bool {
    std::env::var(KILL_AT).is_ok_and(|v| v == point)
}

/// SIGKILLs this process if `VIKUNJA_INSTALLER_TEST_KILL_AT` names `point` (tests only).
pub fn kill_point(point: &str) {
    if armed(point) {
        // SAFETY: kill(2) with our own pid only takes integers; SIGKILL ends the process here,
        // exactly like an operator's `kill -9` would.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
