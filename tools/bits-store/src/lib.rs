//! Bits storage: upload and fetch build artifacts in the eng layout
//! (`<base>/<stamp>/<name>/<file>`, `md5sums.txt`, `<branch>-latest`), to a
//! local directory or S3-compatible object storage. See `layout` for the
//! exact shape and `upload` for the ordering that keeps pointers honest.

mod ctx;
mod dest;
mod error;
mod fetch;
mod hash;
pub mod layout;
mod local;
mod multipart;
pub mod s3;
mod store;
pub mod testing;
mod upload;

pub use ctx::{Ctx, PAUSE_ENV, PausePoint};
pub use dest::Dest;
pub use error::{Error, Result};
pub use fetch::{FetchOptions, FetchReport, fetch};
pub use hash::md5_file;
pub use s3::S3Env;
pub use store::Store;
pub use upload::{
    ARTIFACTS, Component, UploadOptions, UploadReport, list_components, load_component, upload,
};
