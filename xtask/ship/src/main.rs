//! `cargo xtask bits ...`, `image publish` and `image fetch-origin`: the
//! commands that talk to bits storage and IMGAPI, kept out of `xtask` so
//! listing and building images needs no HTTPS, S3 or server code.

mod bits;
mod fetch;
mod publish;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask_launch::{EXIT_INPUT, EXIT_INTERRUPTED};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Ship Triton zone images: bits and updates servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Zone images: publish, fetch origins.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Bits storage: upload and fetch build artifacts.
    #[command(subcommand)]
    Bits(bits::BitsCmd),
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Publish a built image to an updates server (IMGAPI).
    Publish(publish::Args),
    /// Download an origin image and its origins into the pool, checked
    /// before `zfs receive` (what `image build` does when one is missing).
    FetchOrigin(fetch::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Image(ImageCmd::Publish(args)) => publish::run(args),
        Command::Image(ImageCmd::FetchOrigin(args)) => fetch::run(args),
        Command::Bits(cmd) => bits::run(cmd),
    };
    // The pipeline's verdict first (it may be an interrupt); then bad
    // input to bits storage or a key that cannot sign.
    xtask_launch::exit(result, |c| {
        if let Some(p) = c.downcast_ref::<zone_image::Error>() {
            return match p {
                zone_image::Error::Interrupted => Some(EXIT_INTERRUPTED),
                p if p.is_input() => Some(EXIT_INPUT),
                _ => None,
            };
        }
        let input = c
            .downcast_ref::<bits_store::Error>()
            .is_some_and(|b| b.is_input())
            || c.downcast_ref::<http_signature::Error>().is_some();
        input.then_some(EXIT_INPUT)
    })
}
