//! `cargo xtask bits ...`

use anyhow::{Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BitsCmd {
    /// Upload bits/<name>/ to bits storage in the eng layout.
    Upload,
}

pub fn run(_cmd: BitsCmd) -> Result<()> {
    bail!("bits: not implemented yet")
}
