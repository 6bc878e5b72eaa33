//! triton-api server: the implementation of the `TritonApi` trait that the
//! triton-api zone image ships.

pub mod config;

use std::sync::{Arc, RwLock};

use dropshot::{
    ConfigDropshot, HttpError, HttpResponseOk, HttpServer, RequestContext, ServerBuilder,
};
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
    Ok(bunyan_log::stderr_logger(LOG_NAME, level))
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
