//! Build stamps, branches and update channels, as eng names them; the one
//! place image build, bits upload/fetch and publish take them from.
//!
//! - stamp: `<branch>-<UTC %Y%m%dT%H%M%SZ>-g<short sha>[-dev][-dirty]`
//!   (`-dev`: host binaries in a SmartOS image, never a real build;
//!   `-dirty`: built from an unclean tree, last as in eng's);
//! - branch: `BRANCH` if set, else the third `/` field of
//!   `git symbolic-ref HEAD` (eng's Makefile.defs: `refs/heads/feature/x`
//!   is `feature`);
//! - channel: `release-YYYYMMDD` → `staging`, `master`/`main` → `dev`,
//!   anything else → `experimental` (eng's bits-upload.sh).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The variable that names the branch instead of git (CI checkouts are
/// often detached).
pub const BRANCH_ENV: &str = "BRANCH";

const STAMP_EXPECTED: &str = "expected <branch>-<YYYYmmddTHHMMSSZ>-g<short sha>[-dev][-dirty], e.g. master-20261126T031500Z-gabc1234";
const COMPONENT_EXPECTED: &str =
    "expected letters, digits, '-', '_', '.' or '+' (one path component, not starting with '.')";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("stamp {stamp:?}: {STAMP_EXPECTED}")]
    BadStamp { stamp: String },

    #[error("{what} {value:?}: {expected}")]
    BadName {
        what: String,
        value: String,
        expected: &'static str,
    },

    #[error(
        "{}: HEAD is detached (not on a branch); set {BRANCH_ENV} to the branch this build belongs to",
        repo.display()
    )]
    Detached { repo: PathBuf },

    #[error("running git {args} in {}", repo.display())]
    GitSpawn {
        repo: PathBuf,
        args: String,
        #[source]
        source: std::io::Error,
    },

    #[error("git {args} in {} failed ({status}): {stderr}", repo.display())]
    Git {
        repo: PathBuf,
        args: String,
        status: String,
        stderr: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the fault lies in what the user gave (a stamp, `BRANCH`,
    /// a detached checkout without `BRANCH`), not in git or the machine.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            Error::BadStamp { .. } | Error::BadName { .. } | Error::Detached { .. }
        )
    }
}

/// A single path component, safe as an object key segment or file name
/// (branches and component names both become one).
pub fn check_component(s: &str) -> Result<(), &'static str> {
    let ok = !s.is_empty()
        && s != "."
        && s != ".."
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+'));
    if ok { Ok(()) } else { Err(COMPONENT_EXPECTED) }
}

fn check_branch(what: impl Into<String>, branch: &str) -> Result<()> {
    check_component(branch).map_err(|expected| Error::BadName {
        what: what.into(),
        value: branch.to_string(),
        expected,
    })
}

/// A parsed build stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub branch: String,
    /// UTC `%Y%m%dT%H%M%SZ`.
    pub timestamp: String,
    /// Short commit sha, without eng's `g`.
    pub sha: String,
    pub dirty: bool,
    /// Host binaries in a SmartOS image: for trying out, never to ship.
    pub dev: bool,
}

fn is_timestamp(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[9..15].iter().all(u8::is_ascii_digit)
}

impl Stamp {
    /// A stamp from its parts; `Err` names the part that is malformed.
    pub fn new(branch: &str, timestamp: &str, sha: &str, dirty: bool) -> Result<Stamp> {
        check_branch("branch", branch)?;
        if !is_timestamp(timestamp) {
            return Err(Error::BadName {
                what: "TIMESTAMP".into(),
                value: timestamp.to_string(),
                expected: "expected a UTC time like 20261126T031500Z",
            });
        }
        if sha.len() < 4 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::BadName {
                what: "commit".into(),
                value: sha.to_string(),
                expected: "expected an abbreviated hex commit sha",
            });
        }
        Ok(Stamp {
            branch: branch.to_string(),
            timestamp: timestamp.to_string(),
            sha: sha.to_string(),
            dirty,
            dev: false,
        })
    }

    pub fn parse(s: &str) -> Result<Stamp> {
        let bad = || Error::BadStamp {
            stamp: s.to_string(),
        };
        let (rest, dirty) = match s.strip_suffix("-dirty") {
            Some(r) => (r, true),
            None => (s, false),
        };
        let (rest, dev) = match rest.strip_suffix("-dev") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (rest, sha) = rest.rsplit_once("-g").ok_or_else(bad)?;
        let (branch, ts) = rest.rsplit_once('-').ok_or_else(bad)?;
        let mut stamp = Stamp::new(branch, ts, sha, dirty).map_err(|_| bad())?;
        stamp.dev = dev;
        Ok(stamp)
    }

    /// The update channel this stamp's branch publishes to.
    pub fn channel(&self) -> &'static str {
        channel_for_branch(&self.branch)
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-g{}", self.branch, self.timestamp, self.sha)?;
        if self.dev {
            f.write_str("-dev")?;
        }
        if self.dirty {
            f.write_str("-dirty")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Stamp {
    type Err = Error;

    fn from_str(s: &str) -> Result<Stamp> {
        Stamp::parse(s)
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

/// The branch of a `git symbolic-ref HEAD` answer: its third `/` field, as
/// eng's Makefile.defs takes it (`refs/heads/feature/x` → `feature`).
pub fn branch_of_ref(symbolic_ref: &str) -> Option<&str> {
    symbolic_ref
        .trim()
        .split('/')
        .nth(2)
        .filter(|b| !b.is_empty())
}

/// The branch HEAD is on in `repo`, `None` for a detached HEAD. Any other
/// git failure (no git, not a repository) is an error.
pub fn git_branch(repo: &Path) -> Result<Option<String>> {
    let args = "symbolic-ref --quiet HEAD";
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args.split(' '))
        .output()
        .map_err(|source| Error::GitSpawn {
            repo: repo.to_path_buf(),
            args: args.into(),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    // --quiet: a detached HEAD is status 1 and nothing on stderr.
    if out.status.code() == Some(1) && stderr.is_empty() {
        return Ok(None);
    }
    if !out.status.success() {
        return Err(Error::Git {
            repo: repo.to_path_buf(),
            args: args.into(),
            status: out.status.to_string(),
            stderr,
        });
    }
    let r = String::from_utf8_lossy(&out.stdout);
    let what = format!("branch of {} (git {args})", repo.display());
    let branch = branch_of_ref(&r).ok_or_else(|| Error::BadName {
        what: what.clone(),
        value: r.trim().to_string(),
        expected: "expected refs/heads/<branch>",
    })?;
    check_branch(what, branch)?;
    Ok(Some(branch.to_string()))
}

/// The branch a build of `repo` belongs to: `override_` (the value of
/// `BRANCH` or a flag) when set and not empty, else git's.
pub fn branch(repo: &Path, override_: Option<&str>) -> Result<String> {
    if let Some(b) = override_.filter(|b| !b.is_empty()) {
        check_branch(BRANCH_ENV, b)?;
        return Ok(b.to_string());
    }
    git_branch(repo)?.ok_or_else(|| Error::Detached {
        repo: repo.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    }

    fn repo() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        git(d.path(), &["init", "-q", "-b", "master"]);
        git(d.path(), &["commit", "-q", "--allow-empty", "-m", "one"]);
        d
    }

    #[test]
    fn stamps_round_trip() {
        for s in [
            "master-20261126T031500Z-gabc1234",
            "release-20261126-20261126T031500Z-gabc1234-dirty",
            "feature-20261126T031500Z-gabc1234-dev",
            "x-20261126T031500Z-gabc1234-dev-dirty",
        ] {
            assert_eq!(Stamp::parse(s).unwrap().to_string(), s);
        }
        let s = Stamp::parse("release-20261126-20261126T031500Z-gabc1234-dev-dirty").unwrap();
        assert_eq!(s.branch, "release-20261126");
        assert_eq!(s.timestamp, "20261126T031500Z");
        assert_eq!(s.sha, "abc1234");
        assert!(s.dirty && s.dev);
        assert_eq!(s.channel(), "staging");
        for bad in [
            "",
            "master",
            "master-2026-gabc",
            "master-20261126T031500-gabc1234",
            "a/b-20261126T031500Z-gabc1234",
            "-20261126T031500Z-gabc1234",
            "master-20261126T031500Z-gxyz1234",
            "master-20261126T031500Z-gabc1234-dirty-dev",
        ] {
            let e = Stamp::parse(bad).unwrap_err().to_string();
            assert!(e.contains("expected <branch>-"), "{bad}: {e}");
        }
    }

    #[test]
    fn channels() {
        assert_eq!(channel_for_branch("release-20261126"), "staging");
        assert_eq!(channel_for_branch("master"), "dev");
        assert_eq!(channel_for_branch("main"), "dev");
        assert_eq!(channel_for_branch("release-foo"), "experimental");
        assert_eq!(channel_for_branch("release-2026112"), "experimental");
        assert_eq!(channel_for_branch("feature"), "experimental");
    }

    #[test]
    fn feature_slash_x_is_feature_as_in_eng() {
        let d = repo();
        git(d.path(), &["checkout", "-q", "-b", "feature/x"]);
        assert_eq!(git_branch(d.path()).unwrap().as_deref(), Some("feature"));
        assert_eq!(branch(d.path(), None).unwrap(), "feature");
        // The stamp and the -latest pointer both come from this one value.
        let st = Stamp::new(
            &branch(d.path(), None).unwrap(),
            "20261126T031500Z",
            "abc1234",
            false,
        )
        .unwrap();
        assert_eq!(st.to_string(), "feature-20261126T031500Z-gabc1234");
        assert_eq!(st.channel(), "experimental");
    }

    #[test]
    fn release_branch() {
        let d = repo();
        git(d.path(), &["checkout", "-q", "-b", "release-20261126"]);
        let b = branch(d.path(), None).unwrap();
        assert_eq!(b, "release-20261126");
        assert_eq!(channel_for_branch(&b), "staging");
        // An override wins over git.
        assert_eq!(branch(d.path(), Some("master")).unwrap(), "master");
        assert_eq!(branch(d.path(), Some("")).unwrap(), "release-20261126");
    }

    #[test]
    fn detached_head_needs_branch() {
        let d = repo();
        git(d.path(), &["checkout", "-q", "--detach"]);
        assert_eq!(git_branch(d.path()).unwrap(), None);
        let e = branch(d.path(), None).unwrap_err();
        assert!(matches!(e, Error::Detached { .. }), "{e}");
        assert!(e.to_string().contains("set BRANCH"), "{e}");
        assert_eq!(
            branch(d.path(), Some("release-20261126")).unwrap(),
            "release-20261126"
        );
        let e = branch(d.path(), Some("feature/x")).unwrap_err().to_string();
        assert!(e.starts_with("BRANCH \"feature/x\": expected"), "{e}");
    }

    #[test]
    fn git_failure_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let e = git_branch(d.path()).unwrap_err();
        assert!(matches!(e, Error::Git { .. }), "{e}");
        assert!(e.to_string().contains("not a git repository"), "{e}");
        let e = branch(&d.path().join("missing"), None).unwrap_err();
        assert!(matches!(e, Error::Git { .. }), "{e}");
    }

    #[test]
    fn refs() {
        assert_eq!(branch_of_ref("refs/heads/master\n"), Some("master"));
        assert_eq!(branch_of_ref("refs/heads/feature/x"), Some("feature"));
        assert_eq!(branch_of_ref("HEAD"), None);
    }
}
