//! SIGINT, SIGTERM and SIGHUP: while the installer runs they are passed on to it (its exit then
//! ends the bootstrap normally, which cleans up); before that, the private directory is removed and
//! the bootstrap exits 130.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Set when a signal arrived: downloads stop at their next read.
pub static CANCEL: AtomicBool = AtomicBool::new(false);
/// PID of the running installer, 0 when none.
pub static CHILD: AtomicI32 = AtomicI32::new(0);

pub fn install() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            CANCEL.store(true, Ordering::SeqCst);
            let child = CHILD.load(Ordering::SeqCst);
            if child > 0 {
                // SAFETY: kill(2) takes two integers and reads or writes no memory of this process,
                // so no Rust invariant can be broken by calling it.
                unsafe {
                    libc::kill(child, sig);
                }
                continue;
            }
            let dir = crate::tempdir::REGISTERED.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if let Some(dir) = dir {
                // Twice: the main thread may have created a file while the first pass ran.
                crate::tempdir::remove(&dir);
                crate::tempdir::remove(&dir);
            }
            eprintln!("\nvikunja-bootstrap: interrupted; nothing was installed");
            std::process::exit(130);
        }
    });
    Ok(())
}
