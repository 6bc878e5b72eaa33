//! `cargo xtask`: list, check and build images, as thin glue over
//! `zone_image`. Commands that need HTTPS, S3 or the API servers belong to
//! other tools (`xtask_launch::tool_for`); the launcher runs those directly,
//! and this binary hands them over when run by itself.

mod forward;
mod image;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask_launch::{EXIT_INPUT, EXIT_INTERRUPTED};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build and ship Triton zone images")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Zone images: list, check, build, publish.
    #[command(subcommand)]
    Image(image::ImageCmd),
    /// OpenAPI documents generated from the API traits (xtask-openapi).
    #[command(disable_help_flag = true)]
    Openapi(forward::Args),
    /// Bits storage: upload and fetch build artifacts (xtask-ship).
    #[command(disable_help_flag = true)]
    Bits(forward::Args),
    /// Benchmarks against the eng shell pipelines (xtask-bench).
    #[command(disable_help_flag = true)]
    Bench(forward::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Image(image::ImageCmd::Publish(_) | image::ImageCmd::FetchOrigin(_))
        | Command::Openapi(_)
        | Command::Bits(_)
        | Command::Bench(_) => return forward::run(),
        Command::Image(cmd) => image::run(cmd),
    };
    xtask_launch::exit(result, |c| {
        c.downcast_ref::<zone_image::Error>().map(|p| match p {
            zone_image::Error::Interrupted => EXIT_INTERRUPTED,
            p if p.is_input() => EXIT_INPUT,
            _ => 1,
        })
    })
}
