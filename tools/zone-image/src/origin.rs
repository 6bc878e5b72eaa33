//! The origin chain: make sure an image's origin, and its origin's origin,
//! are in the pool as `<pool>/<uuid>@final`, as imgadm keeps them.
//!
//! An origin comes from the pool if it is there, else from `--origin-dir`
//! (`*.imgmanifest` plus the image file beside it), else from an IMGAPI
//! source (GetImage and GetImageFile, through imgapi-client). Every file is
//! checked against its manifest's size and sha1 before `zfs receive` sees a
//! byte of it, and is received under a temporary name that becomes `<uuid>`
//! only once the receive succeeded. A request cut or stalled midway starts
//! over, up to three tries.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt as _;
use imgapi_api::ImgapiError;
use progress::Progress;
use sha1::{Digest, Sha1};
use uuid::Uuid;

use crate::cancel;
use crate::compress;
use crate::error::{Error, IoContext, Result};
use crate::manifest::{self, Compression, ImageFile, Manifest};
use crate::zfs::{self, ZfsError};

/// Where eng's images come from when no source is given.
pub const DEFAULT_SOURCE: &str = imgapi_api::DEFAULT_UPDATES_URL;

/// Name prefix of a dataset being received; the sweep recognises it.
pub const RECV_PREFIX: &str = "zone-image-recv-";

/// User property holding the manifest of an origin this tool received,
/// so later builds can inherit from it without the file at hand.
const MANIFEST_PROP: &str = "zone-image:manifest";

/// ZFS caps property values at 8 KiB; longer manifests are not kept.
const MAX_PROP_LEN: usize = 8000;

/// Longest origin chain followed (real ones are one or two deep).
const MAX_DEPTH: usize = 8;

/// Seconds a request to the origin source may wait for its answer, and
/// each read of a download for data, before the peer counts as stalled.
pub const READ_TIMEOUT_ENV: &str = "ZONE_IMAGE_READ_TIMEOUT";
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Tries per request to the origin source: a cut or stalled transfer
/// starts over; an answer that arrives whole but is wrong does not.
const ATTEMPTS: u32 = 3;

/// Where origins may be found.
#[derive(Clone)]
pub struct Origins<'a> {
    /// Pool or dataset under which origins live as `<uuid>@final`.
    pub pool: &'a str,
    pub dir: Option<&'a Path>,
    /// IMGAPI base URL; `None` means there is no remote source.
    pub source: Option<&'a str>,
    pub channel: Option<&'a str>,
    /// Where the download and warnings are reported.
    pub progress: &'a dyn Progress,
}

impl Origins<'_> {
    /// Make sure `uuid` and its origins are in the pool; return its
    /// manifest.
    pub fn ensure(&self, uuid: Uuid) -> Result<Manifest> {
        self.ensure_depth(uuid, 0)
    }

    fn ensure_depth(&self, uuid: Uuid, depth: usize) -> Result<Manifest> {
        cancel::check()?;
        if depth > MAX_DEPTH {
            return Err(Error::Command(format!(
                "origin {uuid}: the origin chain is deeper than {MAX_DEPTH} images (a loop?)"
            )));
        }
        let ds = format!("{}/{uuid}", self.pool);
        let snap = format!("{ds}@final");
        if zfs::exists(&snap)? {
            return self.manifest_of_present(uuid, &ds);
        }
        if zfs::exists(&ds)? {
            return Err(Error::Command(format!(
                "{ds} exists but has no @final snapshot, so it can't be used as origin {uuid}; \
                 it was not left by imgadm or this tool, so it is not touched"
            )));
        }

        let found = self.find(uuid)?;
        let manifest = found.manifest();
        if manifest.uuid != uuid {
            return Err(Error::input(
                &manifest.source,
                "uuid",
                format!("expected {uuid}, got {}", manifest.uuid),
            ));
        }
        let file = manifest.file()?;
        if let Some(parent) = manifest.origin {
            self.ensure_depth(parent, depth + 1)?;
        }
        let image = match found {
            Found::Dir { manifest, image } => {
                verify_local(&manifest, &image, &file)?;
                Image::Local(image)
            }
            Found::Remote { manifest, remote } => Image::Temp(retrying(self.progress, || {
                download(&remote, &manifest, &file, self.progress)
            })?),
        };
        self.progress.step(&format!(
            "receiving origin {} ({uuid}) into {ds}",
            manifest.label()
        ));
        self.receive(&manifest, &file, image.path(), &ds)?;
        Ok(manifest)
    }

    /// Receive under a temp name, keep the manifest on it, then rename.
    fn receive(&self, manifest: &Manifest, file: &ImageFile, path: &Path, ds: &str) -> Result<()> {
        let tmp = format!(
            "{}/{RECV_PREFIX}{}-{}-{}",
            self.pool,
            manifest.uuid,
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let mut guard = DestroyOnDrop(Some(tmp.clone()), self.progress);
        receive_image(path, &file.compression, &tmp)?;
        let json = serde_json::to_string(&manifest.image).map_err(|e| {
            Error::Command(format!(
                "serializing the manifest of {}: {e}",
                manifest.uuid
            ))
        })?;
        if json.len() <= MAX_PROP_LEN {
            zfs::set(&tmp, MANIFEST_PROP, &json)?;
        }
        cancel::check()?;
        match zfs::rename(&tmp, ds) {
            Ok(()) => {
                guard.0 = None;
                Ok(())
            }
            // Another build received the same origin meanwhile: use theirs.
            Err(_) if zfs::exists(&format!("{ds}@final")).unwrap_or(false) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Look in `--origin-dir`, then on the IMGAPI source.
    fn find(&self, uuid: Uuid) -> Result<Found> {
        if let Some(dir) = self.dir
            && let Some((manifest, path)) = find_in_dir(dir, uuid, self.progress)?
        {
            let image = image_beside(&manifest, &path)?;
            return Ok(Found::Dir { manifest, image });
        }
        if let Some(src) = self.source {
            let remote = Remote::new(src, self.channel)?;
            if let Some(manifest) = retrying(self.progress, || remote.get_image(uuid))? {
                return Ok(Found::Remote { manifest, remote });
            }
        }
        Err(self.not_found(uuid))
    }

    fn not_found(&self, uuid: Uuid) -> Error {
        let mut looked = vec![format!("not in {}", self.pool)];
        match self.dir {
            Some(d) => looked.push(format!(
                "no *.imgmanifest with this uuid in {}",
                d.display()
            )),
            None => looked.push("no --origin-dir".into()),
        }
        match self.source {
            Some(s) => looked.push(format!("not on {s}")),
            None => looked.push("no remote source (--source is empty)".into()),
        }
        Error::input(
            "origin",
            uuid.to_string(),
            format!("image not found: {}", looked.join("; ")),
        )
    }

    /// The manifest of an origin already in the pool: kept on the dataset
    /// by this tool, else imgadm's database, else the dir or the source.
    fn manifest_of_present(&self, uuid: Uuid, ds: &str) -> Result<Manifest> {
        if let Some(json) = zfs::get_user(ds, MANIFEST_PROP)? {
            return Manifest::parse(format!("{ds} ({MANIFEST_PROP})"), &json);
        }
        let pool_name = self.pool.split('/').next().unwrap_or(self.pool);
        let db = PathBuf::from(format!("/var/imgadm/images/{pool_name}-{uuid}.json"));
        if let Ok(text) = std::fs::read_to_string(&db) {
            // imgadm wraps the manifest: {"manifest": {...}, "zpool": ...}.
            let mut v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::input(&db, "(document)", format!("expected JSON: {e}")))?;
            let inner = match v.get_mut("manifest") {
                Some(m) => m.take(),
                None => v,
            };
            return Manifest::from_value(&db, inner);
        }
        if let Some(dir) = self.dir
            && let Some((m, _)) = find_in_dir(dir, uuid, self.progress)?
        {
            return Ok(m);
        }
        if let Some(src) = self.source {
            let remote = Remote::new(src, self.channel)?;
            if let Some(m) = retrying(self.progress, || remote.get_image(uuid))? {
                return Ok(m);
            }
        }
        Err(Error::input(
            "origin",
            uuid.to_string(),
            format!(
                "{ds}@final is in the pool but its manifest is nowhere (not on the dataset, \
                 not in imgadm's database); give --origin-dir or --source"
            ),
        ))
    }
}

enum Found {
    Dir { manifest: Manifest, image: PathBuf },
    Remote { manifest: Manifest, remote: Remote },
}

impl Found {
    fn manifest(&self) -> Manifest {
        match self {
            Found::Dir { manifest, .. } | Found::Remote { manifest, .. } => manifest.clone(),
        }
    }
}

enum Image {
    Local(PathBuf),
    Temp(tempfile::NamedTempFile),
}

impl Image {
    fn path(&self) -> &Path {
        match self {
            Image::Local(p) => p,
            Image::Temp(t) => t.path(),
        }
    }
}

/// Destroys a dataset on drop unless disarmed.
struct DestroyOnDrop<'a>(Option<String>, &'a dyn Progress);

impl Drop for DestroyOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(ds) = self.0.take()
            && let Err(e) = zfs::destroy_recursive(&ds)
        {
            self.1.warn(&format!("could not destroy {ds}: {e}"));
        }
    }
}

/// Any `*.imgmanifest` in `dir` whose uuid matches, and its path.
pub fn find_in_dir(
    dir: &Path,
    uuid: Uuid,
    progress: &dyn Progress,
) -> Result<Option<(Manifest, PathBuf)>> {
    let entries =
        std::fs::read_dir(dir).io_context(|| format!("reading --origin-dir {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for e in entries {
        let p = e
            .io_context(|| format!("reading {}", dir.display()))?
            .path();
        if p.extension().is_some_and(|x| x == "imgmanifest") {
            paths.push(p);
        }
    }
    paths.sort();
    let want = uuid.to_string();
    for path in paths {
        let text =
            std::fs::read_to_string(&path).io_context(|| format!("reading {}", path.display()))?;
        // Other images' manifests may be anything; only ours must be valid.
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            progress.warn(&format!("{} is not JSON; skipped", path.display()));
            continue;
        };
        if v.get("uuid").and_then(|u| u.as_str()) != Some(want.as_str()) {
            continue;
        }
        let manifest = Manifest::parse(&path, &text)?;
        return Ok(Some((manifest, path)));
    }
    Ok(None)
}

/// The image file next to a manifest: same prefix, a `.zfs*` suffix that
/// agrees with `files[0].compression`.
fn image_beside(manifest: &Manifest, path: &Path) -> Result<PathBuf> {
    let file = manifest.file()?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = name.strip_suffix(".imgmanifest").unwrap_or(&name);
    let dir = path.parent().unwrap_or(Path::new("."));
    for (c, suffix) in manifest::suffixes() {
        let candidate = dir.join(format!("{prefix}{suffix}"));
        if candidate.is_file() {
            if *c != file.compression {
                return Err(Error::input(
                    &candidate,
                    "files[0].compression",
                    format!(
                        "{} says {} but this file's suffix is {suffix}",
                        path.display(),
                        file.compression,
                    ),
                ));
            }
            return Ok(candidate);
        }
    }
    let tried: Vec<_> = manifest::suffixes()
        .map(|(_, suffix)| format!("{prefix}{suffix}"))
        .collect();
    Err(Error::input(
        path,
        "files[0]",
        format!(
            "no image file beside the manifest (looked for {})",
            tried.join(", ")
        ),
    ))
}

/// Size, then sha1, against the manifest.
fn verify_local(manifest: &Manifest, image: &Path, file: &ImageFile) -> Result<()> {
    let size = std::fs::metadata(image)
        .io_context(|| format!("reading {}", image.display()))?
        .len();
    if size != file.size {
        return Err(Error::input(
            image,
            "size",
            format!(
                "expected {} bytes (files[0].size in {}), the file has {size}",
                file.size,
                manifest.source.display()
            ),
        ));
    }
    let got = compress::sha1_file(image)?;
    if got.sha1 != file.sha1 || got.size != file.size {
        return Err(Error::input(
            image,
            "sha1",
            format!(
                "expected {} (files[0].sha1 in {}), the file has {}",
                file.sha1,
                manifest.source.display(),
                got.sha1
            ),
        ));
    }
    Ok(())
}

/// [`READ_TIMEOUT_ENV`], else two minutes.
fn read_timeout() -> Result<Duration> {
    imgapi_api::read_timeout_from_env(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT)
        .map_err(|m| Error::input(READ_TIMEOUT_ENV, "(value)", m))
}

/// Why a request failed: the transfer (worth another try) or anything
/// else.
enum Failed {
    Transfer(Error),
    Final(Error),
}

/// `attempt`, again after a cut or stalled transfer, up to [`ATTEMPTS`]
/// tries.
fn retrying<T>(
    progress: &dyn Progress,
    mut attempt: impl FnMut() -> Result<T, Failed>,
) -> Result<T> {
    let mut tries = 1;
    loop {
        match attempt() {
            Ok(t) => return Ok(t),
            Err(Failed::Transfer(e)) if tries < ATTEMPTS => {
                progress.warn(&format!(
                    "{e}; retrying ({tries} of {ATTEMPTS} tries failed)"
                ));
                tries += 1;
            }
            Err(Failed::Transfer(e)) => {
                return Err(Error::Command(format!("{e} (all {ATTEMPTS} tries failed)")));
            }
            Err(Failed::Final(e)) => return Err(e),
        }
    }
}

/// What to add to a transfer error: that it was a timeout, or that TLS
/// did not trust the server.
fn transfer_hint(e: &reqwest::Error, chain: &str) -> String {
    if e.is_timeout() {
        format!(
            " (no data within the read timeout: the server stalled; {READ_TIMEOUT_ENV} sets the limit)"
        )
    } else if chain.contains("certificate") {
        " (TLS: this machine does not trust the server's certificate)".to_string()
    } else {
        String::new()
    }
}

/// A transfer that failed, saying why.
fn transfer(what: &str, e: &reqwest::Error) -> Failed {
    let chain = error_line::one_line(e);
    let hint = transfer_hint(e, &chain);
    Failed::Transfer(Error::Command(format!("{what}: {chain}{hint}")))
}

/// An IMGAPI source, spoken to through imgapi-client. This pipeline is
/// synchronous, so the client runs on a small runtime of its own.
struct Remote {
    runtime: tokio::runtime::Runtime,
    client: imgapi_client::Client,
    /// Shared with the client: the status of its last response.
    auth: imgapi_client::Auth,
    /// No query, no trailing `/`.
    base: String,
    channel: Option<String>,
}

impl Remote {
    /// A client for `source`; a `?channel=` in it counts unless `channel`
    /// is given.
    fn new(source: &str, channel: Option<&str>) -> Result<Remote> {
        let (base, in_url) = imgapi_client::split_source(source)
            .map_err(|m| Error::input("--source", source, format!("expected a URL: {m}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // Each read, the wait for the answer included; not the whole
            // download.
            .read_timeout(read_timeout()?)
            .user_agent(concat!("zone-image/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::Command(format!(
                    "creating the HTTP client: {}",
                    error_line::one_line(&e)
                ))
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .io_context(|| "starting the HTTP client's runtime".to_string())?;
        let auth = imgapi_client::Auth::new(None);
        Ok(Remote {
            runtime,
            client: imgapi_client::Client::new_with_client(&base, http, auth.clone()),
            auth,
            base,
            channel: channel.map(str::to_string).or(in_url),
        })
    }

    /// `<op> <uuid> at <base>`, as errors name a request.
    fn op(&self, op: &str, uuid: Uuid) -> String {
        format!("{op} {uuid} at {}", self.base)
    }

    /// GetImage; `None` only for a 404.
    fn get_image(&self, uuid: Uuid) -> Result<Option<Manifest>, Failed> {
        let op = self.op("GetImage", uuid);
        let mut source = format!("{}/images/{uuid}", self.base);
        let mut req = self.client.get_image().uuid(uuid);
        if let Some(c) = &self.channel {
            req = req.channel(c.clone());
            source = format!("{source}?channel={c}");
        }
        match self.runtime.block_on(req.send()) {
            Ok(rv) => Manifest::new(source, rv.into_inner())
                .map(Some)
                .map_err(Failed::Final),
            Err(e) if self.status(&e) == Some(404) => Ok(None),
            // A whole answer that is not a manifest: say which key is wrong.
            Err(imgapi_client::Error::InvalidResponsePayload(body, _))
                if self.auth.last_status().is_some_and(|s| s < 300) =>
            {
                let text = String::from_utf8_lossy(&body);
                Err(Failed::Final(match Manifest::parse(&source, &text) {
                    Err(e) => e,
                    Ok(_) => Error::Command(format!("{op}: the answer could not be read")),
                }))
            }
            Err(e) => Err(self.failed(&op, e, |rv| rv.into_inner().to_string())),
        }
    }

    /// The HTTP status behind `e`, also when its body was not JSON.
    fn status<E>(&self, e: &imgapi_client::Error<E>) -> Option<u16> {
        match e {
            imgapi_client::Error::InvalidResponsePayload(..) => self.auth.last_status(),
            e => e.status().map(|s| s.as_u16()),
        }
    }

    /// One line saying which request failed and why; only a transfer that
    /// broke off is worth another try. `answer` describes an error answer.
    fn failed<E>(
        &self,
        op: &str,
        e: imgapi_client::Error<E>,
        answer: impl FnOnce(imgapi_client::ResponseValue<E>) -> String,
    ) -> Failed {
        use imgapi_client::Error as E;
        let detail = match e {
            E::CommunicationError(re) | E::ResponseBodyError(re) | E::InvalidUpgrade(re) => {
                return transfer(op, &re);
            }
            E::ErrorResponse(rv) => format!("HTTP {}: {}", rv.status(), answer(rv)),
            E::InvalidResponsePayload(body, err) => format!(
                "{}the answer is not an IMGAPI response ({err}): {}",
                self.auth
                    .last_status()
                    .map(|s| format!("HTTP {s}: "))
                    .unwrap_or_default(),
                snippet(&String::from_utf8_lossy(&body))
            ),
            E::UnexpectedResponse(r) => format!("unexpected HTTP {}", r.status()),
            E::InvalidRequest(m) | E::Custom(m) => m,
        };
        Failed::Final(Error::Command(format!("{op}: {detail}")))
    }

    /// GetImageFile's error answers are byte streams: the restify error in
    /// one, or the start of whatever came.
    fn file_answer(&self, rv: imgapi_client::ResponseValue<imgapi_client::ByteStream>) -> String {
        let mut stream = rv.into_inner().into_inner();
        let mut body = Vec::new();
        // An error body is small; a cut one still shows its start.
        while body.len() < 4096 {
            match self.runtime.block_on(stream.next()) {
                Some(Ok(chunk)) => body.extend_from_slice(&chunk),
                Some(Err(_)) | None => break,
            }
        }
        match serde_json::from_slice::<ImgapiError>(&body) {
            Ok(err) => err.to_string(),
            Err(_) => snippet(&String::from_utf8_lossy(&body)),
        }
    }
}

/// GetImageFile streamed into a temp file, hashed as it lands; the file
/// is kept only if size and sha1 match the manifest (and the
/// `Content-MD5` IMGAPI sends, when sent).
fn download(
    remote: &Remote,
    manifest: &Manifest,
    file: &ImageFile,
    progress: &dyn Progress,
) -> Result<tempfile::NamedTempFile, Failed> {
    let op = remote.op("GetImageFile", manifest.uuid);
    let mut req = remote.client.get_image_file().uuid(manifest.uuid);
    if let Some(c) = &remote.channel {
        req = req.channel(c.clone());
    }
    let rv = remote
        .runtime
        .block_on(req.send())
        .map_err(|e| remote.failed(&op, e, |rv| remote.file_answer(rv)))?;
    // IMGAPI sends it on every GetImageFile; a plain file server may not.
    let content_md5 = match rv.headers().get(imgapi_api::CONTENT_MD5) {
        Some(v) => Some(v.to_str().map(str::to_string).map_err(|_| {
            Failed::Final(Error::Command(format!(
                "{op}: the Content-MD5 header is not text"
            )))
        })?),
        None => None,
    };
    let mut stream = rv.into_inner().into_inner();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("zone-image-origin-{}-", manifest.uuid))
        .tempfile()
        .io_context(|| "creating a temp file for an origin image".to_string())
        .map_err(Failed::Final)?;
    let mut hash = Sha1::new();
    let mut md5 = imgapi_api::ContentMd5::new();
    let mut size = 0u64;
    let bar = progress.transfer(&format!("origin {}", manifest.uuid), Some(file.size));
    loop {
        cancel::check().map_err(Failed::Final)?;
        let chunk = match remote.runtime.block_on(stream.next()) {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                return Err(transfer(&format!("{op}: broke off after {size} bytes"), &e));
            }
        };
        size += chunk.len() as u64;
        // A server streaming past the manifest's size is cut off early.
        if size > file.size {
            return Err(Failed::Final(Error::Command(format!(
                "{op}: more than the {} bytes files[0].size of {} says",
                file.size,
                manifest.source.display()
            ))));
        }
        hash.update(&chunk);
        md5.update(&chunk);
        bar.inc(chunk.len() as u64);
        tmp.write_all(&chunk)
            .io_context(|| format!("writing {}", tmp.path().display()))
            .map_err(Failed::Final)?;
    }
    tmp.flush()
        .io_context(|| format!("writing {}", tmp.path().display()))
        .map_err(Failed::Final)?;
    bar.finish();
    if size != file.size {
        // The connection closed early without saying so.
        return Err(Failed::Transfer(Error::Command(format!(
            "{op}: got {size} bytes, files[0].size says {}",
            file.size
        ))));
    }
    if let Some(want) = content_md5 {
        let got = md5.finish();
        if got != want {
            return Err(Failed::Final(Error::Command(format!(
                "{op}: Content-MD5 mismatch: the server sent {want}, the bytes received \
                 hash to {got}"
            ))));
        }
    }
    let sha1 = hex::encode(hash.finalize());
    if sha1 != file.sha1 {
        return Err(Failed::Final(Error::Command(format!(
            "{op}: sha1 {sha1}, files[0].sha1 says {}",
            file.sha1
        ))));
    }
    Ok(tmp)
}

/// Decompress an image file into `zfs receive <target>`.
fn receive_image(path: &Path, compression: &Compression, target: &str) -> Result<()> {
    let f = File::open(path).io_context(|| format!("opening {}", path.display()))?;
    let hook = || cancel::pause_point("origin-receive").map_err(|_| ZfsError::Interrupted);
    match compression {
        Compression::Gzip => {
            let r = flate2::read::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, f));
            Ok(zfs::receive(r, target, hook)?)
        }
        Compression::None => Ok(zfs::receive(
            BufReader::with_capacity(1 << 20, f),
            target,
            hook,
        )?),
        Compression::Bzip2 | Compression::Xz => {
            let prog = if *compression == Compression::Bzip2 {
                "bzip2"
            } else {
                "xz"
            };
            let mut child = KillOnDrop(
                Command::new(prog)
                    .arg("-dc")
                    .stdin(f)
                    .stdout(Stdio::piped())
                    .spawn()
                    .io_context(|| format!("running {prog} -dc for {}", path.display()))?,
            );
            let out = child
                .0
                .stdout
                .take()
                .ok_or_else(|| Error::Command(format!("{prog}: no stdout pipe")))?;
            zfs::receive(out, target, hook)?;
            let status = child
                .0
                .wait()
                .io_context(|| format!("waiting for {prog}"))?;
            if !status.success() {
                return Err(Error::Command(format!(
                    "{prog} -dc {}: exited with {status}",
                    path.display()
                )));
            }
            Ok(())
        }
        Compression::Other(c) => Err(Error::Command(format!(
            "{}: unsupported compression '{c}'",
            path.display()
        ))),
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn snippet(body: &str) -> String {
    crate::util::snippet(body, 200)
}

#[cfg(test)]
mod tests {
    use super::*;
    use progress::Silent;
    use std::io::{BufRead as _, BufReader};

    /// A one-request HTTP server on loopback answering `body` with the
    /// given extra header line (empty for none).
    fn serve_once(body: Vec<u8>, header: String) -> String {
        serve_status(200, body, header)
    }

    fn serve_status(status: u16, body: Vec<u8>, header: String) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let mut w = stream;
            write!(
                w,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{header}connection: close\r\n\r\n",
                body.len()
            )
            .unwrap();
            w.write_all(&body).unwrap();
        });
        format!("http://{addr}")
    }

    #[test]
    fn download_checks_content_md5_when_sent() {
        let body = b"an origin image".to_vec();
        let mut md5 = imgapi_api::ContentMd5::new();
        md5.update(&body);
        let good = md5.finish();
        let manifest = Manifest::parse(
            "m.json",
            &serde_json::json!({
                "uuid": "01b2c898-945f-11e1-a523-af1afbe22822", "name": "o", "version": "1",
                "owner": "00000000-0000-0000-0000-000000000000",
                "type": "zone-dataset", "os": "smartos",
                "files": [{"sha1": hex::encode(Sha1::digest(&body)), "size": body.len(),
                           "compression": "none"}]
            })
            .to_string(),
        )
        .unwrap();
        let file = manifest.file().unwrap();
        for header in [format!("content-md5: {good}\r\n"), String::new()] {
            let remote = Remote::new(&serve_once(body.clone(), header), None).unwrap();
            let tmp = retrying(&Silent, || download(&remote, &manifest, &file, &Silent)).unwrap();
            assert_eq!(std::fs::read(tmp.path()).unwrap(), body);
        }
        // Right bytes, wrong digest: the server's word is checked too.
        let url = serve_once(
            body.clone(),
            "content-md5: AAAAAAAAAAAAAAAAAAAAAA==\r\n".into(),
        );
        let remote = Remote::new(&url, None).unwrap();
        let err = retrying(&Silent, || download(&remote, &manifest, &file, &Silent))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Content-MD5 mismatch") && err.contains(&url),
            "{err}"
        );
    }

    #[test]
    fn a_manifest_that_is_not_one_names_the_key() {
        let url = serve_once(
            br#"{"uuid": "01b2c898-945f-11e1-a523-af1afbe22822", "name": "o"}"#.to_vec(),
            "content-type: application/json\r\n".into(),
        );
        let remote = Remote::new(&format!("{url}/?channel=dev"), None).unwrap();
        let uuid: Uuid = "01b2c898-945f-11e1-a523-af1afbe22822".parse().unwrap();
        let err = retrying(&Silent, || remote.get_image(uuid)).unwrap_err();
        let msg = err.to_string();
        assert!(err.is_input(), "{msg}");
        assert!(
            msg.starts_with(&format!(
                "{url}/images/{uuid}?channel=dev: (document): missing field"
            )),
            "{msg}"
        );
    }

    #[test]
    fn failed_answers_are_absent_only_for_404() {
        let uuid: Uuid = "01b2c898-945f-11e1-a523-af1afbe22822".parse().unwrap();
        let restify = |code: &str| format!(r#"{{"code":"{code}","message":"m"}}"#).into_bytes();
        let ctype = || "content-type: application/json\r\n".to_string();
        for body in [restify("ResourceNotFound"), b"<html>nope</html>".to_vec()] {
            let remote = Remote::new(&serve_status(404, body, ctype()), None).unwrap();
            assert!(
                retrying(&Silent, || remote.get_image(uuid))
                    .unwrap()
                    .is_none()
            );
        }
        // One connection only: a retry would fail differently.
        for (status, body, want) in [
            (
                503,
                restify("ServiceUnavailable"),
                "HTTP 503 Service Unavailable: ServiceUnavailable",
            ),
            (
                502,
                b"<html>bad gateway</html>".to_vec(),
                "HTTP 502: the answer is not an IMGAPI response",
            ),
        ] {
            let url = serve_status(status, body, ctype());
            let remote = Remote::new(&url, None).unwrap();
            let e = retrying(&Silent, || remote.get_image(uuid)).unwrap_err();
            let msg = e.to_string();
            assert!(!e.is_input(), "{msg}");
            assert!(
                msg.starts_with(&format!("GetImage {uuid} at {url}: {want}")),
                "{msg}"
            );
        }
        let manifest = Manifest::parse(
            "m.json",
            &serde_json::json!({
                "uuid": uuid, "name": "o", "version": "1",
                "owner": "00000000-0000-0000-0000-000000000000",
                "type": "zone-dataset", "os": "smartos",
                "files": [{"sha1": "97f20b32c2016782257176fb58a35e5044f05840", "size": 1,
                           "compression": "gzip"}]
            })
            .to_string(),
        )
        .unwrap();
        let file = manifest.file().unwrap();
        let url = serve_status(500, restify("InternalError"), ctype());
        let remote = Remote::new(&url, None).unwrap();
        let msg = retrying(&Silent, || download(&remote, &manifest, &file, &Silent))
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!(
                "GetImageFile {uuid} at {url}: HTTP 500 Internal Server Error: InternalError: m"
            )
        );
    }
}
