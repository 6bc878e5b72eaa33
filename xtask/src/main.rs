//! `cargo xtask`: thin glue over the pipeline crates in `tools/`.

mod bench;
mod bits;
mod image;
mod openapi;
mod publish;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build and ship Triton zone images")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Zone images: list, check, build.
    #[command(subcommand)]
    Image(image::ImageCmd),
    /// OpenAPI documents generated from the API traits.
    #[command(subcommand)]
    Openapi(openapi::OpenapiCmd),
    /// Bits storage: upload and fetch build artifacts.
    #[command(subcommand)]
    Bits(bits::BitsCmd),
    /// Benchmarks against the eng shell pipelines.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

/// Exit status for bad input (definitions, flags, files), as opposed to 1
/// for failures of the machine or a remote system.
const EXIT_INPUT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Image(cmd) => image::run(cmd),
        Command::Openapi(cmd) => openapi::run(cmd),
        Command::Bits(cmd) => bits::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let input = e
                .chain()
                .any(|c| c.downcast_ref::<zone_image::Error>().is_some_and(|e| e.is_input()));
            ExitCode::from(if input { EXIT_INPUT } else { 1 })
        }
    }
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}
