//! The zone image pipeline, one module per stage (docs/design.md, "The pipeline, stage by stage"):
//!
//! 1. [`definition`] — `images/<name>/image.toml`
//! 2. [`binaries`] — cargo builds and the ELF check
//! 3. [`proto`] — the proto tree, validated by [`validate`]
//! 4. [`tarball`] — the reproducible package tarball
//! 5. [`zfs_image`] — the incremental ZFS image on its origin chain
//! 6. [`manifest`] — the IMGAPI manifest; for a tool, [`tool`] instead of
//!    5 and 6: the self-extracting installer and its manifest
//! 7. [`build`] — runs the stages and fills `bits/<name>/`

pub mod binaries;
pub mod build;
pub mod cache;
pub mod cancel;
pub mod compress;
pub mod definition;
pub mod error;
pub mod manifest;
pub mod origin;
pub mod proto;
pub mod stamp;
pub mod tarball;
pub mod tool;
pub mod util;
pub mod validate;
pub mod zfs;
pub mod zfs_image;

pub use error::{Error, Result};
