//! `cargo xtask image ...`

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ImageCmd {
    /// List every image under images/ with its kind and description.
    List,
    /// Publish a built image to an updates server (IMGAPI).
    Publish(crate::publish::Args),
}

pub fn run(cmd: ImageCmd) -> Result<()> {
    let root = crate::workspace_root();
    match cmd {
        ImageCmd::List => {
            for name in zone_image::definition::list_images(&root)? {
                let def = zone_image::definition::load(&root, &name)?;
                println!("{:<24} {:<5} {}", def.name, def.kind.as_str(), def.description);
            }
            Ok(())
        }
        ImageCmd::Publish(args) => crate::publish::run(args),
    }
}
