//! Stage 5: the incremental ZFS image on its origin chain.
//! (Contract only; the stage is being built in its own issue.)

use std::path::{Path, PathBuf};

use crate::definition::ImageDef;
use crate::error::Result;
use crate::stamp::GitInfo;

/// Flags of `image build` that drive this stage.
#[derive(Debug, Clone, Default)]
pub struct ZfsOptions {
    /// `--zpool`; `None` falls back to the zone's dataset or `ZONE_IMAGE_ZPOOL`.
    pub zpool: Option<String>,
    /// `--origin-dir`: where `*.imgmanifest` + image files of origins live.
    pub origin_dir: Option<PathBuf>,
    /// `--origin-source`: IMGAPI to fetch origins from.
    pub origin_source: Option<String>,
    /// `--channel` for the origin source.
    pub channel: Option<String>,
    /// `--skip-pkgsrc`: build without installing pkgsrc packages (dev image).
    pub skip_pkgsrc: bool,
}

/// What the pipeline hands to this stage.
pub struct ZfsInput<'a> {
    pub def: &'a ImageDef,
    /// The assembled proto: `root/` and `site/` below it.
    pub proto_dir: &'a Path,
    /// The build stamp (manifest `version`, before any `-dev` suffix).
    pub stamp: &'a str,
    /// `Some(reason)` when this is a dev image (host binaries, ...).
    pub dev_reason: Option<String>,
    pub git: &'a GitInfo,
    /// `bits/<name>/`
    pub out_dir: &'a Path,
    pub opts: &'a ZfsOptions,
}

/// Files this stage wrote into `out_dir`.
#[derive(Debug, Clone)]
pub struct ZfsOutputs {
    pub image_file: PathBuf,
    pub manifest_file: PathBuf,
}

/// Run the stage. `Ok(None)` means ZFS is not available here (no pool
/// configured or no working `zfs`), and the caller says so in one line.
pub fn build(_input: &ZfsInput<'_>) -> Result<Option<ZfsOutputs>> {
    Ok(None)
}
