//! A file-backed IMGAPI server on the `imgapi-api` trait: the toolchain's
//! local updates server and the real peer of the import/publish tests.
//!
//! Channels are always on (default `dev`), as on updates.tritondatacenter.com.
//! Reads are open; with a key ring, every write must carry an HTTP
//! Signature by one of its keys.

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

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The channels an updates server has, first is the default; `publish`
/// picks one of these from the branch (see `zone_image::stamp`).
pub const DEFAULT_CHANNELS: &[(&str, &str)] = &[
    ("dev", "all development builds"),
    (
        "staging",
        "builds for testing in staging in prep for production release",
    ),
    ("release", "release gold bits"),
    ("experimental", "feature branch builds"),
];

pub struct ServerContext {
    store: Store,
    images: Mutex<BTreeMap<Uuid, Image>>,
    channels: Vec<Channel>,
    auth: Option<http_signature::KeyRing>,
    http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("logger: {0}")]
    Logger(String),
    #[error("building the API description: {0}")]
    Api(String),
    #[error(transparent)]
    Serve(#[from] restify_error::StartError),
    #[error("HTTP client: {0}")]
    Http(String),
}

/// What the server serves and how.
pub struct Options {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub auth: Option<http_signature::KeyRing>,
    pub tls: Option<ConfigTls>,
    pub log_level: ConfigLoggingLevel,
}

impl Options {
    pub fn new(dir: &Path, listen: SocketAddr) -> Options {
        Options {
            dir: dir.to_path_buf(),
            listen,
            auth: None,
            tls: None,
            log_level: ConfigLoggingLevel::Warn,
        }
    }
}

impl ServerContext {
    pub fn open(dir: &Path, auth: Option<http_signature::KeyRing>) -> Result<Self, StartError> {
        let (store, images) = Store::open(dir)?;
        let channels = DEFAULT_CHANNELS
            .iter()
            .enumerate()
            .map(|(i, (name, description))| Channel {
                name: name.to_string(),
                default: (i == 0).then_some(true),
                description: Some(description.to_string()),
            })
            .collect();
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(20))
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;
        Ok(ServerContext {
            store,
            images: Mutex::new(images),
            channels,
            auth,
            http,
        })
    }

    fn default_channel(&self) -> &str {
        self.channels
            .iter()
            .find(|c| c.default == Some(true))
            .map(|c| c.name.as_str())
            .unwrap_or("dev")
    }

    /// The channel a request names (or the default), if it exists.
    fn channel(&self, requested: Option<&str>) -> Result<String, ImgapiError> {
        let name = requested.unwrap_or(self.default_channel());
        if self.channels.iter().any(|c| c.name == name) {
            Ok(name.to_string())
        } else {
            Err(ImgapiError::validation(format!(
                "unknown channel \"{name}\"; this server has: {}",
                self.channels
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    fn authorize(&self, rqctx: &RequestContext<Arc<Self>>) -> Result<Option<String>, ImgapiError> {
        let Some(ring) = &self.auth else {
            return Ok(None);
        };
        let req = &rqctx.request;
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        ring.verify(req.method().as_str(), target, req.headers(), Utc::now())
            .map(|v| Some(v.user))
            .map_err(|e| ImgapiError::unauthorized(e.to_string()))
    }

    /// Persist `next`, then make it what `slot` holds: memory never gets
    /// ahead of the disk.
    fn replace(&self, slot: &mut Image, next: Image) -> Result<(), ImgapiError> {
        self.store.save(&next).map_err(internal)?;
        *slot = next;
        Ok(())
    }
}

fn in_channel(image: &Image, channel: &str) -> bool {
    image
        .channels
        .as_ref()
        .is_some_and(|cs| cs.iter().any(|c| c == channel))
}

/// The image, if it is in `channel`; 404 otherwise, as IMGAPI answers for
/// an image in another channel.
fn lookup<'a>(
    images: &'a mut BTreeMap<Uuid, Image>,
    uuid: &Uuid,
    channel: &str,
) -> Result<&'a mut Image, ImgapiError> {
    match images.get_mut(uuid) {
        Some(image) if in_channel(image, channel) => Ok(image),
        _ => Err(ImgapiError::not_found(format_args!("image {uuid}"))),
    }
}

fn compute_state(image: &mut Image, activated: bool) {
    image.state = match (activated, image.disabled) {
        (false, _) => ImageState::Unactivated,
        (true, true) => ImageState::Disabled,
        (true, false) => ImageState::Active,
    };
}

/// Millisecond precision, as the Node.js IMGAPI writes dates.
fn now_ms() -> DateTime<Utc> {
    use chrono::SubsecRound as _;
    Utc::now().trunc_subsecs(3)
}

fn internal(e: impl std::fmt::Display) -> ImgapiError {
    ImgapiError::internal(e.to_string())
}

fn uuid_exists(uuid: &Uuid) -> ImgapiError {
    ImgapiError::from_code(
        "ImageUuidAlreadyExists",
        format!("image uuid {uuid} already exists"),
    )
}

/// The origin must already be here, and active, before an incremental
/// image can be imported: IMGAPI's OriginDoesNotExist / OriginIsNotActive.
fn check_origin(images: &BTreeMap<Uuid, Image>, image: &Image) -> Result<(), ImgapiError> {
    let Some(origin) = image.origin else {
        return Ok(());
    };
    match images.get(&origin) {
        None => Err(ImgapiError::from_code(
            "OriginDoesNotExist",
            format!(
                "origin image {origin} of image {} does not exist",
                image.uuid
            ),
        )),
        Some(o) if !o.state.is_activated() => Err(ImgapiError::from_code(
            "OriginIsNotActive",
            format!(
                "origin image {origin} of image {} is not active",
                image.uuid
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// `tag.<key>=<value>` pairs of a raw query string, percent-decoded.
pub fn tag_filters(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let k = percent_decode(k);
            let key = k.strip_prefix("tag.")?;
            Some((key.to_string(), percent_decode(v)))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn text_matches(filter: &Option<String>, value: &str) -> bool {
    match filter.as_deref() {
        None => true,
        Some(f) => match f.strip_prefix('~') {
            Some(sub) => value.contains(sub),
            None => value == f,
        },
    }
}

fn tag_matches(image: &Image, key: &str, want: &str) -> bool {
    let Some(v) = image.tags.as_ref().and_then(|t| t.get(key)) else {
        return false;
    };
    match v {
        serde_json::Value::String(s) => s == want,
        // `tag.x=true` matches a boolean true, `tag.n=5` the number 5.
        other => serde_json::from_str::<serde_json::Value>(want).is_ok_and(|w| w == *other),
    }
}

/// Fields UpdateImage may change (the docs' "Mutable" column).
const MUTABLE: &[&str] = &[
    "description",
    "homepage",
    "eula",
    "public",
    "type",
    "os",
    "acl",
    "requirements",
    "users",
    "billing_tags",
    "traits",
    "tags",
    "inherited_directories",
    "generate_passwords",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
];

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ImgapiError> {
    serde_json::from_slice(body).map_err(|e| ImgapiError::invalid_parameter(format!("{what}: {e}")))
}

pub enum ImgapiServer {}

impl ImgapiApi for ImgapiServer {
    type Context = Arc<ServerContext>;

    async fn ping(
        rqctx: RequestContext<Self::Context>,
        query: Query<PingQuery>,
    ) -> Result<HttpResponseOk<PingResponse>, ImgapiError> {
        let q = query.into_inner();
        if let Some(code) = q.error {
            return Err(ImgapiError::from_code(
                &code,
                q.message.unwrap_or_else(|| "pong".into()),
            ));
        }
        let ctx = rqctx.context();
        // A signature is optional here; a bad one is still an error.
        let user = if rqctx.request.headers().contains_key("authorization") {
            ctx.authorize(&rqctx)?
        } else {
            None
        };
        Ok(HttpResponseOk(PingResponse {
            ping: "pong".into(),
            version: VERSION.into(),
            imgapi: true,
            pid: Some(std::process::id()),
            user,
        }))
    }

    async fn list_images(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListImagesQuery>,
    ) -> Result<HttpResponseOk<Vec<Image>>, ImgapiError> {
        let ctx = rqctx.context();
        let q = query.into_inner();
        let tags = tag_filters(rqctx.request.uri().query());
        let channel = match q.channel.as_deref() {
            Some("*") => None,
            other => Some(ctx.channel(other)?),
        };
        let images = ctx.images.lock().await;
        let marker: Option<DateTime<Utc>> = match q.marker.as_deref() {
            None => None,
            Some(m) => match m.parse::<Uuid>() {
                Ok(u) => images
                    .get(&u)
                    .and_then(|i| i.published_at)
                    .or(Some(DateTime::<Utc>::MIN_UTC)),
                Err(_) => Some(
                    DateTime::parse_from_rfc3339(m)
                        .map_err(|_| {
                            ImgapiError::invalid_parameter(format!(
                                "marker: expected an image UUID or an ISO-8601 date, got {m:?}"
                            ))
                        })?
                        .with_timezone(&Utc),
                ),
            },
        };
        let state = q.state.unwrap_or(StateFilter::Active);
        let mut out: Vec<Image> = images
            .values()
            .filter(|i| channel.as_deref().is_none_or(|c| in_channel(i, c)))
            .filter(|i| match state {
                StateFilter::All => true,
                StateFilter::Active => i.state == ImageState::Active,
                StateFilter::Unactivated => i.state == ImageState::Unactivated,
                StateFilter::Disabled => i.state == ImageState::Disabled,
            })
            .filter(|i| q.owner.is_none_or(|o| i.owner == o))
            .filter(|i| text_matches(&q.name, &i.name))
            .filter(|i| text_matches(&q.version, &i.version))
            .filter(|i| q.public.is_none_or(|p| i.public == p))
            .filter(|i| q.os.as_ref().is_none_or(|os| i.os == *os))
            .filter(|i| match q.image_type.as_deref() {
                None => true,
                Some(t) => match t.strip_prefix('!') {
                    Some(not) => i.image_type.as_str() != not,
                    None => i.image_type.as_str() == t,
                },
            })
            .filter(|i| tags.iter().all(|(k, v)| tag_matches(i, k, v)))
            .filter(|i| marker.is_none_or(|m| i.published_at.is_some_and(|p| p >= m)))
            .cloned()
            .collect();
        out.sort_by_key(|i| (i.published_at, i.uuid));
        out.truncate(q.limit.unwrap_or(1000).min(1000) as usize);
        Ok(HttpResponseOk(out))
    }

    async fn get_image(
        rqctx: RequestContext<Self::Context>,
        path: PathParam<ImagePath>,
        query: Query<ChannelQuery>,
    ) -> Result<HttpResponseOk<Image>, ImgapiError> {
        let ctx = rqctx.context();
        let uuid = path.into_inner().uuid;
        let channel = ctx.channel(query.into_inner().channel.as_deref())?;
        let mut images = ctx.images.lock().await;
        Ok(HttpResponseOk(
            lookup(&mut images, &uuid, &channel)?.clone(),
        ))
    }

    async fn get_image_file(
        rqctx: RequestContext<Self::Context>,
        path: PathParam<ImagePath>,
        query: Query<GetImageFileQuery>,
    ) -> Result<http::Response<Body>, ImgapiError> {
        let ctx = rqctx.context();
        let uuid = path.into_inner().uuid;
        let q = query.into_inner();
        let channel = ctx.channel(q.channel.as_deref())?;
        let (size, sha1) = {
            let mut images = ctx.images.lock().await;
            let image = lookup(&mut images, &uuid, &channel)?;
            let index = q.index.unwrap_or(0) as usize;
            match image.files.get(index) {
                Some(f) => (f.size, f.sha1.clone()),
                None => {
                    return Err(ImgapiError::from_code(
                        "ResourceNotFound",
                        format!("image {uuid} has no file {index}"),
                    ));
                }
            }
        };
        // Every consumer built on Triton's Node client refuses a download
        // without it.
        let content_md5 = ctx
            .store
            .content_md5(&uuid, &sha1)
            .map_err(internal)?
            .ok_or_else(|| {
                internal(format!(
                    "image {uuid}: no Content-MD5 is recorded for its file (sha1 {sha1}): \
                     the stored file did not match its manifest when the store was opened"
                ))
            })?;
        let path = ctx.store.file_path(&uuid);
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| internal(format!("opening the file of image {uuid}: {e}")))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map(|r| r.map(hyper_frame));
        let body = Body::wrap(http_body_util::StreamBody::new(stream));
        http::Response::builder()
            .status(http::StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .header(http::header::CONTENT_LENGTH, size)
            .header(imgapi_api::CONTENT_MD5, content_md5)
            .body(body)
            .map_err(internal)
    }

    async fn create_image(
        rqctx: RequestContext<Self::Context>,
        query: Query<ChannelQuery>,
        body: TypedBody<CreateImageBody>,
    ) -> Result<HttpResponseOk<Image>, ImgapiError> {
        let ctx = rqctx.context();
        ctx.authorize(&rqctx)?;
        let q = query.into_inner();
        let channel = ctx.channel(q.channel.as_deref())?;
        let b = body.into_inner();
        let owner = b.owner.or(q.account).ok_or_else(|| {
            ImgapiError::validation("owner: required (or the account query parameter)")
        })?;
        let mut manifest = serde_json::Map::new();
        manifest.extend(b.extra);
        let base = serde_json::json!({
            "v": 2,
            "uuid": Uuid::new_v4(),
            "owner": owner,
            "name": b.name,
            "version": b.version,
            "type": b.image_type,
            "os": b.os,
            "disabled": b.disabled.unwrap_or(false),
            "public": b.public.unwrap_or(false),
            "origin": b.origin,
            "state": "unactivated",
            "channels": [channel],
        });
        if let serde_json::Value::Object(m) = base {
            manifest.extend(m.into_iter().filter(|(_, v)| !v.is_null()));
        }
        let image: Image = serde_json::from_value(serde_json::Value::Object(manifest))
            .map_err(|e| ImgapiError::validation(e.to_string()))?;
        let mut images = ctx.images.lock().await;
        check_origin(&images, &image)?;
        ctx.store.save(&image).map_err(internal)?;
        images.insert(image.uuid, image.clone());
        Ok(HttpResponseOk(image))
    }

    async fn image_action(
        rqctx: RequestContext<Self::Context>,
        path: PathParam<ImagePath>,
        query: Query<ImageActionQuery>,
        body: UntypedBody,
    ) -> Result<HttpResponseOk<ImageActionResponse>, ImgapiError> {
        let ctx = rqctx.context().clone();
        ctx.authorize(&rqctx)?;
        let uuid = path.into_inner().uuid;
        let q = query.into_inner();
        let channel = ctx.channel(q.channel.as_deref())?;
        let body = body.as_bytes();
        let image = |i: &Image| {
            Ok(HttpResponseOk(ImageActionResponse::Image(Box::new(
                i.clone(),
            ))))
        };
        match q.action {
            ImageAction::Import => {
                let mut manifest: Image = parse_body(body, "manifest")?;
                if manifest.uuid != uuid {
                    return Err(ImgapiError::invalid_parameter(format!(
                        "uuid: manifest has {}, the URL has {uuid}",
                        manifest.uuid
                    )));
                }
                let mut images = ctx.images.lock().await;
                if images.contains_key(&uuid) {
                    return Err(uuid_exists(&uuid));
                }
                check_origin(&images, &manifest)?;
                // The file comes with AddImageFile; its checksum then
                // replaces whatever the manifest claimed.
                manifest.files.clear();
                manifest.channels = Some(vec![channel]);
                compute_state(&mut manifest, false);
                ctx.store.save(&manifest).map_err(internal)?;
                images.insert(uuid, manifest.clone());
                image(&manifest)
            }
            ImageAction::ImportRemote => {
                let source = q.source.as_deref().ok_or_else(|| {
                    ImgapiError::validation("source: required for action=import-remote")
                })?;
                import_remote(&ctx, uuid, source, channel).await?;
                Ok(HttpResponseOk(ImageActionResponse::Job(ImportRemoteJob {
                    image_uuid: uuid,
                    job_uuid: Uuid::new_v4(),
                })))
            }
            ImageAction::Activate => {
                let mut images = ctx.images.lock().await;
                let img = lookup(&mut images, &uuid, &channel)?;
                if img.state.is_activated() {
                    return Err(ImgapiError::from_code(
                        "ImageAlreadyActivated",
                        format!("image {uuid} is already activated"),
                    ));
                }
                if img.files.is_empty() {
                    return Err(ImgapiError::from_code(
                        "NoActivationNoFile",
                        format!("image {uuid} cannot be activated: it has no file"),
                    ));
                }
                let mut next = img.clone();
                compute_state(&mut next, true);
                next.published_at.get_or_insert_with(now_ms);
                ctx.replace(img, next)?;
                image(img)
            }
            ImageAction::Disable | ImageAction::Enable => {
                let mut images = ctx.images.lock().await;
                let img = lookup(&mut images, &uuid, &channel)?;
                let mut next = img.clone();
                next.disabled = q.action == ImageAction::Disable;
                let activated = img.state.is_activated();
                compute_state(&mut next, activated);
                ctx.replace(img, next)?;
                image(img)
            }
            ImageAction::Update => {
                let changes: serde_json::Map<String, serde_json::Value> =
                    parse_body(body, "update")?;
                if changes.is_empty() {
                    return Err(ImgapiError::validation(
                        "update: at least one field must be given",
                    ));
                }
                if let Some(k) = changes.keys().find(|k| !MUTABLE.contains(&k.as_str())) {
                    return Err(ImgapiError::validation(format!(
                        "{k}: not a mutable field (mutable: {})",
                        MUTABLE.join(", ")
                    )));
                }
                let mut images = ctx.images.lock().await;
                let img = lookup(&mut images, &uuid, &channel)?;
                let mut value = serde_json::to_value(&*img).map_err(internal)?;
                if let serde_json::Value::Object(m) = &mut value {
                    m.extend(changes);
                }
                let next: Image = serde_json::from_value(value)
                    .map_err(|e| ImgapiError::validation(e.to_string()))?;
                ctx.replace(img, next)?;
                image(img)
            }
            ImageAction::ChannelAdd => {
                let b: ChannelAddBody = parse_body(body, "channel-add")?;
                let target = ctx.channel(Some(&b.channel))?;
                let mut images = ctx.images.lock().await;
                let img = lookup(&mut images, &uuid, &channel)?;
                let mut next = img.clone();
                let chans = next.channels.get_or_insert_with(Vec::new);
                if !chans.contains(&target) {
                    chans.push(target);
                }
                ctx.replace(img, next)?;
                image(img)
            }
        }
    }

    async fn add_image_file(
        rqctx: RequestContext<Self::Context>,
        path: PathParam<ImagePath>,
        query: Query<AddImageFileQuery>,
        body: StreamingBody,
    ) -> Result<HttpResponseOk<Image>, ImgapiError> {
        let ctx = rqctx.context().clone();
        ctx.authorize(&rqctx)?;
        let uuid = path.into_inner().uuid;
        let q = query.into_inner();
        let channel = ctx.channel(q.channel.as_deref())?;
        if let Compression::Other(c) = &q.compression {
            return Err(ImgapiError::invalid_parameter(format!(
                "compression: expected one of {}, got {c:?}",
                Compression::KNOWN.join(", ")
            )));
        }
        if let Some(s) = &q.sha1
            && !imgapi_api::is_sha1_hex(s)
        {
            return Err(ImgapiError::invalid_parameter(format!(
                "sha1: expected 40 hex digits, got {s:?}"
            )));
        }
        {
            let mut images = ctx.images.lock().await;
            let img = lookup(&mut images, &uuid, &channel)?;
            if img.state.is_activated() {
                return Err(ImgapiError::from_code(
                    "ImageFilesImmutable",
                    format!("image {uuid} is activated; its file cannot change"),
                ));
            }
        }
        let stream = std::pin::pin!(body.into_stream().map(|r| r.map_err(ImgapiError::from)));
        let want = Expect {
            sha1: q.sha1.as_deref(),
            size: q.size,
            content_md5: None,
        };
        let (sha1, size) = receive_file(&ctx, &uuid, stream, want).await?;
        let mut images = ctx.images.lock().await;
        let img = lookup(&mut images, &uuid, &channel)?;
        let mut next = img.clone();
        next.files = vec![ImageFile {
            sha1,
            size,
            compression: q.compression,
            dataset_guid: q.dataset_guid,
            extra: Default::default(),
        }];
        ctx.replace(img, next)?;
        Ok(HttpResponseOk(img.clone()))
    }

    async fn delete_image(
        rqctx: RequestContext<Self::Context>,
        path: PathParam<ImagePath>,
        query: Query<DeleteImageQuery>,
    ) -> Result<HttpResponseDeleted, ImgapiError> {
        let ctx = rqctx.context();
        ctx.authorize(&rqctx)?;
        let uuid = path.into_inner().uuid;
        let q = query.into_inner();
        let channel = ctx.channel(q.channel.as_deref())?;
        let mut images = ctx.images.lock().await;
        let img = lookup(&mut images, &uuid, &channel)?;
        let mut next = img.clone();
        let chans = next.channels.get_or_insert_with(Vec::new);
        chans.retain(|c| *c != channel);
        if !chans.is_empty() && !q.force_all_channels.unwrap_or(false) {
            ctx.replace(img, next)?;
            return Ok(HttpResponseDeleted());
        }
        let dependents: Vec<String> = images
            .values()
            .filter(|i| i.origin == Some(uuid))
            .map(|i| i.uuid.to_string())
            .collect();
        if !dependents.is_empty() {
            return Err(ImgapiError::from_code(
                "ImageHasDependentImages",
                format!(
                    "image {uuid} is the origin of {}; delete those first",
                    dependents.join(", ")
                ),
            ));
        }
        ctx.store.delete(&uuid).map_err(internal)?;
        images.remove(&uuid);
        Ok(HttpResponseDeleted())
    }

    async fn list_channels(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<Vec<Channel>>, ImgapiError> {
        Ok(HttpResponseOk(rqctx.context().channels.clone()))
    }
}

fn hyper_frame(b: bytes::Bytes) -> http_body::Frame<bytes::Bytes> {
    http_body::Frame::data(b)
}

/// What an upload must match; `None` fields are not checked.
#[derive(Default)]
struct Expect<'a> {
    sha1: Option<&'a str>,
    size: Option<u64>,
    /// The source's `Content-MD5`, on import-remote.
    content_md5: Option<&'a str>,
}

/// Stream an upload to a temporary file, hashing (sha1 and MD5) as it
/// goes; refuse it (and drop the temporary) on a mismatch with `want`,
/// otherwise move it into place. Returns (sha1, size).
async fn receive_file<S, E>(
    ctx: &ServerContext,
    uuid: &Uuid,
    mut stream: S,
    want: Expect<'_>,
) -> Result<(String, u64), ImgapiError>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: Into<ImgapiError>,
{
    let tmp = ctx.store.temp_file_path(uuid).map_err(internal)?;
    let result = async {
        let mut file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| internal(format!("{}: {e}", tmp.display())))?;
        let mut hasher = Sha1::new();
        let mut md5 = ContentMd5::new();
        let mut size: u64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(Into::into)?;
            size += chunk.len() as u64;
            if let Some(max) = want.size
                && size > max
            {
                return Err(ImgapiError::upload(format!(
                    "file is larger than the declared size {max}"
                )));
            }
            if size > imgapi_api::MAX_FILE_SIZE {
                return Err(ImgapiError::upload("file is larger than 20 GiB"));
            }
            hasher.update(&chunk);
            md5.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| internal(format!("{}: {e}", tmp.display())))?;
        }
        file.sync_all()
            .await
            .map_err(|e| internal(format!("{}: {e}", tmp.display())))?;
        let sha1 = hex::encode(hasher.finalize());
        let md5 = md5.finish();
        if let Some(want) = want.size
            && size != want
        {
            return Err(ImgapiError::upload(format!(
                "size mismatch: declared {want} bytes, received {size}"
            )));
        }
        if let Some(want) = want.sha1
            && !want.eq_ignore_ascii_case(&sha1)
        {
            return Err(ImgapiError::upload(format!(
                "sha1 mismatch: declared {want}, received {sha1}"
            )));
        }
        if let Some(want) = want.content_md5
            && want != md5
        {
            return Err(ImgapiError::upload(format!(
                "Content-MD5 mismatch: the source sent {want}, the bytes received hash to {md5}"
            )));
        }
        Ok((sha1, size, md5))
    }
    .await;
    match result {
        Ok((sha1, size, md5)) => {
            ctx.store
                .commit_file(uuid, &tmp, &sha1, &md5)
                .map_err(internal)?;
            Ok((sha1, size))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `?channel=` of a source URL, and the URL without its query.
fn split_source(source: &str) -> Result<(String, Option<String>), ImgapiError> {
    imgapi_client::split_source(source)
        .map_err(|e| ImgapiError::invalid_parameter(format!("source: {source:?}: {e}")))
}

async fn import_remote(
    ctx: &Arc<ServerContext>,
    uuid: Uuid,
    source: &str,
    channel: String,
) -> Result<(), ImgapiError> {
    if ctx.images.lock().await.contains_key(&uuid) {
        return Err(uuid_exists(&uuid));
    }
    let (base, remote_channel) = split_source(source)?;
    let client =
        imgapi_client::Client::new_with_client(&base, ctx.http.clone(), Default::default());
    let remote = |e: &dyn std::fmt::Display| {
        ImgapiError::remote_source(format!("{base}: image {uuid}: {e}"))
    };
    let mut get = client.get_image().uuid(uuid);
    let mut get_file = client.get_image_file().uuid(uuid);
    if let Some(c) = remote_channel {
        get = get.channel(c.clone());
        get_file = get_file.channel(c);
    }
    let mut manifest = get.send().await.map_err(|e| remote(&e))?.into_inner();
    let file =
        manifest.files.first().cloned().ok_or_else(|| {
            ImgapiError::remote_source(format!("{base}: image {uuid} has no file"))
        })?;
    check_origin(&*ctx.images.lock().await, &manifest)?;
    let resp = get_file.send().await.map_err(|e| remote(&e))?;
    let content_md5 = resp
        .headers()
        .get(imgapi_api::CONTENT_MD5)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let stream = resp
        .into_inner()
        .into_inner()
        .map(|r| r.map_err(|e| ImgapiError::download(format!("downloading image {uuid}: {e}"))));
    let want = Expect {
        sha1: Some(&file.sha1),
        size: Some(file.size),
        content_md5: content_md5.as_deref(),
    };
    receive_file(ctx, &uuid, stream, want)
        .await
        .map_err(|e| ImgapiError::remote_source(format!("{base}: image {uuid}: {}", e.message)))?;
    manifest.files = vec![file];
    manifest.channels = Some(vec![channel]);
    // AdminImportRemoteImage leaves the image active.
    compute_state(&mut manifest, true);
    manifest.published_at.get_or_insert_with(now_ms);
    let mut images = ctx.images.lock().await;
    if images.contains_key(&uuid) {
        return Err(uuid_exists(&uuid));
    }
    ctx.store.save(&manifest).map_err(internal)?;
    images.insert(uuid, manifest);
    Ok(())
}

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
