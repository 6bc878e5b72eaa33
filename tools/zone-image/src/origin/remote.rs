//! Origins from an IMGAPI source: GetImage and GetImageFile through
//! imgapi-client, the file streamed into a temp file and checked as it
//! lands. Only with the `remote` feature: it brings the HTTPS stack, which
//! a build from local origins (and the light `cargo xtask`) does without.

use std::io::Write as _;
use std::time::Duration;

use futures::StreamExt as _;
use imgapi_api::ImgapiError;
use progress::Progress;
use uuid::Uuid;

use super::READ_TIMEOUT_ENV;
use crate::cancel;
use crate::error::{Error, IoContext, Result};
use crate::manifest::{ImageFile, Manifest};

const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Tries per request to the origin source: a cut or stalled transfer
/// starts over; an answer that arrives whole but is wrong does not.
const ATTEMPTS: u32 = 3;

/// [`READ_TIMEOUT_ENV`], else two minutes.
fn read_timeout() -> Result<Duration> {
    imgapi_api::read_timeout_from_env(READ_TIMEOUT_ENV, DEFAULT_READ_TIMEOUT)
        .map_err(|m| Error::input(READ_TIMEOUT_ENV, "(value)", m))
}

/// Why a request failed: the transfer (worth another try) or anything
/// else.
pub(super) enum Failed {
    Transfer(Error),
    Final(Error),
}

/// `attempt`, again after a cut or stalled transfer, up to [`ATTEMPTS`]
/// tries.
pub(super) fn retrying<T>(
    progress: &dyn Progress,
    mut attempt: impl FnMut() -> Result<T, Failed>,
) -> Result<T> {
    let mut tries = 1;
    loop {
        match attempt() {
            Ok(t) => return Ok(t),
            Err(Failed::Transfer(e)) if tries < ATTEMPTS => {
                progress.warn(&format!(
                    "{e}; retrying ({tries} of {ATTEMPTS} tries failed)"
                ));
                tries += 1;
            }
            Err(Failed::Transfer(e)) => {
                return Err(Error::Command(format!("{e} (all {ATTEMPTS} tries failed)")));
            }
            Err(Failed::Final(e)) => return Err(e),
        }
    }
}

/// What this tool adds to a timeout or an untrusted certificate.
fn hints(stalled: &str) -> client_error::Hints<'_> {
    client_error::Hints {
        timeout: stalled,
        tls: "TLS: this machine does not trust the server's certificate",
    }
}

fn stalled() -> String {
    format!(
        "no data within the read timeout: the server stalled; {READ_TIMEOUT_ENV} sets the limit"
    )
}

/// An IMGAPI source, spoken to through imgapi-client. This pipeline is
/// synchronous, so the client runs on a small runtime of its own.
pub(super) struct Remote {
    runtime: tokio::runtime::Runtime,
    client: imgapi_client::Client,
    /// Shared with the client: the status of its last response.
    auth: imgapi_client::Auth,
    /// No query, no trailing `/`.
    base: String,
    channel: Option<String>,
}

impl Remote {
    /// A client for `source`; a `?channel=` in it counts unless `channel`
    /// is given.
    pub(super) fn new(source: &str, channel: Option<&str>) -> Result<Remote> {
        let (base, in_url) = imgapi_client::split_source(source)
            .map_err(|m| Error::input("--source", source, format!("expected a URL: {m}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            // Each read, the wait for the answer included; not the whole
            // download.
            .read_timeout(read_timeout()?)
            .user_agent(concat!("zone-image/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::Command(format!(
                    "creating the HTTP client: {}",
                    error_line::one_line(&e)
                ))
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .io_context(|| "starting the HTTP client's runtime".to_string())?;
        let auth = imgapi_client::Auth::new(None);
        Ok(Remote {
            runtime,
            client: imgapi_client::Client::new_with_client(&base, http, auth.clone()),
            auth,
            base,
            channel: channel.map(str::to_string).or(in_url),
        })
    }

    /// `<op> <uuid> at <base>`, as errors name a request.
    fn op(&self, op: &str, uuid: Uuid) -> String {
        format!("{op} {uuid} at {}", self.base)
    }

    /// GetImage; `None` only for a 404.
    pub(super) fn get_image(&self, uuid: Uuid) -> Result<Option<Manifest>, Failed> {
        let op = self.op("GetImage", uuid);
        let mut source = format!("{}/images/{uuid}", self.base);
        let mut req = self.client.get_image().uuid(uuid);
        if let Some(c) = &self.channel {
            req = req.channel(c.clone());
            source = format!("{source}?channel={c}");
        }
        match self.runtime.block_on(req.send()) {
            Ok(rv) => Manifest::new(source, rv.into_inner())
                .map(Some)
                .map_err(Failed::Final),
            // A whole answer that is not a manifest: say which key is wrong.
            Err(imgapi_client::Error::InvalidResponsePayload(body, _))
                if self.auth.last_status().is_some_and(|s| s < 300) =>
            {
                let text = String::from_utf8_lossy(&body);
                Err(Failed::Final(match Manifest::parse(&source, &text) {
                    Err(e) => e,
                    Ok(_) => Error::Command(format!("{op}: the answer could not be read")),
                }))
            }
            Err(e) => match self.failed(&op, &e) {
                (Some(404), _) => Ok(None),
                (_, failed) => Err(failed),
            },
        }
    }

    /// One line saying which request failed and why, and its status; only
    /// a transfer that broke off is worth another try.
    fn failed<E: std::fmt::Display>(
        &self,
        op: &str,
        e: &imgapi_client::Error<E>,
    ) -> (Option<u16>, Failed) {
        let f = client_error::describe(e, "IMGAPI", self.auth.last_status(), hints(&stalled()));
        let err = Error::Command(format!("{op}: {}", f.detail));
        let failed = if f.transfer {
            Failed::Transfer(err)
        } else {
            Failed::Final(err)
        };
        (f.status, failed)
    }
}

/// GetImageFile streamed into a temp file, hashed as it lands; the file
/// is kept only if size and sha1 match the manifest (and the
/// `Content-MD5` IMGAPI sends, when sent).
pub(super) fn download(
    remote: &Remote,
    manifest: &Manifest,
    file: &ImageFile,
    progress: &dyn Progress,
) -> Result<tempfile::NamedTempFile, Failed> {
    let op = remote.op("GetImageFile", manifest.uuid);
    let mut req = remote.client.get_image_file().uuid(manifest.uuid);
    if let Some(c) = &remote.channel {
        req = req.channel(c.clone());
    }
    let rv = remote.runtime.block_on(req.send()).map_err(|e| {
        // The error answer arrives as a byte stream, like the file.
        let e = remote
            .runtime
            .block_on(client_error::typed_error::<ImgapiError>(e, 64 * 1024));
        remote.failed(&op, &e).1
    })?;
    // IMGAPI sends it on every GetImageFile; a plain file server may not.
    let content_md5 = match rv.headers().get(imgapi_api::CONTENT_MD5) {
        Some(v) => Some(v.to_str().map(str::to_string).map_err(|_| {
            Failed::Final(Error::Command(format!(
                "{op}: the Content-MD5 header is not text"
            )))
        })?),
        None => None,
    };
    let mut stream = rv.into_inner().into_inner();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("zone-image-origin-{}-", manifest.uuid))
        .tempfile()
        .io_context(|| "creating a temp file for an origin image".to_string())
        .map_err(Failed::Final)?;
    let mut check = imgapi_api::FileCheck::new(file, content_md5);
    let bar = progress.transfer(&format!("origin {}", manifest.uuid), Some(file.size));
    let mismatch = |m: imgapi_api::FileMismatch| {
        let e = Error::Command(format!("{op}: {m}"));
        // Short: the connection closed early without saying so.
        if m.is_short() {
            Failed::Transfer(e)
        } else {
            Failed::Final(e)
        }
    };
    loop {
        cancel::check().map_err(Failed::Final)?;
        let chunk = match remote.runtime.block_on(stream.next()) {
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                let why = client_error::transport(&e, hints(&stalled()));
                return Err(Failed::Transfer(Error::Command(format!(
                    "{op}: broke off after {} bytes: {why}",
                    check.received()
                ))));
            }
        };
        check.update(&chunk).map_err(mismatch)?;
        bar.inc(chunk.len() as u64);
        tmp.write_all(&chunk)
            .io_context(|| format!("writing {}", tmp.path().display()))
            .map_err(Failed::Final)?;
    }
    tmp.flush()
        .io_context(|| format!("writing {}", tmp.path().display()))
        .map_err(Failed::Final)?;
    bar.finish();
    check.finish().map_err(mismatch)?;
    Ok(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use progress::Silent;
    use sha1::{Digest as _, Sha1};
    use std::io::{BufRead as _, BufReader};

    /// A one-request HTTP server on loopback answering `body` with the
    /// given extra header line (empty for none).
    fn serve_once(body: Vec<u8>, header: String) -> String {
        serve_status(200, body, header)
    }

    fn serve_status(status: u16, body: Vec<u8>, header: String) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let mut w = stream;
            write!(
                w,
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{header}connection: close\r\n\r\n",
                body.len()
            )
            .unwrap();
            w.write_all(&body).unwrap();
        });
        format!("http://{addr}")
    }

    #[test]
    fn download_checks_content_md5_when_sent() {
        let body = b"an origin image".to_vec();
        let mut md5 = imgapi_api::ContentMd5::new();
        md5.update(&body);
        let good = md5.finish();
        let manifest = Manifest::parse(
            "m.json",
            &serde_json::json!({
                "uuid": "01b2c898-945f-11e1-a523-af1afbe22822", "name": "o", "version": "1",
                "owner": "00000000-0000-0000-0000-000000000000",
                "type": "zone-dataset", "os": "smartos",
                "files": [{"sha1": hex::encode(Sha1::digest(&body)), "size": body.len(),
                           "compression": "none"}]
            })
            .to_string(),
        )
        .unwrap();
        let file = manifest.file().unwrap();
        for header in [format!("content-md5: {good}\r\n"), String::new()] {
            let remote = Remote::new(&serve_once(body.clone(), header), None).unwrap();
            let tmp = retrying(&Silent, || download(&remote, &manifest, &file, &Silent)).unwrap();
            assert_eq!(std::fs::read(tmp.path()).unwrap(), body);
        }
        // Right bytes, wrong digest: the server's word is checked too.
        let url = serve_once(
            body.clone(),
            "content-md5: AAAAAAAAAAAAAAAAAAAAAA==\r\n".into(),
        );
        let remote = Remote::new(&url, None).unwrap();
        let err = retrying(&Silent, || download(&remote, &manifest, &file, &Silent))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Content-MD5 mismatch") && err.contains(&url),
            "{err}"
        );
    }

    #[test]
    fn a_manifest_that_is_not_one_names_the_key() {
        let url = serve_once(
            br#"{"uuid": "01b2c898-945f-11e1-a523-af1afbe22822", "name": "o"}"#.to_vec(),
            "content-type: application/json\r\n".into(),
        );
        let remote = Remote::new(&format!("{url}/?channel=dev"), None).unwrap();
        let uuid: Uuid = "01b2c898-945f-11e1-a523-af1afbe22822".parse().unwrap();
        let err = retrying(&Silent, || remote.get_image(uuid)).unwrap_err();
        let msg = err.to_string();
        assert!(err.is_input(), "{msg}");
        assert!(
            msg.starts_with(&format!(
                "{url}/images/{uuid}?channel=dev: (document): missing field"
            )),
            "{msg}"
        );
    }

    #[test]
    fn failed_answers_are_absent_only_for_404() {
        let uuid: Uuid = "01b2c898-945f-11e1-a523-af1afbe22822".parse().unwrap();
        let restify = |code: &str| format!(r#"{{"code":"{code}","message":"m"}}"#).into_bytes();
        let ctype = || "content-type: application/json\r\n".to_string();
        for body in [restify("ResourceNotFound"), b"<html>nope</html>".to_vec()] {
            let remote = Remote::new(&serve_status(404, body, ctype()), None).unwrap();
            assert!(
                retrying(&Silent, || remote.get_image(uuid))
                    .unwrap()
                    .is_none()
            );
        }
        // One connection only: a retry would fail differently.
        for (status, body, want) in [
            (
                503,
                restify("ServiceUnavailable"),
                "503 Service Unavailable: ServiceUnavailable",
            ),
            (
                502,
                b"<html>bad gateway</html>".to_vec(),
                "502: the answer is not an IMGAPI response",
            ),
        ] {
            let url = serve_status(status, body, ctype());
            let remote = Remote::new(&url, None).unwrap();
            let e = retrying(&Silent, || remote.get_image(uuid)).unwrap_err();
            let msg = e.to_string();
            assert!(!e.is_input(), "{msg}");
            assert!(
                msg.starts_with(&format!("GetImage {uuid} at {url}: {want}")),
                "{msg}"
            );
        }
        let manifest = Manifest::parse(
            "m.json",
            &serde_json::json!({
                "uuid": uuid, "name": "o", "version": "1",
                "owner": "00000000-0000-0000-0000-000000000000",
                "type": "zone-dataset", "os": "smartos",
                "files": [{"sha1": "97f20b32c2016782257176fb58a35e5044f05840", "size": 1,
                           "compression": "gzip"}]
            })
            .to_string(),
        )
        .unwrap();
        let file = manifest.file().unwrap();
        let url = serve_status(500, restify("InternalError"), ctype());
        let remote = Remote::new(&url, None).unwrap();
        let msg = retrying(&Silent, || download(&remote, &manifest, &file, &Silent))
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            format!("GetImageFile {uuid} at {url}: 500 Internal Server Error: InternalError: m")
        );
    }
}
