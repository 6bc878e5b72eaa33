//! Where each DC API is: `--<api>-url`, else `<API>_URL`, else the
//! headnode's `/usbkey/config` (`<api>_domain` → `http://<domain>`, or
//! `http://<api>.<datacenter_name>.<dns_domain>` when that line is absent).

use std::path::{Path, PathBuf};

use crate::{Error, Result};

pub const HEADNODE_CONFIG: &str = "/usbkey/config";

/// The DC's core APIs tritonadm talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Sapi,
    Vmapi,
    Napi,
    Papi,
    Cnapi,
    Imgapi,
}

impl Api {
    pub const ALL: [Api; 6] = [
        Api::Sapi,
        Api::Vmapi,
        Api::Napi,
        Api::Papi,
        Api::Cnapi,
        Api::Imgapi,
    ];

    /// The lower-case name: the DNS label and the `<name>_domain` key.
    pub fn name(self) -> &'static str {
        match self {
            Api::Sapi => "sapi",
            Api::Vmapi => "vmapi",
            Api::Napi => "napi",
            Api::Papi => "papi",
            Api::Cnapi => "cnapi",
            Api::Imgapi => "imgapi",
        }
    }

    /// How messages name it: `SAPI`, `VMAPI`, ...
    pub fn label(self) -> &'static str {
        match self {
            Api::Sapi => "SAPI",
            Api::Vmapi => "VMAPI",
            Api::Napi => "NAPI",
            Api::Papi => "PAPI",
            Api::Cnapi => "CNAPI",
            Api::Imgapi => "IMGAPI",
        }
    }

    pub fn flag(self) -> &'static str {
        match self {
            Api::Sapi => "--sapi-url",
            Api::Vmapi => "--vmapi-url",
            Api::Napi => "--napi-url",
            Api::Papi => "--papi-url",
            Api::Cnapi => "--cnapi-url",
            Api::Imgapi => "--imgapi-url",
        }
    }

    pub fn env(self) -> &'static str {
        match self {
            Api::Sapi => "SAPI_URL",
            Api::Vmapi => "VMAPI_URL",
            Api::Napi => "NAPI_URL",
            Api::Papi => "PAPI_URL",
            Api::Cnapi => "CNAPI_URL",
            Api::Imgapi => "IMGAPI_URL",
        }
    }
}

/// Where the URL came from, for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlSource {
    Flag(&'static str),
    Env(&'static str),
    HeadnodeConfig(PathBuf),
}

impl std::fmt::Display for UrlSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlSource::Flag(flag) => write!(f, "{flag}"),
            UrlSource::Env(var) => write!(f, "{var}"),
            UrlSource::HeadnodeConfig(p) => write!(f, "headnode config {}", p.display()),
        }
    }
}

/// The headnode config (`/usbkey/config`): `key=value` lines.
#[derive(Debug, Clone)]
pub struct HeadnodeConfig {
    pub path: PathBuf,
    text: String,
}

impl HeadnodeConfig {
    /// `Ok(None)` when the file does not exist (not on a headnode).
    pub fn load(path: &Path) -> Result<Option<HeadnodeConfig>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(HeadnodeConfig {
                path: path.to_path_buf(),
                text,
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Error::Io {
                path: path.to_path_buf(),
                err,
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        config_value(&self.text, key)
    }

    /// A key that must be there; the error names the file and the key.
    pub fn require(&self, key: &str) -> Result<String> {
        self.get(key).ok_or_else(|| {
            Error::Input(format!(
                "{}: {key}: missing (expected a line {key}=<value>)",
                self.path.display()
            ))
        })
    }

    /// `<api>_domain` → `http://<domain>`, else
    /// `http://<api>.<datacenter_name>.<dns_domain>`.
    pub fn url(&self, api: Api) -> Result<String> {
        if let Some(d) = self.get(&format!("{}_domain", api.name())) {
            let key = format!("{}: {}_domain", self.path.display(), api.name());
            return check_url(&format!("http://{d}"), &key);
        }
        let dc = self.get("datacenter_name");
        let domain = self.get("dns_domain");
        match (dc, domain) {
            (Some(dc), Some(domain)) => Ok(format!("http://{}.{dc}.{domain}", api.name())),
            (None, _) => Err(Error::Input(format!(
                "{}: datacenter_name: missing (expected a line datacenter_name=<name>)",
                self.path.display()
            ))),
            (_, None) => Err(Error::Input(format!(
                "{}: dns_domain: missing (expected a line dns_domain=<domain>)",
                self.path.display()
            ))),
        }
    }
}

/// Pick the IMGAPI URL. `env` is the value of `IMGAPI_URL`, if set.
pub fn resolve(
    flag: Option<&str>,
    env: Option<&str>,
    headnode_config: &Path,
) -> Result<(String, UrlSource)> {
    resolve_api(Api::Imgapi, flag, env, headnode_config)
}

/// Pick one API's URL: flag, else environment value, else headnode config.
pub fn resolve_api(
    api: Api,
    flag: Option<&str>,
    env: Option<&str>,
    headnode_config: &Path,
) -> Result<(String, UrlSource)> {
    if let Some(u) = flag.filter(|u| !u.is_empty()) {
        return Ok((check_url(u, api.flag())?, UrlSource::Flag(api.flag())));
    }
    if let Some(u) = env.filter(|u| !u.is_empty()) {
        return Ok((check_url(u, api.env())?, UrlSource::Env(api.env())));
    }
    let Some(config) = HeadnodeConfig::load(headnode_config)? else {
        return Err(Error::Input(format!(
            "no {} given: pass {} or set {} \
             (not on a headnode: {} does not exist)",
            api.label(),
            api.flag(),
            api.env(),
            headnode_config.display()
        )));
    };
    Ok((
        config.url(api)?,
        UrlSource::HeadnodeConfig(headnode_config.to_path_buf()),
    ))
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
        assert_eq!(r, ("http://a".to_string(), UrlSource::Flag("--imgapi-url")));
        let r = resolve(None, Some("http://b"), &p).unwrap();
        assert_eq!(r, ("http://b".to_string(), UrlSource::Env("IMGAPI_URL")));
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
    fn domain_lines_win_for_each_api() {
        let (_d, p) =
            cfg("datacenter_name=sim-1\ndns_domain=example.com\nsapi_domain=127.0.0.1:4000\n");
        let r = resolve_api(Api::Sapi, None, None, &p).unwrap();
        assert_eq!(r.0, "http://127.0.0.1:4000");
        let r = resolve_api(Api::Papi, None, None, &p).unwrap();
        assert_eq!(r.0, "http://papi.sim-1.example.com");
        let r = resolve_api(Api::Vmapi, None, Some("http://v:1"), &p).unwrap();
        assert_eq!(r, ("http://v:1".to_string(), UrlSource::Env("VMAPI_URL")));
        let e = resolve_api(Api::Cnapi, None, None, Path::new("/nonexistent/config"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--cnapi-url") && e.contains("CNAPI_URL"), "{e}");
    }

    #[test]
    fn source_channel_split() {
        let (b, c) =
            split_source("https://updates.tritondatacenter.com?channel=experimental").unwrap();
        assert_eq!(b, "https://updates.tritondatacenter.com");
        assert_eq!(c.as_deref(), Some("experimental"));
    }
}
