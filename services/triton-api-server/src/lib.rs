//! triton-api server: the implementation of the `TritonApi` trait that the
//! triton-api zone image ships.

pub mod config;

use std::sync::{Arc, RwLock};

use dropshot::{
    ConfigDropshot, HttpError, HttpResponseOk, HttpServer, RequestContext, ServerBuilder,
};
use slog::Drain as _;
use triton_api::{PingResponse, TritonApi};

pub use config::{Config, ConfigError};

/// Version reported by `/ping`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Per-server state. The config sits behind a lock because SIGHUP swaps it
/// in place while requests are being served.
pub struct ServerContext {
    pub config: RwLock<Config>,
}

pub enum TritonApiImpl {}

impl TritonApi for TritonApiImpl {
    type Context = Arc<ServerContext>;

    async fn ping(
        _rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<PingResponse>, HttpError> {
        Ok(HttpResponseOk(PingResponse {
            status: "OK".to_string(),
            healthy: true,
            version: VERSION.to_string(),
        }))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid log_level: {0}")]
    Logger(String),
    #[error("building the API description: {0}")]
    Api(String),
    #[error("listening on {addr}: {message}")]
    Listen {
        addr: std::net::SocketAddr,
        message: String,
    },
}

/// The bunyan `name` of every record this service logs.
pub const LOG_NAME: &str = "triton-api";

/// A logger writing bunyan JSON lines (Triton's log format) to stderr, which
/// SMF sends to the service log.
pub fn make_logger(level: &str) -> Result<slog::Logger, StartError> {
    let level = config::LOG_LEVELS
        .iter()
        .find(|(name, _)| *name == level)
        .map(|&(_, level)| level)
        .ok_or_else(|| StartError::Logger(level.to_string()))?;
    // Whole lines reach stderr in one write; a failing stderr must not take
    // the service down, so write errors are dropped.
    let drain = bunyan_drain(std::io::LineWriter::new(std::io::stderr()))
        .filter_level(level)
        .ignore_res();
    // The async drain keeps stderr writes off the executor threads; dropping
    // the last logger clone flushes it.
    let drain = slog_async::Async::new(drain)
        .chan_size(1024)
        .build()
        .ignore_res();
    Ok(slog::Logger::root(drain, slog::o!()))
}

/// A drain that formats records as bunyan JSON objects, one per line, with
/// the core fields node-bunyan writes: `v`, `level` (number), `name`,
/// `hostname`, `pid`, `time` (ISO 8601 UTC, milliseconds) and `msg`.
pub fn bunyan_drain<W: std::io::Write>(io: W) -> slog_json::Json<W> {
    slog_json::Json::new(io)
        .add_key_value(slog::o!(
            "name" => LOG_NAME,
            "hostname" => hostname::get()
                .map_or_else(|_| "unknown".to_string(), |h| h.to_string_lossy().into_owned()),
            "pid" => std::process::id(),
            "level" => slog::FnValue(|r: &slog::Record<'_>| bunyan_level(r.level())),
            "time" => slog::FnValue(|_: &slog::Record<'_>| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            }),
            "v" => 0u8,
            "msg" => slog::PushFnValue(|r: &slog::Record<'_>, ser| ser.emit(r.msg())),
        ))
        .build()
}

/// node-bunyan's level numbers.
pub fn bunyan_level(level: slog::Level) -> u8 {
    match level {
        slog::Level::Trace => 10,
        slog::Level::Debug => 20,
        slog::Level::Info => 30,
        slog::Level::Warning => 40,
        slog::Level::Error => 50,
        slog::Level::Critical => 60,
    }
}

pub fn start(
    ctx: Arc<ServerContext>,
    log: &slog::Logger,
) -> Result<HttpServer<Arc<ServerContext>>, StartError> {
    let addr = ctx
        .config
        .read()
        .map_err(|_| StartError::Api("config lock poisoned".into()))?
        .bind_address;
    let api = triton_api::triton_api_mod::api_description::<TritonApiImpl>()
        .map_err(|e| StartError::Api(e.to_string()))?;
    let config = ConfigDropshot {
        bind_address: addr,
        ..Default::default()
    };
    ServerBuilder::new(api, ctx, log.clone())
        .config(config)
        .start()
        .map_err(|e| StartError::Listen {
            addr,
            message: e.to_string(),
        })
}
