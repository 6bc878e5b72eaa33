//! `cargo xtask bench import`: `tritonadm image import` of a 1 GiB image
//! into a local imgapi-server, against `curl -T` of the same file to the
//! same kind of endpoint (AddImageFile of a second unactivated image, with
//! the same sha1/size checks server-side), in the same run.
//!
//! tritonadm's time includes its local size+sha1 check of the file, which
//! it must do before sending anything; curl sends blind.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};
use sha1::Digest as _;

use super::{measure, measure_shell, mib, on_path, print_row, secs, shell_quote};

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
    /// Rounds per side; the best of each is reported.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
}

/// Targets from the issue: ratio to curl, and tritonadm's peak RSS.
const MAX_RATIO: f64 = 1.25;
const MAX_RSS_MIB: f64 = 64.0;

struct ServerProcess(Child);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Our own child, by its handle.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn run(args: Args) -> Result<()> {
    let root = crate::workspace_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    if !on_path("curl") {
        bail!("curl is not installed (apt-get install curl)");
    }
    if !args.no_build {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--release",
                "-p",
                "tritonadm",
                "-p",
                "imgapi-server",
            ])
            .current_dir(&root)
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("cargo build --release -p tritonadm -p imgapi-server failed");
        }
    }
    let tritonadm = target.join("release/tritonadm");
    let server_bin = target.join("release/imgapi-server");
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
    let (_server, url) = start_server(&server_bin, &dir.join("imgapi"))?;

    // Warm the page cache so neither side pays for the first read.
    measure_shell(&format!("cat {} > /dev/null", shell_quote(&file)))?;

    // Best of `rounds`, alternating sides: the machine is shared, and the
    // minimum is the least disturbed run of each.
    let mut best: Option<(super::Measured, super::Measured)> = None;
    let mut best_check: Option<std::time::Duration> = None;
    for _ in 0..args.rounds.max(1) {
        let ours_manifest = write_manifest(&dir, uuid::Uuid::new_v4(), &sha1, size)?;
        let curl_uuid = uuid::Uuid::new_v4();
        let curl_manifest = write_manifest(&dir, curl_uuid, &sha1, size)?;
        let ours = measure(
            Command::new(&tritonadm)
                .args(["--imgapi-url", &url, "image", "import", "-m"])
                .arg(&ours_manifest)
                .arg("-f")
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .context("tritonadm image import")?;
        measure_shell(&format!(
            "curl -sSf -X POST -H 'content-type: application/json' --data-binary @{} '{url}/images/{curl_uuid}?action=import' -o /dev/null",
            shell_quote(&curl_manifest)
        ))
        .context("importing the curl side's manifest")?;
        let curl = measure_shell(&format!(
            "curl -sSf -T {} '{url}/images/{curl_uuid}/file?compression=none&sha1={sha1}&size={size}' -o /dev/null",
            shell_quote(&file)
        ))
        .context("curl -T")?;
        // The part of tritonadm's time curl has no counterpart for: the
        // local size+sha1 check before anything is sent (against a closed
        // port, so it stops right after the check).
        let check = measure_shell(&format!(
            "{} --imgapi-url http://127.0.0.1:9 image import -m {} -f {} >/dev/null 2>&1; true",
            shell_quote(&tritonadm),
            shell_quote(&ours_manifest),
            shell_quote(&file)
        ))?;
        println!(
            "round: tritonadm {:.2}s, curl {:.2}s, tritonadm's check alone {:.2}s",
            secs(ours.wall),
            secs(curl.wall),
            secs(check.wall)
        );
        best_check = Some(best_check.map_or(check.wall, |c| c.min(check.wall)));
        best = Some(match best {
            None => (ours, curl),
            Some((o, c)) => (
                if ours.wall < o.wall { ours } else { o },
                if curl.wall < c.wall { curl } else { c },
            ),
        });
    }
    let (Some((ours, curl)), Some(check)) = (best, best_check) else {
        bail!("no rounds ran");
    };

    println!();
    print_row("tritonadm image import", &ours, &ours);
    print_row("curl -T (AddImageFile)", &curl, &ours);
    let ratio = secs(ours.wall) / secs(curl.wall);
    let rss = ours.max_rss_kib as f64 / 1024.0;
    println!();
    println!(
        "ratio tritonadm/curl: {ratio:.2} (target <= {MAX_RATIO}) {}",
        verdict(ratio <= MAX_RATIO)
    );
    println!(
        "tritonadm peak RSS: {rss:.1} MiB (target < {MAX_RSS_MIB} MiB) {}",
        verdict(rss < MAX_RSS_MIB)
    );
    println!(
        "tritonadm's local pre-upload check (best): {:.2}s; the rest (import, upload, activate): {:.2}s = {:.2} x curl",
        secs(check),
        (secs(ours.wall) - secs(check)).max(0.0),
        (secs(ours.wall) - secs(check)).max(0.0) / secs(curl.wall)
    );
    println!(
        "throughput: tritonadm {:.0} MiB/s, curl {:.0} MiB/s",
        mib(size) / secs(ours.wall),
        mib(size) / secs(curl.wall)
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
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
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok((size, hex::encode(hasher.finalize())))
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
