//! The eng bits layout, shared with sdc-headnode and other consumers:
//!
//! ```text
//! <base>/<stamp>/<name>/<file>
//! <base>/<stamp>/md5sums.txt
//! <base>/<branch>-latest
//! <base>/latest-release        (release-* branches only)
//! ```
//!
//! `<base>` is `[<prefix>/]<name>`; keys here are `/`-separated and relative
//! to the store's root (a directory, or a bucket plus key prefix).

use crate::error::{Error, Result};

pub const MD5SUMS: &str = "md5sums.txt";
pub const STAMP_FILE: &str = "latest-build-stamp";
pub const LATEST_RELEASE: &str = "latest-release";

/// A single path component safe to use as a key segment or file name.
fn valid_component(s: &str) -> Result<(), &'static str> {
    buildstamp::check_component(s)
}

pub fn check_name(name: &str) -> Result<()> {
    valid_component(name).map_err(|expected| Error::BadName {
        what: "component name",
        value: name.to_string(),
        expected,
    })
}

pub fn check_branch(branch: &str) -> Result<()> {
    valid_component(branch).map_err(|expected| Error::BadName {
        what: "branch",
        value: branch.to_string(),
        expected,
    })
}

/// `--prefix`, normalized: no leading, trailing or doubled slashes, no
/// `.`/`..` segments.
pub fn normalize_prefix(prefix: &str) -> Result<String> {
    let segs: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    if segs.iter().any(|s| *s == "." || *s == "..") {
        return Err(Error::BadName {
            what: "--prefix",
            value: prefix.to_string(),
            expected: "expected a path such as public/builds, without '.' or '..' segments",
        });
    }
    Ok(segs.join("/"))
}

/// Where one component's bits live in a store.
#[derive(Debug, Clone)]
pub struct Layout {
    pub base: String,
    pub name: String,
}

impl Layout {
    pub fn new(prefix: &str, name: &str) -> Layout {
        let base = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        Layout {
            base,
            name: name.to_string(),
        }
    }

    pub fn stamp_dir(&self, stamp: &str) -> String {
        format!("{}/{stamp}", self.base)
    }

    pub fn file(&self, stamp: &str, file: &str) -> String {
        format!("{}/{stamp}/{}/{file}", self.base, self.name)
    }

    pub fn md5sums(&self, stamp: &str) -> String {
        format!("{}/{stamp}/{MD5SUMS}", self.base)
    }

    pub fn pointer(&self, pointer: &str) -> String {
        format!("{}/{pointer}", self.base)
    }

    /// Pointers a branch moves: `<branch>-latest`, plus `latest-release`
    /// for `release-*` branches (as eng's bits-upload.sh does).
    pub fn pointers_for(branch: &str) -> Vec<String> {
        let mut v = vec![format!("{branch}-latest")];
        if branch.starts_with("release-") {
            v.push(LATEST_RELEASE.to_string());
        }
        v
    }

    /// md5sums.txt lines are `<md5>  <name>/<file>`, relative to the stamp
    /// dir so `md5sum -c md5sums.txt` works from there. (eng wrote the path
    /// as the build machine saw it, which no consumer can use.)
    pub fn md5sums_body(&self, files: &[(String, String)]) -> String {
        let mut sorted: Vec<&(String, String)> = files.iter().collect();
        sorted.sort();
        sorted
            .iter()
            .map(|(file, md5)| format!("{md5}  {}/{file}\n", self.name))
            .collect()
    }
}

/// Parse md5sums.txt into (file name, md5) pairs. Paths are reduced to
/// their last component, which also accepts eng's machine-local paths.
pub fn parse_md5sums(object: &str, body: &str) -> Result<Vec<(String, String)>> {
    let bad = |line: usize, why: &str| Error::BadRemote {
        object: object.to_string(),
        reason: format!("line {line}: {why}; expected \"<md5>  <path>\""),
    };
    let mut out = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (md5, path) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad(i + 1, "no path"))?;
        if md5.len() != 32 || !md5.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(i + 1, "not an md5"));
        }
        let path = path.trim_start().trim_start_matches('*');
        let file = path.rsplit('/').next().unwrap_or(path);
        if valid_component(file).is_err() {
            return Err(bad(i + 1, "bad file name"));
        }
        out.push((file.to_string(), md5.to_ascii_lowercase()));
    }
    if out.is_empty() {
        return Err(Error::BadRemote {
            object: object.to_string(),
            reason: "lists no files".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_md5sums() {
        let l = Layout::new("public/builds", "triton-api");
        let st = "master-20261126T031500Z-gabc1234";
        assert_eq!(
            l.file(st, "x.tar.gz"),
            "public/builds/triton-api/master-20261126T031500Z-gabc1234/triton-api/x.tar.gz"
        );
        assert_eq!(
            l.pointer("master-latest"),
            "public/builds/triton-api/master-latest"
        );
        assert_eq!(Layout::pointers_for("master"), vec!["master-latest"]);
        assert_eq!(
            Layout::pointers_for("release-20261126"),
            vec!["release-20261126-latest", "latest-release"]
        );
        let body = l.md5sums_body(&[("b".into(), "0".repeat(32)), ("a".into(), "1".repeat(32))]);
        assert_eq!(
            body,
            format!(
                "{}  triton-api/a\n{}  triton-api/b\n",
                "1".repeat(32),
                "0".repeat(32)
            )
        );
        let parsed = parse_md5sums("m", &body).unwrap();
        assert_eq!(parsed[0], ("a".to_string(), "1".repeat(32)));
        assert!(parse_md5sums("m", "xyz  a\n").is_err());
        assert!(parse_md5sums("m", &format!("{}  ../..\n", "1".repeat(32))).is_err());
        assert_eq!(
            normalize_prefix("/public//builds/").unwrap(),
            "public/builds"
        );
        assert!(normalize_prefix("a/../b").is_err());
    }
}
