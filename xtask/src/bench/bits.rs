//! `cargo xtask bench bits`: upload ~1 GiB of bits (one large image file
//! plus a few small ones) to a moto S3 server on loopback with `xtask bits
//! upload` and with `aws s3 cp --recursive`, in the same run, to separate
//! prefixes of one bucket.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use bits_store::testing::Moto;

use super::{measure, mib, on_path, print_row, scratch_dir, secs, self_command};

const STAMP: &str = "master-20261126T031500Z-gbe4c000";
const NAME: &str = "bench";

#[derive(clap::Args)]
pub struct Args {
    /// Total size of the bits, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// `--jobs` for our upload.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Rounds, alternating which side goes first; each upload gets a fresh
    /// server. The median of each side is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Where to generate the bits (default: a temp dir under target/).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// Write `size` bytes that neither compress nor repeat block-wise.
fn write_file(path: &Path, size: u64, seed: u64) -> Result<()> {
    let mut block = vec![0u8; 1 << 20];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut left = size;
    let mut i = 0u64;
    while left > 0 {
        block[..8].copy_from_slice(&i.to_le_bytes());
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        left -= n as u64;
        i += 1;
    }
    f.flush()?;
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    if !on_path("aws") {
        bail!("aws is not installed (python3 -m pip install awscli)");
    }
    let (_tmp, dir) = scratch_dir("bench-bits-", args.dir.as_deref())?;
    let bits = dir.join("bits");
    let comp = bits.join(NAME);
    std::fs::create_dir_all(&comp)?;
    let total = args.size_mib << 20;
    let small = [
        (format!("{NAME}-pkg-{STAMP}.tar.gz"), 12u64 << 20),
        (format!("{NAME}-zfs-{STAMP}.imgmanifest"), 2048),
    ];
    let big = total.saturating_sub(small.iter().map(|s| s.1).sum());
    write_file(&comp.join(format!("{NAME}-zfs-{STAMP}.zfs.gz")), big, 1)?;
    for (i, (f, n)) in small.iter().enumerate() {
        write_file(&comp.join(f), *n, i as u64 + 2)?;
    }
    std::fs::write(comp.join("latest-build-stamp"), format!("{STAMP}\n"))?;
    println!(
        "bits: {:.0} MiB in 4 files under {}",
        mib(total),
        comp.display()
    );

    // A fresh moto for every upload: moto slows as it fills, and each side
    // should meet the same server.
    let upload = |ours_side: bool| -> Result<super::Measured> {
        let moto = Moto::start()?;
        moto.create_bucket("bench")?;
        let ep = moto.endpoint();
        // The aws CLI reads AWS_DEFAULT_REGION.
        let mut env = moto.env();
        env.push(("AWS_DEFAULT_REGION".into(), "us-east-1".into()));
        if ours_side {
            measure(
                self_command()?
                    .args([
                        "bits",
                        "upload",
                        NAME,
                        "--branch",
                        "master",
                        "--dest",
                        "s3://bench/ours",
                    ])
                    .arg("--bits-dir")
                    .arg(&bits)
                    .args(["--jobs", &args.jobs.to_string()])
                    .envs(env)
                    .env_remove("BITS_STORE_PAUSE_AT")
                    .stdout(Stdio::null()),
            )
        } else {
            measure(
                Command::new("aws")
                    .args(["s3", "cp", "--recursive", "--quiet", "--endpoint-url", &ep])
                    .arg(&comp)
                    .arg("s3://bench/aws/")
                    .envs(env)
                    .stdout(Stdio::null()),
            )
        }
    };
    let (mut ours_runs, mut aws_runs) = (Vec::new(), Vec::new());
    for round in 0..args.rounds.max(1) {
        for ours_side in [round % 2 == 1, round % 2 == 0] {
            let m = upload(ours_side)?;
            println!(
                "round {}: {:<24} {:>7.2}s",
                round + 1,
                if ours_side {
                    "ours"
                } else {
                    "aws s3 cp --recursive"
                },
                secs(m.wall)
            );
            if ours_side {
                ours_runs.push(m)
            } else {
                aws_runs.push(m)
            }
        }
    }
    let median = |v: &mut Vec<super::Measured>| {
        v.sort_by_key(|m| m.wall);
        v[v.len() / 2]
    };
    let aws = median(&mut aws_runs);
    let mut ours = median(&mut ours_runs);
    ours.max_rss_kib = ours_runs.iter().map(|m| m.max_rss_kib).max().unwrap_or(0);
    println!(
        "{:<28} {:>8.2}s  {:>6.0} MiB/s          peak RSS {:>7.1} MiB",
        "ours (xtask bits upload)",
        secs(ours.wall),
        mib(total) / secs(ours.wall),
        ours.max_rss_kib as f64 / 1024.0
    );
    print_row("aws s3 cp --recursive", &aws, &ours);
    let ratio = secs(ours.wall) / secs(aws.wall);
    let rss = ours.max_rss_kib as f64 / 1024.0;
    println!(
        "ratio ours/aws {ratio:.2} (target <= 1.0, {}); our peak RSS {rss:.1} MiB (target < 128, {})",
        if ratio <= 1.0 { "met" } else { "MISSED" },
        if rss < 128.0 { "met" } else { "MISSED" }
    );
    Ok(())
}
