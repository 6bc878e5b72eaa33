//! Parallel gzip with the output hashed in the same pass: the package
//! tarball and the ZFS send stream both go through here, so neither is
//! ever read back to be hashed.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use gzp::ZWriter;
use gzp::deflate::Gzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};
use sha1::{Digest, Sha1};

use crate::error::{Error, IoContext, Result};
use crate::util::for_each_chunk;

/// Level 6, as `pigz -6`. Deflate runs on zlib-rs (zlib-ng's algorithms):
/// about twice zlib's speed for output 1-3% larger (see `cargo xtask bench
/// tarball` and `bench image`).
pub const DEFAULT_LEVEL: u32 = 6;

/// What was written: size and sha1 of the compressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    pub size: u64,
    pub sha1: String,
}

#[derive(Default)]
struct Tally {
    size: u64,
    sha1: Sha1,
}

/// Sits between the compressor's writer thread and the file, so hashing
/// runs on that thread while the workers compress.
struct HashingFile {
    out: BufWriter<File>,
    tally: Tally,
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.tally.size += n as u64;
        self.tally.sha1.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()
    }
}

/// A `Write` sink: bytes written are gzipped on every core into `dest`.
pub struct GzipHashWriter {
    inner: Option<ParCompress<'static, Gzip, HashingFile>>,
    dest: std::path::PathBuf,
}

impl GzipHashWriter {
    /// Create `dest` (truncating it). Callers pick a temp path and rename.
    pub fn create(dest: &Path, level: u32) -> Result<Self> {
        let file = File::create(dest).io_context(|| format!("creating {}", dest.display()))?;
        let sink = HashingFile {
            out: BufWriter::with_capacity(1 << 20, file),
            tally: Tally::default(),
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let level = gzp::Compression::new(level.min(9));
        let inner = ParCompressBuilder::<Gzip>::new()
            .num_threads(threads)
            .map_err(|e| Error::Command(format!("gzip: {e}")))?
            .compression_level(level)
            .from_writer(sink);
        Ok(GzipHashWriter {
            inner: Some(inner),
            dest: dest.to_path_buf(),
        })
    }

    /// Flush the last blocks and the gzip trailer, and report the result.
    pub fn finish(mut self) -> Result<Compressed> {
        let mut inner = self
            .inner
            .take()
            .ok_or_else(|| Error::Command("gzip stream already finished".into()))?;
        let mut sink = inner
            .finish()
            .map_err(|e| Error::Command(format!("writing {}: {e}", self.dest.display())))?;
        sink.flush()
            .io_context(|| format!("writing {}", self.dest.display()))?;
        Ok(Compressed {
            size: sink.tally.size,
            sha1: hex::encode(sink.tally.sha1.finalize()),
        })
    }
}

impl Write for GzipHashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("gzip stream already finished")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for GzipHashWriter {
    fn drop(&mut self) {
        // An unfinished stream (error or interrupt) still has worker
        // threads; finishing joins them. The caller removes the file.
        if let Some(mut w) = self.inner.take() {
            let _ = w.finish();
        }
    }
}

/// Gzip everything `reader` yields into `dest`, hashing the output. Polls
/// for Ctrl-C between reads.
pub fn gzip_stream<R: Read>(reader: R, dest: &Path, level: u32) -> Result<Compressed> {
    let mut w = GzipHashWriter::create(dest, level)?;
    for_each_chunk(
        reader,
        || format!("reading the stream for {}", dest.display()),
        |chunk| {
            w.write_all(chunk)
                .io_context(|| format!("writing {}", dest.display()))
        },
    )?;
    w.finish()
}

/// sha1 and size of a file, read in a streaming pass.
pub fn sha1_file(path: &Path) -> Result<Compressed> {
    let f = File::open(path).io_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha1::new();
    let size = for_each_chunk(
        f,
        || format!("reading {}", path.display()),
        |chunk| {
            h.update(chunk);
            Ok(())
        },
    )?;
    Ok(Compressed {
        size,
        sha1: hex::encode(h.finalize()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;

    #[test]
    fn round_trip_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.gz");
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let got = gzip_stream(&data[..], &dest, DEFAULT_LEVEL).unwrap();
        let on_disk = sha1_file(&dest).unwrap();
        assert_eq!(got, on_disk);
        let mut back = Vec::new();
        MultiGzDecoder::new(File::open(&dest).unwrap())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        // Real gzip must accept it too.
        let status = std::process::Command::new("gzip")
            .arg("-t")
            .arg(&dest)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
