//! Ctrl-C and SIGTERM handling. Stages poll [`check`] between steps and
//! inside their copy loops, then unwind through their cleanup guards.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

static CANCELLED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

/// Install the SIGINT/SIGTERM handler once per process. A second signal
/// while cleanup runs is ignored so the cleanup can finish.
pub fn install_handler() {
    INSTALL.call_once(|| {
        // Failing to install only loses graceful cleanup; the build itself
        // still works, so report and carry on.
        if let Err(e) = ctrlc::set_handler(|| CANCELLED.store(true, Ordering::SeqCst)) {
            eprintln!("warning: cannot install the interrupt handler: {e}");
        }
    });
}

pub fn is_cancelled() -> bool {
    CANCELLED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a signal has arrived.
pub fn check() -> Result<()> {
    if is_cancelled() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// For tests: simulate a signal.
pub fn cancel() {
    CANCELLED.store(true, Ordering::SeqCst);
}

/// Test hook: a stage waits at the step this names until interrupted or
/// killed, so tests can interrupt it at a known point. Read only in debug
/// builds (what tests run), never in a release build.
pub const PAUSE_ENV: &str = "ZONE_IMAGE_TEST_PAUSE_AT";

/// If [`PAUSE_ENV`] names `step`, wait here until interrupted (or killed).
#[cfg(debug_assertions)]
pub fn pause_point(step: &str) -> Result<()> {
    if std::env::var(PAUSE_ENV).is_ok_and(|v| v == step) {
        eprintln!("zone-image: paused at {step}");
        loop {
            check()?;
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Release builds have no pause points, only the Ctrl-C check.
#[cfg(not(debug_assertions))]
pub fn pause_point(_step: &str) -> Result<()> {
    check()
}
