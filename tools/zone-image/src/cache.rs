//! Skip a rebuild whose inputs are unchanged: the key is a digest of
//! everything that goes into the outputs; the record names the outputs it
//! produced so a hit can be checked against what is on disk.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result};

/// Builds up the input digest.
#[derive(Default)]
pub struct KeyBuilder {
    h: Sha256,
}

impl KeyBuilder {
    pub fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        // Length-prefixed so adjacent fields cannot run together.
        for part in [name.as_bytes(), value] {
            self.h.update((part.len() as u64).to_le_bytes());
            self.h.update(part);
        }
        self
    }

    pub fn file(&mut self, name: &str, path: &Path) -> Result<&mut Self> {
        let f = File::open(path).io_context(|| format!("reading {}", path.display()))?;
        let mut h = Sha256::new();
        crate::util::for_each_chunk(
            f,
            || format!("reading {}", path.display()),
            |chunk| {
                h.update(chunk);
                Ok(())
            },
        )?;
        Ok(self.field(name, &h.finalize()))
    }

    pub fn finish(&self) -> String {
        hex::encode(self.h.clone().finalize())
    }
}

/// What a successful build left behind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub stamp: String,
    /// Output files (absolute) with their sizes.
    pub outputs: Vec<(PathBuf, u64)>,
    pub dev_reason: Option<String>,
}

impl Record {
    /// True when every output is still there at the size it was written.
    pub fn outputs_present(&self) -> bool {
        self.outputs
            .iter()
            .all(|(p, size)| fs::metadata(p).is_ok_and(|m| m.len() == *size))
    }
}

pub fn load(path: &Path) -> Option<Record> {
    let text = fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn store(path: &Path, record: &Record) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    let text = serde_json::to_vec_pretty(record)
        .map_err(|e| crate::Error::Command(format!("encoding the build cache record: {e}")))?;
    crate::util::write_atomic(path, &text)
}
