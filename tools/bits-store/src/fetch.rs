//! `bits fetch`: resolve a stamp (from `<branch>-latest` or given), pull its
//! files into `<out>/<name>/`, and check every one against md5sums.txt.
//! Each file lands under a temp name and is renamed only once verified.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use buildstamp::Stamp;
use futures::StreamExt;

use crate::ctx::Ctx;
use crate::dest::Dest;
use crate::error::{Error, Result};
use crate::layout::{self, Layout};
use crate::s3::S3Env;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub dest: Dest,
    pub prefix: String,
    pub name: String,
    /// Branch whose `-latest` to follow; None: the current git branch of
    /// the working directory (an error when git cannot name one).
    pub branch: Option<String>,
    pub stamp: Option<String>,
    pub out: PathBuf,
    /// `AWS_*` settings for an s3:// dest.
    pub s3_env: S3Env,
}

#[derive(Debug)]
pub struct FetchReport {
    pub stamp: String,
    pub files: Vec<PathBuf>,
}

pub async fn fetch(opts: &FetchOptions, ctx: Arc<Ctx>) -> Result<FetchReport> {
    layout::check_name(&opts.name)?;
    let prefix = layout::normalize_prefix(&opts.prefix)?;
    let lay = Layout::new(&prefix, &opts.name);
    if let Some(s) = &opts.stamp {
        Stamp::parse(s).map_err(|e| Error::BadFlag {
            flag: "--stamp",
            reason: e.to_string(),
        })?;
    }
    let branch = match &opts.branch {
        Some(b) => {
            layout::check_branch(b)?;
            b.clone()
        }
        None => {
            buildstamp::branch(Path::new("."), None).map_err(|source| Error::NoBranch { source })?
        }
    };
    let store = Store::open(&opts.dest, &opts.s3_env).await?;

    let stamp = match &opts.stamp {
        Some(s) => s.clone(),
        None => {
            let key = lay.pointer(&format!("{branch}-latest"));
            let s = store
                .read_pointer(&key)
                .await?
                .ok_or_else(|| Error::NotFound {
                    object: store.location(&key),
                    hint: format!("nothing of branch {branch} uploaded; pass --branch or --stamp"),
                })?;
            Stamp::parse(&s).map_err(|e| Error::BadRemote {
                object: store.location(&key),
                reason: e.to_string(),
            })?;
            s
        }
    };

    let sums_key = lay.md5sums(&stamp);
    let body = store
        .get_small(&sums_key)
        .await?
        .ok_or_else(|| Error::NotFound {
            object: store.location(&sums_key),
            hint: format!("stamp {stamp} is not (completely) uploaded"),
        })?;
    let sums = layout::parse_md5sums(&store.location(&sums_key), &String::from_utf8_lossy(&body))?;

    let dir = opts.out.join(&opts.name);
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let fetched: Vec<Result<PathBuf>> = futures::stream::iter(sums)
        .map(|(file, md5)| {
            let store = store.clone();
            let ctx = ctx.clone();
            let key = lay.file(&stamp, &file);
            let dir = dir.clone();
            async move {
                let out = dir.join(&file);
                let tmp = partial(&dir, &file);
                let bar = ctx.progress.transfer(&file, None);
                let got = store.download(&key, &tmp, &bar).await;
                bar.finish();
                let got = match got {
                    Ok(Some(g)) => g,
                    Ok(None) => {
                        return Err(Error::MissingObject {
                            object: store.location(&key),
                        });
                    }
                    Err(e) => {
                        let _ = fs::remove_file(&tmp);
                        return Err(e);
                    }
                };
                if got != md5 {
                    let _ = fs::remove_file(&tmp);
                    return Err(Error::Mismatch {
                        object: store.location(&key),
                        expected: md5,
                        actual: got,
                    });
                }
                fs::rename(&tmp, &out).map_err(|e| Error::io(&out, e))?;
                ctx.progress
                    .step(&format!("fetched {} (md5 {md5} ok)", out.display()));
                Ok(out)
            }
        })
        .buffer_unordered(ctx.jobs)
        .collect()
        .await;
    // Every transfer runs to its end (each removes its own temp file when
    // it fails) before the first error is reported: dropping the others
    // mid-file would leave their temp files behind, as local copies run
    // on threads that a drop does not stop.
    let mut files = fetched.into_iter().collect::<Result<Vec<_>>>()?;
    files.sort();
    Ok(FetchReport { stamp, files })
}

/// Where a file lands until its md5 is verified.
fn partial(dir: &Path, file: &str) -> PathBuf {
    dir.join(format!(".{file}.partial"))
}
