//! Parallel gzip with the output hashed in the same pass: the package
//! tarball and the ZFS send stream both go through here, so neither is
//! ever read back to be hashed.
//!
//! The input is cut into fixed [`BLOCK_SIZE`] blocks at fixed offsets, and
//! each block becomes one gzip member, compressed by libdeflate with no
//! state carried from any other block. So the output bytes depend only on
//! the input bytes and the level: not on the thread count, which worker
//! took which block, machine load, or how callers chunk their writes.
//! (gzp reused one zlib-rs stream per worker with `reset()` between
//! blocks; that reset leaves the window and hash chains of the previous
//! block, which changed the next block's matches, so the bytes depended on
//! scheduling. Fresh state per block is the fix at that depth.)
//!
//! A file of concatenated members is one valid gzip file (RFC 1952 §2.2):
//! `gzip -d`, `pigz -d`, imgadm and Node's zlib read it whole.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use libdeflater::{CompressionLvl, Compressor};
use sha1::{Digest, Sha1};

use crate::error::{Error, IoContext, Result};
use crate::util::for_each_chunk;

/// Level 6, as `pigz -6`: libdeflate's level 6 gives output about 1.5%
/// smaller than zlib's at well under its time (`cargo xtask bench
/// tarball` and `bench image`).
pub const DEFAULT_LEVEL: u32 = 6;

/// Input bytes per gzip member. Large enough that starting each block
/// without a dictionary costs well under 1% of size; fixed, because
/// block boundaries are part of the output.
pub const BLOCK_SIZE: usize = 1 << 20;

/// What was written: size and sha1 of the compressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    pub size: u64,
    pub sha1: String,
}

/// Workers to use by default: every core.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

type Block = (u64, Vec<u8>);

/// The writer thread: puts members back in input order, writes them and
/// hashes what it wrote.
fn write_members(results: Receiver<Result<Block, String>>, file: File) -> io::Result<Compressed> {
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut sha1 = Sha1::new();
    let mut size = 0u64;
    let mut next = 0u64;
    let mut waiting = BTreeMap::new();
    for r in results {
        let (seq, bytes) = r.map_err(io::Error::other)?;
        waiting.insert(seq, bytes);
        while let Some(bytes) = waiting.remove(&next) {
            out.write_all(&bytes)?;
            sha1.update(&bytes);
            size += bytes.len() as u64;
            next += 1;
        }
    }
    if !waiting.is_empty() {
        return Err(io::Error::other("a compressed block went missing"));
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    Ok(Compressed {
        size,
        sha1: hex::encode(sha1.finalize()),
    })
}

fn compress_blocks(
    jobs: Receiver<Block>,
    results: Sender<Result<Block, String>>,
    level: CompressionLvl,
) {
    let mut compressor = Compressor::new(level);
    let mut out = Vec::new();
    for (seq, input) in jobs {
        out.resize(compressor.gzip_compress_bound(input.len()), 0);
        let r = compressor
            .gzip_compress(&input, &mut out)
            .map(|n| (seq, out[..n].to_vec()))
            .map_err(|e| format!("gzip: {e:?}"));
        if results.send(r).is_err() {
            return;
        }
    }
}

struct Running {
    jobs: Sender<Block>,
    workers: Vec<JoinHandle<()>>,
    writer: JoinHandle<io::Result<Compressed>>,
}

/// A `Write` sink: bytes written are gzipped on every core into `dest`.
pub struct GzipHashWriter {
    running: Option<Running>,
    buf: Vec<u8>,
    seq: u64,
    dest: PathBuf,
}

impl GzipHashWriter {
    /// Create `dest` (truncating it). Callers pick a temp path and rename.
    pub fn create(dest: &Path, level: u32) -> Result<Self> {
        Self::with_threads(dest, level, default_threads())
    }

    /// As [`create`](Self::create), with `threads` compressing workers.
    pub fn with_threads(dest: &Path, level: u32, threads: usize) -> Result<Self> {
        let lvl = CompressionLvl::new(level.clamp(1, 12) as i32)
            .map_err(|e| Error::Command(format!("gzip level {level}: {e:?}")))?;
        let file = File::create(dest).io_context(|| format!("creating {}", dest.display()))?;
        let threads = threads.max(1);
        // Bounded: at most a few blocks per worker are in flight, so
        // memory stays flat in the size of the input.
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<Block>(threads * 2);
        let (res_tx, res_rx) = crossbeam_channel::bounded(threads * 4);
        let spawn_err = |e: io::Error| Error::Io {
            context: "starting gzip threads".into(),
            source: e,
        };
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let (jobs, results) = (jobs_rx.clone(), res_tx.clone());
            let h = std::thread::Builder::new()
                .name(format!("gzip-{i}"))
                .spawn(move || compress_blocks(jobs, results, lvl))
                .map_err(spawn_err)?;
            workers.push(h);
        }
        drop(res_tx);
        let writer = std::thread::Builder::new()
            .name("gzip-writer".into())
            .spawn(move || write_members(res_rx, file))
            .map_err(spawn_err)?;
        Ok(GzipHashWriter {
            running: Some(Running {
                jobs: jobs_tx,
                workers,
                writer,
            }),
            buf: Vec::with_capacity(BLOCK_SIZE),
            seq: 0,
            dest: dest.to_path_buf(),
        })
    }

    fn send_block(&mut self) -> io::Result<()> {
        let running = self
            .running
            .as_ref()
            .ok_or_else(|| io::Error::other("gzip stream already finished"))?;
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK_SIZE));
        if running.jobs.send((self.seq, block)).is_err() {
            // Every worker is gone because the writer failed: its error
            // (a full disk, say) is the cause the caller must see.
            let running = self
                .running
                .take()
                .ok_or_else(|| io::Error::other("gzip stream already finished"))?;
            return Err(match join(running) {
                Err(e) => e,
                Ok(_) => io::Error::other("the gzip workers stopped early"),
            });
        }
        self.seq += 1;
        Ok(())
    }

    /// Compress the last block, wait for everything to be written, and
    /// report size and sha1 of the output.
    pub fn finish(mut self) -> Result<Compressed> {
        let dest = self.dest.clone();
        // An empty input still needs one member: a zero-byte file is not gzip.
        if !self.buf.is_empty() || self.seq == 0 {
            self.send_block()
                .io_context(|| format!("writing {}", dest.display()))?;
        }
        let running = self
            .running
            .take()
            .ok_or_else(|| Error::Command("gzip stream already finished".into()))?;
        join(running).io_context(|| format!("writing {}", dest.display()))
    }
}

/// Close the job queue and wait for every thread; the writer's result.
fn join(running: Running) -> io::Result<Compressed> {
    drop(running.jobs);
    for w in running.workers {
        w.join()
            .map_err(|_| io::Error::other("a gzip worker panicked"))?;
    }
    running
        .writer
        .join()
        .map_err(|_| io::Error::other("the gzip writer panicked"))?
}

impl Write for GzipHashWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = BLOCK_SIZE - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK_SIZE {
            self.send_block()?;
        }
        Ok(n)
    }

    /// Does not end a block: block boundaries depend only on input
    /// offsets, never on when a caller flushes.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for GzipHashWriter {
    fn drop(&mut self) {
        // An unfinished stream (error or interrupt): stop the threads. The
        // caller removes the file, so what they wrote does not matter.
        if let Some(running) = self.running.take() {
            let _ = join(running);
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
    use std::process::Command;

    /// Several blocks of mixed compressibility: text-like runs, a
    /// repeating pattern, and xorshift noise that does not compress.
    fn mixed_input(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let words: [&[u8]; 6] = [b"zone ", b"image ", b"triton ", b"smf ", b"\n", b"0123 "];
        while out.len() < len {
            let region = (out.len() / 300_000) % 3;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match region {
                0 => out.extend_from_slice(words[(x % 6) as usize]),
                1 => out.extend_from_slice(&((out.len() / 7) as u32 % 251).to_le_bytes()),
                _ => out.extend_from_slice(&x.to_le_bytes()),
            }
        }
        out.truncate(len);
        out
    }

    fn compress(data: &[u8], threads: usize, chunk: usize, dest: &Path) -> (Compressed, Vec<u8>) {
        let mut w = GzipHashWriter::with_threads(dest, DEFAULT_LEVEL, threads).unwrap();
        for c in data.chunks(chunk) {
            w.write_all(c).unwrap();
            w.flush().unwrap();
        }
        let got = w.finish().unwrap();
        (got, std::fs::read(dest).unwrap())
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        MultiGzDecoder::new(bytes).read_to_end(&mut back).unwrap();
        back
    }

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
        assert_eq!(gunzip(&std::fs::read(&dest).unwrap()), data);
        // Real gzip must accept it too.
        let status = Command::new("gzip").arg("-t").arg(&dest).status().unwrap();
        assert!(status.success());
    }

    #[test]
    fn empty_input_is_valid_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("empty.gz");
        let got = gzip_stream(io::empty(), &dest, DEFAULT_LEVEL).unwrap();
        assert!(got.size > 0);
        let status = Command::new("gzip").arg("-t").arg(&dest).status().unwrap();
        assert!(status.success());
        assert!(gunzip(&std::fs::read(&dest).unwrap()).is_empty());
    }

    /// The bytes depend on nothing but the input and the level: 1, 2, 4
    /// and 8 workers, odd write sizes, flushes after every write, idle and
    /// with every core busy. Under load the scheduling of blocks to
    /// workers varies from run to run, which is what broke gzp's output.
    #[test]
    fn output_is_deterministic_under_load() {
        let dir = tempfile::tempdir().unwrap();
        let data = mixed_input(9 * BLOCK_SIZE + 12_345);
        let (want, want_bytes) = compress(&data, 1, data.len(), &dir.path().join("ref.gz"));
        assert_eq!(gunzip(&want_bytes), data);
        let mut runs = 0;
        for loaded in [false, true] {
            let _hogs = loaded.then(|| fault_proxy::CpuHogs::start().unwrap());
            for threads in [1, 2, 4, 8] {
                for chunk in [4096, 65_537, 3 * BLOCK_SIZE / 2] {
                    let dest = dir.path().join(format!("{loaded}-{threads}-{chunk}.gz"));
                    let (got, bytes) = compress(&data, threads, chunk, &dest);
                    assert_eq!(got, want, "loaded={loaded} threads={threads} chunk={chunk}");
                    assert!(bytes == want_bytes);
                    runs += 1;
                }
            }
        }
        assert_eq!(runs, 24);
    }

    /// A worker's compressor is reused across blocks: each block's member
    /// must come out as if compressed by a fresh one, in any order.
    #[test]
    fn reused_compressor_matches_fresh() {
        let data = mixed_input(6 * BLOCK_SIZE);
        let blocks: Vec<&[u8]> = data.chunks(BLOCK_SIZE).collect();
        let lvl = CompressionLvl::new(DEFAULT_LEVEL as i32).unwrap();
        let one = |c: &mut Compressor, b: &[u8]| {
            let mut out = vec![0; c.gzip_compress_bound(b.len())];
            let n = c.gzip_compress(b, &mut out).unwrap();
            out.truncate(n);
            out
        };
        let fresh: Vec<Vec<u8>> = blocks
            .iter()
            .map(|b| one(&mut Compressor::new(lvl), b))
            .collect();
        let mut reused = Compressor::new(lvl);
        for i in [3, 0, 5, 1, 1, 4, 2, 0] {
            assert!(one(&mut reused, blocks[i]) == fresh[i], "block {i}");
        }
    }

    /// A failed write names the OS error (once), from whichever call
    /// notices it first: a full disk must not read as "writing failed".
    #[test]
    fn a_full_disk_names_its_cause() {
        let data = mixed_input(40 * BLOCK_SIZE);
        let err = gzip_stream(&data[..], Path::new("/dev/full"), DEFAULT_LEVEL).unwrap_err();
        let line = error_line::one_line(&err);
        assert!(line.starts_with("writing /dev/full: "), "{line}");
        assert_eq!(line.matches("No space left on device").count(), 1, "{line}");
    }

    /// A multi-member file must read whole in Node's zlib, which is what
    /// Triton's Node tools decompress with.
    #[test]
    fn node_zlib_reads_every_member() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("x.gz");
        let data = mixed_input(3 * BLOCK_SIZE + 77);
        gzip_stream(&data[..], &dest, DEFAULT_LEVEL).unwrap();
        let script = "const z=require('zlib'),c=require('crypto'),fs=require('fs');\
            const b=z.gunzipSync(fs.readFileSync(process.argv[1]));\
            console.log(b.length+' '+c.createHash('sha1').update(b).digest('hex'))";
        let out = Command::new("node")
            .args(["-e", script])
            .arg(&dest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = format!("{} {}\n", data.len(), hex::encode(Sha1::digest(&data)));
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
}
