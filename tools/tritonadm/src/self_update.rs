//! `tritonadm self-update`: find the newest tritonadm in a channel of the
//! updates server, stream its installer to `/var/tmp` while hashing, check
//! size and sha1 against the manifest, and run it; `--rollback` reruns the
//! installed installer's header in rollback mode. The swap itself, the
//! archives and crash repair are the installer's
//! (`tools/zone-image/src/tool/installer.sh`), so there is one of each.

use std::path::{Path, PathBuf};
use std::process::Command;

use imgapi_api::{Compression, Image, StateFilter};
use uuid::Uuid;

use crate::imgapi::Imgapi;
use crate::{Error, Result};

pub const NAME: &str = "tritonadm";
/// Prefixes every absolute path below (the installer reads it too).
pub const INSTALL_ROOT_ENV: &str = "TRITONADM_INSTALL_ROOT";
/// `[tool].prefix` of `images/tritonadm/image.toml`.
pub const PREFIX: &str = "/opt/triton/tritonadm";

/// The paths an install uses, under `TRITONADM_INSTALL_ROOT` when set.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    pub fn from_env() -> Layout {
        Layout::new(std::env::var_os(INSTALL_ROOT_ENV).unwrap_or_default())
    }

    fn path(&self, abs: &str) -> PathBuf {
        let mut p = self.root.clone().into_os_string();
        p.push(abs);
        p.into()
    }

    pub fn install_dir(&self) -> PathBuf {
        self.path(PREFIX)
    }

    pub fn version_file(&self) -> PathBuf {
        self.install_dir().join("etc/version")
    }

    /// The installed installer's header, kept for `--rollback`.
    pub fn installer(&self) -> PathBuf {
        self.install_dir().join("lib/installer.sh")
    }

    pub fn downloads(&self) -> PathBuf {
        self.path("/var/tmp")
    }

    pub fn logs(&self) -> PathBuf {
        self.path(&format!("/var/log/{NAME}/self-updates"))
    }

    pub fn lock_file(&self) -> PathBuf {
        self.path(&format!("/var/{NAME}/self-update.lock"))
    }
}

/// `etc/version` of the installed tritonadm.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Installed {
    pub uuid: Option<Uuid>,
    pub version: Option<String>,
}

impl Installed {
    /// `Ok(default)` when nothing is installed; a file that exists but
    /// cannot be read or parsed is an error.
    pub fn read(layout: &Layout) -> Result<Installed> {
        let path = layout.version_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Installed::default()),
            Err(err) => return Err(Error::Io { path, err }),
        };
        let mut out = Installed::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("uuid", v)) => {
                    out.uuid = Some(Uuid::parse_str(v).map_err(|_| {
                        Error::Other(format!(
                            "{}: uuid: expected a UUID, got {v:?}",
                            path.display()
                        ))
                    })?);
                }
                Some(("version", v)) => out.version = Some(v.to_string()),
                _ => {}
            }
        }
        Ok(out)
    }
}

/// Which image to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Latest,
    Image(Uuid),
}

/// One self-update at a time: an advisory lock the OS drops when this
/// process ends, however it ends.
pub struct Lock {
    _file: std::fs::File,
}

pub fn lock(layout: &Layout) -> Result<Lock> {
    let path = layout.lock_file();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|err| Error::Io {
            path: dir.to_path_buf(),
            err,
        })?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| Error::Io {
            path: path.clone(),
            err,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Other(format!(
            "another tritonadm self-update is running (it holds {})",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(err)) => Err(Error::Io { path, err }),
    }
}

/// The channel to look in: the one given, else the server's default.
pub async fn channel(api: &Imgapi, given: Option<&str>) -> Result<String> {
    if let Some(c) = given {
        return Ok(c.to_string());
    }
    let channels = api.list_channels().await?;
    channels
        .into_iter()
        .find(|c| c.default == Some(true))
        .map(|c| c.name)
        .ok_or_else(|| {
            Error::Other(format!(
                "the updates server at {} names no default channel; pass --channel",
                api.url()
            ))
        })
}

/// The image to install from `channel`.
pub async fn find(api: &Imgapi, which: Which, channel: &str) -> Result<Image> {
    let image = match which {
        Which::Latest => api
            .list_images(Some(NAME), StateFilter::Active, Some(channel))
            .await?
            .into_iter()
            .filter(|i| i.name == NAME)
            .max_by_key(|i| i.published_at)
            .ok_or_else(|| {
                Error::Other(format!(
                    "no active {NAME} image in channel {channel} at {}",
                    api.url()
                ))
            })?,
        Which::Image(uuid) => api.get_image(uuid, Some(channel)).await?.ok_or_else(|| {
            Error::Input(format!(
                "image {uuid} was not found in channel {channel} at {}",
                api.url()
            ))
        })?,
    };
    if image.name != NAME {
        return Err(Error::Input(format!(
            "image {} is {} {}, not {NAME}",
            image.uuid, image.name, image.version
        )));
    }
    Ok(image)
}

/// Stream the image's installer into `dir` (the one download path,
/// [`crate::download::save_file`]): the file is kept only when size, sha1
/// and Content-MD5 match.
pub async fn download(
    api: &Imgapi,
    image: &Image,
    channel: &str,
    dir: &Path,
    progress: &dyn progress::Progress,
) -> Result<PathBuf> {
    match image.files.as_slice() {
        [f] if f.compression == Compression::None => {}
        [f] => {
            return Err(Error::Other(format!(
                "image {}: files[0].compression is {}, an installer is not compressed (none)",
                image.uuid,
                f.compression.as_str()
            )));
        }
        _ => {
            return Err(Error::Other(format!(
                "image {}: expected one file, the manifest lists {}",
                image.uuid,
                image.files.len()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|err| Error::Io {
        path: dir.to_path_buf(),
        err,
    })?;
    let dest = dir.join(format!("{NAME}-{}.sh", image.version));
    crate::download::save_file(api, image, Some(channel), &dest, progress).await?;
    Ok(dest)
}

/// Run an installer (`sh FILE ARGS`), its output going to ours.
pub fn run_installer(layout: &Layout, installer: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("sh")
        .arg(installer)
        .args(args)
        .status()
        .map_err(|err| Error::Io {
            path: installer.to_path_buf(),
            err,
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "the installer {} failed ({status}); its log is under {}",
            installer.display(),
            layout.logs().display()
        )))
    }
}

/// Roll back to the newest archived install that differs from the live
/// one. The installed header runs from a copy: the swap moves the
/// directory it lives in.
pub fn rollback(layout: &Layout, dry_run: bool) -> Result<()> {
    let header = layout.installer();
    if !header.is_file() {
        return Err(Error::Other(format!(
            "{}: missing, so this tritonadm was not installed by its installer and has nothing to roll back to",
            header.display()
        )));
    }
    let dir = layout.downloads();
    std::fs::create_dir_all(&dir).map_err(|err| Error::Io {
        path: dir.clone(),
        err,
    })?;
    let copy = dir.join(format!("{NAME}-rollback-{}.sh", std::process::id()));
    std::fs::copy(&header, &copy).map_err(|err| Error::Io {
        path: header.clone(),
        err,
    })?;
    let mut args = vec!["--rollback"];
    if dry_run {
        args.push("--dry-run");
    }
    let result = run_installer(layout, &copy, &args);
    let _ = std::fs::remove_file(&copy);
    result
}
