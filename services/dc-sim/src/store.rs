//! The simulator's whole state as one JSON document, `DIR/state.json`.
//! Each write goes to a temporary name in DIR, is synced and renamed into
//! place, and DIR is synced: an acknowledged change survives a kill.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: not a dc-sim state document: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("serializing state: {0}")]
    Serialize(String),
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

const FILE: &str = "state.json";
/// Temporary files are named so, in the same directory as their target.
const TEMP_PREFIX: &str = ".dc-sim-";

impl Store {
    /// Open (creating) DIR and load the state in it; `None` when there is
    /// none yet.
    pub fn open<T: DeserializeOwned>(dir: &Path) -> Result<(Store, Option<T>), StoreError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let store = Store {
            dir: dir.to_path_buf(),
        };
        // A write that never reached its rename was never acknowledged.
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX))
            {
                std::fs::remove_file(&path).map_err(io(&path))?;
            }
        }
        let path = store.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((store, None)),
            Err(e) => return Err(io(&path)(e)),
        };
        let state = serde_json::from_str(&text).map_err(|e| StoreError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Ok((store, Some(state)))
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    pub fn save<T: Serialize>(&self, state: &T) -> Result<(), StoreError> {
        let bytes =
            serde_json::to_vec_pretty(state).map_err(|e| StoreError::Serialize(e.to_string()))?;
        write_atomic(&self.path(), &bytes)
    }
}

/// Write `bytes` to `dest` through a temporary file beside it: readers
/// see the old file or the new one, never a part.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(io(dir))?;
    tmp.write_all(bytes).map_err(io(tmp.path()))?;
    tmp.as_file().sync_all().map_err(io(dest))?;
    tmp.persist(dest).map_err(|e| StoreError::Io {
        path: dest.to_path_buf(),
        err: e.error,
    })?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_reloads_and_drops_unrenamed_temp() {
        let dir = tempfile::tempdir().unwrap();
        let (store, none) = Store::open::<serde_json::Value>(dir.path()).unwrap();
        assert!(none.is_none());
        store.save(&serde_json::json!({"a": 1})).unwrap();
        let half = dir.path().join(format!("{TEMP_PREFIX}half"));
        std::fs::write(&half, b"{half").unwrap();
        let (_, got) = Store::open::<serde_json::Value>(dir.path()).unwrap();
        assert_eq!(got.unwrap()["a"], 1);
        assert!(!half.exists());
    }

    #[test]
    fn corrupt_state_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        let e = Store::open::<serde_json::Value>(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("state.json: not a dc-sim state document"), "{e}");
    }
}
