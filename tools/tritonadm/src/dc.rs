//! The datacenter as tritonadm finds it: each core API's URL (see
//! [`crate::target`]), its client, the headnode config, the updates server
//! and channel; and how a failed call is told (API, call, URL, cause), with
//! bounded retries for reads that fail transiently.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use progenitor_client::{Error as ClientError, ResponseValue};
use restify_error::RestError;

use crate::imgapi::{ConnectOptions, Imgapi};
use crate::target::{Api, HeadnodeConfig, resolve_api};
use crate::{Error, Result};

/// The public updates server, used when nothing else names one.
pub const DEFAULT_UPDATES_URL: &str = imgapi_api::DEFAULT_UPDATES_URL;

/// How a command finds the DC: per-API flags, the environment, the
/// headnode config.
#[derive(Debug, Clone, Default)]
pub struct DcOptions {
    /// `--<api>-url` flags, by API.
    pub flags: Vec<(Api, String)>,
    /// `<API>_URL` variables, by API (read by the binary's argument parser).
    pub env: Vec<(Api, String)>,
    pub headnode_config: PathBuf,
    /// Say where each URL came from (on stderr).
    pub verbose: bool,
    /// TLS/auth for the DC's IMGAPI.
    pub imgapi_connect: ConnectOptions,
}

pub struct Dc {
    opts: DcOptions,
    /// APIs whose source was already told (`-v` says it once).
    told: Mutex<BTreeSet<&'static str>>,
}

impl Dc {
    pub fn new(opts: DcOptions) -> Dc {
        Dc {
            opts,
            told: Mutex::new(BTreeSet::new()),
        }
    }

    /// The API's URL: flag, else `<API>_URL`, else the headnode config.
    pub fn url(&self, api: Api) -> Result<String> {
        fn of(given: &[(Api, String)], api: Api) -> Option<&str> {
            given
                .iter()
                .find(|(a, _)| *a == api)
                .map(|(_, u)| u.as_str())
        }
        let (flag, env) = (of(&self.opts.flags, api), of(&self.opts.env, api));
        let (url, source) = resolve_api(api, flag, env, &self.opts.headnode_config)?;
        if self.opts.verbose
            && self
                .told
                .lock()
                .map(|mut t| t.insert(api.name()))
                .unwrap_or(false)
        {
            eprintln!("tritonadm: using {} {url} (from {source})", api.label());
        }
        Ok(url)
    }

    /// The headnode config, `None` when there is none.
    pub fn config(&self) -> Result<Option<HeadnodeConfig>> {
        HeadnodeConfig::load(&self.opts.headnode_config)
    }

    pub fn sapi(&self) -> Result<sapi_client::Client> {
        Ok(sapi_client::Client::new(&self.url(Api::Sapi)?))
    }

    /// SAPI for a synchronous CreateInstance (which waits for the
    /// provision).
    pub fn sapi_provisioning(&self) -> Result<sapi_client::Client> {
        sapi_client::client_for_provisioning(&self.url(Api::Sapi)?)
            .map_err(|e| Error::Other(format!("building the SAPI client: {e}")))
    }

    pub fn vmapi(&self) -> Result<vmapi_client::Client> {
        Ok(vmapi_client::Client::new(&self.url(Api::Vmapi)?))
    }

    pub fn papi(&self) -> Result<papi_client::Client> {
        Ok(papi_client::Client::new(&self.url(Api::Papi)?))
    }

    pub fn cnapi(&self) -> Result<cnapi_client::Client> {
        Ok(cnapi_client::Client::new(&self.url(Api::Cnapi)?))
    }

    pub fn imgapi(&self) -> Result<Imgapi> {
        Imgapi::connect(&self.url(Api::Imgapi)?, &self.opts.imgapi_connect)
    }
}

/// The updates server: `--updates-url`, else `UPDATES_URL`, else the `sdc`
/// application's `metadata.updates_url`, else the public one. Returns the
/// URL and where it came from. `env` is the value of `UPDATES_URL`.
pub fn updates_url(
    flag: Option<&str>,
    env: Option<&str>,
    sdc_metadata: Option<&serde_json::Map<String, serde_json::Value>>,
) -> (String, &'static str) {
    let from_sdc = sdc_metadata
        .and_then(|m| m.get("updates_url"))
        .and_then(|v| v.as_str())
        .map(str::to_string);
    [
        (flag.map(str::to_string), "--updates-url"),
        (env.map(str::to_string), "UPDATES_URL"),
        (from_sdc, "the sdc application's metadata.updates_url"),
    ]
    .into_iter()
    .find_map(|(v, from)| v.filter(|v| !v.is_empty()).map(|v| (v, from)))
    .unwrap_or_else(|| (DEFAULT_UPDATES_URL.to_string(), "the default"))
}

/// The channel: `--channel`, else the `sdc` application's
/// `metadata.update_channel`; `None` means the updates server's default.
pub fn update_channel(
    flag: Option<&str>,
    sdc_metadata: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| {
            sdc_metadata
                .and_then(|m| m.get("update_channel"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .filter(|c| !c.is_empty())
}

/// Describe a failed call: `<API> <Call> at <url>: <cause>`. The status is
/// kept so a 404 can be told from everything else.
pub fn api_error(api: Api, op: &str, url: &str, e: ClientError<RestError>) -> Error {
    let hints = client_error::Hints {
        timeout: "no answer within the timeout",
        tls: "TLS: the server's certificate is not trusted by this machine",
    };
    let f = client_error::describe(&e, api.label(), None, hints);
    Error::Api {
        message: format!("{} {op} at {url}: {}", api.label(), f.detail),
        status: f.status,
    }
}

/// Name the server in an [`Imgapi`] error (its message says the call and
/// URL): `IMGAPI ...` for the DC's, `updates server ...` for the other.
pub fn naming(who: &'static str) -> impl Fn(Error) -> Error {
    move |e| match e {
        Error::Api { message, status } => Error::Api {
            message: format!("{who} {message}"),
            status,
        },
        e => e,
    }
}

/// Worth another try: the server was briefly unavailable or the
/// connection failed. A 500 is not: it is the server's answer.
fn transient(e: &ClientError<RestError>) -> bool {
    match e.status().map(|s| s.as_u16()) {
        Some(502..=504) | Some(429) => true,
        Some(_) => false,
        None => matches!(e, ClientError::CommunicationError(_)),
    }
}

/// How many times a read is tried, and the first pause (doubling).
const ATTEMPTS: u32 = 4;
const FIRST_PAUSE: Duration = Duration::from_millis(250);

/// A read (safe to repeat): retried on transient failures, at most
/// [`ATTEMPTS`] times with backoff, then reported like any failure.
pub async fn read<T, F, Fut>(api: Api, op: &str, url: &str, f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = std::result::Result<ResponseValue<T>, ClientError<RestError>>>,
{
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(rv) => return Ok(rv.into_inner()),
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
            Err(e) => return Err(api_error(api, op, url, e)),
        }
    }
}

/// A write: sent once (repeating it could do it twice).
pub async fn write<T, Fut>(api: Api, op: &str, url: &str, fut: Fut) -> Result<T>
where
    Fut: Future<Output = std::result::Result<ResponseValue<T>, ClientError<RestError>>>,
{
    fut.await
        .map(ResponseValue::into_inner)
        .map_err(|e| api_error(api, op, url, e))
}

/// A read where 404 means "absent".
pub async fn read_optional<T, F, Fut>(api: Api, op: &str, url: &str, f: F) -> Result<Option<T>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = std::result::Result<ResponseValue<T>, ClientError<RestError>>>,
{
    match read(api, op, url, f).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn updates_url_and_channel_order() {
        let md = json!({"updates_url": "http://u", "update_channel": "dev"});
        let md = md.as_object().unwrap();
        assert_eq!(
            updates_url(Some("http://f"), Some("http://e"), Some(md)).0,
            "http://f"
        );
        assert_eq!(updates_url(None, Some("http://e"), Some(md)).0, "http://e");
        assert_eq!(updates_url(None, None, Some(md)).0, "http://u");
        assert_eq!(updates_url(None, None, None).0, DEFAULT_UPDATES_URL);
        assert_eq!(update_channel(Some("x"), Some(md)).as_deref(), Some("x"));
        assert_eq!(update_channel(None, Some(md)).as_deref(), Some("dev"));
        assert_eq!(update_channel(None, None), None);
    }
}
