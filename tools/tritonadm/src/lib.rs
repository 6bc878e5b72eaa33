//! tritonadm's logic, as a library so `cargo xtask image publish` and the
//! tests run the same code as the CLI.
//!
//! - [`target`]: where each DC API is (flag, env, headnode config).
//! - [`dc`]: the DC's clients, the updates server and channel, and how a
//!   failed call is told.
//! - [`views`]: `services`, `instances`, `avail`, `dc-maint status`.
//! - [`post_setup`]: `post-setup triton-api`, `post-setup common-external-nics`.
//! - [`imgapi`]: the client (TLS, signing) and error rendering.
//! - [`import`]: `image import` / `image import-remote`: verify locally,
//!   make sure the origin chain is there, import, upload, activate.
//! - [`download`]: `image get-file`: a file checked against its manifest
//!   and the server's Content-MD5.
//! - [`self_update`]: `self-update`: find, download and verify, then run
//!   the installer; `--rollback`.
//! - [`version`]: the build stamp `--version` prints.

pub mod dc;
pub mod download;
pub mod imgapi;
pub mod import;
pub mod post_setup;
pub mod self_update;
pub mod target;
pub mod version;
pub mod views;

use std::path::PathBuf;

/// Everything tritonadm's library can fail with. `is_input` tells bad input
/// (exit 2) from a failure of the machine or a remote system (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: names the file or flag, the field and what was expected.
    #[error("{0}")]
    Input(String),
    // `err`, not `source`: the message carries it already.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    /// A call to IMGAPI failed; `message` already says which call, where,
    /// and what came back.
    #[error("{message}")]
    Api {
        message: String,
        /// The HTTP status, when the server answered.
        status: Option<u16>,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn is_input(&self) -> bool {
        matches!(self, Error::Input(_))
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::Api {
                status: Some(404),
                ..
            }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
