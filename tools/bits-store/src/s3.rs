//! S3-compatible object storage through `object_store` (signing, retries
//! with backoff on 5xx/429/timeouts/connection errors), but for multipart
//! uploads, which `multipart` sends with CRC32 part checksums.
//!
//! The md5 of an object: a single-PUT file is hashed as it is read and
//! sent, and carries its md5 as `x-amz-meta-md5`. A multipart file's md5
//! comes from a second, low-priority read (see
//! `hash::reread_in_background`) whose per-part CRC32s must equal those
//! the parts were sent with; it is known only after the upload started,
//! too late for metadata, and a multipart ETag is not an md5. So the md5
//! of a stored object is, in order: its `x-amz-meta-md5`, else the line
//! for it in the stamp's md5sums.txt (written after every file is stored
//! and verified), else the md5 of its bytes, streamed back (an upload
//! killed before md5sums.txt, or an object another tool wrote: slow, but
//! never wrong). ETags are never taken for md5s: SSE-KMS and multipart
//! make them something else.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::Method;
use object_store::aws::{AmazonS3, AmazonS3Builder, Checksum};
use object_store::client::{HttpConnector as _, ReqwestConnector};
use object_store::path::Path as ObjPath;
use object_store::signer::Signer as _;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt,
    PutOptions, PutPayload, RetryConfig,
};
use tokio::io::AsyncWriteExt;

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::hash::Md5;
use crate::multipart;
use progress::Transfer;

/// Part size for multipart uploads; files up to this size go in one PUT.
/// Memory in flight is at most `jobs` parts. Against moto 16 MiB cost the
/// server least CPU of 8, 12, 16, 24 and 32 MiB, and it is well inside
/// S3's limits (5 MiB..5 GiB per part, 10,000 parts: files up to 156 GiB).
pub const PART_SIZE: usize = 16 << 20;

const MD5_META: &str = "md5";

#[derive(Debug)]
pub struct S3Store {
    s3: Arc<AmazonS3>,
    multipart: Arc<multipart::Client>,
    bucket: String,
    prefix: String,
    endpoint: String,
    dest: String,
}

/// The `AWS_*` settings a store is opened with: the process environment
/// normally, an explicit set in tests (which run side by side in one
/// process, each against its own server).
#[derive(Debug, Clone, Default)]
pub struct S3Env(Vec<(String, String)>);

impl S3Env {
    pub fn process() -> S3Env {
        S3Env(
            std::env::vars()
                .filter(|(k, _)| k.starts_with("AWS_"))
                .collect(),
        )
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> S3Env {
        S3Env(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    fn get(&self, k: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(key, v)| key == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    }
}

/// One line from an object_store error: the whole source chain, with an
/// S3 XML error body reduced to its Code and Message.
pub(crate) fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    reduce(error_line::one_line(e))
}

/// A message with an S3 XML error body in it, reduced to its Code and
/// Message, on one line of at most 400 characters.
pub(crate) fn reduce(mut msg: String) -> String {
    if let Some(i) = msg.find("<?xml").or_else(|| msg.find("<Error>")) {
        let tag = |t: &str| {
            let open = format!("<{t}>");
            let close = format!("</{t}>");
            let a = msg.find(&open)? + open.len();
            let b = msg[a..].find(&close)? + a;
            Some(msg[a..b].to_string())
        };
        let code = tag("Code").unwrap_or_default();
        let text = tag("Message").unwrap_or_default();
        msg = format!("{}{code}: {text}", &msg[..i]);
    }
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    if msg.chars().count() > 400 {
        let cut: String = msg.chars().take(400).collect();
        format!("{cut}...")
    } else {
        msg
    }
}

fn content_type(file: &str) -> &'static str {
    // As eng's bits-upload.sh labels them.
    if file.ends_with(".gz") || file.ends_with(".tgz") {
        "application/gzip"
    } else if file.ends_with(".txt")
        || file.ends_with(".log")
        || file.ends_with("-latest")
        || file.ends_with("/latest-release")
    {
        "text/plain"
    } else if file.ends_with(".json") {
        "application/json"
    } else if file.ends_with(".html") {
        "text/html"
    } else {
        "application/octet-stream"
    }
}

fn attributes(key: &str, md5: Option<&str>) -> Attributes {
    let mut a = Attributes::new();
    a.insert(Attribute::ContentType, content_type(key).into());
    if let Some(m) = md5 {
        a.insert(Attribute::Metadata(MD5_META.into()), m.to_string().into());
    }
    a
}

/// Up to `limit` bytes of a file, their CRC32, and the file's md5 so far
/// if one is kept.
struct PartRead {
    data: Bytes,
    crc32: u32,
    file: File,
    hash: Option<Md5>,
}

/// Read up to `limit` bytes of `file` (`src`, opened if None) into a
/// pooled buffer on the blocking pool, hashing each chunk as it lands
/// (CRC32 always, md5 if `hash` is given). A short part means the end of
/// the file.
async fn read_part(
    src: &Path,
    file: Option<File>,
    mut hash: Option<Md5>,
    limit: usize,
    ctx: &Ctx,
) -> Result<PartRead> {
    let path = src.to_path_buf();
    let pool = ctx.bufs.clone();
    let job = move || {
        let mut file = match file {
            Some(f) => f,
            None => File::open(&path).map_err(|e| Error::io(&path, e))?,
        };
        // read_to_end fills spare capacity without zeroing it first.
        let mut buf = pool.take(limit);
        let mut crc = crc32fast::Hasher::new();
        while buf.len() < limit {
            let start = buf.len();
            let step = (limit - start).min(crate::hash::CHUNK) as u64;
            let n = Read::take(&mut file, step)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(&path, e))?;
            if n == 0 {
                break;
            }
            if let Some(h) = &mut hash {
                h.update(&buf[start..]);
            }
            crc.update(&buf[start..]);
        }
        Ok(PartRead {
            data: pool.share(buf),
            crc32: crc.finalize(),
            file,
            hash,
        })
    };
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| Error::io(src, std::io::Error::other(e)))?
}

/// Retries with backoff on 5xx, 429, timeouts and connection errors, for
/// object_store's requests and our multipart ones alike.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(8),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(120),
    }
}

impl S3Store {
    /// Connect and check the bucket is there, so that bad credentials, an
    /// unreachable endpoint or a missing bucket fail before any work.
    pub async fn open(bucket: &str, prefix: &str, env: &S3Env) -> Result<S3Store> {
        let dest = crate::Dest::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        }
        .to_string();
        // Without credentials object_store would ask the EC2 instance
        // metadata service, which is the wrong answer on a build machine.
        let has_keys =
            env.get("AWS_ACCESS_KEY_ID").is_some() && env.get("AWS_SECRET_ACCESS_KEY").is_some();
        let has_other = env.get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some()
            || env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI").is_some()
            || env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI").is_some()
            || env.get("AWS_SKIP_SIGNATURE").is_some_and(|v| v == "true");
        if !has_keys && !has_other {
            return Err(Error::MissingCredentials { dest });
        }
        let endpoint = env
            .get("AWS_ENDPOINT_URL_S3")
            .or_else(|| env.get("AWS_ENDPOINT_URL"))
            .or_else(|| env.get("AWS_ENDPOINT"));
        let region = env
            .get("AWS_REGION")
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        // object_store's PUTs (files up to one part, md5sums.txt,
        // pointers) carry a SHA-256 checksum: it reuses the digest it
        // signs the payload with, so it costs nothing more, and the store
        // checks the bytes against it.
        let mut b = AmazonS3Builder::new().with_checksum_algorithm(Checksum::SHA256);
        for (k, v) in &env.0 {
            if let Ok(key) = k.to_ascii_lowercase().parse() {
                b = b.with_config(key, v);
            }
        }
        // Asking for http:// in the endpoint is consent enough.
        let client_options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(300))
            .with_allow_http(endpoint.as_ref().is_some_and(|e| e.starts_with("http://")));
        let mut b = b
            .with_bucket_name(bucket)
            .with_region(&region)
            .with_retry(retry_config())
            .with_client_options(client_options.clone());
        let shown = match &endpoint {
            Some(ep) => {
                if !(ep.starts_with("http://") || ep.starts_with("https://")) {
                    return Err(Error::BadDest {
                        dest,
                        expected: format!(
                            "AWS_ENDPOINT_URL {ep:?} is not an http:// or https:// URL"
                        ),
                    });
                }
                b = b.with_endpoint(ep);
                ep.clone()
            }
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        let bad = |e: object_store::Error| Error::BadDest {
            dest: dest.clone(),
            expected: one_line(&e),
        };
        let s3 = b.build().map_err(bad)?;
        let multipart = multipart::Client {
            http: ReqwestConnector::default()
                .connect(&client_options)
                .map_err(bad)?,
            creds: s3.credentials().clone(),
            region,
            retry: retry_config(),
        };
        let store = S3Store {
            s3: Arc::new(s3),
            multipart: Arc::new(multipart),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: shown,
            dest,
        };
        store.check_bucket().await?;
        Ok(store)
    }

    async fn check_bucket(&self) -> Result<()> {
        let p = (!self.prefix.is_empty()).then(|| ObjPath::from(self.prefix.as_str()));
        match self.s3.list_with_delimiter(p.as_ref()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let msg = one_line(&e);
                if msg.contains("NoSuchBucket") {
                    Err(Error::NoBucket {
                        dest: self.dest.clone(),
                        bucket: self.bucket.clone(),
                        endpoint: self.endpoint.clone(),
                    })
                } else {
                    Err(Error::Remote {
                        object: format!("{} (at {})", self.dest, self.endpoint),
                        message: msg,
                    })
                }
            }
        }
    }

    fn path(&self, key: &str) -> ObjPath {
        if self.prefix.is_empty() {
            ObjPath::from(key)
        } else {
            ObjPath::from(format!("{}/{key}", self.prefix))
        }
    }

    pub fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.path(key))
    }

    fn err(&self, key: &str, e: object_store::Error) -> Error {
        self.remote(key, one_line(&e))
    }

    /// A permit of `sem`, for work on `key`; closed means cancelled.
    async fn acquire(
        &self,
        key: &str,
        sem: &Arc<tokio::sync::Semaphore>,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        sem.clone()
            .acquire_owned()
            .await
            .map_err(|_| self.remote(key, "upload cancelled".into()))
    }

    fn remote(&self, key: &str, message: String) -> Error {
        Error::Remote {
            object: self.location(key),
            message,
        }
    }

    /// The `-latest` object's body: the stamp dir as an absolute path in
    /// the store, `/<bucket>/<key>`, as eng's Manta mode writes
    /// `/<account>/<path>`.
    pub fn pointer_body(&self, stamp_dir_key: &str) -> String {
        format!("/{}/{}\n", self.bucket, self.path(stamp_dir_key))
    }

    /// HEAD: size and stored md5 metadata; None if absent.
    async fn head(&self, key: &str) -> Result<Option<(u64, Option<String>)>> {
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.s3.get_opts(&self.path(key), opts).await {
            Ok(r) => {
                let md5 = r
                    .attributes
                    .get(&Attribute::Metadata(MD5_META.into()))
                    .map(|v| v.to_string().to_ascii_lowercase());
                Ok(Some((r.meta.size, md5)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    pub async fn existing_md5(
        &self,
        key: &str,
        listed: Option<String>,
    ) -> Result<Option<(u64, String)>> {
        match self.head(key).await? {
            None => Ok(None),
            Some((size, Some(md5))) => Ok(Some((size, md5))),
            Some((size, None)) if listed.is_some() => Ok(listed.map(|m| (size, m))),
            Some((size, None)) => {
                let mut h = Md5::new();
                let r = self
                    .s3
                    .get(&self.path(key))
                    .await
                    .map_err(|e| self.err(key, e))?;
                let mut s = r.into_stream();
                while let Some(chunk) = s.next().await {
                    h.update(&chunk.map_err(|e| self.err(key, e))?);
                }
                Ok(Some((size, h.hex())))
            }
        }
    }

    /// Upload a file (one PUT, or multipart with up to `jobs` parts in
    /// flight), hashing it on the way; then HEAD it to check it landed
    /// whole. Returns the md5 of what was sent.
    pub async fn put_file(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        bar: &Transfer,
        ctx: &Ctx,
    ) -> Result<String> {
        let path = self.path(key);
        let turn = self.acquire(key, &ctx.read_turn).await?;
        let md5 = if size <= PART_SIZE as u64 {
            // Take the permit before reading: it bounds buffered bytes too.
            let permit = ctx.sem.acquire().await;
            let PartRead { data, hash, .. } =
                read_part(src, None, Some(Md5::new()), size as usize, ctx).await?;
            drop(turn);
            let md5 = hash.unwrap_or_default().hex();
            let opts = PutOptions {
                attributes: attributes(key, Some(&md5)),
                ..Default::default()
            };
            let n = data.len() as u64;
            self.s3
                .put_opts(&path, PutPayload::from(data), opts)
                .await
                .map_err(|e| self.err(key, e))?;
            drop(permit);
            bar.inc(n);
            ctx.chunk_written();
            md5
        } else {
            // object_store's own URL for the object (path or virtual-hosted
            // style, as configured), without the signature's query.
            let mut url = self
                .s3
                .signed_url(Method::PUT, &path, Duration::from_secs(60))
                .await
                .map_err(|e| self.err(key, e))?;
            url.set_query(None);
            let up = multipart::Upload::create(
                self.multipart.clone(),
                url.to_string(),
                content_type(key),
            )
            .await
            .map_err(|m| self.remote(key, m))?;
            let reread = crate::hash::reread_in_background(src.to_path_buf(), PART_SIZE);
            let sent = match self.send_parts(key, src, &up, turn, bar, ctx).await {
                Ok(parts) => {
                    let crcs = parts.iter().map(|p| p.crc).collect::<Vec<_>>();
                    if let Err(m) = up.complete(parts).await {
                        up.abort().await;
                        return Err(self.remote(key, m));
                    }
                    crcs
                }
                Err(e) => {
                    up.abort().await;
                    return Err(e);
                }
            };
            let again = reread.await.map_err(|_| {
                Error::io(
                    src,
                    std::io::Error::other("the md5 thread ended without an answer"),
                )
            })??;
            // The md5 comes from a second read: it is the md5 of what was
            // sent only if that read saw the same bytes.
            if again.part_crcs != sent {
                return Err(Error::ChangedDuringUpload {
                    path: src.to_path_buf(),
                    detail: "a second read for its md5 gave different bytes".into(),
                });
            }
            again.md5
        };
        match self.head(key).await? {
            Some((n, m)) if n == size && m.as_ref().is_none_or(|m| *m == md5) => Ok(md5),
            Some((n, m)) => Err(Error::Remote {
                object: self.location(key),
                message: format!(
                    "after upload the store reports {n} bytes, md5 {}; sent {size} bytes, md5 {md5}",
                    m.as_deref().unwrap_or("(none)")
                ),
            }),
            None => Err(Error::Remote {
                object: self.location(key),
                message: "missing right after its upload completed".into(),
            }),
        }
    }

    /// Send `src` in parts, up to `jobs` at once, giving up the read turn
    /// after the last read; returns the parts stored, in order.
    async fn send_parts(
        &self,
        key: &str,
        src: &Path,
        up: &multipart::Upload,
        turn: tokio::sync::OwnedSemaphorePermit,
        bar: &Transfer,
        ctx: &Ctx,
    ) -> Result<Vec<multipart::Part>> {
        let mut turn = Some(turn);
        let mut file = None;
        let mut tasks = Vec::new();
        let mut parts = Vec::new();
        let mut number = 0u32;
        loop {
            // Take the permit before reading, so buffered parts never
            // exceed the budget.
            let permit = self.acquire(key, &ctx.sem).await?;
            let read = read_part(src, file, None, PART_SIZE, ctx).await?;
            file = Some(read.file);
            let part = read.data;
            let last = part.len() < PART_SIZE;
            if last {
                turn.take();
            }
            if part.is_empty() {
                break;
            }
            number += 1;
            let n = part.len() as u64;
            let (up, bar, crc) = (up.clone(), bar.clone(), read.crc32);
            tasks.push(tokio::spawn(async move {
                let r = up.put_part(number, part, crc).await;
                drop(permit);
                if r.is_ok() {
                    bar.inc(n);
                }
                r
            }));
            ctx.chunk_written();
            if last {
                break;
            }
            // Stop early once any part has failed for good.
            if tasks.iter().any(|t| t.is_finished()) {
                let (done, pending): (Vec<_>, Vec<_>) =
                    tasks.into_iter().partition(|t| t.is_finished());
                tasks = pending;
                for t in done {
                    parts.push(self.join_part(key, t).await?);
                }
            }
        }
        for t in tasks {
            parts.push(self.join_part(key, t).await?);
        }
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    async fn join_part(
        &self,
        key: &str,
        t: tokio::task::JoinHandle<std::result::Result<multipart::Part, String>>,
    ) -> Result<multipart::Part> {
        match t.await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(m)) => Err(self.remote(key, m)),
            Err(e) => Err(self.remote(key, format!("part upload task failed: {e}"))),
        }
    }

    /// Write a small object unless it already holds `body`; true if written.
    pub async fn put_small(&self, key: &str, body: &[u8]) -> Result<bool> {
        if self.get_small(key).await?.as_deref() == Some(body) {
            return Ok(false);
        }
        let opts = PutOptions {
            attributes: attributes(key, None),
            ..Default::default()
        };
        self.s3
            .put_opts(
                &self.path(key),
                PutPayload::from(Bytes::copy_from_slice(body)),
                opts,
            )
            .await
            .map_err(|e| self.err(key, e))?;
        Ok(true)
    }

    pub async fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.s3.get(&self.path(key)).await {
            Ok(r) => Ok(Some(
                r.bytes().await.map_err(|e| self.err(key, e))?.to_vec(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(key, e)),
        }
    }

    /// Stream `key` into `out`; None if there is no such object.
    pub async fn download(&self, key: &str, out: &Path, bar: &Transfer) -> Result<Option<String>> {
        let r = match self.s3.get(&self.path(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(key, e)),
        };
        let mut f = tokio::fs::File::create(out)
            .await
            .map_err(|e| Error::io(out, e))?;
        let mut h = Md5::new();
        let mut s = r.into_stream();
        while let Some(chunk) = s.next().await {
            let chunk = chunk.map_err(|e| self.err(key, e))?;
            h.update(&chunk);
            f.write_all(&chunk).await.map_err(|e| Error::io(out, e))?;
            bar.inc(chunk.len() as u64);
        }
        f.sync_all().await.map_err(|e| Error::io(out, e))?;
        Ok(Some(h.hex()))
    }
}
