//! What every transfer shares: the request budget, progress output and the
//! test-only pause points.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use crate::progress::Reporter;

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
    pub(crate) reporter: Reporter,
    pause: Option<PausePoint>,
    files: AtomicUsize,
    chunks: AtomicUsize,
}

impl Ctx {
    pub fn new(jobs: usize, reporter: Reporter, pause: Option<PausePoint>) -> Arc<Ctx> {
        let jobs = jobs.max(1);
        Arc::new(Ctx {
            sem: Arc::new(Semaphore::new(jobs)),
            jobs,
            reporter,
            pause,
            files: AtomicUsize::new(0),
            chunks: AtomicUsize::new(0),
        })
    }

    pub(crate) fn file_stored(&self) {
        let n = self.files.fetch_add(1, Ordering::SeqCst) + 1;
        if self.pause == Some(PausePoint::AfterFiles(n)) {
            freeze("after-files");
        }
    }

    pub(crate) fn chunk_written(&self) {
        let n = self.chunks.fetch_add(1, Ordering::SeqCst) + 1;
        if self.pause == Some(PausePoint::MidFile(n)) {
            freeze("mid-file");
        }
    }

    pub(crate) fn at(&self, point: PausePoint) {
        if self.pause == Some(point) {
            freeze(&format!("{point:?}"));
        }
    }
}

/// Stop this thread for good: the test kills the process here. Blocking is
/// the point, so other tasks may still finish what is already in flight.
fn freeze(at: &str) -> ! {
    eprintln!("bits-store: paused at {at}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
