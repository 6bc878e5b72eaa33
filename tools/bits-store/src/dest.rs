//! `--dest`: a local directory (path or `file://` URL) or `s3://bucket/prefix`.

use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Dest {
    pub fn parse(s: &str) -> Result<Dest> {
        let bad = |expected: &str| Error::BadDest {
            dest: s.to_string(),
            expected: expected.to_string(),
        };
        if s.is_empty() {
            return Err(bad(
                "expected a local path, file:///path or s3://bucket/prefix",
            ));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                })
                && !bucket.starts_with(['-', '.'])
                && !bucket.ends_with(['-', '.']);
            if !bucket_ok {
                return Err(bad(
                    "expected s3://<bucket>[/<prefix>] with a bucket name of 3-63 lowercase letters, digits, '-' or '.'",
                ));
            }
            let prefix = crate::layout::normalize_prefix(prefix).map_err(|_| {
                bad("expected s3://<bucket>[/<prefix>] without '.' or '..' in the prefix")
            })?;
            return Ok(Dest::S3 {
                bucket: bucket.to_string(),
                prefix,
            });
        }
        if let Some(rest) = s.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad("expected file:///absolute/path (three slashes)"));
            }
            return Ok(Dest::Local(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(bad(&format!(
                "unsupported scheme {scheme:?}; expected a local path, file:///path or s3://bucket/prefix"
            )));
        }
        Ok(Dest::Local(PathBuf::from(s)))
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Local(p) => write!(f, "{}", p.display()),
            Dest::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Dest::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(Dest::parse("/x/y").unwrap(), Dest::Local("/x/y".into()));
        assert_eq!(Dest::parse("rel").unwrap(), Dest::Local("rel".into()));
        assert_eq!(Dest::parse("file:///x").unwrap(), Dest::Local("/x".into()));
        assert_eq!(
            Dest::parse("s3://my-bucket/public//builds/").unwrap(),
            Dest::S3 {
                bucket: "my-bucket".into(),
                prefix: "public/builds".into()
            }
        );
        assert_eq!(
            Dest::parse("s3://bkt").unwrap(),
            Dest::S3 {
                bucket: "bkt".into(),
                prefix: "".into()
            }
        );
        for bad in [
            "",
            "s3://",
            "s3://B",
            "s3://ab",
            "http://x/y",
            "file://rel",
            "s3://bkt/a/../b",
        ] {
            let e = Dest::parse(bad).unwrap_err();
            assert!(e.is_input(), "{bad}");
        }
    }
}
