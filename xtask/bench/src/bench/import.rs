//! `cargo xtask bench import`: `tritonadm image import` of a 1 GiB image
//! into a local imgapi-server, against `curl -T` of the same file to the
//! same kind of endpoint (AddImageFile of a second unactivated image, with
//! the same sha1/size checks server-side), in the same run. After each
//! round every file the server stored, from either side, must hash to the
//! source's sha1; then it is deleted.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use sha1::Digest as _;

use super::{
    MIN_ROUNDS, Report, Target, build_tools, measure, measure_shell, mib, on_path, rounds, sha1_of,
    shell_quote, tools_bin_dir,
};

#[derive(clap::Args)]
pub struct Args {
    /// Size of the generated image file, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Where to put the image and the server's data (default: a temp dir
    /// under target/).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Use the binaries already in target/release instead of building them.
    #[arg(long)]
    no_build: bool,
    /// Rounds per side (at least 3), alternating which goes first.
    #[arg(long, default_value_t = MIN_ROUNDS)]
    rounds: u32,
}

impl Args {
    pub fn new(size_mib: Option<u64>, rounds: u32) -> Args {
        Args {
            size_mib: size_mib.unwrap_or(1024),
            dir: None,
            no_build: false,
            rounds,
        }
    }
}

/// Targets from the issue: ratio to curl, and tritonadm's peak RSS.
const MAX_RATIO: f64 = 1.05;
const MAX_RSS_MIB: f64 = 64.0;

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: Args) -> Result<Option<Report>> {
    if !on_path("curl") {
        bail!("curl is not installed (apt-get install curl)");
    }
    let bin = if args.no_build {
        tools_bin_dir(true)
    } else {
        build_tools(true, &["tritonadm", "imgapi-server"])?
    };
    let target = bin
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| bin.clone());
    let tritonadm = bin.join("tritonadm");
    let server_bin = bin.join("imgapi-server");
    for b in [&tritonadm, &server_bin] {
        if !b.exists() {
            bail!("{}: not built (drop --no-build)", b.display());
        }
    }

    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            std::fs::create_dir_all(&target)
                .with_context(|| format!("creating {}", target.display()))?;
            tmp = tempfile::Builder::new()
                .prefix("bench-import-")
                .tempdir_in(&target)
                .context("creating a temp dir under target/")?;
            tmp.path().to_path_buf()
        }
    };
    let file = dir.join("image.zfs");
    let (size, sha1) = generate(&file, args.size_mib << 20)?;
    println!("image file: {:.0} MiB, sha1 {sha1}", mib(size));

    // Bound to a name: the server lives (and is killed on drop) until the end.
    let data = dir.join("imgapi");
    let (_server, url) = start_server(&server_bin, &data)?;

    // Warm the page cache so neither side pays for the first read.
    measure_shell(&format!("cat {} > /dev/null", shell_quote(&file)))?;

    let mut stored = 0;
    let series = rounds(
        args.rounds,
        &["tritonadm image import", "curl -T (AddImageFile)"],
        |side, _| {
            let uuid = uuid::Uuid::new_v4();
            let manifest = write_manifest(&dir, uuid, &sha1, size)?;
            let m = if side == 0 {
                measure(
                    Command::new(&tritonadm)
                        .args(["--imgapi-url", &url, "image", "import", "-m"])
                        .arg(&manifest)
                        .arg("-f")
                        .arg(&file)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null()),
                )
                .context("tritonadm image import")?
            } else {
                // Not timed: curl's side gets its manifest in first.
                measure_shell(&format!(
                    "curl -sSf -X POST -H 'content-type: application/json' --data-binary @{} '{url}/images/{uuid}?action=import' -o /dev/null",
                    shell_quote(&manifest)
                ))
                .context("importing the curl side's manifest")?;
                measure_shell(&format!(
                    "curl -sSf -T {} '{url}/images/{uuid}/file?compression=none&sha1={sha1}&size={size}' -o /dev/null",
                    shell_quote(&file)
                ))
                .context("curl -T")?
            };
            check_stored(&data, uuid, size, &sha1)?;
            stored += 1;
            // Not timed. Each round starts with only the source file in
            // the page cache: with the stored gigabytes of earlier rounds
            // kept, rounds after the first two or three ran up to 1.3 times
            // slower, on both sides.
            measure_shell(&format!(
                "curl -sSf -X DELETE '{url}/images/{uuid}' -o /dev/null"
            ))
            .context("deleting the round's image")?;
            Ok(m)
        },
    )?;

    let mut report = Report {
        bench: "import",
        input: format!("{:.0} MiB image file", mib(size)),
        series,
        targets: Vec::new(),
        sizes: vec![("image".into(), size)],
        equivalence: format!(
            "all {stored} files the server stored (both sides) hash to the source's sha1"
        ),
    };
    report.targets = vec![
        Target::at_most("time tritonadm/curl (medians)", report.ratio(1), MAX_RATIO),
        Target::below(
            "tritonadm peak RSS MiB",
            report.series[0].peak_rss_mib().unwrap_or(f64::NAN),
            MAX_RSS_MIB,
        ),
    ];
    Ok(Some(report))
}

/// Incompressible pseudo-random bytes (xorshift), written and hashed in one
/// pass; returns (size, sha1).
fn generate(path: &Path, size: u64) -> Result<(u64, String)> {
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    let mut hasher = sha1::Sha1::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(buf.len() as u64) as usize;
        hasher.update(&buf[..n]);
        w.write_all(&buf[..n])
            .with_context(|| format!("writing {}", path.display()))?;
        left -= n as u64;
    }
    // On disk before any round: otherwise its writeback, ~30 s later,
    // slows whichever round (and side) happens to run then.
    w.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// What the server stored for `uuid`, read back from its directory, must
/// be the source file.
fn check_stored(data: &Path, uuid: uuid::Uuid, size: u64, sha1: &str) -> Result<()> {
    let stored = data.join("files").join(uuid.to_string()).join("file");
    let f =
        std::fs::File::open(&stored).with_context(|| format!("opening {}", stored.display()))?;
    let (n, got) = sha1_of(f).with_context(|| format!("reading {}", stored.display()))?;
    if (n, got.as_str()) != (size, sha1) {
        bail!(
            "{}: {n} bytes with sha1 {got}, the source has {size} bytes with sha1 {sha1}",
            stored.display()
        );
    }
    Ok(())
}

fn write_manifest(dir: &Path, uuid: uuid::Uuid, sha1: &str, size: u64) -> Result<PathBuf> {
    let m = serde_json::json!({
        "v": 2,
        "uuid": uuid,
        "owner": "930896af-bf8c-48d4-885c-6573a94b1853",
        "name": "bench-import",
        "version": "1.0.0",
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": sha1, "size": size, "compression": "none"}]
    });
    let path = dir.join(format!("{uuid}.imgmanifest"));
    std::fs::write(&path, serde_json::to_vec_pretty(&m)?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Start imgapi-server on a free port; returns it and its URL.
fn start_server(bin: &Path, data: &Path) -> Result<(ServerProcess, String)> {
    let mut child = Command::new(bin)
        .arg("--dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("imgapi-server stdout")?;
    let proc = ServerProcess(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("reading imgapi-server's address")?;
    let addr = line
        .trim()
        .strip_prefix("imgapi-server listening on ")
        .with_context(|| format!("unexpected first line from imgapi-server: {line:?}"))?;
    Ok((proc, format!("http://{addr}")))
}
