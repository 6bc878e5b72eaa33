//! `cargo xtask bench ...`: a tool of its own, since it links S3 and the
//! benchmarks' servers that listing and building images never need.

mod bench;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Benchmarks against the eng shell pipelines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Benchmarks against the eng shell pipelines.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

fn main() -> ExitCode {
    let Command::Bench(cmd) = Cli::parse().command;
    xtask_launch::exit(bench::run(cmd), |_| None)
}
