//! Stage 4: the package tarball `<name>-pkg-<stamp>.tar.gz`. Reproducible:
//! sorted entries, one fixed mtime, uid/gid 0 (root), the proto's explicit
//! modes; compressed and hashed in the same pass.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::cancel;
use crate::compress::{Compressed, GzipHashWriter};
use crate::error::{Error, IoContext, Result};

/// The top-level trees of a proto, in tarball order.
pub const TREES: [&str; 2] = ["root", "site"];

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    // Both set explicitly: names would otherwise be empty, and GNU tar
    // maps empty names to the extracting user.
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

/// Write `proto/{root,site}` as a gzipped tarball at `dest` (via a temp
/// file in the same directory, renamed when complete).
pub fn write(proto: &Path, dest: &Path, mtime: i64, level: u32) -> Result<Compressed> {
    write_trees(proto, &TREES, dest, mtime, level)
}

/// The same for everything inside `dir`, with paths relative to it: a
/// tool's payload, unpacked straight into its install directory.
pub fn write_contents(dir: &Path, dest: &Path, mtime: i64, level: u32) -> Result<Compressed> {
    let mut tops = Vec::new();
    for e in fs::read_dir(dir).io_context(|| format!("reading {}", dir.display()))? {
        let e = e.io_context(|| format!("reading {}", dir.display()))?;
        tops.push(e.file_name().to_string_lossy().into_owned());
    }
    tops.sort();
    write_trees(dir, &tops, dest, mtime, level)
}

fn write_trees<S: AsRef<str>>(
    proto: &Path,
    trees: &[S],
    dest: &Path,
    mtime: i64,
    level: u32,
) -> Result<Compressed> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).io_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".pkg-")
        .suffix(".tar.gz.tmp")
        .tempfile_in(dir)
        .io_context(|| format!("creating a temp file in {}", dir.display()))?;
    let gz = GzipHashWriter::create(tmp.path(), level)?;
    let mut builder = tar::Builder::new(gz);
    let mtime = u64::try_from(mtime).map_err(|_| {
        Error::input(
            "SOURCE_DATE_EPOCH",
            "SOURCE_DATE_EPOCH",
            "expected a time after 1970",
        )
    })?;
    for tree in trees {
        let top = proto.join(tree.as_ref());
        if !top.is_dir() {
            continue;
        }
        for item in walkdir::WalkDir::new(&top).sort_by_file_name() {
            cancel::check()?;
            let item = item.map_err(|e| Error::Io {
                context: format!("walking {}", top.display()),
                source: e.into(),
            })?;
            let rel = item.path().strip_prefix(proto).unwrap_or(item.path());
            let meta = item.metadata().map_err(|e| Error::Io {
                context: format!("reading {}", item.path().display()),
                source: e.into(),
            })?;
            let ft = meta.file_type();
            if ft.is_dir() {
                let mut h = header(tar::EntryType::Directory, 0o755, 0, mtime);
                builder
                    .append_data(&mut h, rel, io::empty())
                    .io_context(|| format!("adding {}", rel.display()))?;
            } else if ft.is_file() {
                let mode = meta.permissions().mode() & 0o7777;
                let mut h = header(tar::EntryType::Regular, mode, meta.len(), mtime);
                let f = File::open(item.path())
                    .io_context(|| format!("opening {}", item.path().display()))?;
                builder
                    .append_data(&mut h, rel, f)
                    .io_context(|| format!("adding {}", rel.display()))?;
                cancel::pause_point("tarball")?;
            } else {
                return Err(Error::Command(format!(
                    "{}: only files and directories belong in a proto",
                    item.path().display()
                )));
            }
        }
    }
    let mut gz = builder
        .into_inner()
        .io_context(|| format!("finishing {}", dest.display()))?;
    gz.flush()
        .io_context(|| format!("writing {}", dest.display()))?;
    let done = gz.finish()?;
    tmp.persist(dest).map_err(|e| Error::Io {
        context: format!("renaming into {}", dest.display()),
        source: e.error,
    })?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o644))
        .io_context(|| format!("setting the mode of {}", dest.display()))?;
    Ok(done)
}
