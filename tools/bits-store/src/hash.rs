//! Streaming md5 and CRC32 over files and copies.
//!
//! md5 is most of an upload's client CPU, and on a 2-core machine that CPU
//! is taken from the S3 server. aws-lc's assembly MD5 (aws-lc is linked
//! for TLS already) measured 1.17 s/GiB here, md-5's portable code 1.60
//! (its `asm` feature was slower still), so md5sums.txt hashes go through
//! aws-lc's C API.

use std::fs::File;
use std::io::{Read, Write};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use progress::Transfer;

pub(crate) const CHUNK: usize = 1 << 20;

/// Streaming MD5, as md5sums.txt and S3's ETags need it.
#[derive(Clone)]
pub struct Md5(aws_lc_sys::MD5_CTX);

impl Md5 {
    pub fn new() -> Md5 {
        let mut ctx = MaybeUninit::<aws_lc_sys::MD5_CTX>::uninit();
        // SAFETY: MD5_Init fully initializes the plain C struct it is
        // given and cannot fail (it always returns 1).
        unsafe {
            aws_lc_sys::MD5_Init(ctx.as_mut_ptr());
            Md5(ctx.assume_init())
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        // SAFETY: the context was initialized by MD5_Init; `data` is a
        // valid slice for its whole length.
        unsafe {
            aws_lc_sys::MD5_Update(&mut self.0, data.as_ptr().cast(), data.len());
        }
    }

    pub fn finish(mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `out` has the 16 bytes MD5_Final writes.
        unsafe {
            aws_lc_sys::MD5_Final(out.as_mut_ptr(), &mut self.0);
        }
        out
    }

    /// The digest in lowercase hex, as md5sums.txt has it.
    pub fn hex(self) -> String {
        hex::encode(self.finish())
    }
}

impl Default for Md5 {
    fn default() -> Md5 {
        Md5::new()
    }
}

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
    Ok((size, h.hex()))
}

/// What a second read of a multipart file gives: its md5 and the CRC32 of
/// each part-sized piece, to compare with the CRC32s the parts were sent
/// with.
pub(crate) struct Reread {
    pub(crate) md5: String,
    pub(crate) part_crcs: Vec<u32>,
}

/// Hash `path` in the background (see the `background` crate).
///
/// md5 is for md5sums.txt and needed only once the file is stored, while
/// the transfer needs the CPU now. At low priority the hash takes what CPU
/// the transfer leaves, mostly while the store assembles the object.
/// Measured with the S3 server on the same 2 cores (1 GiB to moto): 4.6 s
/// with the md5 in the sending read, 4.25 s with it here.
pub(crate) fn reread_in_background(
    path: PathBuf,
    part: usize,
) -> tokio::sync::oneshot::Receiver<Result<Reread>> {
    background::spawn("md5", move |unwanted| reread(&path, part, unwanted))
}

/// The md5 of `path` and the CRC32 of each `part`-sized piece, read once;
/// stops with an error as soon as `unwanted()`.
fn reread(path: &Path, part: usize, unwanted: &dyn Fn() -> bool) -> Result<Reread> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut md5 = Md5::new();
    let (mut crc, mut in_part, mut part_crcs) = (crc32fast::Hasher::new(), 0, Vec::new());
    for_each_chunk(path, &mut f, |mut data| {
        if unwanted() {
            return Err(Error::io(path, std::io::Error::other("hash not wanted")));
        }
        md5.update(data);
        while !data.is_empty() {
            let n = data.len().min(part - in_part);
            crc.update(&data[..n]);
            (in_part, data) = (in_part + n, &data[n..]);
            if in_part == part {
                part_crcs.push(std::mem::take(&mut crc).finalize());
                in_part = 0;
            }
        }
        Ok(())
    })?;
    if in_part > 0 {
        part_crcs.push(crc.finalize());
    }
    Ok(Reread {
        md5: md5.hex(),
        part_crcs,
    })
}

/// Copy `src` into `dst`, hashing what passes; returns the md5.
pub(crate) fn copy_hashing(
    src: &Path,
    dst: &Path,
    bar: &Transfer,
    ctx: Option<&Ctx>,
) -> Result<String> {
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
    Ok(h.hex())
}

#[cfg(test)]
mod tests {
    use super::Md5;

    fn ours(data: &[u8]) -> String {
        let mut h = Md5::new();
        h.update(data);
        h.hex()
    }

    #[test]
    fn rfc1321_vectors() {
        let cases = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(ours(input.as_bytes()), want, "md5({input:?})");
        }
    }

    /// The second read's part CRC32s are those of each part-sized piece,
    /// across read chunks and with a short last part, and its md5 is the
    /// file's.
    #[tokio::test]
    async fn reread_gives_md5_and_part_crcs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(3 << 20) + 7u32)
            .map(|i| (i ^ (i >> 9)) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let part = (1 << 20) + 3;
        let got = super::reread_in_background(path.clone(), part)
            .await
            .unwrap()
            .unwrap();
        let want: Vec<u32> = data.chunks(part).map(crc32fast::hash).collect();
        assert_eq!(want.len(), 3);
        assert_eq!(got.part_crcs, want);
        assert_eq!(got.md5, ours(&data));

        let err = super::reread_in_background(dir.path().join("gone"), part)
            .await
            .unwrap()
            .err()
            .unwrap();
        assert!(err.to_string().contains("gone"), "{err}");
    }

    /// Fed in pieces that straddle MD5's 64-byte blocks, the digest is
    /// md-5's for the whole.
    #[test]
    fn pieces_match_md5_crate() {
        use md5::Digest as _;
        let data: Vec<u8> = (0..200_003u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for step in [1, 63, 64, 65, 4096, 70_001] {
            let mut h = Md5::new();
            for c in data.chunks(step) {
                h.update(c);
            }
            assert_eq!(
                h.finish(),
                <[u8; 16]>::from(md5::Md5::digest(&data)),
                "step {step}"
            );
        }
    }
}
