//! `cargo xtask image publish`: manifest + file to an updates server.

use anyhow::{Result, bail};

#[derive(clap::Args)]
pub struct Args {
    /// Image name under images/.
    pub name: String,
}

pub fn run(_args: Args) -> Result<()> {
    bail!("image publish: not implemented yet")
}
