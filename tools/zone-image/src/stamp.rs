//! Build stamps as eng makes them: `<branch>-<UTC %Y%m%dT%H%M%SZ>-g<sha>`,
//! with `-dirty` for an unclean tree.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub branch: String,
    pub timestamp: String,
    pub short_sha: String,
    pub dirty: bool,
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-g{}", self.branch, self.timestamp, self.short_sha)?;
        if self.dirty {
            f.write_str("-dirty")?;
        }
        Ok(())
    }
}

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

fn git(repo: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .map_err(|e| Error::Command(format!("running git {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(Error::Command(format!(
            "git {} in {}: {}",
            args.join(" "),
            repo.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Read branch, commit and cleanliness. `BRANCH` overrides the branch (CI
/// checkouts are often detached).
pub fn git_info(repo: &Path) -> Result<GitInfo> {
    let short_sha = git(repo, &["rev-parse", "--short=7", "HEAD"])?;
    let branch = match std::env::var("BRANCH") {
        Ok(b) if !b.is_empty() => b,
        _ => match git(repo, &["symbolic-ref", "--short", "-q", "HEAD"]) {
            Ok(b) if !b.is_empty() => b,
            _ => "detached".to_string(),
        },
    };
    let status = git(repo, &["status", "--porcelain", "--untracked-files=no"])?;
    let commit_time = git(repo, &["log", "-1", "--format=%ct"])?
        .parse()
        .map_err(|e| Error::Command(format!("git log commit time: {e}")))?;
    let remote = git(repo, &["config", "--get", "remote.origin.url"]).ok();
    Ok(GitInfo {
        // eng replaces '/' so branch names stay one path component.
        branch: branch.replace('/', "-"),
        short_sha,
        dirty: !status.is_empty(),
        commit_time,
        remote,
    })
}

/// Make a stamp. `TIMESTAMP` (eng's variable) overrides the time part.
pub fn make(info: &GitInfo, now: chrono::DateTime<chrono::Utc>) -> Result<Stamp> {
    let timestamp = match std::env::var("TIMESTAMP") {
        Ok(t) if !t.is_empty() => {
            if chrono::NaiveDateTime::parse_from_str(&t, "%Y%m%dT%H%M%SZ").is_err() {
                return Err(Error::input(
                    "TIMESTAMP",
                    "TIMESTAMP",
                    format!("expected a UTC time like 20261126T031500Z, got '{t}'"),
                ));
            }
            t
        }
        _ => now.format("%Y%m%dT%H%M%SZ").to_string(),
    };
    Ok(Stamp {
        branch: info.branch.clone(),
        timestamp,
        short_sha: info.short_sha.clone(),
        dirty: info.dirty,
    })
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

/// The channel an updates server publishes a branch to.
pub fn channel_for_branch(branch: &str) -> &'static str {
    let is_release = branch
        .strip_prefix("release-")
        .is_some_and(|d| d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()));
    if is_release {
        "staging"
    } else if branch == "master" || branch == "main" {
        "dev"
    } else {
        "experimental"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        let s = Stamp {
            branch: "master".into(),
            timestamp: "20261126T031500Z".into(),
            short_sha: "abc1234".into(),
            dirty: true,
        };
        assert_eq!(s.to_string(), "master-20261126T031500Z-gabc1234-dirty");
    }

    #[test]
    fn channels() {
        assert_eq!(channel_for_branch("release-20261126"), "staging");
        assert_eq!(channel_for_branch("master"), "dev");
        assert_eq!(channel_for_branch("main"), "dev");
        assert_eq!(channel_for_branch("release-foo"), "experimental");
        assert_eq!(channel_for_branch("feature-x"), "experimental");
    }
}
