//! What every transfer shares: the request budget, progress output and,
//! in debug builds only (what tests run), the pause points tests kill at;
//! debug, not a cargo feature, so whichever build of xtask a test finds has
//! them, and no release build does.

use std::num::NonZeroUsize;
use std::sync::Arc;
#[cfg(debug_assertions)]
use std::sync::atomic::{AtomicUsize, Ordering};

use buf_pool::BufPool;
use progress::Progress;
use tokio::sync::Semaphore;

use crate::error::Result;

/// Where an upload stops dead (for tests that SIGKILL it there): after N
/// files are stored, after N chunks of file data are written (mid-file),
/// before md5sums.txt, or before the pointers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PausePoint {
    AfterFiles(usize),
    MidFile(usize),
    BeforeMd5sums,
    BeforePointer,
}

/// The variable naming a [`PausePoint`]; read only in debug builds.
pub const PAUSE_ENV: &str = "BITS_STORE_PAUSE_AT";

impl std::str::FromStr for PausePoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let num = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("bad count in {s:?}"))
        };
        match s.split_once(':') {
            Some(("after-files", n)) => Ok(PausePoint::AfterFiles(num(n)?)),
            Some(("mid-file", n)) => Ok(PausePoint::MidFile(num(n)?)),
            None if s == "before-md5sums" => Ok(PausePoint::BeforeMd5sums),
            None if s == "before-pointer" => Ok(PausePoint::BeforePointer),
            _ => Err(format!(
                "{s:?}: expected after-files:N, mid-file:N, before-md5sums or before-pointer"
            )),
        }
    }
}

pub struct Ctx {
    /// One permit per request or part buffer in flight: bounds both
    /// parallelism and memory (permits x part size).
    pub(crate) sem: Arc<Semaphore>,
    pub(crate) jobs: usize,
    /// One file at a time reads (and hashes) its data; the next starts as
    /// soon as the last byte is read, so a multipart object's completion,
    /// which the server may take seconds over, overlaps the next file's
    /// transfer. Fair, so files start in the order they ask.
    pub(crate) read_turn: Arc<Semaphore>,
    /// Part buffers back from finished requests, reused: no fresh pages to
    /// fault in per part, and memory stays at `jobs` buffers.
    pub(crate) bufs: Arc<BufPool>,
    /// Where steps and transfers are reported.
    pub(crate) progress: Arc<dyn Progress>,
    #[cfg(debug_assertions)]
    hooks: Hooks,
}

#[cfg(debug_assertions)]
struct Hooks {
    pause: Option<PausePoint>,
    files: AtomicUsize,
    chunks: AtomicUsize,
}

impl Ctx {
    /// In debug builds, a bad [`PAUSE_ENV`] is an error.
    pub fn new(jobs: NonZeroUsize, progress: Arc<dyn Progress>) -> Result<Arc<Ctx>> {
        let jobs = jobs.get();
        Ok(Arc::new(Ctx {
            sem: Arc::new(Semaphore::new(jobs)),
            jobs,
            read_turn: Arc::new(Semaphore::new(1)),
            bufs: BufPool::new(jobs),
            progress,
            #[cfg(debug_assertions)]
            hooks: Hooks::from_env()?,
        }))
    }

    pub(crate) fn file_stored(&self) {
        #[cfg(debug_assertions)]
        {
            let n = self.hooks.files.fetch_add(1, Ordering::SeqCst) + 1;
            if self.hooks.pause == Some(PausePoint::AfterFiles(n)) {
                freeze("after-files");
            }
        }
    }

    pub(crate) fn chunk_written(&self) {
        #[cfg(debug_assertions)]
        {
            let n = self.hooks.chunks.fetch_add(1, Ordering::SeqCst) + 1;
            if self.hooks.pause == Some(PausePoint::MidFile(n)) {
                freeze("mid-file");
            }
        }
    }

    pub(crate) fn at(&self, point: PausePoint) {
        #[cfg(debug_assertions)]
        if self.hooks.pause == Some(point) {
            freeze(&format!("{point:?}"));
        }
        #[cfg(not(debug_assertions))]
        let _ = point;
    }
}

#[cfg(debug_assertions)]
impl Hooks {
    fn from_env() -> Result<Hooks> {
        let pause = match std::env::var(PAUSE_ENV) {
            Ok(v) if !v.is_empty() => Some(v.parse().map_err(|reason| crate::Error::BadFlag {
                flag: PAUSE_ENV,
                reason,
            })?),
            _ => None,
        };
        Ok(Hooks {
            pause,
            files: AtomicUsize::new(0),
            chunks: AtomicUsize::new(0),
        })
    }
}

/// Stop this thread for good: the test kills the process here. Blocking is
/// the point, so other tasks may still finish what is already in flight.
#[cfg(debug_assertions)]
fn freeze(at: &str) -> ! {
    eprintln!("bits-store: paused at {at}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
