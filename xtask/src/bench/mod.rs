//! `cargo xtask bench ...`: each benchmark times our stage against the shell
//! pipeline the eng tooling uses, in the same run, and prints ratios and
//! our peak RSS. Our side runs as a child process (this binary with a hidden
//! worker flag) so its peak RSS is measured on its own.

mod bits;
mod image;
mod import;
mod tarball;

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCmd {
    /// Package tarball: ours vs `tar | pigz -6` and `tar -czf`.
    Tarball(tarball::Args),
    /// ZFS image: our send+compress+hash vs `zfs send | pigz -6 | tee >(sha1sum)`.
    Image(image::Args),
    /// Bits upload to S3: ours vs `aws s3 cp --recursive`.
    Bits(bits::Args),
    /// Image import into imgapi-server: tritonadm vs `curl -T`.
    Import(import::Args),
}

pub fn run(cmd: BenchCmd) -> Result<()> {
    match cmd {
        BenchCmd::Tarball(args) => tarball::run(args),
        BenchCmd::Image(args) => image::run(args),
        BenchCmd::Bits(args) => bits::run(args),
        BenchCmd::Import(args) => import::run(args),
    }
}

/// Wall time and peak resident set of one child process.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub wall: Duration,
    pub max_rss_kib: u64,
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
        max_rss_kib: hwm_kib,
    })
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Run a shell pipeline under `bash -o pipefail`.
pub fn measure_shell(script: &str) -> Result<Measured> {
    measure(Command::new("bash").args(["-o", "pipefail", "-c", script]))
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

/// Print one comparison row: name, seconds, ratio to ours. (No RSS: for a
/// shell pipeline only the shell's own would be seen.)
pub fn print_row(label: &str, m: &Measured, ours: &Measured) {
    println!(
        "{label:<28} {:>8.2}s  ratio ours/this {:>5.2}",
        secs(m.wall),
        secs(ours.wall) / secs(m.wall),
    );
}

/// "met" or "NOT met", for the targets line.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
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
        .tempdir_in(crate::workspace_root().join("target"))
        .context("creating a temp dir under target/")?;
    let path = tmp.path().to_path_buf();
    Ok((Some(tmp), path))
}
