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
/// As a shell reports a command stopped by SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

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
            let pipeline = e
                .chain()
                .find_map(|c| c.downcast_ref::<zone_image::Error>());
            match pipeline {
                Some(zone_image::Error::Interrupted) => ExitCode::from(EXIT_INTERRUPTED),
                Some(p) if p.is_input() => ExitCode::from(EXIT_INPUT),
                _ if e.chain().any(|c| {
                    c.downcast_ref::<bits_store::Error>()
                        .is_some_and(|b| b.is_input())
                        || c.downcast_ref::<http_signature::Error>().is_some()
                }) =>
                {
                    ExitCode::from(EXIT_INPUT)
                }
                _ => ExitCode::from(1),
            }
        }
    }
}

/// The workspace root: `XTASK_WORKSPACE` if set (tests point it at a
/// scratch workspace), else the one xtask lives in.
fn workspace_root() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("XTASK_WORKSPACE") {
        return dir.into();
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}
