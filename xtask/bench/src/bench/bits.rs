//! `cargo xtask bench bits`: upload ~1 GiB of bits (one large image file
//! plus a few small ones) to a moto S3 server on loopback with `xtask bits
//! upload` and with `aws s3 cp --recursive`, in the same run, each upload
//! to a fresh server. After the last round both stores are read back: the
//! same files with the same md5s.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use bits_store::testing::Moto;

use super::{MIN_ROUNDS, Report, Target, build_tools, measure, mib, on_path, rounds, scratch_dir};

const STAMP: &str = "master-20261126T031500Z-gbe4c000";
const NAME: &str = "bench";
const BUCKET: &str = "bench";

/// The targets: time against `aws s3 cp`, and our peak RSS.
const MAX_TIME_RATIO: f64 = 0.9;
const MAX_RSS_MIB: f64 = 128.0;

#[derive(clap::Args)]
pub struct Args {
    /// Total size of the bits, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// `--jobs` for our upload.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Rounds per side (at least 3), alternating which goes first.
    #[arg(long, default_value_t = MIN_ROUNDS)]
    rounds: u32,
    /// Where to generate the bits (default: a temp dir under target/).
    #[arg(long)]
    dir: Option<PathBuf>,
}

impl Args {
    pub fn new(size_mib: Option<u64>, rounds: u32) -> Args {
        Args {
            size_mib: size_mib.unwrap_or(1024),
            jobs: 4,
            rounds,
            dir: None,
        }
    }
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

pub fn run(args: Args) -> Result<Option<Report>> {
    if !on_path("aws") {
        bail!("aws is not installed (python3 -m pip install awscli)");
    }
    // What `cargo xtask bits upload` runs, run directly: cargo's own
    // start-up is not part of the upload.
    let ship = build_tools(false, &["xtask-ship"])?.join("xtask-ship");
    let (_tmp, dir) = scratch_dir("bench-bits-", args.dir.as_deref())?;
    let bits = dir.join("bits");
    let comp = bits.join(NAME);
    std::fs::create_dir_all(&comp)?;
    let total = args.size_mib << 20;
    let small = [
        (
            format!("{NAME}-pkg-{STAMP}.tar.gz"),
            (12u64 << 20).min(total / 4),
        ),
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

    // Client and moto share the CPUs: other work shows in the times.
    print_load("before");
    let last = args.rounds.max(MIN_ROUNDS) - 1;
    let mut stored: [BTreeMap<String, String>; 2] = Default::default();
    // A fresh moto for every upload: moto slows as it fills, and each side
    // should meet the same server.
    let series = rounds(
        args.rounds,
        &["ours (xtask-ship bits upload)", "aws s3 cp --recursive"],
        |side, round| {
            let moto = Moto::start()?;
            moto.create_bucket(BUCKET)?;
            let ep = moto.endpoint();
            // The aws CLI reads AWS_DEFAULT_REGION.
            let mut env = moto.env();
            env.push(("AWS_DEFAULT_REGION".into(), "us-east-1".into()));
            let m = if side == 0 {
                measure(
                    Command::new(&ship)
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
                )?
            } else {
                measure(
                    Command::new("aws")
                        .args(["s3", "cp", "--recursive", "--quiet", "--endpoint-url", &ep])
                        .arg(&comp)
                        .arg("s3://bench/aws/")
                        .envs(env)
                        .stdout(Stdio::null()),
                )?
            };
            if round == last {
                stored[side] = stored_md5s(&moto, if side == 0 { "ours" } else { "aws" })?;
            }
            Ok(m)
        },
    )?;

    print_load("after");

    // Ours in the eng layout (<base>/<stamp>/<name>/<file>), aws flat.
    let [ours_all, aws] = stored;
    let marker = format!("/{STAMP}/{NAME}/");
    let ours: BTreeMap<String, String> = ours_all
        .iter()
        .filter_map(|(k, v)| Some((k.split_once(&marker)?.1.to_string(), v.clone())))
        .collect();
    let aws: BTreeMap<String, String> = aws
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("aws/")?.to_string(), v)))
        .collect();
    if ours != aws || ours.len() != 4 {
        bail!("the stores differ: ours holds {ours:?}, aws's {aws:?}");
    }
    let mut report = Report {
        bench: "bits",
        input: format!("{:.0} MiB of bits in 4 files", mib(total)),
        series,
        targets: Vec::new(),
        sizes: vec![("bits".into(), total)],
        equivalence: format!(
            "both stores hold the same {} files with the same md5s (read back from S3)",
            ours.len()
        ),
    };
    report.targets = vec![
        Target::at_most("time ours/aws (medians)", report.ratio(1), MAX_TIME_RATIO),
        Target::below(
            "ours peak RSS MiB",
            report.series[0].peak_rss_mib().unwrap_or(f64::NAN),
            MAX_RSS_MIB,
        ),
    ];
    Ok(Some(report))
}

/// The 1/5/15-minute load averages, where the OS has /proc/loadavg.
fn print_load(when: &str) {
    if let Ok(l) = std::fs::read_to_string("/proc/loadavg") {
        let avg: Vec<&str> = l.split_whitespace().take(3).collect();
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!("load average {when}: {} ({cpus} CPUs)", avg.join(" "));
    }
}

/// Every object under `prefix` in the bench bucket, read back: key to md5.
fn stored_md5s(moto: &Moto, prefix: &str) -> Result<BTreeMap<String, String>> {
    use futures::TryStreamExt as _;
    use md5::Digest as _;
    use object_store::{ObjectStore as _, ObjectStoreExt as _};
    let s3 = moto.client(BUCKET).context("an S3 client for moto")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a tokio runtime")?;
    rt.block_on(async {
        let prefix = object_store::path::Path::from(prefix);
        let objects: Vec<_> = s3.list(Some(&prefix)).try_collect().await?;
        let mut out = BTreeMap::new();
        for o in objects {
            let mut body = s3.get(&o.location).await?.into_stream();
            let mut md5 = md5::Md5::new();
            while let Some(chunk) = body.try_next().await? {
                md5.update(&chunk);
            }
            out.insert(o.location.to_string(), hex::encode(md5.finalize()));
        }
        Ok(out)
    })
}
