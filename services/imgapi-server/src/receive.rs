//! AddImageFile: the upload streamed to disk, hashed and checked.

use super::*;

/// What an upload must match; `None` fields are not checked.
#[derive(Default)]
pub(crate) struct Expect<'a> {
    pub(crate) sha1: Option<&'a str>,
    pub(crate) size: Option<u64>,
    /// The source's `Content-MD5`, on import-remote.
    pub(crate) content_md5: Option<&'a str>,
}

/// Stream an upload to a temporary file, hashing (sha1 and MD5) as it
/// goes; refuse it (and drop the temporary) on a mismatch with `want`,
/// otherwise move it into place. Returns (sha1, size).
pub(crate) async fn receive_file<S, E>(
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
