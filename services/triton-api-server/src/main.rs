use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use clap::Parser;
use dropshot::HttpServer;
use slog::{error, info, warn};
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
    let log_level = config.log_level.clone();
    let log = make_logger(&log_level)?;
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
                server = reload(&args.config, &ctx, server, &log, &log_level).await?;
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

type Server = HttpServer<Arc<ServerContext>>;

/// Re-reads the config and, if the bind address changed, moves the listener.
/// Returns the server now running. A refused reload is logged and leaves the
/// running config and listener as they were; an `Err` means the service
/// could not be put back and must exit (SMF restarts it).
async fn reload(
    path: &Path,
    ctx: &Arc<ServerContext>,
    server: Server,
    log: &slog::Logger,
    log_level: &str,
) -> anyhow::Result<Server> {
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            reload_failed(log, e.into());
            return Ok(server);
        }
    };
    let old = swap_config(ctx, new.clone())?;
    let server = if old.bind_address == new.bind_address {
        server
    } else {
        match rebind(ctx, server, log).await {
            Ok(next) => next,
            Err(e) => {
                swap_config(ctx, old)?;
                let restored = start(ctx.clone(), log)
                    .context("the new bind_address failed and the old one could not be restored")?;
                reload_failed(log, e);
                return Ok(restored);
            }
        }
    };
    warn_log_level(log, log_level, &new);
    info!(log, "config reloaded"; "address" => server.local_addr().to_string());
    Ok(server)
}

/// Moves the listener to the bind address now in `ctx`. On `Err` the old
/// listener is already closed.
async fn rebind(
    ctx: &Arc<ServerContext>,
    server: Server,
    log: &slog::Logger,
) -> anyhow::Result<Server> {
    // Listen on the new address before letting go of the old one, so the
    // service keeps serving if the new one turns out to be unusable.
    let first_err = match start(ctx.clone(), log) {
        Ok(next) => {
            close_quietly(server, log).await;
            return Ok(next);
        }
        Err(e) => e,
    };
    // The addresses may overlap (0.0.0.0:80 and 10.0.0.5:80): free the old
    // one and try once more.
    close_quietly(server, log).await;
    start(ctx.clone(), log).map_err(|second_err| {
        if second_err.to_string() == first_err.to_string() {
            anyhow::Error::new(first_err)
        } else {
            anyhow::anyhow!("{first_err}; after releasing the old address: {second_err}")
        }
    })
}

fn reload_failed(log: &slog::Logger, e: anyhow::Error) {
    error!(log, "config reload failed, keeping the running config"; "error" => format!("{e:#}"));
}

/// Puts `new` in place as the running config and returns the previous one.
fn swap_config(ctx: &ServerContext, new: Config) -> anyhow::Result<Config> {
    let mut current = ctx
        .config
        .write()
        .map_err(|_| anyhow::anyhow!("config lock poisoned"))?;
    Ok(std::mem::replace(&mut *current, new))
}

async fn close_quietly(server: Server, log: &slog::Logger) {
    if let Err(e) = server.close().await {
        warn!(log, "closing the old listener failed"; "error" => e);
    }
}

/// The logger is built once at start-up; say so rather than silently
/// ignoring a changed level.
fn warn_log_level(log: &slog::Logger, running: &str, new: &Config) {
    if running != new.log_level {
        warn!(log, "log_level changes take effect on restart";
            "running" => running, "configured" => &new.log_level);
    }
}
