//! One interface over the two kinds of bits storage. Local work is blocking
//! file I/O, so it runs on tokio's blocking pool.

use std::path::Path;
use std::sync::Arc;

use crate::ctx::Ctx;
use crate::dest::Dest;
use crate::error::{Error, Result};
use crate::local::LocalStore;
use crate::s3::{S3Env, S3Store};
use progress::Transfer;

#[derive(Debug, Clone)]
pub enum Store {
    Local(Arc<LocalStore>),
    S3(Arc<S3Store>),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Remote {
            object: "local store".into(),
            message: format!("worker failed: {e}"),
        })?
}

impl Store {
    pub async fn open(dest: &Dest, env: &S3Env) -> Result<Store> {
        match dest {
            Dest::Local(p) => Ok(Store::Local(Arc::new(LocalStore::open(p)?))),
            Dest::S3 { bucket, prefix } => Ok(Store::S3(Arc::new(
                S3Store::open(bucket, prefix, env).await?,
            ))),
        }
    }

    /// Where `key` lives, as a path or `s3://` URL.
    pub fn location(&self, key: &str) -> String {
        match self {
            Store::Local(l) => l.location(key),
            Store::S3(s) => s.location(key),
        }
    }

    /// Size and md5 of what is stored under `key`, None if nothing is.
    /// `listed` is the md5 the stamp's md5sums.txt gives for it, if any.
    pub async fn existing_md5(
        &self,
        key: &str,
        listed: Option<String>,
    ) -> Result<Option<(u64, String)>> {
        match self {
            Store::Local(l) => {
                let (l, key) = (l.clone(), key.to_string());
                blocking(move || l.existing_md5(&key)).await
            }
            Store::S3(s) => s.existing_md5(key, listed).await,
        }
    }

    /// Store a file, reading it once; returns the md5 of what was sent.
    pub async fn put_file(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        bar: &Transfer,
        ctx: &Arc<Ctx>,
    ) -> Result<String> {
        match self {
            Store::Local(l) => {
                let (l, key, src) = (l.clone(), key.to_string(), src.to_path_buf());
                let (bar, ctx) = (bar.clone(), ctx.clone());
                blocking(move || l.put_file(&key, &src, &bar, &ctx)).await
            }
            Store::S3(s) => s.put_file(key, src, size, bar, ctx).await,
        }
    }

    pub async fn put_small(&self, key: &str, body: Vec<u8>) -> Result<bool> {
        match self {
            Store::Local(l) => {
                let (l, key) = (l.clone(), key.to_string());
                blocking(move || l.put_small(&key, &body)).await
            }
            Store::S3(s) => s.put_small(key, &body).await,
        }
    }

    pub async fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Store::Local(l) => {
                let (l, key) = (l.clone(), key.to_string());
                blocking(move || l.get_small(&key)).await
            }
            Store::S3(s) => s.get_small(key).await,
        }
    }

    /// Point `pointer_key` at the stamp dir `stamp_dir_key` (a sibling);
    /// true if it changed.
    pub async fn set_pointer(&self, pointer_key: &str, stamp_dir_key: &str) -> Result<bool> {
        match self {
            Store::Local(l) => {
                let stamp = stamp_dir_key.rsplit('/').next().unwrap_or(stamp_dir_key);
                let (l, key, stamp) = (l.clone(), pointer_key.to_string(), stamp.to_string());
                blocking(move || l.set_pointer(&key, &stamp)).await
            }
            Store::S3(s) => {
                let body = s.pointer_body(stamp_dir_key);
                s.put_small(pointer_key, body.as_bytes()).await
            }
        }
    }

    /// The stamp a pointer names (its last path segment), None if absent.
    pub async fn read_pointer(&self, pointer_key: &str) -> Result<Option<String>> {
        let raw = match self {
            Store::Local(l) => {
                let (l, key) = (l.clone(), pointer_key.to_string());
                blocking(move || l.read_pointer(&key)).await?
            }
            Store::S3(s) => s
                .get_small(pointer_key)
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned()),
        };
        Ok(raw.map(|r| {
            let r = r.trim().trim_end_matches('/');
            r.rsplit('/').next().unwrap_or(r).to_string()
        }))
    }

    pub async fn download(&self, key: &str, out: &Path, bar: &Transfer) -> Result<Option<String>> {
        match self {
            Store::Local(l) => {
                let (l, key, out) = (l.clone(), key.to_string(), out.to_path_buf());
                let bar = bar.clone();
                blocking(move || l.download(&key, &out, &bar)).await
            }
            Store::S3(s) => s.download(key, out, bar).await,
        }
    }
}
