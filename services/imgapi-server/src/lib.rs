//! A file-backed IMGAPI server on the `imgapi-api` trait: the toolchain's
//! local updates server and the real peer of the import/publish tests.
//!
//! Channels are always on (default `dev`), as on updates.tritondatacenter.com.
//! Reads are open; with a key ring, every write must carry an HTTP
//! Signature by one of its keys.

mod context;
mod filters;
mod handlers;
mod receive;
mod remote;
pub mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dropshot::{
    Body, ConfigDropshot, ConfigLogging, ConfigLoggingLevel, ConfigTls, HttpResponseDeleted,
    HttpResponseOk, Path as PathParam, Query, RequestContext, StreamingBody, TypedBody,
    UntypedBody,
};
use futures::StreamExt as _;
use imgapi_api::{
    AddImageFileQuery, Channel, ChannelAddBody, ChannelQuery, Compression, ContentMd5,
    CreateImageBody, DeleteImageQuery, GetImageFileQuery, Image, ImageAction, ImageActionQuery,
    ImageActionResponse, ImageFile, ImagePath, ImageState, ImgapiApi, ImgapiError, ImportRemoteJob,
    ListImagesQuery, PingQuery, PingResponse, StateFilter,
};
use sha1::{Digest as _, Sha1};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::Mutex;
use uuid::Uuid;

pub use store::{Store, StoreError};

pub use context::{DEFAULT_CHANNELS, Options, ServerContext, StartError};
pub use filters::tag_filters;
use filters::*;
pub use handlers::ImgapiServer;
use handlers::*;
use receive::*;
use remote::*;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn logger(level: ConfigLoggingLevel) -> Result<slog::Logger, StartError> {
    ConfigLogging::StderrTerminal { level }
        .to_logger("imgapi-server")
        .map_err(|e| StartError::Logger(e.to_string()))
}

/// A running imgapi-server (see [`start`]).
pub type Server = restify_error::RestServer<Arc<ServerContext>>;

/// Open the store under `opts.dir` and start serving on the current tokio
/// runtime. Every error body, Dropshot's routing errors included, is
/// restify-shaped (see `restify_error::start_server`).
pub fn start(opts: Options) -> Result<Server, StartError> {
    let ctx = Arc::new(ServerContext::open(&opts.dir, opts.auth)?);
    let log = logger(opts.log_level)?;
    let api = imgapi_api::imgapi_api_mod::api_description::<ImgapiServer>()
        .map_err(|e| StartError::Api(e.to_string()))?;
    let config = ConfigDropshot {
        bind_address: opts.listen,
        // Manifests and update bodies only: files are streamed.
        default_request_body_max_bytes: 4 * 1024 * 1024,
        ..Default::default()
    };
    Ok(restify_error::start_server(
        api, ctx, log, config, opts.tls,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_filters_are_decoded() {
        let t = tag_filters(Some(
            "name=x&tag.smartdc_service=true&tag.role%20x=db+1&tag.e=a%2Fb",
        ));
        assert_eq!(
            t,
            vec![
                ("smartdc_service".to_string(), "true".to_string()),
                ("role x".to_string(), "db 1".to_string()),
                ("e".to_string(), "a/b".to_string()),
            ]
        );
        assert!(tag_filters(None).is_empty());
    }

    #[test]
    fn source_channel_is_split_off() {
        let (base, ch) = split_source("https://updates.example.com/?channel=dev").unwrap();
        assert_eq!(base, "https://updates.example.com");
        assert_eq!(ch.as_deref(), Some("dev"));
        assert!(split_source("not a url").is_err());
    }
}
