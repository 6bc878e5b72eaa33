//! What a build takes from its checkout: the stamp (format, branch and
//! channel rules live in the `buildstamp` crate), the commit and the
//! tarball mtime.

use std::path::Path;
use std::process::Command;

pub use buildstamp::Stamp;

use crate::error::{Error, Result};

/// Facts about the source checkout that a build records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitInfo {
    pub branch: String,
    pub short_sha: String,
    pub dirty: bool,
    /// Commit time, seconds since the epoch.
    pub commit_time: i64,
    /// `origin` remote URL, if any (for /etc/motd).
    pub remote: Option<String>,
}

fn git_output(repo: &Path, args: &[&str]) -> Result<std::process::Output> {
    Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| Error::Command(format!("running git {}: {e}", args.join(" "))))
}

fn git_failed(repo: &Path, args: &[&str], out: &std::process::Output) -> Error {
    Error::Command(format!(
        "git {} in {}: {}",
        args.join(" "),
        repo.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

fn git(repo: &Path, args: &[&str]) -> Result<String> {
    let out = git_output(repo, args)?;
    if !out.status.success() {
        return Err(git_failed(repo, args, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Read branch (`branch` if given, else git's), commit and cleanliness.
pub fn git_info(repo: &Path, branch: Option<&str>) -> Result<GitInfo> {
    let branch = buildstamp::branch(repo, branch)?;
    let short_sha = git(repo, &["rev-parse", "--short=7", "HEAD"])?;
    let status = git(repo, &["status", "--porcelain", "--untracked-files=no"])?;
    let commit_time = git(repo, &["log", "-1", "--format=%ct"])?
        .parse()
        .map_err(|e| Error::Command(format!("git log commit time: {e}")))?;
    // `git config --get` exits 1 for an unset key: no remote, not a failure.
    let args = ["config", "--get", "remote.origin.url"];
    let out = git_output(repo, &args)?;
    let remote = match out.status.code() {
        Some(0) => Some(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Some(1) => None,
        _ => return Err(git_failed(repo, &args, &out)),
    };
    Ok(GitInfo {
        branch,
        short_sha,
        dirty: !status.is_empty(),
        commit_time,
        remote,
    })
}

/// Make a stamp. `TIMESTAMP` (eng's variable) overrides the time part.
pub fn make(info: &GitInfo, now: chrono::DateTime<chrono::Utc>) -> Result<Stamp> {
    let timestamp = match std::env::var("TIMESTAMP") {
        Ok(t) if !t.is_empty() => t,
        _ => now.format("%Y%m%dT%H%M%SZ").to_string(),
    };
    Ok(Stamp::new(
        &info.branch,
        &timestamp,
        &info.short_sha,
        info.dirty,
    )?)
}

/// The tarball mtime: `SOURCE_DATE_EPOCH`, else the commit time.
pub fn source_date_epoch(info: &GitInfo) -> Result<i64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => s.parse().map_err(|_| {
            Error::input(
                "SOURCE_DATE_EPOCH",
                "SOURCE_DATE_EPOCH",
                format!("expected seconds since the epoch, got '{s}'"),
            )
        }),
        _ => Ok(info.commit_time),
    }
}
