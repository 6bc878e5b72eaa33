//! Which IMGAPI: `--imgapi-url`, else `IMGAPI_URL`, else the headnode's
//! `/usbkey/config` (`http://imgapi.<datacenter_name>.<dns_domain>`).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub const HEADNODE_CONFIG: &str = "/usbkey/config";

/// Where the URL came from, for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    Flag,
    Env,
    HeadnodeConfig(PathBuf),
}

impl std::fmt::Display for UrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlSource::Flag => write!(f, "--imgapi-url"),
            UrlSource::Env => write!(f, "IMGAPI_URL"),
            UrlSource::HeadnodeConfig(p) => write!(f, "headnode config {}", p.display()),
        }
    }
}

/// Pick the IMGAPI URL. `env` is the value of `IMGAPI_URL`, if set.
pub fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    headnode_config: &Path,
) -> Result<(String, UrlSource)> {
    if let Some(u) = flag.filter(|u| !u.is_empty()) {
        return Ok((check_url(u, "--imgapi-url")?, UrlSource::Flag));
    }
    if let Some(u) = env.filter(|u| !u.is_empty()) {
        return Ok((check_url(u, "IMGAPI_URL")?, UrlSource::Env));
    }
    let text = match std::fs::read_to_string(headnode_config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Input(format!(
                "no IMGAPI given: pass --imgapi-url or set IMGAPI_URL \
                 (not on a headnode: {} does not exist)",
                headnode_config.display()
            )));
        }
        Err(err) => {
            return Err(Error::Io {
                path: headnode_config.to_path_buf(),
                err,
            });
        }
    };
    let dc = config_value(&text, "datacenter_name");
    let domain = config_value(&text, "dns_domain");
    match (dc, domain) {
        (Some(dc), Some(domain)) => Ok((
            format!("http://imgapi.{dc}.{domain}"),
            UrlSource::HeadnodeConfig(headnode_config.to_path_buf()),
        )),
        (None, _) => Err(Error::Input(format!(
            "{}: datacenter_name: missing (expected a line datacenter_name=<name>)",
            headnode_config.display()
        ))),
        (_, None) => Err(Error::Input(format!(
            "{}: dns_domain: missing (expected a line dns_domain=<domain>)",
            headnode_config.display()
        ))),
    }
}

/// `key=value` lines, `#` comments; values may be quoted.
fn config_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
        .filter(|v| !v.is_empty())
}

fn check_url(url: &str, what: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| Error::Input(format!("{what}: {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(Error::Input(format!(
            "{what}: {url:?}: expected an http:// or https:// URL"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Split `?channel=` off an IMGAPI source URL: (base URL, channel).
pub fn split_source(source: &str) -> Result<(String, Option<String>)> {
    imgapi_client::split_source(source)
        .map_err(|e| Error::Input(format!("--source: {source:?} is not a URL: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("config");
        std::fs::write(&p, text).unwrap();
        (d, p)
    }

    #[test]
    fn flag_beats_env_beats_config() {
        let (_d, p) = cfg("datacenter_name=us-east-1\ndns_domain=example.com\n");
        let r = resolve(Some("http://a/"), Some("http://b"), &p).unwrap();
        assert_eq!(r, ("http://a".to_string(), UrlSource::Flag));
        let r = resolve(None, Some("http://b"), &p).unwrap();
        assert_eq!(r, ("http://b".to_string(), UrlSource::Env));
        let r = resolve(None, None, &p).unwrap();
        assert_eq!(r.0, "http://imgapi.us-east-1.example.com");
        assert_eq!(r.1, UrlSource::HeadnodeConfig(p.clone()));
    }

    #[test]
    fn config_problems_are_named() {
        let (_d, p) = cfg("# c\ndatacenter_name='coal'\n");
        let e = resolve(None, None, &p).unwrap_err().to_string();
        assert!(
            e.ends_with("config: dns_domain: missing (expected a line dns_domain=<domain>)"),
            "{e}"
        );
        let e = resolve(None, None, Path::new("/nonexistent/config")).unwrap_err();
        assert!(e.is_input());
        assert!(e.to_string().contains("--imgapi-url"), "{e}");
        let e = resolve(Some("ftp://x"), None, &p).unwrap_err().to_string();
        assert!(e.starts_with("--imgapi-url: "), "{e}");
    }

    #[test]
    fn source_channel_split() {
        let (b, c) =
            split_source("https://updates.tritondatacenter.com?channel=experimental").unwrap();
        assert_eq!(b, "https://updates.tritondatacenter.com");
        assert_eq!(c.as_deref(), Some("experimental"));
    }
}
