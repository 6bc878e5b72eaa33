//! AdminImportRemoteImage: an image pulled from another IMGAPI.

use super::*;

/// `?channel=` of a source URL, and the URL without its query.
pub(crate) fn split_source(source: &str) -> Result<(String, Option<String>), ImgapiError> {
    imgapi_client::split_source(source)
        .map_err(|e| ImgapiError::invalid_parameter(format!("source: {source:?}: {e}")))
}

pub(crate) async fn import_remote(
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
