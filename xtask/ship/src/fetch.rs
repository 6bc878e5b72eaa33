//! `cargo xtask image fetch-origin <uuid>`: the origin chain into the pool
//! with zone-image's own IMGAPI client, as `image build` would take it;
//! `xtask` hands its downloads here.

use std::path::PathBuf;

use anyhow::{Context, Result};
use progress::Reporter;
use uuid::Uuid;
use zone_image::origin::{DEFAULT_SOURCE, Origins};

#[derive(clap::Args)]
pub struct Args {
    /// The origin image's UUID.
    pub uuid: Uuid,
    /// Pool or dataset to receive into, as <POOL>/<uuid>@final.
    #[arg(long, value_name = "POOL")]
    pub zpool: String,
    /// Directory with origin images (*.imgmanifest + image file), looked
    /// in before the source.
    #[arg(long, value_name = "DIR")]
    pub origin_dir: Option<PathBuf>,
    /// IMGAPI to download from; "" for none.
    #[arg(long, value_name = "URL", default_value = DEFAULT_SOURCE)]
    pub source: String,
    /// Channel of --source to look the images up in.
    #[arg(long, value_name = "C")]
    pub origin_channel: Option<String>,
    /// No progress on stderr (warnings and errors still print).
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: Args) -> Result<()> {
    zone_image::cancel::install_handler();
    let reporter = Reporter::new("origin", args.quiet);
    let origins = Origins {
        pool: &args.zpool,
        dir: args.origin_dir.as_deref(),
        source: Some(args.source.as_str()).filter(|s| !s.is_empty()),
        channel: args.origin_channel.as_deref(),
        fetch: None,
        progress: &reporter,
    };
    let result = origins.ensure(args.uuid);
    reporter.finish();
    let manifest = result.with_context(|| format!("fetching origin {}", args.uuid))?;
    println!(
        "origin: {}/{}@final ({})",
        args.zpool,
        args.uuid,
        manifest.label()
    );
    Ok(())
}
