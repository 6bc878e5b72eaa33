//! The IMGAPI client as tritonadm uses it: rustls with the platform's
//! roots (`--insecure` only on request), optional HTTP Signature auth, and
//! errors that say which call failed, against which server, and why. A 404
//! is reported as such (`Error::is_not_found`) so callers can decide that
//! it means "absent"; nothing else is ever turned into a default.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use imgapi_api::{Compression, Image, ImageAction, ImageActionResponse, ImgapiError, StateFilter};
use imgapi_client::Client;
use uuid::Uuid;

use crate::{Error, Result};

#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Skip TLS certificate verification.
    pub insecure: bool,
    pub signer: Option<Arc<http_signature::Signer>>,
}

/// Seconds a transfer may go without a byte moving before it is given up
/// as stalled (every read of a response; an upload's body and the wait
/// for its answer).
pub const READ_TIMEOUT_ENV: &str = "TRITONADM_READ_TIMEOUT";
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// [`READ_TIMEOUT_ENV`], else [`DEFAULT_READ_TIMEOUT`].
pub fn read_timeout_from_env() -> Result<Duration> {
    imgapi_api::read_timeout_from_env(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT)
        .map_err(|m| Error::Input(format!("{READ_TIMEOUT_ENV}: {m}")))
}

pub struct Imgapi {
    url: String,
    client: Client,
    /// Without reqwest's read timeout, which would also bound the time to
    /// send a whole upload; uploads watch for stalls themselves.
    upload_client: Client,
    read_timeout: Duration,
}

/// Describe a failed call: which operation, which server, and what came
/// back (see [`client_error::describe`]).
fn api_error(
    op: &str,
    url: &str,
    last_status: Option<u16>,
    e: imgapi_client::Error<ImgapiError>,
) -> Error {
    let f = client_error::describe(&e, "IMGAPI", last_status, hints(&stalled_hint()));
    Error::Api {
        message: format!("{op} at {url}: {}", f.detail),
        status: f.status,
    }
}

/// A file download as [`Imgapi::get_file`] returns it: the bytes, and
/// the `Content-MD5` the server sent (IMGAPI always does), for
/// [`imgapi_api::FileCheck`].
pub struct FileDownload {
    pub stream: BoxStream<'static, Result<Bytes>>,
    pub content_md5: Option<String>,
}

/// `inner` with its transport errors said in one line that counts the
/// bytes that had arrived.
fn counted(
    op: String,
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
) -> BoxStream<'static, Result<Bytes>> {
    let mut received = 0u64;
    inner
        .map(move |r| match r {
            Ok(chunk) => {
                received += chunk.len() as u64;
                Ok(chunk)
            }
            Err(e) => Err(Error::Other(format!(
                "{op}: the download broke off after {received} bytes: {}",
                client_error::transport(&e, hints(&stalled_hint()))
            ))),
        })
        .boxed()
}

/// What tritonadm adds to a timeout or an untrusted certificate.
fn hints(stalled: &str) -> client_error::Hints<'_> {
    client_error::Hints {
        timeout: stalled,
        tls: "TLS: the server's certificate is not trusted by this machine; \
              --insecure skips verification",
    }
}

/// Enough of an error answer to a download for the API's error in it.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

fn stalled_hint() -> String {
    format!("no data within the read timeout: the peer stalled; {READ_TIMEOUT_ENV} sets the limit")
}

impl Imgapi {
    /// A client for `url`; its read timeout comes from
    /// [`READ_TIMEOUT_ENV`].
    pub fn connect(url: &str, opts: &ConnectOptions) -> Result<Imgapi> {
        let read_timeout = read_timeout_from_env()?;
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("tritonadm/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(15))
                .tls_danger_accept_invalid_certs(opts.insecure)
        };
        let build = |b: reqwest::ClientBuilder| {
            b.build().map_err(|e| {
                Error::Other(format!(
                    "building the HTTP client: {}",
                    error_line::one_line(&e)
                ))
            })
        };
        let url = url.trim_end_matches('/').to_string();
        // One Auth: the two clients share its last-status slot.
        let auth = imgapi_client::Auth::new(opts.signer.clone());
        let client = Client::new_with_client(
            &url,
            build(builder().read_timeout(read_timeout))?,
            auth.clone(),
        );
        let upload_client = Client::new_with_client(&url, build(builder())?, auth);
        Ok(Imgapi {
            url,
            client,
            upload_client,
            read_timeout,
        })
    }

    /// How long a transfer may go without a byte moving.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    fn error(&self, op: &str, e: imgapi_client::Error<ImgapiError>) -> Error {
        use progenitor_client::ClientInfo as _;
        api_error(op, &self.url, self.client.inner().last_status(), e)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// GetImage; `Ok(None)` only for a 404.
    pub async fn get_image(&self, uuid: Uuid, channel: Option<&str>) -> Result<Option<Image>> {
        let mut req = self.client.get_image().uuid(uuid);
        if let Some(c) = channel {
            req = req.channel(c.to_string());
        }
        match req.send().await {
            Ok(rv) => Ok(Some(rv.into_inner())),
            Err(e) => {
                let err = self.error(&format!("GetImage {uuid}"), e);
                if err.is_not_found() {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    pub async fn list_images(
        &self,
        name: Option<&str>,
        state: StateFilter,
        channel: Option<&str>,
    ) -> Result<Vec<Image>> {
        let mut req = self.client.list_images().state(state);
        if let Some(n) = name {
            req = req.name(n.to_string());
        }
        if let Some(c) = channel {
            req = req.channel(c.to_string());
        }
        req.send()
            .await
            .map(|rv| rv.into_inner())
            .map_err(|e| self.error("ListImages", e))
    }

    async fn action(
        &self,
        uuid: Uuid,
        action: ImageAction,
        channel: Option<&str>,
        source: Option<&str>,
        body: serde_json::Value,
    ) -> Result<ImageActionResponse> {
        let mut req = self
            .client
            .image_action()
            .uuid(uuid)
            .action(action)
            .body(body);
        if let Some(c) = channel {
            req = req.channel(c.to_string());
        }
        if let Some(s) = source {
            req = req.source(s.to_string());
        }
        let op = match action {
            ImageAction::Import => "AdminImportImage",
            ImageAction::ImportRemote => "AdminImportRemoteImage",
            ImageAction::Activate => "ActivateImage",
            ImageAction::Disable => "DisableImage",
            ImageAction::Enable => "EnableImage",
            ImageAction::Update => "UpdateImage",
            ImageAction::ChannelAdd => "ChannelAddImage",
        };
        req.send()
            .await
            .map(|rv| rv.into_inner())
            .map_err(|e| self.error(&format!("{op} {uuid}"), e))
    }

    fn expect_image(op: &str, r: ImageActionResponse) -> Result<Image> {
        match r {
            ImageActionResponse::Image(i) => Ok(*i),
            ImageActionResponse::Job(j) => Err(Error::Other(format!(
                "{op}: expected an image, the server answered with job {}",
                j.job_uuid
            ))),
        }
    }

    /// AdminImportImage with the manifest as read from its file, so fields
    /// this tool does not know still reach IMGAPI.
    pub async fn import_manifest(
        &self,
        uuid: Uuid,
        channel: Option<&str>,
        manifest: &serde_json::Value,
    ) -> Result<Image> {
        let r = self
            .action(uuid, ImageAction::Import, channel, None, manifest.clone())
            .await?;
        Self::expect_image("AdminImportImage", r)
    }

    pub async fn activate(&self, uuid: Uuid, channel: Option<&str>) -> Result<Image> {
        let r = self
            .action(
                uuid,
                ImageAction::Activate,
                channel,
                None,
                serde_json::json!({}),
            )
            .await?;
        Self::expect_image("ActivateImage", r)
    }

    /// AdminImportRemoteImage; the server may finish it asynchronously.
    pub async fn import_remote(
        &self,
        uuid: Uuid,
        source: &str,
        channel: Option<&str>,
    ) -> Result<ImageActionResponse> {
        self.action(
            uuid,
            ImageAction::ImportRemote,
            channel,
            Some(source),
            serde_json::json!({}),
        )
        .await
    }

    /// AddImageFile. No read timeout applies (a large upload may take
    /// long): callers watch the body for stalls.
    pub async fn add_file(
        &self,
        uuid: Uuid,
        channel: Option<&str>,
        compression: &Compression,
        sha1: &str,
        size: u64,
        body: reqwest::Body,
    ) -> Result<Image> {
        let mut req = self
            .upload_client
            .add_image_file()
            .uuid(uuid)
            .compression(compression.clone())
            .sha1(sha1.to_string())
            .size(size)
            .body(body);
        if let Some(c) = channel {
            req = req.channel(c.to_string());
        }
        req.send()
            .await
            .map(|rv| rv.into_inner())
            .map_err(|e| self.error(&format!("AddImageFile {uuid}"), e))
    }

    /// ListChannels.
    pub async fn list_channels(&self) -> Result<Vec<imgapi_api::Channel>> {
        self.client
            .list_channels()
            .send()
            .await
            .map(|rv| rv.into_inner())
            .map_err(|e| self.error("ListChannels", e))
    }

    /// GetImageFile, as a stream of chunks and the server's `Content-MD5`.
    pub async fn get_file(&self, uuid: Uuid, channel: Option<&str>) -> Result<FileDownload> {
        let mut req = self.client.get_image_file().uuid(uuid);
        if let Some(c) = channel {
            req = req.channel(c.to_string());
        }
        let op = format!("GetImageFile {uuid} at {}", self.url);
        let rv = match req.send().await {
            Ok(rv) => rv,
            Err(e) => {
                let e = client_error::typed_error(e, ERROR_BODY_LIMIT).await;
                return Err(self.error(&format!("GetImageFile {uuid}"), e));
            }
        };
        let content_md5 = rv
            .headers()
            .get(imgapi_api::CONTENT_MD5)
            .map(|v| v.to_str().map(str::to_string))
            .transpose()
            .map_err(|_| Error::Other(format!("{op}: the Content-MD5 header is not text")))?;
        Ok(FileDownload {
            stream: counted(op, rv.into_inner().into_inner()),
            content_md5,
        })
    }

    pub async fn delete(&self, uuid: Uuid, channel: Option<&str>) -> Result<()> {
        let mut req = self.client.delete_image().uuid(uuid);
        if let Some(c) = channel {
            req = req.channel(c.to_string());
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| self.error(&format!("DeleteImage {uuid}"), e))
    }
}
