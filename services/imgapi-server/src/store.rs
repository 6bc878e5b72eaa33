//! On-disk image store: `DIR/manifests/<uuid>.json` and
//! `DIR/files/<uuid>/file`. Every write goes to a temporary name in the same
//! directory, is synced and renamed into place, and the directory is synced,
//! so whatever was acknowledged survives a crash or restart.
//!
//! Beside each file, `file.md5` holds `<sha1> <Content-MD5>`: the MD5 that
//! GetImageFile sends, computed in the upload's hashing pass. It names the
//! sha1 it belongs to, so a sidecar that does not match the manifest (a
//! crash between the two renames of a re-upload, a store from before MD5s
//! were kept) is recomputed when the store is opened.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use imgapi_api::{ContentMd5, Image};
use sha1::Digest as _;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: not a valid image manifest: {message}")]
    Manifest { path: PathBuf, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |err| StoreError::Io {
        path: path.to_path_buf(),
        err,
    }
}

pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Open (creating) the store and load every manifest in it.
    pub fn open(dir: &Path) -> Result<(Store, BTreeMap<Uuid, Image>), StoreError> {
        let store = Store {
            dir: dir.to_path_buf(),
        };
        for d in [store.manifests_dir(), store.files_root()] {
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        let mut images = BTreeMap::new();
        let mdir = store.manifests_dir();
        for entry in std::fs::read_dir(&mdir).map_err(io(&mdir))? {
            let entry = entry.map_err(io(&mdir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                // A write that never reached its rename: never acknowledged.
                std::fs::remove_file(&path).map_err(io(&path))?;
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let mut image: Image =
                serde_json::from_str(&text).map_err(|e| StoreError::Manifest {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            // A manifest whose file vanished must not claim one.
            if !image.files.is_empty() && !store.file_path(&image.uuid).exists() {
                image.files.clear();
            }
            if let Some(f) = image.files.first()
                && store.content_md5(&image.uuid, &f.sha1)?.is_none()
            {
                store.recompute_md5(&image.uuid, &f.sha1)?;
            }
            images.insert(image.uuid, image);
        }
        let fdir = store.files_root();
        for entry in std::fs::read_dir(&fdir).map_err(io(&fdir))? {
            let entry = entry.map_err(io(&fdir))?;
            let sub = entry.path();
            if !sub.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&sub).map_err(io(&sub))? {
                let f = f.map_err(io(&sub))?;
                if f.file_name().to_string_lossy().starts_with('.') {
                    let p = f.path();
                    std::fs::remove_file(&p).map_err(io(&p))?;
                }
            }
        }
        Ok((store, images))
    }

    fn manifests_dir(&self) -> PathBuf {
        self.dir.join("manifests")
    }

    fn files_root(&self) -> PathBuf {
        self.dir.join("files")
    }

    pub fn file_dir(&self, uuid: &Uuid) -> PathBuf {
        self.files_root().join(uuid.to_string())
    }

    pub fn file_path(&self, uuid: &Uuid) -> PathBuf {
        self.file_dir(uuid).join("file")
    }

    /// A fresh temporary path next to the image's file, for an upload.
    pub fn temp_file_path(&self, uuid: &Uuid) -> Result<PathBuf, StoreError> {
        let dir = self.file_dir(uuid);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(dir.join(format!(".upload-{}", Uuid::new_v4())))
    }

    fn md5_path(&self, uuid: &Uuid) -> PathBuf {
        self.file_dir(uuid).join("file.md5")
    }

    /// Move a fully written and synced upload into place, with the MD5 of
    /// its content (base64, as `Content-MD5`).
    pub fn commit_file(
        &self,
        uuid: &Uuid,
        temp: &Path,
        sha1: &str,
        content_md5: &str,
    ) -> Result<(), StoreError> {
        self.write_md5(uuid, sha1, content_md5)?;
        let dest = self.file_path(uuid);
        std::fs::rename(temp, &dest).map_err(io(&dest))?;
        sync_dir(&self.file_dir(uuid))
    }

    /// The `Content-MD5` of the image's file, if one is recorded for the
    /// file with this sha1.
    pub fn content_md5(&self, uuid: &Uuid, sha1: &str) -> Result<Option<String>, StoreError> {
        let path = self.md5_path(uuid);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(match text.trim().split_once(' ') {
            Some((s, md5)) if s.eq_ignore_ascii_case(sha1) => Some(md5.to_string()),
            _ => None,
        })
    }

    fn write_md5(&self, uuid: &Uuid, sha1: &str, content_md5: &str) -> Result<(), StoreError> {
        let dir = self.file_dir(uuid);
        let dest = self.md5_path(uuid);
        let tmp = dir.join(format!(".md5-{}", Uuid::new_v4()));
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        writeln!(f, "{sha1} {content_md5}").map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &dest).map_err(io(&dest))
    }

    /// Hash the stored file again; record its MD5 only if it still has the
    /// manifest's sha1 (a damaged file gets none, and GetImageFile says so).
    fn recompute_md5(&self, uuid: &Uuid, sha1: &str) -> Result<(), StoreError> {
        let path = self.file_path(uuid);
        let mut f = std::fs::File::open(&path).map_err(io(&path))?;
        let mut sha = sha1::Sha1::new();
        let mut md5 = ContentMd5::new();
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = match std::io::Read::read(&mut f, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            sha.update(&buf[..n]);
            md5.update(&buf[..n]);
        }
        if hex::encode(sha.finalize()).eq_ignore_ascii_case(sha1) {
            self.write_md5(uuid, sha1, &md5.finish())?;
            sync_dir(&self.file_dir(uuid))?;
        }
        Ok(())
    }

    pub fn save(&self, image: &Image) -> Result<(), StoreError> {
        let dir = self.manifests_dir();
        let dest = dir.join(format!("{}.json", image.uuid));
        let tmp = dir.join(format!(".{}.json.{}", image.uuid, Uuid::new_v4()));
        let text = serde_json::to_vec_pretty(image).map_err(|e| StoreError::Manifest {
            path: dest.clone(),
            message: e.to_string(),
        })?;
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&text).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &dest).map_err(io(&dest))?;
        sync_dir(&dir)
    }

    pub fn delete(&self, uuid: &Uuid) -> Result<(), StoreError> {
        let dir = self.manifests_dir();
        let path = dir.join(format!("{uuid}.json"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        sync_dir(&dir)?;
        let fdir = self.file_dir(uuid);
        match std::fs::remove_dir_all(&fdir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&fdir)(e)),
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}
