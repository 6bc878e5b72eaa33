//! The IMGAPI endpoints.

use super::*;

pub(crate) fn compute_state(image: &mut Image, activated: bool) {
    image.state = match (activated, image.disabled) {
        (false, _) => ImageState::Unactivated,
        (true, true) => ImageState::Disabled,
        (true, false) => ImageState::Active,
    };
}

/// Millisecond precision, as the Node.js IMGAPI writes dates.
pub(crate) fn now_ms() -> DateTime<Utc> {
    use chrono::SubsecRound as _;
    Utc::now().trunc_subsecs(3)
}

pub(crate) fn internal(e: impl std::fmt::Display) -> ImgapiError {
    ImgapiError::internal(e.to_string())
}

pub(crate) fn uuid_exists(uuid: &Uuid) -> ImgapiError {
    ImgapiError::from_code(
        "ImageUuidAlreadyExists",
        format!("image uuid {uuid} already exists"),
    )
}

/// The origin must already be here, and active, before an incremental
/// image can be imported: IMGAPI's OriginDoesNotExist / OriginIsNotActive.
pub(crate) fn check_origin(
    images: &BTreeMap<Uuid, Image>,
    image: &Image,
) -> Result<(), ImgapiError> {
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

/// Fields UpdateImage may change (the docs' "Mutable" column).
pub(crate) const MUTABLE: &[&str] = &[
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

pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ImgapiError> {
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
