//! The origin chain: make sure an image's origin, and its origin's origin,
//! are in the pool as `<pool>/<uuid>@final`, as imgadm keeps them.
//!
//! An origin comes from the pool if it is there, else from `--origin-dir`
//! (`*.imgmanifest` plus the image file beside it), else from an IMGAPI
//! source. Every file is checked against its manifest's size and sha1
//! before `zfs receive` sees a byte of it, and is received under a
//! temporary name that becomes `<uuid>` only once the receive succeeded.
//! A request cut or stalled midway starts over, up to three tries.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha1::{Digest, Sha1};
use uuid::Uuid;

use crate::cancel;
use crate::compress;
use crate::error::{Error, IoContext, Result};
use crate::manifest::{Compression, ImageFile, Manifest};
use crate::util::for_each_chunk;
use crate::zfs::{self, ZfsError};

/// Where eng's images come from when no source is given.
pub const DEFAULT_SOURCE: &str = "https://updates.tritondatacenter.com";

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
#[derive(Debug, Clone)]
pub struct Origins<'a> {
    /// Pool or dataset under which origins live as `<uuid>@final`.
    pub pool: &'a str,
    pub dir: Option<&'a Path>,
    /// IMGAPI base URL; `None` means there is no remote source.
    pub source: Option<&'a str>,
    pub channel: Option<&'a str>,
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
            Found::Remote { manifest, url } => {
                let client = self.client()?;
                Image::Temp(retrying(|| download(&client, &url, &manifest, &file))?)
            }
        };
        eprintln!(
            "zone-image: receiving origin {} ({}) into {ds}",
            manifest.label(),
            uuid
        );
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
        let mut guard = DestroyOnDrop(Some(tmp.clone()));
        receive_image(path, file.compression, &tmp)?;
        let json = serde_json::to_string(&manifest.raw).map_err(|e| {
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

    fn client(&self) -> Result<reqwest::blocking::Client> {
        reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // The blocking client applies it to the wait for the answer
            // and to each read of the body, not to the whole download.
            .timeout(read_timeout()?)
            .user_agent(concat!("zone-image/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::Command(format!(
                    "creating the HTTP client: {}",
                    crate::error::one_line(&e)
                ))
            })
    }

    /// Look in `--origin-dir`, then on the IMGAPI source.
    fn find(&self, uuid: Uuid) -> Result<Found> {
        if let Some(dir) = self.dir
            && let Some((manifest, path)) = find_in_dir(dir, uuid)?
        {
            let image = image_beside(&manifest, &path)?;
            return Ok(Found::Dir { manifest, image });
        }
        if let Some(src) = self.source
            && let Some(manifest) = self.fetch_manifest(src, uuid)?
        {
            let url = self.url(src, &format!("images/{uuid}/file"));
            return Ok(Found::Remote { manifest, url });
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

    fn url(&self, src: &str, path: &str) -> String {
        let mut url = format!("{}/{path}", src.trim_end_matches('/'));
        if let Some(c) = self.channel {
            url.push_str("?channel=");
            url.push_str(c);
        }
        url
    }

    /// `GET /images/:uuid`. 404 means absent; any other failure is an error.
    fn fetch_manifest(&self, src: &str, uuid: Uuid) -> Result<Option<Manifest>> {
        let url = self.url(src, &format!("images/{uuid}"));
        let client = self.client()?;
        retrying(|| {
            let resp = client
                .get(&url)
                .send()
                .map_err(|e| transfer(&format!("GET {url}"), &e))?;
            let status = resp.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                return Ok(None);
            }
            let text = resp
                .text()
                .map_err(|e| transfer(&format!("GET {url}: reading the body"), &e))?;
            if !status.is_success() {
                return Err(Failed::Final(Error::Command(format!(
                    "GET {url}: HTTP {status}: {}",
                    snippet(&text)
                ))));
            }
            Manifest::parse(&url, &text)
                .map(Some)
                .map_err(Failed::Final)
        })
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
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Error::input(&db, "(document)", format!("expected JSON: {e}")))?;
            let inner = v.get("manifest").unwrap_or(&v);
            return Manifest::parse(&db, &inner.to_string());
        }
        if let Some(dir) = self.dir
            && let Some((m, _)) = find_in_dir(dir, uuid)?
        {
            return Ok(m);
        }
        if let Some(src) = self.source
            && let Some(m) = self.fetch_manifest(src, uuid)?
        {
            return Ok(m);
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
    Remote { manifest: Manifest, url: String },
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
struct DestroyOnDrop(Option<String>);

impl Drop for DestroyOnDrop {
    fn drop(&mut self) {
        if let Some(ds) = self.0.take()
            && let Err(e) = zfs::destroy_recursive(&ds)
        {
            eprintln!("zone-image: warning: could not destroy {ds}: {e}");
        }
    }
}

/// Any `*.imgmanifest` in `dir` whose uuid matches, and its path.
pub fn find_in_dir(dir: &Path, uuid: Uuid) -> Result<Option<(Manifest, PathBuf)>> {
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
            eprintln!(
                "zone-image: warning: {} is not JSON; skipped",
                path.display()
            );
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
    for c in Compression::ALL {
        let candidate = dir.join(format!("{prefix}{}", c.suffix()));
        if candidate.is_file() {
            if c != file.compression {
                return Err(Error::input(
                    &candidate,
                    "files[0].compression",
                    format!(
                        "{} says {} but this file's suffix is {}",
                        path.display(),
                        file.compression.as_str(),
                        c.suffix()
                    ),
                ));
            }
            return Ok(candidate);
        }
    }
    let tried: Vec<_> = Compression::ALL
        .iter()
        .map(|c| format!("{prefix}{}", c.suffix()))
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

/// Why a download attempt failed: the transfer (worth another try) or
/// anything else.
enum Failed {
    Transfer(Error),
    Final(Error),
}

/// `attempt`, again after a cut or stalled transfer, up to [`ATTEMPTS`]
/// tries.
fn retrying<T>(mut attempt: impl FnMut() -> Result<T, Failed>) -> Result<T> {
    let mut tries = 1;
    loop {
        match attempt() {
            Ok(t) => return Ok(t),
            Err(Failed::Transfer(e)) if tries < ATTEMPTS => {
                eprintln!(
                    "zone-image: warning: {e}; retrying ({tries} of {ATTEMPTS} tries failed)"
                );
                tries += 1;
            }
            Err(Failed::Transfer(e)) => {
                return Err(Error::Command(format!("{e} (all {ATTEMPTS} tries failed)")));
            }
            Err(Failed::Final(e)) => return Err(e),
        }
    }
}

/// A transfer that failed, saying so when it was a timeout.
fn transfer(what: &str, e: &reqwest::Error) -> Failed {
    Failed::Transfer(Error::Command(format!(
        "{what}: {}{}",
        crate::error::one_line(e),
        stall_hint(e.is_timeout())
    )))
}

/// What to add to a transfer error that was a timeout.
fn stall_hint(timed_out: bool) -> String {
    if timed_out {
        format!(
            " (no data within the read timeout: the server stalled; {READ_TIMEOUT_ENV} sets the limit)"
        )
    } else {
        String::new()
    }
}

/// Stream `GET <url>` into a temp file, hashing as it lands; the file is
/// kept only if size and sha1 match the manifest.
fn download(
    client: &reqwest::blocking::Client,
    url: &str,
    manifest: &Manifest,
    file: &ImageFile,
) -> Result<tempfile::NamedTempFile, Failed> {
    let mut resp = client
        .get(url)
        .send()
        .map_err(|e| transfer(&format!("GET {url}"), &e))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().unwrap_or_default();
        return Err(Failed::Final(Error::Command(format!(
            "GET {url}: HTTP {status}: {}",
            snippet(&body)
        ))));
    }
    // IMGAPI sends it on every GetImageFile; a plain file server may not.
    let content_md5 = match resp.headers().get(imgapi_api::CONTENT_MD5) {
        Some(v) => Some(v.to_str().map(str::to_string).map_err(|_| {
            Failed::Final(Error::Command(format!(
                "GET {url}: the Content-MD5 header is not text"
            )))
        })?),
        None => None,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("zone-image-origin-{}-", manifest.uuid))
        .tempfile()
        .io_context(|| "creating a temp file for an origin image".to_string())
        .map_err(Failed::Final)?;
    let mut hash = Sha1::new();
    let mut md5 = imgapi_api::ContentMd5::new();
    let mut received = 0u64;
    // Errors of our own side (too much data, a full disk) are final.
    let mut ours = false;
    let read = for_each_chunk(
        &mut resp,
        || format!("GET {url}: reading the body"),
        |chunk| {
            received += chunk.len() as u64;
            // A server streaming past the manifest's size is cut off early.
            if received > file.size {
                ours = true;
                return Err(Error::Command(format!(
                    "GET {url}: more than the {} bytes files[0].size of {} says",
                    file.size,
                    manifest.source.display()
                )));
            }
            hash.update(chunk);
            md5.update(chunk);
            ours = true;
            tmp.write_all(chunk)
                .io_context(|| format!("writing {}", tmp.path().display()))?;
            ours = false;
            Ok(())
        },
    );
    let size = match read {
        Ok(n) => n,
        Err(Error::Io { context, source }) if !ours => {
            let timed_out = source
                .get_ref()
                .and_then(|e| e.downcast_ref::<reqwest::Error>())
                .is_some_and(reqwest::Error::is_timeout);
            return Err(Failed::Transfer(Error::Command(format!(
                "{context}: broke off after {received} bytes: {}{}",
                crate::error::one_line(&source),
                stall_hint(timed_out)
            ))));
        }
        Err(e) => return Err(Failed::Final(e)),
    };
    tmp.flush()
        .io_context(|| format!("writing {}", tmp.path().display()))
        .map_err(Failed::Final)?;
    let sha1 = hex::encode(hash.finalize());
    if size != file.size {
        // The connection closed early without saying so.
        return Err(Failed::Transfer(Error::Command(format!(
            "GET {url}: got {size} bytes, files[0].size says {}",
            file.size
        ))));
    }
    if let Some(want) = content_md5 {
        let got = md5.finish();
        if got != want {
            return Err(Failed::Final(Error::Command(format!(
                "GET {url}: Content-MD5 mismatch: the server sent {want}, the bytes received \
                 hash to {got}"
            ))));
        }
    }
    if sha1 != file.sha1 {
        return Err(Failed::Final(Error::Command(format!(
            "GET {url}: sha1 {sha1}, files[0].sha1 says {}",
            file.sha1
        ))));
    }
    Ok(tmp)
}

/// Decompress an image file into `zfs receive <target>`.
fn receive_image(path: &Path, compression: Compression, target: &str) -> Result<()> {
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
            let prog = if compression == Compression::Bzip2 {
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
    use std::io::{BufRead as _, BufReader};

    /// A one-request HTTP server on loopback answering `body` with the
    /// given extra header line (empty for none).
    fn serve_once(body: Vec<u8>, header: String) -> String {
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
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n{header}connection: close\r\n\r\n",
                body.len()
            )
            .unwrap();
            w.write_all(&body).unwrap();
        });
        format!("http://{addr}/images/x/file")
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
                "files": [{"sha1": hex::encode(Sha1::digest(&body)), "size": body.len(),
                           "compression": "none"}]
            })
            .to_string(),
        )
        .unwrap();
        let file = manifest.file().unwrap();
        let client = reqwest::blocking::Client::new();
        for header in [format!("content-md5: {good}\r\n"), String::new()] {
            let url = serve_once(body.clone(), header);
            let tmp = retrying(|| download(&client, &url, &manifest, &file)).unwrap();
            assert_eq!(std::fs::read(tmp.path()).unwrap(), body);
        }
        // Right bytes, wrong digest: the server's word is checked too.
        let url = serve_once(
            body.clone(),
            "content-md5: AAAAAAAAAAAAAAAAAAAAAA==\r\n".into(),
        );
        let err = retrying(|| download(&client, &url, &manifest, &file))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Content-MD5 mismatch") && err.contains(&url),
            "{err}"
        );
    }
}
