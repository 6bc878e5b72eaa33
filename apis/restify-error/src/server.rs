//! [`start_server`]: a Dropshot server whose every error body is
//! restify-shaped, including the errors Dropshot raises itself.
//!
//! Dropshot 0.18 answers what fails before an endpoint runs (no route: 404,
//! wrong method: 405, a bad `api-version`) with its own body,
//! `{"request_id", "error_code", "message"}`, and offers no hook to change
//! it: the error is rendered inside its private hyper service, and its
//! router refuses a catch-all route next to literal ones. So the server
//! gets a small hyper front on the requested address that forwards every
//! request, streamed both ways, to Dropshot on a loopback port and rewrites
//! Dropshot's own error bodies as [`RestError`]s. Endpoint responses,
//! including their `RestError`s, pass through as they are.
//!
//! What changes for endpoints: `RequestContext::request.remote_addr()` is
//! the front's loopback address, not the client's.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use dropshot::{
    ApiDescription, ConfigDropshot, ConfigTls, ErrorStatusCode, HttpErrorResponseBody, HttpServer,
    ServerBuilder, ServerContext,
};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, Uri, Version};
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use slog::{Logger, debug, warn};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::RestError;

/// Why [`start_server`] failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Tls(#[source] dropshot::BuildError),
    #[error("starting the Dropshot server: {0}")]
    Dropshot(#[source] dropshot::BuildError),
}

/// [`start_server`] on an ephemeral loopback port, without TLS and with
/// logs discarded: the real peer of client tests.
pub fn start_loopback<C: ServerContext>(
    api: ApiDescription<C>,
    private: C,
) -> Result<RestServer<C>, StartError> {
    let config = ConfigDropshot {
        bind_address: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..Default::default()
    };
    let log = Logger::root(slog::Discard, slog::o!());
    start_server(api, private, log, config, None)
}

/// Start `api` as `dropshot::ServerBuilder::new(api, private, log)
/// .config(config).tls(tls).start()` would, listening on
/// `config.bind_address` (HTTPS with `tls`), except that errors Dropshot
/// raises itself (unknown route 404, 405, version and body errors) reach
/// clients as restify bodies, `{"code": "ResourceNotFound", "message": ...}`.
/// Must be called within a Tokio runtime.
pub fn start_server<C: ServerContext>(
    api: ApiDescription<C>,
    private: C,
    log: Logger,
    config: ConfigDropshot,
    tls: Option<ConfigTls>,
) -> Result<RestServer<C>, StartError> {
    let addr = config.bind_address;
    let tls = tls
        .as_ref()
        .map(|t| rustls::ServerConfig::try_from(t).map_err(StartError::Tls))
        .transpose()?
        .map(|c| tokio_rustls::TlsAcceptor::from(Arc::new(c)));
    let listen = |source| StartError::Listen { addr, source };
    let std_listener = std::net::TcpListener::bind(addr).map_err(listen)?;
    std_listener.set_nonblocking(true).map_err(listen)?;
    let local_addr = std_listener.local_addr().map_err(listen)?;
    let listener = TcpListener::from_std(std_listener).map_err(listen)?;

    let inner_config = ConfigDropshot {
        bind_address: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..config
    };
    let inner = ServerBuilder::new(api, private, log.clone())
        .config(inner_config)
        .start()
        .map_err(StartError::Dropshot)?;
    let front = Front {
        client: Client::builder(TokioExecutor::new()).build_http(),
        inner: inner.local_addr(),
        log,
    };
    let (close_tx, closed) = watch::channel(());
    let (live, all_done) = mpsc::channel(1);
    let task = tokio::spawn(serve(listener, tls, front, closed, live));
    Ok(RestServer {
        inner,
        local_addr,
        front: FrontHandle {
            accept: task,
            _close: close_tx,
        },
        all_done,
    })
}

/// A server started by [`start_server`]. Like `dropshot::HttpServer`, it
/// runs until closed or dropped, and awaiting it waits for that.
pub struct RestServer<C: ServerContext> {
    inner: HttpServer<C>,
    local_addr: SocketAddr,
    front: FrontHandle,
    /// Ends (`None`) once the accept loop and every connection are gone.
    all_done: mpsc::Receiver<()>,
}

impl<C: ServerContext> RestServer<C> {
    /// The address clients connect to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn app_private(&self) -> &C {
        self.inner.app_private()
    }

    /// Stop accepting, let requests in flight finish and close every
    /// connection, then shut Dropshot down.
    pub async fn close(mut self) -> Result<(), String> {
        drop(self.front);
        while self.all_done.recv().await.is_some() {}
        self.inner.close().await
    }
}

impl<C: ServerContext> Future for RestServer<C> {
    type Output = Result<(), String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// Dropping it stops accepting and closes the open connections.
struct FrontHandle {
    accept: JoinHandle<()>,
    /// Dropped with the handle, which tells connections to close.
    _close: watch::Sender<()>,
}

impl Drop for FrontHandle {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

type FrontBody = BoxBody<Bytes, hyper::Error>;

#[derive(Clone)]
struct Front {
    client: Client<HttpConnector, Incoming>,
    inner: SocketAddr,
    log: Logger,
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    front: Front,
    closed: watch::Receiver<()>,
    // Held by this loop and each connection: [`RestServer::close`] waits
    // for all of them to be dropped.
    live: mpsc::Sender<()>,
) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Usually EMFILE: give connections a moment to close.
                warn!(front.log, "accept failed"; "error" => %e);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (front, tls, closed) = (front.clone(), tls.clone(), closed.clone());
        let live = live.clone();
        tokio::spawn(async move {
            let _live = live;
            let log = front.log.clone();
            let served = match tls {
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => serve_connection(TokioIo::new(stream), front, closed).await,
                    Err(e) => {
                        debug!(log, "TLS handshake failed"; "error" => %e);
                        return;
                    }
                },
                None => serve_connection(TokioIo::new(tcp), front, closed).await,
            };
            if let Err(e) = served {
                debug!(log, "connection ended"; "error" => %e);
            }
        });
    }
}

/// Serve one client connection until it ends or the server is closed;
/// then finish the request in flight and close, as Dropshot would, so a
/// client never has a kept-alive connection to a server that is gone.
async fn serve_connection<I>(
    io: TokioIo<I>,
    front: Front,
    mut closed: watch::Receiver<()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| forward(front.clone(), req));
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => served,
        // Closed (or dropped): the sender is gone.
        _ = closed.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}

/// Per-connection headers, which a proxy must not pass on (RFC 9110 7.6.1);
/// `expect` is answered by the front already.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

async fn forward(
    front: Front,
    mut req: Request<Incoming>,
) -> Result<Response<FrontBody>, Infallible> {
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let uri = match format!("http://{}{path}", front.inner).parse::<Uri>() {
        Ok(uri) => uri,
        Err(e) => {
            return Ok(error_response(&RestError::new(
                ErrorStatusCode::BAD_REQUEST,
                "BadRequestError",
                format!("request target {path:?}: {e}"),
            )));
        }
    };
    *req.uri_mut() = uri;
    // The loopback hop is HTTP/1.1 whatever the client spoke.
    *req.version_mut() = Version::HTTP_11;
    strip_hop_by_hop(req.headers_mut());
    match front.client.request(req).await {
        Ok(resp) => Ok(restify(resp).await),
        Err(e) => {
            warn!(front.log, "forwarding to Dropshot failed"; "error" => %e);
            Ok(error_response(&RestError::from_code(
                "ServiceUnavailableError",
                format!("the server is not answering: {e}"),
            )))
        }
    }
}

/// Dropshot's error bodies are a few hundred bytes; anything larger (or of
/// unknown length) is not one and streams through untouched.
const MAX_ERROR_BODY: u64 = 64 * 1024;

/// Rewrite the response when it carries Dropshot's own error body.
async fn restify(resp: Response<Incoming>) -> Response<FrontBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let small_json_error = (parts.status.is_client_error() || parts.status.is_server_error())
        && is_json(&parts.headers)
        && content_length(&parts.headers).is_some_and(|n| n <= MAX_ERROR_BODY);
    if !small_json_error {
        return Response::from_parts(parts, body.boxed());
    }
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            return error_response(&RestError::internal(format!(
                "reading the error response: {e}"
            )));
        }
    };
    let Ok(dropshot) = serde_json::from_slice::<HttpErrorResponseBody>(&bytes) else {
        return Response::from_parts(parts, full(bytes));
    };
    let status = ErrorStatusCode::from_status(parts.status)
        .unwrap_or(ErrorStatusCode::INTERNAL_SERVER_ERROR);
    let err = RestError::from_dropshot(status, dropshot.message);
    let mut resp = error_response(&err);
    // Keep `x-request-id` and the like.
    for (name, value) in parts.headers.iter() {
        if *name != header::CONTENT_LENGTH && *name != header::CONTENT_TYPE {
            resp.headers_mut().append(name, value.clone());
        }
    }
    resp
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn full(bytes: Bytes) -> FrontBody {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn error_response(err: &RestError) -> Response<FrontBody> {
    // Serialising two strings cannot fail; an empty body if it ever did.
    let body = serde_json::to_vec(err).unwrap_or_default();
    let mut resp = Response::new(full(Bytes::from(body)));
    *resp.status_mut() = err.status().as_status();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
