//! Progress of long transfers: an indicatif bar on a terminal, a few plain
//! lines (every 10%) otherwise, so CI logs stay readable.

use std::io::IsTerminal as _;
use std::sync::Mutex;

pub struct Progress {
    inner: Inner,
}

enum Inner {
    Bar(indicatif::ProgressBar),
    Lines {
        label: String,
        total: u64,
        state: Mutex<(u64, u64)>,
    },
    Hidden,
}

impl Progress {
    /// A bar on a terminal, lines otherwise.
    pub fn new(label: &str, total: u64) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_string());
            Progress {
                inner: Inner::Bar(bar),
            }
        } else {
            Progress::lines(label, total)
        }
    }

    pub fn lines(label: &str, total: u64) -> Progress {
        Progress {
            inner: Inner::Lines {
                label: label.to_string(),
                total,
                state: Mutex::new((0, 0)),
            },
        }
    }

    pub fn hidden() -> Progress {
        Progress {
            inner: Inner::Hidden,
        }
    }

    pub fn inc(&self, n: u64) {
        match &self.inner {
            Inner::Bar(b) => b.inc(n),
            Inner::Lines {
                label,
                total,
                state,
            } => {
                let Ok(mut s) = state.lock() else { return };
                s.0 += n;
                let pct = (s.0.saturating_mul(100)).checked_div(*total).unwrap_or(100);
                let step = pct / 10 * 10;
                if step > s.1 && step < 100 {
                    s.1 = step;
                    eprintln!("{label}: {step}% ({} of {} bytes)", s.0, total);
                }
            }
            Inner::Hidden => {}
        }
    }

    pub fn finish(&self) {
        match &self.inner {
            Inner::Bar(b) => b.finish_and_clear(),
            Inner::Lines { label, total, .. } => eprintln!("{label}: 100% ({total} bytes)"),
            Inner::Hidden => {}
        }
    }
}
