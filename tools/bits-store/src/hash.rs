//! Streaming md5 over files and copies.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use md5::{Digest, Md5};

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::progress::Bar;

pub(crate) const CHUNK: usize = 1 << 20;

/// Read `r` (opened from `path`) to the end in 1 MiB chunks, handing each
/// to `each`.
fn for_each_chunk(
    path: &Path,
    r: &mut File,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => each(&buf[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
}

/// Size and md5 of a local file, read once in 1 MiB chunks.
pub fn md5_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Md5::new();
    let mut size = 0u64;
    for_each_chunk(path, &mut f, |data| {
        h.update(data);
        size += data.len() as u64;
        Ok(())
    })?;
    Ok((size, hex::encode(h.finalize())))
}

/// Copy `src` into `dst`, hashing what passes; returns the md5.
pub(crate) fn copy_hashing(src: &Path, dst: &Path, bar: &Bar, ctx: Option<&Ctx>) -> Result<String> {
    let mut r = File::open(src).map_err(|e| Error::io(src, e))?;
    let mut w = File::create(dst).map_err(|e| Error::io(dst, e))?;
    let mut h = Md5::new();
    for_each_chunk(src, &mut r, |data| {
        h.update(data);
        w.write_all(data).map_err(|e| Error::io(dst, e))?;
        bar.inc(data.len() as u64);
        if let Some(ctx) = ctx {
            ctx.chunk_written();
        }
        Ok(())
    })?;
    w.sync_all().map_err(|e| Error::io(dst, e))?;
    Ok(hex::encode(h.finalize()))
}

/// Feed `data` to `h`. A plain function on purpose: md5's generic code
/// inlined into async bodies polled from an unoptimized binary ran at debug
/// speed (measured: 10x), this keeps it compiled here, optimized.
#[inline(never)]
pub(crate) fn md5_update(h: &mut Md5, data: &[u8]) {
    h.update(data);
}
