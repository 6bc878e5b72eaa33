//! `cargo xtask bench image`: our send + compress + hash stage against
//! `zfs send -i … | pigz -6 | tee >(sha1sum) > file`, on the same
//! incremental snapshot of a file-backed pool; both outputs are then
//! decompressed and must be the same send stream.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use zone_image::zfs;

use super::{
    MIN_ROUNDS, Report, Target, file_size, gunzip_sha1, measure, measure_shell, mib, on_path,
    rounds, scratch_dir, self_command, shell_quote as q,
};

/// The target: time against the shell pipeline.
const MAX_TIME_RATIO: f64 = 0.4;

#[derive(clap::Args)]
pub struct Args {
    /// Size of the delta over the origin, in MiB.
    #[arg(long, alias = "size-mib", default_value_t = 288)]
    delta_mib: u64,
    /// Rounds per side (at least 3), alternating which goes first.
    #[arg(long, default_value_t = MIN_ROUNDS)]
    rounds: u32,
    /// Internal: send FROM..SNAP through our stage into OUT and exit.
    #[arg(long, hide = true, num_args = 3, value_names = ["FROM", "SNAP", "OUT"])]
    worker: Option<Vec<String>>,
}

impl Args {
    pub fn new(size_mib: Option<u64>, rounds: u32) -> Args {
        Args {
            delta_mib: size_mib.unwrap_or(288),
            rounds,
            worker: None,
        }
    }
}

pub fn run(args: Args) -> Result<Option<Report>> {
    if let Some(w) = args.worker {
        let c = zone_image::zfs_image::send_compressed(&w[0], &w[1], Path::new(&w[2]))?;
        println!("{} {}", c.size, c.sha1);
        return Ok(None);
    }
    for tool in ["zfs", "zpool", "pigz", "sha1sum"] {
        if !on_path(tool) {
            bail!(
                "{tool} is not installed (zfs-fuse provides zfs and zpool; apt-get install pigz)"
            );
        }
    }
    if zfs::zpool(&["list", "-H"]).is_err() {
        bail!("zpool does not work here: start zfs-fuse (see .ci/run) and run as root");
    }

    let (_tmp, dir) = scratch_dir("bench-image-", None)?;
    let pool = Pool::create(&dir, args.delta_mib)?;
    let origin = format!("{}/origin", pool.name);
    let build = format!("{}/build", pool.name);
    zfs::zfs(&["create", &origin])?;
    let origin_mp = zfs::mountpoint(&origin)?;
    fill(&origin_mp.join("root"), 16 << 20)?;
    zfs::snapshot(&format!("{origin}@final"))?;
    zfs::clone(&format!("{origin}@final"), &build)?;
    let build_mp = zfs::mountpoint(&build)?;
    let written = fill(
        &build_mp.join("root/opt/smartdc/bench"),
        args.delta_mib << 20,
    )?;
    zfs::snapshot(&format!("{build}@final"))?;
    let from = format!("{origin}@final");
    let snap = format!("{build}@final");
    println!(
        "delta: {:.0} MiB written over a {:.0} MiB origin on zfs pool {}",
        mib(written),
        16.0,
        pool.name
    );

    let ours_out = dir.join("ours.zfs.gz");
    let pigz_out = dir.join("pigz.zfs.gz");
    let sha_out = dir.join("pigz.sha1");
    // Warm whatever the daemon caches so round one is not penalised.
    measure_shell(&format!("zfs send -i {from} {snap} > /dev/null"))?;

    let series = rounds(
        args.rounds,
        &[
            "ours (send+gzip+sha1)",
            "zfs send | pigz -6 | tee",
            "zfs send | cat (floor)",
        ],
        |side, _| match side {
            0 => measure(
                self_command()?
                    .args(["bench", "image", "--worker", &from, &snap])
                    .arg(&ours_out)
                    .stdout(std::process::Stdio::null()),
            ),
            1 => measure_shell(&format!(
                "zfs send -i {from} {snap} | pigz -6 | tee >(sha1sum > {}) > {}",
                q(&sha_out),
                q(&pigz_out)
            )),
            _ => measure_shell(&format!("zfs send -i {from} {snap} | cat > /dev/null")),
        },
    )?;

    let (ours_len, ours_sha) = gunzip_sha1(&ours_out)?;
    let (pigz_len, pigz_sha) = gunzip_sha1(&pigz_out)?;
    if (ours_len, &ours_sha) != (pigz_len, &pigz_sha) {
        bail!(
            "the send streams differ: ours decompresses to {ours_len} bytes (sha1 {ours_sha}), \
             pigz's to {pigz_len} (sha1 {pigz_sha})"
        );
    }
    let (so, sp) = (file_size(&ours_out), file_size(&pigz_out));
    let mut report = Report {
        bench: "image",
        input: format!("{:.0} MiB delta over a 16 MiB origin", mib(written)),
        series,
        targets: Vec::new(),
        sizes: vec![("ours".into(), so), ("pigz".into(), sp)],
        equivalence: format!(
            "both decompress to the same {ours_len}-byte send stream (sha1 {ours_sha})"
        ),
    };
    report.targets = vec![
        Target::at_most(
            "time ours/pipeline (medians)",
            report.ratio(1),
            MAX_TIME_RATIO,
        ),
        Target::at_most("size ours/pigz", so as f64 / sp as f64, 1.01),
    ];
    Ok(Some(report))
}

/// A file-backed pool, destroyed on drop.
struct Pool {
    name: String,
}

impl Pool {
    fn create(dir: &Path, delta_mib: u64) -> Result<Pool> {
        let name = format!("zibench{}", std::process::id());
        let file = dir.join("pool.img");
        // Room for the origin, the delta and ZFS's own overhead.
        let bytes = (delta_mib + 256) << 21;
        fs::File::create(&file)
            .and_then(|f| f.set_len(bytes))
            .with_context(|| format!("creating {}", file.display()))?;
        let mnt = dir.join("mnt");
        let (mnt, file) = (mnt.to_string_lossy(), file.to_string_lossy());
        zfs::zpool(&["create", "-m", &mnt, &name, &file])?;
        Ok(Pool { name })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        for _ in 0..50 {
            if zfs::zpool(&["destroy", "-f", &self.name]).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        eprintln!("warning: could not destroy pool {}", self.name);
    }
}

/// About `target` bytes of image-like content under `dir`: real ELF files
/// from this machine packed into service binaries (half), log/JSON-like
/// text (a quarter) and incompressible data (a quarter, like tarballs and
/// compressed assets). Returns the bytes written.
fn fill(dir: &Path, target: u64) -> Result<u64> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut sources: Vec<PathBuf> = Vec::new();
    for d in ["/usr/bin", "/usr/lib/x86_64-linux-gnu", "/usr/libexec"] {
        let Ok(rd) = fs::read_dir(d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if fs::symlink_metadata(&p).is_ok_and(|m| m.is_file() && m.len() > 128 * 1024) {
                sources.push(p);
            }
        }
    }
    sources.sort();
    if sources.is_empty() {
        bail!("no binaries under /usr to build realistic content from");
    }
    let mut written = 0u64;
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // Binaries.
    let mut i = 0;
    let mut n = 0;
    while written < target / 2 {
        let path = dir.join(format!("bin-{n}"));
        let mut f = fs::File::create(&path)?;
        let mut this = 0u64;
        while this < 32 << 20 && written < target / 2 {
            let mut src = fs::File::open(&sources[i % sources.len()])?;
            i += 1;
            let k = std::io::copy(&mut src, &mut f)?;
            this += k;
            written += k;
        }
        n += 1;
    }
    // Text.
    let words = [
        "zone",
        "image",
        "manifest",
        "origin",
        "service",
        "\"uuid\":",
        "req_id",
        "GET",
        "/images",
        "200",
        "latency",
        "triton",
        "info",
        "debug",
        "{",
        "}",
        "\n",
    ];
    let mut f = fs::File::create(dir.join("logs.txt"))?;
    let mut buf = String::with_capacity(1 << 20);
    while written < target / 4 * 3 {
        buf.clear();
        while buf.len() < (1 << 20) - 64 {
            let r = next();
            buf.push_str(words[(r % words.len() as u64) as usize]);
            buf.push(' ');
            if r % 7 == 0 {
                buf.push_str(&format!("{:x} ", r >> 20));
            }
        }
        f.write_all(buf.as_bytes())?;
        written += buf.len() as u64;
    }
    // Incompressible.
    let mut f = fs::File::create(dir.join("assets.bin"))?;
    let mut block = vec![0u8; 1 << 20];
    while written < target {
        for chunk in block.chunks_mut(8) {
            chunk.copy_from_slice(&next().to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&block)?;
        written += block.len() as u64;
    }
    Ok(written)
}
