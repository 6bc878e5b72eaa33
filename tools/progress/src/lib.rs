//! Progress, said once. Libraries report to a [`Progress`]; binaries pick
//! how it is shown with [`Reporter`]: bars on a terminal, plain lines in a
//! log, nothing with `--quiet`. Everything goes to stderr, so stdout keeps
//! only a command's results.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a long-running library call tells its caller.
pub trait Progress: Send + Sync {
    /// A step begins.
    fn step(&self, msg: &str);
    /// Something the user should see even with `--quiet`.
    fn warn(&self, msg: &str);
    /// A transfer of `total` bytes (`None`: unknown) begins.
    fn transfer(&self, label: &str, total: Option<u64>) -> Transfer;
    /// Run `f` with the display out of the way, for a child process that
    /// writes to the terminal itself.
    fn suspend(&self, f: &mut dyn FnMut()) {
        f()
    }
}

/// Reports nothing: for tests and callers that show their own.
pub struct Silent;

impl Progress for Silent {
    fn step(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn transfer(&self, _: &str, _: Option<u64>) -> Transfer {
        Transfer(Arc::new(TransferInner::Hidden))
    }
}

/// How a binary shows progress.
#[derive(Clone)]
pub struct Reporter {
    prefix: String,
    mode: Mode,
}

#[derive(Clone)]
enum Mode {
    /// A spinner for the current step and a bar per transfer.
    Bars {
        multi: MultiProgress,
        step: ProgressBar,
        /// The spinner joins the display at the first step, so a command
        /// that reports nothing draws nothing.
        shown: Arc<AtomicBool>,
    },
    /// `prefix: message` lines; transfers every 10%.
    Lines,
    /// Warnings only.
    Quiet,
}

impl Reporter {
    /// Bars when stderr is a terminal, lines otherwise; `quiet` shows only
    /// warnings. `prefix` starts each line (the command or image name).
    pub fn new(prefix: &str, quiet: bool) -> Reporter {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let step = ProgressBar::hidden();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {msg}") {
                step.set_style(style);
            }
            step.set_prefix(prefix.to_string());
            Mode::Bars {
                multi,
                step,
                shown: Arc::new(AtomicBool::new(false)),
            }
        } else {
            Mode::Lines
        };
        Reporter {
            prefix: prefix.to_string(),
            mode,
        }
    }

    /// Plain lines whatever stderr is (what tests and logs read).
    pub fn lines(prefix: &str) -> Reporter {
        Reporter {
            prefix: prefix.to_string(),
            mode: Mode::Lines,
        }
    }

    /// Clear the bars; call before printing results.
    pub fn finish(&self) {
        if let Mode::Bars { step, .. } = &self.mode {
            step.finish_and_clear();
        }
    }
}

impl Progress for Reporter {
    fn step(&self, msg: &str) {
        match &self.mode {
            Mode::Bars { multi, step, shown } => {
                if step.is_finished() {
                    return;
                }
                if !shown.swap(true, Ordering::Relaxed) {
                    multi.add(step.clone());
                }
                step.set_message(msg.to_string());
                step.enable_steady_tick(Duration::from_millis(120));
            }
            Mode::Lines => eprintln!("{}: {msg}", self.prefix),
            Mode::Quiet => {}
        }
    }

    fn suspend(&self, f: &mut dyn FnMut()) {
        match &self.mode {
            Mode::Bars { multi, .. } => multi.suspend(f),
            Mode::Lines | Mode::Quiet => f(),
        }
    }

    fn warn(&self, msg: &str) {
        let line = format!("{}: warning: {msg}", self.prefix);
        match &self.mode {
            // Printed above the bars, which are redrawn below it.
            Mode::Bars { multi, .. } => {
                if multi.println(&line).is_err() {
                    eprintln!("{line}");
                }
            }
            Mode::Lines | Mode::Quiet => eprintln!("{line}"),
        }
    }

    fn transfer(&self, label: &str, total: Option<u64>) -> Transfer {
        let inner = match &self.mode {
            Mode::Bars { multi, .. } => {
                let bar = multi.add(match total {
                    Some(t) => ProgressBar::new(t),
                    None => ProgressBar::new_spinner(),
                });
                let template = match total {
                    Some(_) => {
                        "{msg:30!} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} eta {eta}"
                    }
                    None => "{spinner} {msg:30!} {bytes:>10} {bytes_per_sec:>12}",
                };
                if let Ok(style) = ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(label.to_string());
                TransferInner::Bar(bar)
            }
            Mode::Lines => TransferInner::Lines {
                label: format!("{}: {label}", self.prefix),
                total,
                state: Mutex::new(LineState::default()),
            },
            Mode::Quiet => TransferInner::Hidden,
        };
        Transfer(Arc::new(inner))
    }
}

/// One transfer's progress; clones report to the same bar.
#[derive(Clone)]
pub struct Transfer(Arc<TransferInner>);

enum TransferInner {
    Bar(ProgressBar),
    Lines {
        label: String,
        total: Option<u64>,
        state: Mutex<LineState>,
    },
    Hidden,
}

#[derive(Default)]
struct LineState {
    done: u64,
    /// The last tenth (or, without a total, GiB) reported.
    told: u64,
    finished: bool,
}

const GIB: u64 = 1 << 30;

impl Transfer {
    /// `n` more bytes done.
    pub fn inc(&self, n: u64) {
        match &*self.0 {
            TransferInner::Bar(b) => b.inc(n),
            TransferInner::Lines {
                label,
                total,
                state,
            } => {
                let Ok(mut s) = state.lock() else { return };
                s.done += n;
                let (mark, line) = match *total {
                    Some(t) if t > 0 => {
                        let tenth = s.done.saturating_mul(10) / t;
                        (
                            tenth,
                            format!("{label}: {}% ({} of {t} bytes)", tenth * 10, s.done),
                        )
                    }
                    _ => (s.done / GIB, format!("{label}: {} bytes", s.done)),
                };
                if mark > s.told && (total.is_none() || mark < 10) {
                    s.told = mark;
                    eprintln!("{line}");
                }
            }
            TransferInner::Hidden => {}
        }
    }

    /// The transfer ended (a line in a log; the bar goes away).
    pub fn finish(&self) {
        match &*self.0 {
            TransferInner::Bar(b) => b.finish_and_clear(),
            TransferInner::Lines { label, state, .. } => {
                let Ok(mut s) = state.lock() else { return };
                if !s.finished {
                    s.finished = true;
                    eprintln!("{label}: done ({} bytes)", s.done);
                }
            }
            TransferInner::Hidden => {}
        }
    }

    /// Bytes reported so far (for callers that also total them).
    pub fn position(&self) -> Option<u64> {
        match &*self.0 {
            TransferInner::Bar(b) => Some(b.position()),
            TransferInner::Lines { state, .. } => state.lock().ok().map(|s| s.done),
            TransferInner::Hidden => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_transfers_accept_everything() {
        let t = Silent.transfer("x", Some(10));
        t.inc(5);
        t.finish();
        assert_eq!(t.position(), None);
    }

    #[test]
    fn lines_count_bytes_across_clones() {
        let r = Reporter::lines("test");
        let t = r.transfer("file", Some(100));
        let u = t.clone();
        t.inc(30);
        u.inc(25);
        assert_eq!(t.position(), Some(55));
        t.finish();
        t.finish();
    }

    #[test]
    fn quiet_hides_transfers() {
        let r = Reporter::new("test", true);
        assert_eq!(r.transfer("file", None).position(), None);
    }
}
