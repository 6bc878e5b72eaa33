//! Typed errors. Every message is one line naming the file, object or flag
//! at fault; `is_input` separates bad input (exit 2) from failures of the
//! machine or the store (exit 1).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--dest {dest:?}: {expected}")]
    BadDest { dest: String, expected: String },

    #[error("{path}: {reason}")]
    BadBits { path: PathBuf, reason: String },

    #[error(
        "{path}: stamp {stamp:?} is marked dirty; refusing to upload it (pass --allow-dirty to upload anyway)"
    )]
    Dirty { path: PathBuf, stamp: String },

    #[error(
        "{path}: stamp {stamp:?} is a dev build (host binaries in a SmartOS image); refusing to upload it (pass --allow-dev to upload anyway)"
    )]
    DevBuild { path: PathBuf, stamp: String },

    #[error("no --branch given and git cannot name one; pass --branch (or BRANCH) or --stamp")]
    NoBranch {
        #[source]
        source: buildstamp::Error,
    },

    #[error("{flag}: {reason}")]
    BadFlag { flag: &'static str, reason: String },

    #[error("{what} {value:?}: {expected}")]
    BadName {
        what: &'static str,
        value: String,
        expected: &'static str,
    },

    #[error(
        "{dest}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a non-AWS server)"
    )]
    MissingCredentials { dest: String },

    #[error("{dest}: bucket {bucket:?} does not exist at {endpoint}")]
    NoBucket {
        dest: String,
        bucket: String,
        endpoint: String,
    },

    #[error(
        "{object}: already stored with md5 {stored}, but {local} has md5 {local_md5}; published bits are immutable (build a new stamp)"
    )]
    Immutable {
        object: String,
        stored: String,
        local: PathBuf,
        local_md5: String,
    },

    #[error("{object}: {message}")]
    Remote { object: String, message: String },

    // The cause is the source, not in the message: printed as a chain
    // (`{:#}`) each cause shows once.
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: changed while it was being uploaded ({detail}); rebuild or rerun")]
    ChangedDuringUpload { path: PathBuf, detail: String },

    #[error(
        "{object}: md5 mismatch: md5sums.txt says {expected}, the downloaded file has {actual}"
    )]
    Mismatch {
        object: String,
        expected: String,
        actual: String,
    },

    #[error("{object}: listed in md5sums.txt but missing from the store")]
    MissingObject { object: String },

    #[error("{object}: not found ({hint})")]
    NotFound { object: String, hint: String },

    #[error("{object}: {reason}")]
    BadRemote { object: String, reason: String },
}

impl Error {
    /// True when the fault lies in what the user gave us (flags, bits
    /// files, destination), not in the machine or the store.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::BadDest { .. }
                | Error::BadBits { .. }
                | Error::Dirty { .. }
                | Error::DevBuild { .. }
                | Error::BadFlag { .. }
                | Error::NoBranch { .. }
                | Error::BadName { .. }
                | Error::MissingCredentials { .. }
                | Error::NoBucket { .. }
                | Error::NotFound { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_failure_names_the_os_error_once() {
        let missing = std::env::temp_dir().join("bits-store-no-such-dir/x");
        let e = Error::io(&missing, std::fs::read(&missing).unwrap_err());
        // As the binaries print it: the message, then each cause.
        let mut line = e.to_string();
        let mut cur = std::error::Error::source(&e);
        while let Some(c) = cur {
            line.push_str(&format!(": {c}"));
            cur = c.source();
        }
        assert!(line.starts_with(&missing.display().to_string()), "{line}");
        assert_eq!(line.matches("os error 2").count(), 1, "{line}");
    }
}
