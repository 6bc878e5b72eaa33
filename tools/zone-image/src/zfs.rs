//! A thin wrapper over the `zfs` and `zpool` commands.
//!
//! Every call runs the command line tools, so the same code works on
//! illumos, OpenZFS and zfs-fuse. zfs-fuse answers "dataset is busy" for a
//! moment after writes; the calls that hit that retry for a few seconds.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::cancel;
use crate::error::Error;

/// How long "dataset is busy" is retried before it counts as a failure.
const BUSY_RETRY: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ZfsError {
    #[error(
        "the 'zfs' command is not available ({0}); install zfs-fuse or OpenZFS, or run on illumos"
    )]
    Missing(String),
    #[error("running {cmd}")]
    Spawn {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("{cmd}: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("{cmd}: still busy after {}s: {stderr}", BUSY_RETRY.as_secs())]
    Busy { cmd: String, stderr: String },
    #[error("{cmd}: {what}")]
    Stream {
        cmd: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("interrupted")]
    Interrupted,
}

impl From<ZfsError> for Error {
    fn from(e: ZfsError) -> Self {
        match e {
            ZfsError::Interrupted => Error::Interrupted,
            // Kept whole: its cause stays a source, printed once.
            other => Error::Zfs(other),
        }
    }
}

pub type ZfsResult<T> = std::result::Result<T, ZfsError>;

fn cmd_line(prog: &str, args: &[&str]) -> String {
    let mut s = prog.to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn one_line(bytes: &[u8]) -> String {
    crate::util::one_line(&String::from_utf8_lossy(bytes))
}

fn is_busy(stderr: &str) -> bool {
    stderr.contains("busy")
}

fn is_missing(stderr: &str) -> bool {
    stderr.contains("does not exist") || stderr.contains("no such pool")
}

fn run_prog(prog: &str, args: &[&str]) -> ZfsResult<String> {
    let cmd = cmd_line(prog, args);
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                ZfsError::Missing(format!("{prog}: {source}"))
            } else {
                ZfsError::Spawn {
                    cmd: cmd.clone(),
                    source,
                }
            }
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(ZfsError::Failed {
            cmd,
            stderr: one_line(&out.stderr),
        })
    }
}

/// Run `zfs <args>` and return its stdout.
pub fn zfs(args: &[&str]) -> ZfsResult<String> {
    run_prog("zfs", args)
}

/// Run `zpool <args>` and return its stdout.
pub fn zpool(args: &[&str]) -> ZfsResult<String> {
    run_prog("zpool", args)
}

/// Run `zfs <args>`, retrying while zfs says the dataset is busy.
pub fn zfs_retry_busy(args: &[&str]) -> ZfsResult<String> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match zfs(args) {
            Err(ZfsError::Failed { cmd, stderr }) if is_busy(&stderr) => {
                if start.elapsed() >= BUSY_RETRY {
                    return Err(ZfsError::Busy { cmd, stderr });
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// Whether a working `zfs` command is on this host.
pub fn available() -> bool {
    zfs(&["list", "-H", "-o", "name"]).is_ok()
}

/// Whether a dataset or snapshot exists. Errors other than "does not
/// exist" are surfaced, not taken for absence.
pub fn exists(name: &str) -> ZfsResult<bool> {
    match zfs(&["list", "-H", "-o", "name", "-t", "all", name]) {
        Ok(_) => Ok(true),
        Err(ZfsError::Failed { stderr, .. }) if is_missing(&stderr) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Names of the imported pools.
pub fn pools() -> ZfsResult<Vec<String>> {
    Ok(zpool(&["list", "-H", "-o", "name"])?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Filesystems directly below `parent`, not including it.
pub fn children(parent: &str) -> ZfsResult<Vec<String>> {
    Ok(zfs(&[
        "list",
        "-H",
        "-o",
        "name",
        "-t",
        "filesystem",
        "-r",
        "-d",
        "1",
        parent,
    ])?
    .lines()
    .map(str::trim)
    .filter(|l| !l.is_empty() && *l != parent)
    .map(String::from)
    .collect())
}

/// One property value (`-p`: parsable numbers).
pub fn get(name: &str, prop: &str) -> ZfsResult<String> {
    Ok(zfs(&["get", "-H", "-p", "-o", "value", prop, name])?
        .trim_end_matches('\n')
        .to_string())
}

/// A user property; `None` when unset ("-").
pub fn get_user(name: &str, prop: &str) -> ZfsResult<Option<String>> {
    let v = zfs(&["get", "-H", "-o", "source,value", prop, name])?;
    let v = v.trim_end_matches('\n');
    match v.split_once('\t') {
        Some((source, value)) if source.trim() != "-" => Ok(Some(value.to_string())),
        _ => Ok(None),
    }
}

pub fn set(name: &str, prop: &str, value: &str) -> ZfsResult<()> {
    zfs_retry_busy(&["set", &format!("{prop}={value}"), name]).map(drop)
}

pub fn snapshot(snap: &str) -> ZfsResult<()> {
    zfs_retry_busy(&["snapshot", snap]).map(drop)
}

pub fn clone(snap: &str, fs: &str) -> ZfsResult<()> {
    zfs(&["clone", snap, fs]).map(drop)
}

/// `zfs destroy -r`: the dataset and its snapshots, never clones of it
/// (that would be `-R`, which could take an image built on it).
pub fn destroy_recursive(name: &str) -> ZfsResult<()> {
    match zfs_retry_busy(&["destroy", "-r", name]) {
        Err(ZfsError::Failed { stderr, .. }) if is_missing(&stderr) => Ok(()),
        other => other.map(drop),
    }
}

pub fn mount(name: &str) -> ZfsResult<()> {
    match zfs_retry_busy(&["mount", name]) {
        Err(ZfsError::Failed { stderr, .. }) if stderr.contains("already mounted") => Ok(()),
        other => other.map(drop),
    }
}

pub fn unmount(name: &str) -> ZfsResult<()> {
    match zfs_retry_busy(&["unmount", name]) {
        Err(ZfsError::Failed { stderr, .. }) if stderr.contains("not currently mounted") => Ok(()),
        other => other.map(drop),
    }
}

/// Rename a filesystem. zfs-fuse refuses to rename a mounted filesystem
/// ("dataset is busy" for good), so unmount first and mount again after.
pub fn rename(from: &str, to: &str) -> ZfsResult<()> {
    unmount(from)?;
    zfs_retry_busy(&["rename", from, to])?;
    mount(to)
}

/// Where a filesystem is mounted, mounting it first if needed.
pub fn mountpoint(name: &str) -> ZfsResult<PathBuf> {
    if get(name, "mounted")? != "yes" {
        mount(name)?;
    }
    let mp = get(name, "mountpoint")?;
    if !mp.starts_with('/') {
        return Err(ZfsError::Failed {
            cmd: format!("zfs get mountpoint {name}"),
            stderr: format!("expected an absolute mountpoint, got '{mp}'"),
        });
    }
    Ok(PathBuf::from(mp))
}

/// A child `zfs` process that is killed and reaped if dropped unfinished,
/// so an error or Ctrl-C never leaves a send or receive running.
pub struct ZfsChild {
    child: Option<Child>,
    cmd: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl ZfsChild {
    fn spawn(args: &[&str], stdin: Stdio, stdout: Stdio) -> ZfsResult<Self> {
        let cmd = cmd_line("zfs", args);
        let mut child = Command::new("zfs")
            .args(args)
            .stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| ZfsError::Spawn {
                cmd: cmd.clone(),
                source,
            })?;
        // Drained on its own thread so a chatty stderr can't block the stream.
        let stderr = child.stderr.take().map(|mut e| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = e.read_to_end(&mut buf);
                one_line(&buf)
            })
        });
        Ok(ZfsChild {
            child: Some(child),
            cmd,
            stderr,
        })
    }

    /// `zfs send [-i from] snap` with stdout piped to the caller.
    pub fn send(from: Option<&str>, snap: &str) -> ZfsResult<(Self, ChildStdout)> {
        let mut args = vec!["send"];
        if let Some(from) = from {
            args.extend(["-i", from]);
        }
        args.push(snap);
        let mut c = Self::spawn(&args, Stdio::null(), Stdio::piped())?;
        let out = c
            .child
            .as_mut()
            .and_then(|ch| ch.stdout.take())
            .ok_or_else(|| ZfsError::Failed {
                cmd: c.cmd.clone(),
                stderr: "no stdout pipe".into(),
            })?;
        Ok((c, out))
    }

    pub fn cmd(&self) -> &str {
        &self.cmd
    }

    /// Wait for the process; a non-zero exit is an error carrying stderr.
    pub fn finish(mut self) -> ZfsResult<()> {
        let status = self.wait()?;
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(ZfsError::Failed {
                cmd: self.cmd.clone(),
                stderr: if stderr.is_empty() {
                    format!("exited with {status}")
                } else {
                    stderr
                },
            })
        }
    }

    fn wait(&mut self) -> ZfsResult<ExitStatus> {
        match self.child.take() {
            Some(mut c) => c.wait().map_err(|source| ZfsError::Spawn {
                cmd: self.cmd.clone(),
                source,
            }),
            None => Err(ZfsError::Failed {
                cmd: self.cmd.clone(),
                stderr: "already reaped".into(),
            }),
        }
    }

    /// Kill and reap the process now.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ZfsChild {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Feed `reader` into `zfs receive <target>`, polling for Ctrl-C between
/// chunks. `on_chunk` runs after each chunk (test pause hooks). A failed
/// or interrupted receive of a new filesystem leaves nothing behind: zfs
/// discards a partial receive when its input ends early.
pub fn receive<R: Read>(
    mut reader: R,
    target: &str,
    mut on_chunk: impl FnMut() -> ZfsResult<()>,
) -> ZfsResult<()> {
    let mut child = ZfsChild::spawn(&["receive", target], Stdio::piped(), Stdio::null())?;
    let mut stdin = child
        .child
        .as_mut()
        .and_then(|c| c.stdin.take())
        .ok_or_else(|| ZfsError::Failed {
            cmd: child.cmd.clone(),
            stderr: "no stdin pipe".into(),
        })?;
    let mut buf = vec![0u8; 1 << 20];
    let fed: ZfsResult<()> = loop {
        if cancel::is_cancelled() {
            break Err(ZfsError::Interrupted);
        }
        let n = match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                break Err(ZfsError::Stream {
                    cmd: child.cmd.clone(),
                    what: "reading the image stream",
                    source,
                });
            }
        };
        if let Err(source) = stdin.write_all(&buf[..n]) {
            // zfs gave up on the stream; its stderr says why.
            drop(stdin);
            return match child.finish() {
                Err(e) => Err(e),
                Ok(()) => Err(ZfsError::Stream {
                    cmd: target.to_string(),
                    what: "writing to zfs receive",
                    source,
                }),
            };
        }
        if let Err(e) = on_chunk() {
            break Err(e);
        }
    };
    match fed {
        Ok(()) => {
            drop(stdin);
            child.finish()
        }
        Err(e) => {
            // Killing before closing stdin, so zfs can't take a short
            // stream for a whole one.
            child.kill();
            drop(stdin);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_stream_failure_names_the_os_error_once() {
        let source = std::process::Command::new("/nonexistent/zone-image-test")
            .spawn()
            .unwrap_err();
        let e: Error = ZfsError::Stream {
            cmd: "zfs receive p/x".into(),
            what: "writing the stream",
            source,
        }
        .into();
        let line = error_line::one_line(&e);
        assert!(
            line.starts_with("zfs receive p/x: writing the stream: "),
            "{line}"
        );
        assert_eq!(line.matches("os error 2").count(), 1, "{line}");
    }

    use super::*;

    #[test]
    fn busy_and_missing_are_recognised() {
        assert!(is_busy("cannot destroy 'p/x': dataset is busy"));
        assert!(is_missing("cannot open 'p/x': dataset does not exist"));
        assert!(!is_missing("cannot open 'p/x': permission denied"));
    }
}
