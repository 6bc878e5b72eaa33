use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use clap::Parser;
use slog::{error, info};
use tokio::signal::unix::{SignalKind, signal};
use triton_api_server::{Config, ServerContext, make_logger, start};

#[derive(Parser)]
#[command(version, about = "triton-api: Triton's Dropshot API service")]
struct Args {
    /// JSON config rendered by config-agent.
    #[arg(long, env = "TRITON__CONFIG_FILE")]
    config: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("triton-api-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let log = make_logger(&config.log_level)?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;

    let ctx = Arc::new(ServerContext {
        config: RwLock::new(config),
    });
    let mut server = start(ctx.clone(), &log)?;
    info!(log, "listening"; "address" => server.local_addr().to_string());

    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                // SMF `refresh` sends SIGHUP after config-agent rewrites the file.
                let new = match Config::load(&args.config) {
                    Ok(c) => c,
                    Err(e) => {
                        error!(log, "config reload failed, keeping the running config"; "error" => e.to_string());
                        continue;
                    }
                };
                let rebind = {
                    let mut current = ctx.config.write().map_err(|_| anyhow::anyhow!("config lock poisoned"))?;
                    let rebind = current.bind_address != new.bind_address;
                    *current = new;
                    rebind
                };
                if rebind {
                    server.close().await.map_err(|e| anyhow::anyhow!("stopping server: {e}"))?;
                    server = start(ctx.clone(), &log)?;
                }
                info!(log, "config reloaded"; "address" => server.local_addr().to_string());
            }
            res = &mut server => {
                return res.map_err(|e| anyhow::anyhow!("server stopped: {e}"));
            }
        }
    }
    info!(log, "shutting down");
    server
        .close()
        .await
        .map_err(|e| anyhow::anyhow!("shutting down: {e}"))
}
