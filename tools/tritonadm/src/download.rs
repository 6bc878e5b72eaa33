//! `image get-file` and `self-update`'s download: an image's file from
//! IMGAPI onto disk, checked as it arrives against the manifest's size and
//! sha1 and the server's `Content-MD5`. Nothing is left at the destination unless all match.

use std::io::Write as _;
use std::path::Path;

use futures::StreamExt as _;
use imgapi_api::{FileCheck, Image};
use uuid::Uuid;

use crate::imgapi::Imgapi;
use crate::{Error, Result};
use progress::Progress;

/// Download the file of image `uuid` to `dest` (temp file beside it, then
/// rename); returns the image's manifest.
pub async fn download_file(
    api: &Imgapi,
    uuid: Uuid,
    channel: Option<&str>,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<Image> {
    let image = api
        .get_image(uuid, channel)
        .await?
        .ok_or_else(|| Error::Other(format!("image {uuid} was not found in {}", api.url())))?;
    save_file(api, &image, channel, dest, progress).await?;
    Ok(image)
}

/// The file of `image`, whose manifest the caller has, into `dest`: a temp
/// file beside it, renamed only when size, sha1 and Content-MD5 match.
pub async fn save_file(
    api: &Imgapi,
    image: &Image,
    channel: Option<&str>,
    dest: &Path,
    progress: &dyn Progress,
) -> Result<()> {
    let uuid = image.uuid;
    let expected = match image.files.as_slice() {
        [f] => f.clone(),
        files => {
            return Err(Error::Other(format!(
                "image {uuid} in {}: expected one file, the manifest lists {}",
                api.url(),
                files.len()
            )));
        }
    };
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |err| Error::Io { path, err }
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".tritonadm-download-")
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let progress = progress.transfer("downloading", Some(expected.size));
    let download = api.get_file(uuid, channel).await?;
    let mut stream = download.stream;
    let mut check = FileCheck::new(&expected, download.content_md5);
    let mismatch = |m| Error::Other(format!("GetImageFile {uuid} at {}: {m}", api.url()));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        check.update(&chunk).map_err(mismatch)?;
        tmp.write_all(&chunk).map_err(io(tmp.path()))?;
        progress.inc(chunk.len() as u64);
    }
    progress.finish();
    check.finish().map_err(mismatch)?;
    tmp.as_file().sync_all().map_err(io(tmp.path()))?;
    tmp.persist(dest).map_err(|e| Error::Io {
        path: dest.to_path_buf(),
        err: e.error,
    })?;
    Ok(())
}
