//! `cargo xtask bench ...`: each benchmark times our stage against the shell
//! pipeline the eng tooling uses, in the same run: at least three rounds,
//! rotating which side goes first, reporting the median and the spread,
//! then checks that both sides produced equivalent output (decompressed and
//! compared, not just sized). Our side runs as a child process (this binary
//! with a hidden worker flag, or the built tool) so its peak RSS is its own.
//! `bench all` runs them all and writes `target/bench/summary.json`.

mod bits;
mod image;
mod import;
mod tarball;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Package tarball: ours vs `tar | pigz -6`.
    Tarball(tarball::Args),
    /// ZFS image: our send+compress+hash vs `zfs send | pigz -6 | tee >(sha1sum)`.
    Image(image::Args),
    /// Bits upload to S3: ours vs `aws s3 cp --recursive`.
    Bits(bits::Args),
    /// Image import into imgapi-server: tritonadm vs `curl -T`.
    Import(import::Args),
    /// All of the above, then one table and `target/bench/summary.json`.
    All(AllArgs),
}

#[derive(clap::Args)]
pub struct AllArgs {
    /// Size given to every benchmark, in MiB (default: each one's own).
    #[arg(long)]
    size_mib: Option<u64>,
    /// Rounds per benchmark (at least 3).
    #[arg(long, default_value_t = MIN_ROUNDS)]
    rounds: u32,
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    let report = match cmd {
        BenchCmd::Tarball(args) => tarball::run(args)?,
        BenchCmd::Image(args) => image::run(args)?,
        BenchCmd::Bits(args) => bits::run(args)?,
        BenchCmd::Import(args) => import::run(args)?,
        BenchCmd::All(args) => return all(args),
    };
    if let Some(r) = report {
        r.print();
    }
    Ok(())
}

/// Every benchmark in turn; the summary is written even if one fails, and
/// the failure is then the command's error.
fn all(args: AllArgs) -> Result<()> {
    let rounds = args.rounds;
    let size = args.size_mib;
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for name in ["tarball", "image", "bits", "import"] {
        println!("=== bench {name}");
        let report = match name {
            "tarball" => tarball::run(tarball::Args::new(size, rounds)),
            "image" => image::run(image::Args::new(size, rounds)),
            "bits" => bits::run(bits::Args::new(size, rounds)),
            _ => import::run(import::Args::new(size, rounds)),
        };
        match report {
            Ok(Some(r)) => {
                r.print();
                reports.push(r);
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("bench {name} failed: {e:#}");
                failed.push(format!("{name}: {e:#}"));
            }
        }
        println!();
    }
    let dir = xtask_launch::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("summary.json");
    let summary = json!({
        "machine": machine(),
        "benchmarks": reports.iter().map(Report::json).collect::<Vec<_>>(),
        "failed": failed,
    });
    let tmp = dir.join(".summary.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&summary)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    print_table(&reports);
    println!("summary: {}", path.display());
    if !failed.is_empty() {
        bail!(
            "{} benchmark(s) failed: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// Cores, CPU model and kernel: what the numbers were measured on.
fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, m)| m.trim().to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .map(|k| k.trim().to_string());
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": model,
        "kernel": kernel,
    })
}

/// The fewest rounds a comparison runs.
pub const MIN_ROUNDS: u32 = 3;

/// One contender's runs.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub runs: Vec<Measured>,
}

impl Series {
    fn sorted(&self) -> Vec<Duration> {
        let mut v: Vec<Duration> = self.runs.iter().map(|m| m.wall).collect();
        v.sort();
        v
    }

    /// The median wall time (the lower middle one for an even count).
    pub fn median(&self) -> f64 {
        let v = self.sorted();
        v.get(v.len().saturating_sub(1) / 2)
            .map_or(0.0, |d| secs(*d))
    }

    pub fn min(&self) -> f64 {
        self.sorted().first().map_or(0.0, |d| secs(*d))
    }

    pub fn max(&self) -> f64 {
        self.sorted().last().map_or(0.0, |d| secs(*d))
    }

    /// The highest peak RSS of any run, when it was the process's own.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        let all: Option<Vec<u64>> = self.runs.iter().map(|m| m.max_rss_kib).collect();
        all?.into_iter().max().map(|k| k as f64 / 1024.0)
    }
}

/// Run each contender once per round for `rounds` rounds (at least
/// [`MIN_ROUNDS`]), rotating which goes first so none always meets a cold
/// or a warm machine. `run(i, round)` runs contender `i`.
pub fn rounds(
    rounds: u32,
    labels: &[&str],
    mut run: impl FnMut(usize, u32) -> Result<Measured>,
) -> Result<Vec<Series>> {
    let mut series: Vec<Series> = labels
        .iter()
        .map(|l| Series {
            label: l.to_string(),
            runs: Vec::new(),
        })
        .collect();
    let n = labels.len();
    for round in 0..rounds.max(MIN_ROUNDS) {
        let mut line = format!("round {}:", round + 1);
        for k in 0..n {
            let i = (k + round as usize) % n;
            let m = run(i, round).with_context(|| format!("round {}: {}", round + 1, labels[i]))?;
            line.push_str(&format!("  {} {:.2}s", labels[i], secs(m.wall)));
            series[i].runs.push(m);
        }
        println!("{line}");
    }
    Ok(series)
}

/// A target from the issue: `value` must stay below (`strict`) or at most
/// `limit`.
#[derive(Debug, Clone)]
pub struct Target {
    pub what: String,
    pub value: f64,
    pub limit: f64,
    pub strict: bool,
}

impl Target {
    pub fn at_most(what: impl Into<String>, value: f64, limit: f64) -> Target {
        Target {
            what: what.into(),
            value,
            limit,
            strict: false,
        }
    }

    pub fn below(what: impl Into<String>, value: f64, limit: f64) -> Target {
        Target {
            what: what.into(),
            value,
            limit,
            strict: true,
        }
    }

    pub fn met(&self) -> bool {
        if self.strict {
            self.value < self.limit
        } else {
            self.value <= self.limit
        }
    }
}

/// What one benchmark found: its contenders (ours first), the targets,
/// output sizes, and how the outputs were checked to be equivalent.
#[derive(Debug, Clone)]
pub struct Report {
    pub bench: &'static str,
    /// What was measured, e.g. "1024 MiB image file".
    pub input: String,
    pub series: Vec<Series>,
    pub targets: Vec<Target>,
    pub sizes: Vec<(String, u64)>,
    pub equivalence: String,
}

impl Report {
    /// Median of ours over the median of contender `i`.
    pub fn ratio(&self, i: usize) -> f64 {
        self.series[0].median() / self.series[i].median()
    }

    pub fn print(&self) {
        println!(
            "{} ({}), {} rounds:",
            self.bench,
            self.input,
            self.series[0].runs.len()
        );
        for s in &self.series {
            println!(
                "  {:<32} median {:>7.2}s  (min {:.2} - max {:.2})  peak RSS {:>6} MiB",
                s.label,
                s.median(),
                s.min(),
                s.max(),
                rss_text(s.peak_rss_mib())
            );
        }
        for (what, bytes) in &self.sizes {
            println!("  size {what}: {bytes} bytes ({:.1} MiB)", mib(*bytes));
        }
        println!("  outputs equivalent: {}", self.equivalence);
        for t in &self.targets {
            println!(
                "  {}: {:.3} (target {} {}) {}",
                t.what,
                t.value,
                if t.strict { "<" } else { "<=" },
                t.limit,
                if t.met() { "met" } else { "NOT met" }
            );
        }
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "bench": self.bench,
            "input": self.input,
            "rounds": self.series[0].runs.len(),
            "sides": self.series.iter().map(|s| json!({
                "label": s.label,
                "median_s": s.median(),
                "min_s": s.min(),
                "max_s": s.max(),
                "runs_s": s.runs.iter().map(|m| secs(m.wall)).collect::<Vec<_>>(),
                "peak_rss_mib": s.peak_rss_mib(),
            })).collect::<Vec<_>>(),
            "sizes": self.sizes.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "equivalence": self.equivalence,
            "targets": self.targets.iter().map(|t| json!({
                "what": t.what,
                "value": t.value,
                "limit": t.limit,
                "strict": t.strict,
                "met": t.met(),
            })).collect::<Vec<_>>(),
        })
    }
}

/// "-" where only a shell's RSS could have been seen.
fn rss_text(mib: Option<f64>) -> String {
    mib.map_or_else(|| "-".to_string(), |m| format!("{m:.1}"))
}

fn print_table(reports: &[Report]) {
    println!(
        "{:<8} {:<34} {:>9} {:>17} {:>9}",
        "bench", "side", "median s", "spread s", "RSS MiB"
    );
    for r in reports {
        for s in &r.series {
            println!(
                "{:<8} {:<34} {:>9.2} {:>8.2} - {:<6.2} {:>9}",
                r.bench,
                s.label,
                s.median(),
                s.min(),
                s.max(),
                rss_text(s.peak_rss_mib())
            );
        }
        for t in &r.targets {
            println!(
                "{:<8}   {:<60} {:>8.3} {} {:<6} {}",
                r.bench,
                t.what,
                t.value,
                if t.strict { "<" } else { "<=" },
                t.limit,
                if t.met() { "met" } else { "NOT met" }
            );
        }
    }
}

/// Wall time and peak resident set of one child process.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    /// `None` for a shell pipeline: only the shell's own would be seen.
    pub max_rss_kib: Option<u64>,
}

/// Run a command to completion, measuring its wall time and peak RSS.
///
/// Peak RSS is the child's own `VmHWM`, polled while it runs: `wait4`'s
/// `ru_maxrss` is no good here, because Linux carries the parent's high
/// water mark across the child's exec.
pub fn measure(cmd: &mut Command) -> Result<Measured> {
    let start = Instant::now();
    let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
    let pid = child.id() as libc::pid_t;
    let status_file = format!("/proc/{pid}/status");
    let mut hwm_kib = 0u64;
    let mut status: libc::c_int = 0;
    loop {
        if let Some(v) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
        {
            hwm_kib = hwm_kib.max(v);
        }
        // SAFETY: pid is our own child, not yet reaped; status is valid.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if rc == pid {
            break;
        }
        if rc < 0 {
            bail!("waiting for {cmd:?}: {}", std::io::Error::last_os_error());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let wall = start.elapsed();
    // The child is reaped; dropping the handle must not wait again.
    std::mem::forget(child);
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("{cmd:?} failed (wait status {status})");
    }
    Ok(Measured {
        wall,
        max_rss_kib: Some(hwm_kib),
    })
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run a shell pipeline under `bash -o pipefail`.
pub fn measure_shell(script: &str) -> Result<Measured> {
    let m = measure(Command::new("bash").args(["-o", "pipefail", "-c", script]))?;
    Ok(Measured {
        max_rss_kib: None,
        ..m
    })
}

/// `cargo build` of `packages` in the tools' workspace (`--release` or
/// the dev profile `cargo xtask` itself uses); the directory their
/// binaries land in.
pub fn build_tools(release: bool, packages: &[&str]) -> Result<std::path::PathBuf> {
    let root = xtask_launch::tool_workspace();
    let mut cmd = Command::new(xtask_launch::cargo());
    cmd.arg("build").current_dir(root);
    if release {
        cmd.arg("--release");
    }
    for p in packages {
        cmd.args(["-p", p]);
    }
    let status = cmd.status().context("running cargo build")?;
    if !status.success() {
        bail!("cargo build of {} failed", packages.join(", "));
    }
    Ok(tools_bin_dir(release))
}

/// Where the tools' `release` or dev binaries are.
pub fn tools_bin_dir(release: bool) -> std::path::PathBuf {
    xtask_launch::target_dir().join(if release { "release" } else { "debug" })
}

/// The current executable with a worker flag, for the "ours" side.
pub fn self_command() -> Result<Command> {
    let exe = std::env::current_exe().context("locating the xtask binary")?;
    Ok(Command::new(exe))
}

pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Length and SHA-1 of everything `r` yields.
pub fn sha1_of(mut r: impl std::io::Read) -> std::io::Result<(u64, String)> {
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok((n, hex::encode(h.finalize()))),
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Length and SHA-1 of a gzip file's content, every member decompressed.
pub fn gunzip_sha1(path: &std::path::Path) -> Result<(u64, String)> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 20, f));
    sha1_of(gz).with_context(|| format!("decompressing {}", path.display()))
}

/// A path quoted for `bash -c`.
pub fn shell_quote(p: &std::path::Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Whether `tool` is on `PATH`.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// Size of a file, 0 if it is not there.
pub fn file_size(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// Scratch space for a benchmark: `dir` if given, else a temp dir under
/// `target/` (removed when the returned guard drops).
pub fn scratch_dir(
    prefix: &str,
    dir: Option<&std::path::Path>,
) -> Result<(Option<tempfile::TempDir>, std::path::PathBuf)> {
    if let Some(d) = dir {
        return Ok((None, d.to_path_buf()));
    }
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(xtask_launch::workspace_root().join("target"))
        .context("creating a temp dir under target/")?;
    let path = tmp.path().to_path_buf();
    Ok((Some(tmp), path))
}
