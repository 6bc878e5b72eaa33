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

#[cfg(feature = "remote")]
mod remote;

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use progress::Progress;
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

/// Brings an origin chain into the pool from the IMGAPI source by other
/// means than this crate's own client: how a build without the `remote`
/// feature (the light `cargo xtask`, which links no HTTPS stack) still
/// gets its origins, by handing the download to a tool that has one.
pub trait FetchOrigin: Send + Sync + std::fmt::Debug {
    /// Make `<pool>/<uuid>@final` and its origins exist, as
    /// [`Origins::ensure`] with a remote source would.
    fn fetch_origin(&self, uuid: Uuid, origins: &Origins<'_>) -> Result<()>;
}

/// Where origins may be found.
#[derive(Clone)]
pub struct Origins<'a> {
    /// Pool or dataset under which origins live as `<uuid>@final`.
    pub pool: &'a str,
    pub dir: Option<&'a Path>,
    /// IMGAPI base URL; `None` means there is no remote source.
    pub source: Option<&'a str>,
    pub channel: Option<&'a str>,
    /// Downloads from `source` through this instead of in-process.
    pub fetch: Option<&'a dyn FetchOrigin>,
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

        let found = match self.find(uuid)? {
            Some(found) => found,
            None => return self.fetch_elsewhere(uuid, &ds, &snap),
        };
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
            #[cfg(feature = "remote")]
            Found::Remote { manifest, remote } => {
                Image::Temp(remote::retrying(self.progress, || {
                    remote::download(&remote, &manifest, &file, self.progress)
                })?)
            }
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

    /// Look in `--origin-dir`, then on the IMGAPI source with our own
    /// client (if built in and no [`FetchOrigin`] is given); `None` if
    /// neither has it.
    fn find(&self, uuid: Uuid) -> Result<Option<Found>> {
        if let Some(dir) = self.dir
            && let Some((manifest, path)) = find_in_dir(dir, uuid, self.progress)?
        {
            let image = image_beside(&manifest, &path)?;
            return Ok(Some(Found::Dir { manifest, image }));
        }
        #[cfg(feature = "remote")]
        if self.fetch.is_none()
            && let Some(src) = self.source
        {
            let remote = remote::Remote::new(src, self.channel)?;
            if let Some(manifest) = remote::retrying(self.progress, || remote.get_image(uuid))? {
                return Ok(Some(Found::Remote { manifest, remote }));
            }
        }
        Ok(None)
    }

    /// Not in the pool nor the dir: the [`FetchOrigin`] brings it (and its
    /// origins) into the pool, or nothing can.
    fn fetch_elsewhere(&self, uuid: Uuid, ds: &str, snap: &str) -> Result<Manifest> {
        let (Some(src), Some(fetch)) = (self.source, self.fetch) else {
            return Err(self.not_found(uuid));
        };
        fetch.fetch_origin(uuid, self)?;
        if !zfs::exists(snap)? {
            return Err(Error::Command(format!(
                "origin {uuid}: fetching it from {src} succeeded but left no {snap}"
            )));
        }
        self.manifest_of_present(uuid, ds)
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
            Some(s) if cfg!(feature = "remote") || self.fetch.is_some() => {
                looked.push(format!("not on {s}"))
            }
            Some(s) => looked.push(format!(
                "{s} not asked: this build has no HTTPS client (zone-image's `remote` feature)"
            )),
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
        #[cfg(feature = "remote")]
        if let Some(src) = self.source {
            let remote = remote::Remote::new(src, self.channel)?;
            if let Some(m) = remote::retrying(self.progress, || remote.get_image(uuid))? {
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
    Dir {
        manifest: Manifest,
        image: PathBuf,
    },
    #[cfg(feature = "remote")]
    Remote {
        manifest: Manifest,
        remote: remote::Remote,
    },
}

impl Found {
    fn manifest(&self) -> Manifest {
        match self {
            Found::Dir { manifest, .. } => manifest.clone(),
            #[cfg(feature = "remote")]
            Found::Remote { manifest, .. } => manifest.clone(),
        }
    }
}

enum Image {
    Local(PathBuf),
    #[cfg(feature = "remote")]
    Temp(tempfile::NamedTempFile),
}

impl Image {
    fn path(&self) -> &Path {
        match self {
            Image::Local(p) => p,
            #[cfg(feature = "remote")]
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
