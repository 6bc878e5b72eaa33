//! `image import` and `image import-remote`.
//!
//! Import is: check the file's size against the manifest before any
//! request; make sure the origin chain is in the target IMGAPI
//! (AdminImportRemoteImage from the source, deepest origin first);
//! AdminImportImage; AddImageFile streamed from disk while a low-priority
//! thread reads the file again and hashes it; ActivateImage, only once
//! that hash and the file the server stored match the manifest. Rerun
//! against an active image it stops early; against an unactivated one (a
//! previous run that failed midway) it completes it.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imgapi_api::{FileCheck, FileMismatch, Image, ImageActionResponse, ImageFile, ImageState};
use uuid::Uuid;

use crate::imgapi::{ConnectOptions, Imgapi, READ_TIMEOUT_ENV};
use crate::target::split_source;
use crate::{Error, Result};
use buf_pool::BufPool;
use progress::{Progress, Silent, Transfer};

pub const DEFAULT_SOURCE: &str = imgapi_api::DEFAULT_UPDATES_URL;

/// Origin chains are one or two deep; more means a loop in the data.
const MAX_ORIGIN_DEPTH: usize = 16;

#[derive(Clone)]
pub struct ImportOptions {
    /// IMGAPI to pull missing origins from; may carry `?channel=`.
    pub source: String,
    /// Channel in the target IMGAPI.
    pub channel: Option<String>,
    /// TLS/auth options for the source (no signing: it is only read).
    pub source_connect: ConnectOptions,
    /// Where steps and the upload are reported.
    pub progress: Arc<dyn Progress>,
    /// How long to wait for an AdminImportRemoteImage to finish.
    pub remote_timeout: Duration,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            source: DEFAULT_SOURCE.to_string(),
            channel: None,
            source_connect: ConnectOptions::default(),
            progress: Arc::new(Silent),
            remote_timeout: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Imported, uploaded and activated now.
    Imported(Image),
    /// An earlier run left it unactivated; this run finished it.
    Completed(Image),
    /// Already active (or disabled): nothing done.
    AlreadyActive(Image),
}

impl Outcome {
    pub fn image(&self) -> &Image {
        match self {
            Outcome::Imported(i) | Outcome::Completed(i) | Outcome::AlreadyActive(i) => i,
        }
    }
}

/// A manifest file as read: the raw JSON (sent as is) and its typed view.
#[derive(Debug, Clone)]
pub struct LocalManifest {
    pub path: PathBuf,
    pub raw: serde_json::Value,
    pub image: Image,
    pub file: ImageFile,
}

pub fn load_manifest(path: &Path) -> Result<LocalManifest> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Input(format!("{}: cannot read manifest: {e}", path.display())))?;
    let raw: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Input(format!("{}: not valid JSON: {e}", path.display())))?;
    let image: Image = serde_path_to_error::deserialize(&raw).map_err(|e| {
        let field = e.path().to_string();
        Error::Input(format!(
            "{}: field '{field}': {}",
            path.display(),
            e.into_inner()
        ))
    })?;
    let file = match image.files.as_slice() {
        [f] => f.clone(),
        _ => {
            return Err(Error::Input(format!(
                "{}: field 'files': expected exactly one entry {{sha1, size, compression}}, found {}",
                path.display(),
                image.files.len()
            )));
        }
    };
    if !imgapi_api::is_sha1_hex(&file.sha1) {
        return Err(Error::Input(format!(
            "{}: field 'files[0].sha1': expected 40 hex digits, got {:?}",
            path.display(),
            file.sha1
        )));
    }
    Ok(LocalManifest {
        path: path.to_path_buf(),
        raw,
        image,
        file,
    })
}

/// The file's size against the manifest's: a `stat`, so it runs before
/// any request.
fn check_size(path: &Path, expected: &ImageFile) -> Result<()> {
    let size = std::fs::metadata(path)
        .map_err(|e| read_error(path, e))?
        .len();
    if size != expected.size {
        return Err(Error::Input(format!(
            "{}: size is {size} bytes, the manifest (files[0].size) says {}",
            path.display(),
            expected.size
        )));
    }
    Ok(())
}

fn read_error(path: &Path, e: std::io::Error) -> Error {
    Error::Input(format!("{}: cannot read image file: {e}", path.display()))
}

fn sha1_mismatch(path: &Path, got: &str, expected: &ImageFile) -> Error {
    Error::Input(format!(
        "{}: sha1 is {got}, the manifest (files[0].sha1) says {}",
        path.display(),
        expected.sha1
    ))
}

/// Size, then SHA-1, of a file against the manifest, without sending it.
pub fn verify_file(path: &Path, expected: &ImageFile, progress: &dyn Progress) -> Result<()> {
    check_size(path, expected)?;
    let progress = progress.transfer("checking", Some(expected.size));
    let verdict = hash_matches(path, expected, &progress, &|| false);
    progress.finish();
    verdict
}

const CHUNK: usize = 1024 * 1024;

fn changed_while_read(path: &Path, expected: &ImageFile) -> Error {
    Error::Input(format!(
        "{}: the file changed while being read (its size is no longer the {} bytes \
         files[0].size says)",
        path.display(),
        expected.size
    ))
}

/// Read `path` through, checking it as a download is checked
/// ([`FileCheck`], without a Content-MD5): `Ok` only when its size and
/// sha1 are the manifest's. Gives up (with an error no one reads) once
/// `unwanted()`.
fn hash_matches(
    path: &Path,
    expected: &ImageFile,
    progress: &Transfer,
    unwanted: &dyn Fn() -> bool,
) -> Result<()> {
    let mut f = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
    let mut buf = vec![0u8; CHUNK];
    let mut check = FileCheck::new(expected, None);
    let mismatch = |m| match m {
        FileMismatch::Sha1 { got, .. } => sha1_mismatch(path, &got, expected),
        _ => changed_while_read(path, expected),
    };
    loop {
        if unwanted() {
            return Err(Error::Other("the sha1 check was abandoned".into()));
        }
        let n = read_full(&mut f, &mut buf).map_err(|e| read_error(path, e))?;
        if n == 0 {
            break;
        }
        check.update(&buf[..n]).map_err(mismatch)?;
        progress.inc(n as u64);
    }
    check.finish().map_err(mismatch)
}

/// Read `f` in chunks and hand them to `emit` (which says whether to go
/// on). The file may change after its size was checked: one that ends
/// early or runs past `expected.size` is an error, found before the chunk
/// that would complete the upload is handed on. `emit` refusing more is
/// `Ok` (the consumer has gone and reports its own error).
fn send_chunks(
    mut f: std::fs::File,
    path: &Path,
    expected: &ImageFile,
    progress: &Transfer,
    mut emit: impl FnMut(bytes::Bytes) -> bool,
) -> Result<()> {
    // Chunks come back once sent: the channel caps how many are out.
    let pool = BufPool::new(8);
    let mut total = 0u64;
    while total < expected.size {
        let mut buf = pool.take(CHUNK);
        let n = std::io::Read::take(&mut f, CHUNK as u64)
            .read_to_end(&mut buf)
            .map_err(|e| read_error(path, e))?;
        total += n as u64;
        progress.inc(n as u64);
        let grew = total == expected.size
            && read_full(&mut f, &mut [0u8; 1]).map_err(|e| read_error(path, e))? > 0;
        if n == 0 || grew || total > expected.size {
            return Err(changed_while_read(path, expected));
        }
        if !emit(pool.share(buf)) {
            return Ok(());
        }
    }
    Ok(())
}

/// Fill `buf` as far as the file allows; 0 only at the end.
fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The upload body: chunks from the reader thread, with its exact length
/// declared so the request carries `Content-Length` (as `curl -T` does)
/// rather than chunked encoding. Each chunk taken stamps `moved`, which
/// the stall watchdog reads.
struct SizedBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    remaining: u64,
    moved: Arc<Activity>,
}

impl http_body::Body for SizedBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::io::Result<http_body::Frame<bytes::Bytes>>>> {
        self.rx.poll_recv(cx).map(|item| {
            self.moved.touch();
            item.map(|r| {
                r.map(|b| {
                    self.remaining = self.remaining.saturating_sub(b.len() as u64);
                    http_body::Frame::data(b)
                })
            })
        })
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// When the upload last moved, in ms since it started.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }

    /// Resolves once nothing has moved for `limit`. reqwest's own
    /// `read_timeout` cannot serve here: it runs from the request's start
    /// to the response headers, so it would cut long uploads that are
    /// moving fine.
    async fn stalled(&self, limit: Duration) {
        loop {
            let idle = self.idle();
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit - idle).await;
        }
    }
}

pub fn describe(i: &Image) -> String {
    format!(
        "{} ({}, {}, state={})",
        i.uuid,
        i.name,
        i.version,
        i.state.as_str()
    )
}

/// `tritonadm image import -m MANIFEST -f FILE`.
pub async fn import_image(
    api: &Imgapi,
    manifest_path: &Path,
    file_path: &Path,
    opts: &ImportOptions,
) -> Result<Outcome> {
    let local = load_manifest(manifest_path)?;
    // The sha1 is checked while sending (see `upload`).
    check_size(file_path, &local.file)?;
    let uuid = local.image.uuid;
    let channel = opts.channel.as_deref();

    let existing = api.get_image(uuid, channel).await?;
    let resumed = match &existing {
        Some(i) if i.state.is_activated() => return Ok(Outcome::AlreadyActive(i.clone())),
        Some(i) if i.state == ImageState::Unactivated => {
            opts.progress
                .step(&format!("Completing unactivated image {}", describe(i)));
            true
        }
        Some(i) => {
            return Err(Error::Other(format!(
                "image {} exists in {} in state {}; delete it before importing",
                i.uuid,
                api.url(),
                i.state.as_str()
            )));
        }
        None => false,
    };

    if !resumed {
        if let Some(origin) = local.image.origin {
            ensure_origin_chain(api, origin, opts).await?;
        }
        let imported = api.import_manifest(uuid, channel, &local.raw).await?;
        opts.progress
            .step(&format!("Imported image {}", describe(&imported)));
    }

    let already_uploaded = existing
        .as_ref()
        .and_then(|i| i.files.first())
        .is_some_and(|f| {
            f.sha1.eq_ignore_ascii_case(&local.file.sha1) && f.size == local.file.size
        });
    if !already_uploaded {
        let sent = upload(
            api,
            uuid,
            channel,
            &local.file,
            file_path,
            opts.progress.as_ref(),
        )
        .await;
        if let Err(e) = sent {
            return Err(unfinished(api, uuid, channel, resumed, e).await);
        }
        opts.progress.step(&format!(
            "Added file {} to image {uuid}",
            file_path.display()
        ));
    }
    let active = api.activate(uuid, channel).await?;
    Ok(if resumed {
        Outcome::Completed(active)
    } else {
        Outcome::Imported(active)
    })
}

/// Say what became of the image after a failed upload. A file that does
/// not match its manifest takes back the image this run created (it could
/// never be completed); otherwise it stays unactivated for a rerun.
async fn unfinished(
    api: &Imgapi,
    uuid: Uuid,
    channel: Option<&str>,
    resumed: bool,
    e: Error,
) -> Error {
    let stays = format!("image {uuid} stays unactivated in {}", api.url());
    match e {
        Error::Input(m) if !resumed => match api.delete(uuid, channel).await {
            Ok(()) => Error::Input(format!(
                "{m}; nothing was activated, and image {uuid} was removed from {}",
                api.url()
            )),
            Err(d) => Error::Input(format!("{m}; {stays} (removing it failed: {d})")),
        },
        Error::Input(m) => Error::Input(format!("{m}; {stays}")),
        other => Error::Other(format!("{other}; {stays}, a rerun completes it")),
    }
}

/// AddImageFile with the manifest's sha1 and size (the server checks them
/// too). The file is sent as it is read, while a thread at the lowest CPU
/// priority reads it again and hashes it (see the `background` crate):
/// hashing in the sending read held every chunk back by its hash and,
/// with the server on the same 2 cores, made a 1 GiB import about 1.08
/// times `curl -T`'s time; hashed this way, about 1.05 (without any hash,
/// 1.02). Nothing gets activated on a mismatch: the caller activates only
/// after this returns `Ok`, which needs the local hash and the file the
/// server says it stored to match the manifest. A mismatch found while
/// chunks are still going out also aborts the request, short of its
/// `Content-Length`. The local verdict, when there is one, is the error
/// returned (an input error).
async fn upload(
    api: &Imgapi,
    uuid: Uuid,
    channel: Option<&str>,
    file: &ImageFile,
    path: &Path,
    progress: &dyn Progress,
) -> Result<Image> {
    let f = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
    let progress = progress.transfer("uploading", Some(file.size));
    let hash_failed = Arc::new(AtomicBool::new(false));
    let hashed = {
        let (path, file, hash_failed) = (path.to_path_buf(), file.clone(), hash_failed.clone());
        background::spawn("sha1", move |unwanted| {
            let verdict = hash_matches(&path, &file, &Silent.transfer("", None), unwanted);
            if verdict.is_err() {
                hash_failed.store(true, Ordering::Relaxed);
            }
            verdict
        })
    };
    // A small bounded channel: memory stays flat whatever the image size,
    // and reading overlaps sending.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    // Filled before the body fails, so it is there when the request does.
    let verdict: Arc<Mutex<Option<Error>>> = Arc::default();
    {
        let (p, v, path, file, hash_failed) = (
            progress.clone(),
            verdict.clone(),
            path.to_path_buf(),
            file.clone(),
            hash_failed.clone(),
        );
        std::thread::spawn(move || {
            let sent = send_chunks(f, &path, &file, &p, |b| {
                !hash_failed.load(Ordering::Relaxed) && tx.blocking_send(Ok(b)).is_ok()
            });
            if let Err(e) = sent {
                *v.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
            } else if !hash_failed.load(Ordering::Relaxed) {
                return;
            }
            let _ = tx.blocking_send(Err(std::io::Error::other(
                "upload aborted: the file does not match its manifest",
            )));
        });
    }
    let moved = Arc::new(Activity::new());
    let body = reqwest::Body::wrap(SizedBody {
        rx,
        remaining: file.size,
        moved: moved.clone(),
    });
    let limit = api.read_timeout();
    let r = tokio::select! {
        r = api.add_file(uuid, channel, &file.compression, &file.sha1, file.size, body) => r,
        () = moved.stalled(limit) => Err(Error::Other(format!(
            "AddImageFile {uuid} at {}: nothing moved for {} s, the connection stalled \
             ({READ_TIMEOUT_ENV} sets this limit)",
            api.url(),
            limit.as_secs_f64()
        ))),
    };
    progress.finish();
    if let Some(local) = verdict.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(local);
    }
    hashed.await.map_err(|_| {
        Error::Other(format!(
            "{}: the sha1 check could not run (no thread for it)",
            path.display()
        ))
    })??;
    let image = r?;
    match image.files.first() {
        Some(f) if f.sha1.eq_ignore_ascii_case(&file.sha1) && f.size == file.size => Ok(image),
        stored => Err(Error::Other(format!(
            "AddImageFile {uuid} at {}: the server stored {}, not the manifest's file \
             (sha1 {}, {} bytes)",
            api.url(),
            stored.map_or("no file".to_string(), |f| format!(
                "a file with sha1 {}, {} bytes",
                f.sha1, f.size
            )),
            file.sha1,
            file.size
        ))),
    }
}

/// Make sure `origin` and its own origins are active in the target,
/// importing the missing ones from the source, deepest first.
pub async fn ensure_origin_chain(api: &Imgapi, origin: Uuid, opts: &ImportOptions) -> Result<()> {
    let channel = opts.channel.as_deref();
    let (source_base, source_channel) = split_source(&opts.source)?;
    let mut source: Option<Imgapi> = None;
    let mut missing = Vec::new();
    let mut next = Some(origin);
    while let Some(uuid) = next {
        if missing.len() >= MAX_ORIGIN_DEPTH || missing.contains(&uuid) {
            return Err(Error::Other(format!(
                "origin chain of {origin} does not end (at {uuid}); refusing to import it"
            )));
        }
        match api.get_image(uuid, channel).await? {
            Some(i) if i.state.is_activated() => break,
            Some(i) => {
                return Err(Error::Other(format!(
                    "origin image {} is in {} but not active; complete or delete it first",
                    describe(&i),
                    api.url()
                )));
            }
            None => {
                let src = match &source {
                    Some(s) => s,
                    None => source.insert(Imgapi::connect(&source_base, &opts.source_connect)?),
                };
                let m = src
                    .get_image(uuid, source_channel.as_deref())
                    .await?
                    .ok_or_else(|| {
                        Error::Other(format!(
                            "origin image {uuid} is neither in {} nor at the source {}",
                            api.url(),
                            opts.source
                        ))
                    })?;
                missing.push(uuid);
                next = m.origin;
            }
        }
    }
    for uuid in missing.iter().rev() {
        opts.progress.step(&format!(
            "Importing origin image {uuid} from {}",
            opts.source
        ));
        import_remote(api, *uuid, &opts.source, opts).await?;
    }
    Ok(())
}

/// AdminImportRemoteImage, then wait until the image is active: IMGAPI
/// runs the import as a job and answers before it is done.
pub async fn import_remote(
    api: &Imgapi,
    uuid: Uuid,
    source: &str,
    opts: &ImportOptions,
) -> Result<Image> {
    let channel = opts.channel.as_deref();
    match api.import_remote(uuid, source, channel).await? {
        ImageActionResponse::Job(job) => {
            opts.progress.step(&format!(
                "Import job {} started for image {uuid}",
                job.job_uuid
            ));
        }
        ImageActionResponse::Image(i) => {
            if i.state.is_activated() {
                return Ok(*i);
            }
        }
    }
    let image = wait_active(api, uuid, channel, opts.remote_timeout).await?;
    opts.progress
        .step(&format!("Imported image {}", describe(&image)));
    Ok(image)
}

/// Poll GetImage until the image is active. A 404 means the job has not
/// created it yet; other errors are tolerated up to three in a row (a blip
/// during a long import), then reported, never turned into "timed out".
pub async fn wait_active(
    api: &Imgapi,
    uuid: Uuid,
    channel: Option<&str>,
    timeout: Duration,
) -> Result<Image> {
    let start = Instant::now();
    let mut errors = 0;
    let mut delay = Duration::from_millis(100);
    loop {
        match api.get_image(uuid, channel).await {
            Ok(Some(i)) if i.state.is_activated() => return Ok(i),
            Ok(Some(i)) if i.state == ImageState::Failed => {
                return Err(Error::Other(format!(
                    "import of image {uuid} failed in {}: {}",
                    api.url(),
                    i.error.map(|e| e.to_string()).unwrap_or_default()
                )));
            }
            Ok(_) => errors = 0,
            Err(e) => {
                errors += 1;
                if errors >= 3 {
                    return Err(e);
                }
            }
        }
        if start.elapsed() > timeout {
            return Err(Error::Other(format!(
                "image {uuid} is not active in {} after {} s",
                api.url(),
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// `tritonadm image import-remote UUID --source URL`.
pub async fn import_remote_image(
    api: &Imgapi,
    uuid: Uuid,
    opts: &ImportOptions,
) -> Result<Outcome> {
    let channel = opts.channel.as_deref();
    if let Some(i) = api.get_image(uuid, channel).await? {
        if i.state.is_activated() {
            return Ok(Outcome::AlreadyActive(i));
        }
        return Err(Error::Other(format!(
            "image {} exists in {} but is not active; delete it or import it with -m/-f",
            describe(&i),
            api.url()
        )));
    }
    let (source_base, source_channel) = split_source(&opts.source)?;
    let src = Imgapi::connect(&source_base, &opts.source_connect)?;
    let m = src
        .get_image(uuid, source_channel.as_deref())
        .await?
        .ok_or_else(|| {
            Error::Other(format!("image {uuid} is not at the source {}", opts.source))
        })?;
    if let Some(origin) = m.origin {
        ensure_origin_chain(api, origin, opts).await?;
    }
    let image = import_remote(api, uuid, &opts.source, opts).await?;
    Ok(Outcome::Imported(image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest as _, Sha1};

    fn file_of(len: usize) -> (tempfile::TempDir, PathBuf, Vec<u8>, ImageFile) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("image");
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let file = ImageFile {
            sha1: hex::encode(Sha1::digest(&data)),
            size: len as u64,
            compression: imgapi_api::Compression::None,
            dataset_guid: None,
            extra: Default::default(),
        };
        (dir, path, data, file)
    }

    /// Pooled buffers are reused only once dropped: chunks a consumer
    /// still holds keep their bytes.
    #[test]
    fn held_chunks_are_never_overwritten() {
        let (_dir, path, data, file) = file_of(3 * CHUNK + 17);
        let mut held = Vec::new();
        let f = std::fs::File::open(&path).expect("open");
        send_chunks(f, &path, &file, &Silent.transfer("", None), |b| {
            held.push(b);
            true
        })
        .expect("sent");
        assert_eq!(held.len(), 4);
        assert_eq!(held.concat(), data);
    }

    #[test]
    fn dropped_chunks_are_reused() {
        let (_dir, path, _data, file) = file_of(3 * CHUNK);
        let mut seen = Vec::new();
        let f = std::fs::File::open(&path).expect("open");
        send_chunks(f, &path, &file, &Silent.transfer("", None), |b| {
            seen.push(b.as_ptr() as usize);
            true
        })
        .expect("sent");
        assert!(seen.iter().all(|p| *p == seen[0]), "{seen:?}");
    }

    /// A file that grew after its size was checked never goes out whole:
    /// the chunk that would complete the upload is not handed on.
    #[test]
    fn a_file_that_grew_is_never_sent_whole() {
        let (_dir, path, mut data, file) = file_of(2 * CHUNK + 5);
        data.push(0);
        std::fs::write(&path, &data).expect("write");
        let mut emitted = 0;
        let f = std::fs::File::open(&path).expect("open");
        let r = send_chunks(f, &path, &file, &Silent.transfer("", None), |b| {
            emitted += b.len();
            true
        });
        let err = r.expect_err("grown file").to_string();
        assert!(err.contains("changed while being read"), "{err}");
        assert_eq!(emitted, 2 * CHUNK);
    }

    #[test]
    fn the_hash_check_names_the_file_and_both_sha1s() {
        let (_dir, path, mut data, file) = file_of(CHUNK + 9);
        hash_matches(&path, &file, &Silent.transfer("", None), &|| false).expect("matches");
        let last = data.len() - 1;
        data[last] ^= 1;
        std::fs::write(&path, &data).expect("write");
        let r = hash_matches(&path, &file, &Silent.transfer("", None), &|| false);
        let Err(Error::Input(m)) = r else {
            panic!("{r:?}")
        };
        let got = hex::encode(Sha1::digest(&data));
        assert!(
            m.contains(&path.display().to_string()) && m.contains(&got) && m.contains(&file.sha1),
            "{m}"
        );
    }
}
