use std::path::PathBuf;

/// Errors of the image pipeline. `Input` is the user's fault (bad
/// definition, bad file, bad flag): callers map it to exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {key}: {message}")]
    Input {
        file: PathBuf,
        key: String,
        message: String,
    },
    // The cause is the source, not in the message: printed as a chain
    // (`{:#}`) each cause shows once.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Command(String),
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Stamp(#[from] buildstamp::Error),
    #[error(transparent)]
    Zfs(crate::zfs::ZfsError),
}

impl Error {
    pub fn input(
        file: impl Into<PathBuf>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Input {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn is_input(&self) -> bool {
        match self {
            Error::Input { .. } => true,
            Error::Stamp(e) => e.is_input(),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a description of what was being done to an I/O error.
pub trait IoContext<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn io_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_failure_names_the_os_error_once() {
        let missing = std::env::temp_dir().join("zone-image-no-such-dir/x");
        let e = std::fs::read(&missing)
            .io_context(|| format!("reading {}", missing.display()))
            .unwrap_err();
        let line = error_line::one_line(&e);
        assert!(line.starts_with("reading "), "{line}");
        assert_eq!(line.matches("os error 2").count(), 1, "{line}");
    }
}
