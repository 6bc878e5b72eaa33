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

    #[error("{path}: {source}")]
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
