//! A local (or NFS-mounted) directory as bits storage, as eng's `-L` mode
//! lays it out: plain files, and `-latest` pointers as relative symlinks.
//! Every write goes to a dot-named temp file in the same directory and is
//! renamed into place, so a name that exists is always complete.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::hash::{copy_hashing, md5_file};
use progress::Transfer;

#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
}

/// `dir/.name.partial`: a fixed name, so a rerun after a kill overwrites
/// the leftover instead of adding another.
fn temp_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

fn create_parent(path: &Path) -> Result<&Path> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    Ok(parent)
}

impl LocalStore {
    pub fn open(root: &Path) -> Result<LocalStore> {
        let root = std::path::absolute(root).map_err(|e| Error::io(root, e))?;
        fs::create_dir_all(&root).map_err(|e| Error::io(&root, e))?;
        Ok(LocalStore { root })
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub fn location(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }

    /// Size and md5 of what is stored under `key`, None if nothing is.
    pub fn existing_md5(&self, key: &str) -> Result<Option<(u64, String)>> {
        let path = self.path(key);
        match fs::symlink_metadata(&path) {
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
            Ok(m) if m.is_file() => md5_file(&path).map(Some),
            Ok(_) => Err(Error::BadRemote {
                object: path.display().to_string(),
                reason: "exists but is not a regular file".into(),
            }),
        }
    }

    /// Copy `src` in; returns the md5 of what was copied.
    pub fn put_file(&self, key: &str, src: &Path, bar: &Transfer, ctx: &Ctx) -> Result<String> {
        let path = self.path(key);
        let parent = create_parent(&path)?;
        let tmp = temp_for(&path);
        let md5 = copy_hashing(src, &tmp, bar, Some(ctx))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(parent)?;
        Ok(md5)
    }

    /// Write a small object unless it already holds `body`; true if written.
    pub fn put_small(&self, key: &str, body: &[u8]) -> Result<bool> {
        if self.get_small(key)?.as_deref() == Some(body) {
            return Ok(false);
        }
        let path = self.path(key);
        let parent = create_parent(&path)?;
        let tmp = temp_for(&path);
        fs::write(&tmp, body)
            .and_then(|_| fs::File::open(&tmp)?.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(parent)?;
        Ok(true)
    }

    pub fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Point `key` (a `-latest` name) at the sibling `stamp` dir with a
    /// relative symlink, swapped in atomically; true if it changed.
    pub fn set_pointer(&self, key: &str, stamp: &str) -> Result<bool> {
        let path = self.path(key);
        match fs::read_link(&path) {
            Ok(t) if t == Path::new(stamp) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            // EINVAL: not a symlink. A directory is a damaged store; a
            // regular file (an object-style pointer copied in) is replaced.
            Err(e) if e.kind() == ErrorKind::InvalidInput => {
                if path.is_dir() {
                    return Err(Error::BadRemote {
                        object: path.display().to_string(),
                        reason: "is a directory, expected a symlink to a stamp dir".into(),
                    });
                }
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
        let parent = create_parent(&path)?;
        let tmp = temp_for(&path);
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&tmp, e)),
        }
        std::os::unix::fs::symlink(stamp, &tmp).map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        sync_dir(parent)?;
        Ok(true)
    }

    /// The stamp a pointer names: a symlink's target, or (for a store
    /// copied from object storage) a file holding the stamp dir's path.
    pub fn read_pointer(&self, key: &str) -> Result<Option<String>> {
        let path = self.path(key);
        match fs::read_link(&path) {
            Ok(t) => Ok(Some(t.to_string_lossy().into_owned())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(_) => Ok(self
                .get_small(key)?
                .map(|b| String::from_utf8_lossy(&b).into_owned())),
        }
    }

    /// Copy `key` to `out`; None if there is no such object.
    pub fn download(&self, key: &str, out: &Path, bar: &Transfer) -> Result<Option<String>> {
        let path = self.path(key);
        if !path.is_file() {
            return Ok(None);
        }
        copy_hashing(&path, out, bar, None).map(Some)
    }
}
