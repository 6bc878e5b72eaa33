//! Streaming md5 over files and copies.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use md5::{Digest, Md5};

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::progress::Bar;

pub(crate) const CHUNK: usize = 1 << 20;

/// Size and md5 of a local file, read once in 1 MiB chunks.
pub fn md5_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(h.finalize())))
}

/// Copy `src` into `dst`, hashing what passes; returns the md5.
pub(crate) fn copy_hashing(src: &Path, dst: &Path, bar: &Bar, ctx: Option<&Ctx>) -> Result<String> {
    let mut r = File::open(src).map_err(|e| Error::io(src, e))?;
    let mut w = File::create(dst).map_err(|e| Error::io(dst, e))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(src, e)),
        };
        h.update(&buf[..n]);
        w.write_all(&buf[..n]).map_err(|e| Error::io(dst, e))?;
        bar.inc(n as u64);
        if let Some(ctx) = ctx {
            ctx.chunk_written();
        }
    }
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
