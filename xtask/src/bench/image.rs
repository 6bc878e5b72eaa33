//! `cargo xtask bench image`: our send + compress + hash stage against
//! `zfs send -i … | pigz -6 | tee >(sha1sum) > file`, on the same
//! incremental snapshot of a file-backed pool.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use zone_image::zfs;

use super::{
    Measured, file_size, measure, measure_shell, mib, on_path, print_row, scratch_dir, secs,
    self_command, shell_quote as q, verdict,
};

#[derive(clap::Args)]
pub struct Args {
    /// Size of the delta over the origin, in MiB.
    #[arg(long, default_value_t = 288)]
    delta_mib: u64,
    /// Rounds per contender; the best time of each is compared.
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Internal: send FROM..SNAP through our stage into OUT and exit.
    #[arg(long, hide = true, num_args = 3, value_names = ["FROM", "SNAP", "OUT"])]
    worker: Option<Vec<String>>,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(w) = args.worker {
        let c = zone_image::zfs_image::send_compressed(&w[0], &w[1], Path::new(&w[2]))?;
        println!("{} {}", c.size, c.sha1);
        return Ok(());
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

    let mut ours: Option<Measured> = None;
    let mut shell: Option<Measured> = None;
    let mut send_only: Option<Measured> = None;
    for _ in 0..args.rounds.max(1) {
        let z = measure_shell(&format!("zfs send -i {from} {snap} | cat > /dev/null"))?;
        send_only = Some(best(send_only, z));
        let o = measure(
            self_command()?
                .args(["bench", "image", "--worker", &from, &snap])
                .arg(&ours_out)
                .stdout(std::process::Stdio::null()),
        )?;
        let s = measure_shell(&format!(
            "zfs send -i {from} {snap} | pigz -6 | tee >(sha1sum > {}) > {}",
            q(&sha_out),
            q(&pigz_out)
        ))?;
        ours = Some(best(ours, o));
        shell = Some(best(shell, s));
    }
    let (ours, shell) = (ours.context("no rounds")?, shell.context("no rounds")?);

    let (so, sp) = (file_size(&ours_out), file_size(&pigz_out));
    println!(
        "{:<28} {:>8.2}s  peak RSS {:>7.1} MiB",
        "ours (send+gzip+sha1)",
        secs(ours.wall),
        ours.max_rss_kib as f64 / 1024.0
    );
    print_row("zfs send | pigz -6 | tee", &shell, &ours);
    if let Some(z) = &send_only {
        print_row("zfs send | cat (floor)", z, &ours);
    }
    println!(
        "output: ours {:.1} MiB, pigz {:.1} MiB; ours/pigz size {:.4}",
        mib(so),
        mib(sp),
        so as f64 / sp as f64
    );
    let ratio = secs(ours.wall) / secs(shell.wall);
    let rss = ours.max_rss_kib as f64 / 1024.0;
    println!(
        "targets: time ratio vs pipeline {ratio:.2} (<= 1.05: {}), peak RSS {rss:.1} MiB (< 128: {})",
        verdict(ratio <= 1.05),
        verdict(rss < 128.0)
    );
    Ok(())
}

fn best(a: Option<Measured>, b: Measured) -> Measured {
    match a {
        Some(a) if a.wall <= b.wall => Measured {
            wall: a.wall,
            max_rss_kib: a.max_rss_kib.max(b.max_rss_kib),
        },
        Some(a) => Measured {
            wall: b.wall,
            max_rss_kib: a.max_rss_kib.max(b.max_rss_kib),
        },
        None => b,
    }
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
