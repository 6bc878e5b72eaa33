//! Progress: a bar per file on a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

#[derive(Clone)]
pub enum Reporter {
    Bars(MultiProgress),
    Lines,
    Quiet,
}

impl Reporter {
    /// Bars when stderr is a terminal, else lines on stdout.
    pub fn auto() -> Reporter {
        if std::io::stderr().is_terminal() {
            Reporter::Bars(MultiProgress::new())
        } else {
            Reporter::Lines
        }
    }

    pub fn bar(&self, label: &str, total: u64) -> Bar {
        match self {
            Reporter::Bars(mp) => {
                let pb = mp.add(ProgressBar::new(total));
                if let Ok(style) = ProgressStyle::with_template(
                    "{msg:40!} {bar:30} {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12}",
                ) {
                    pb.set_style(style);
                }
                pb.set_message(label.to_string());
                Bar(Some(pb))
            }
            _ => Bar(None),
        }
    }

    pub fn line(&self, msg: &str) {
        match self {
            Reporter::Bars(mp) => {
                let _ = mp.println(msg);
            }
            Reporter::Lines => println!("{msg}"),
            Reporter::Quiet => {}
        }
    }
}

pub struct Bar(Option<ProgressBar>);

impl Bar {
    pub fn inc(&self, n: u64) {
        if let Some(pb) = &self.0 {
            pb.inc(n);
        }
    }

    pub fn handle(&self) -> Bar {
        Bar(self.0.clone())
    }

    pub fn done(&self) {
        if let Some(pb) = &self.0 {
            pb.finish_and_clear();
        }
    }
}
