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
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Command(String),
    #[error("interrupted")]
    Interrupted,
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
        matches!(self, Error::Input { .. })
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
