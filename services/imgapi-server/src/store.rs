//! On-disk image store: `DIR/manifests/<uuid>.json` and
//! `DIR/files/<uuid>/file`. Every write goes to a temporary name in the same
//! directory, is synced and renamed into place, and the directory is synced,
//! so whatever was acknowledged survives a crash or restart.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use imgapi_api::Image;
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

    /// Move a fully written and synced upload into place.
    pub fn commit_file(&self, uuid: &Uuid, temp: &Path) -> Result<(), StoreError> {
        let dest = self.file_path(uuid);
        std::fs::rename(temp, &dest).map_err(io(&dest))?;
        sync_dir(&self.file_dir(uuid))
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
