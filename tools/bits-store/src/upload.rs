//! `bits upload`: bits/<name>/ into a store, in three phases so that a
//! conflict changes nothing and a pointer never names an incomplete stamp:
//! 1. look at what the store already holds; for each object that exists,
//!    hash the local file and compare (a different md5 is refused before
//!    any write);
//! 2. store what is missing, hashing in the same read that sends it (one
//!    pass over each file), and verify each object;
//! 3. per component, md5sums.txt, then `<branch>-latest` (and
//!    `latest-release`).
//!
//! A rerun after an interruption redoes only what is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use buildstamp::Stamp;
use futures::{StreamExt, TryStreamExt};

use crate::ctx::{Ctx, PausePoint};
use crate::dest::Dest;
use crate::error::{Error, Result};
use crate::hash::md5_file;
use crate::layout::{self, Layout, STAMP_FILE};
use crate::s3::S3Env;
use crate::store::Store;

pub const ARTIFACTS: &str = "artifacts.txt";

#[derive(Debug, Clone)]
pub struct UploadOptions {
    pub bits_dir: PathBuf,
    pub names: Vec<String>,
    pub dest: Dest,
    /// Base under the store is `<prefix>/<name>` (eng's ENGBLD_DEST_OUT_PATH).
    pub prefix: String,
    /// Pointer branch; None: the stamp's (the one its build took from git
    /// or `BRANCH`).
    pub branch: Option<String>,
    pub allow_dirty: bool,
    /// Upload a dev build (host binaries in a SmartOS image) anyway.
    pub allow_dev: bool,
    /// `AWS_*` settings for an s3:// dest.
    pub s3_env: S3Env,
}

/// One component's bits, validated.
#[derive(Debug, Clone)]
pub struct Component {
    pub name: String,
    pub dir: PathBuf,
    pub stamp: Stamp,
    /// File names in `dir`, sorted. Every regular file goes, the stamp
    /// file included, as eng's `find bits/<name> -type f` sends them.
    pub files: Vec<String>,
    pub branch: String,
    pub layout: Layout,
}

#[derive(Debug, Default)]
pub struct UploadReport {
    /// (name, stamp, stamp dir location)
    pub stamps: Vec<(String, String, String)>,
    pub stored: usize,
    pub skipped: usize,
    pub artifacts: PathBuf,
}

/// The components under a bits dir: subdirs holding a latest-build-stamp.
pub fn list_components(bits_dir: &Path) -> Result<Vec<String>> {
    let rd = fs::read_dir(bits_dir).map_err(|e| Error::BadBits {
        path: bits_dir.to_path_buf(),
        reason: format!("cannot read the bits dir: {e}"),
    })?;
    let mut names = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(bits_dir, e))?;
        if ent.path().join(STAMP_FILE).is_file() {
            names.push(ent.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(Error::BadBits {
            path: bits_dir.to_path_buf(),
            reason: format!(
                "no <name>/{STAMP_FILE} under it; run `cargo xtask image build <name>` first"
            ),
        });
    }
    Ok(names)
}

pub fn load_component(opts: &UploadOptions, name: &str) -> Result<Component> {
    layout::check_name(name)?;
    let dir = opts.bits_dir.join(name);
    if !dir.is_dir() {
        return Err(Error::BadBits {
            path: dir,
            reason: format!("no such directory; run `cargo xtask image build {name}` first"),
        });
    }
    let stamp_path = dir.join(STAMP_FILE);
    let raw = fs::read_to_string(&stamp_path).map_err(|e| Error::BadBits {
        path: stamp_path.clone(),
        reason: format!("cannot read the build stamp: {e}"),
    })?;
    let line = raw.trim();
    let stamp = Stamp::parse(line).map_err(|e| Error::BadBits {
        path: stamp_path.clone(),
        reason: e.to_string(),
    })?;
    if stamp.dev && !opts.allow_dev {
        return Err(Error::DevBuild {
            path: stamp_path,
            stamp: stamp.to_string(),
        });
    }
    if stamp.dirty && !opts.allow_dirty {
        return Err(Error::Dirty {
            path: stamp_path,
            stamp: stamp.to_string(),
        });
    }
    let mut files = Vec::new();
    for ent in fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
        let ent = ent.map_err(|e| Error::io(&dir, e))?;
        let ft = ent.file_type().map_err(|e| Error::io(ent.path(), e))?;
        let fname = ent.file_name().to_string_lossy().into_owned();
        if !ft.is_file() {
            return Err(Error::BadBits {
                path: ent.path(),
                reason: "not a regular file; bits/<name>/ must hold only files".into(),
            });
        }
        if layout::check_name(&fname).is_err() {
            return Err(Error::BadBits {
                path: ent.path(),
                reason: "file name not usable as an object name (letters, digits, '-', '_', '.', '+'; no leading '.')".into(),
            });
        }
        // An artifact of another build would go out under this stamp's
        // directory; the build removes them, so one here was left by hand.
        if fname.starts_with(&format!("{name}-")) && !fname.contains(&stamp.to_string()) {
            return Err(Error::BadBits {
                path: ent.path(),
                reason: format!(
                    "not from the build {STAMP_FILE} names ({stamp}); remove it or rebuild"
                ),
            });
        }
        files.push(fname);
    }
    files.sort();
    let branch = match &opts.branch {
        Some(b) => {
            layout::check_branch(b)?;
            b.clone()
        }
        None => stamp.branch.clone(),
    };
    Ok(Component {
        name: name.to_string(),
        layout: Layout::new(&opts.prefix, name),
        dir,
        stamp,
        files,
        branch,
    })
}

struct Planned {
    comp: usize,
    file: String,
    src: PathBuf,
    key: String,
    size: u64,
    mtime: Option<SystemTime>,
    /// Known in phase 1 for objects already stored, else after phase 2.
    md5: Option<String>,
}

fn stat(path: &Path) -> Result<(u64, Option<SystemTime>)> {
    let m = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    Ok((m.len(), m.modified().ok()))
}

pub async fn upload(opts: &UploadOptions, ctx: Arc<Ctx>) -> Result<UploadReport> {
    let prefix = layout::normalize_prefix(&opts.prefix)?;
    let opts = UploadOptions {
        prefix,
        ..opts.clone()
    };
    if opts.names.is_empty() {
        return Err(Error::BadBits {
            path: opts.bits_dir.clone(),
            reason: "no component names given".into(),
        });
    }
    let mut names = opts.names.clone();
    names.sort();
    names.dedup();
    let comps = names
        .iter()
        .map(|n| load_component(&opts, n))
        .collect::<Result<Vec<_>>>()?;
    let store = Store::open(&opts.dest, &opts.s3_env).await?;

    // eng starts each upload with a fresh list.
    let artifacts = opts.bits_dir.join(ARTIFACTS);
    match fs::remove_file(&artifacts) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&artifacts, e)),
    }

    // Phase 1: compare with what is stored. A stamp's existing md5sums.txt
    // vouches for objects that carry no md5 of their own (see s3.rs).
    let mut stored_sums: Vec<Option<Vec<(String, String)>>> = Vec::new();
    for c in &comps {
        let key = c.layout.md5sums(&c.stamp.to_string());
        let sums = match store.get_small(&key).await? {
            // A stored md5sums.txt that does not parse is a damaged store,
            // not an absent one: say so rather than re-upload over it.
            Some(body) => Some(layout::parse_md5sums(
                &store.location(&key),
                &String::from_utf8_lossy(&body),
            )?),
            None => None,
        };
        stored_sums.push(sums);
    }
    let sums_for = |i: usize| stored_sums[i].as_deref();
    let work: Vec<(usize, String)> = comps
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.files.iter().map(move |f| (i, f.clone())))
        .collect();
    let mut plan: Vec<Planned> = futures::stream::iter(work)
        .map(|(i, file)| {
            let c = &comps[i];
            let src = c.dir.join(&file);
            let key = c.layout.file(&c.stamp.to_string(), &file);
            let store = store.clone();
            async move {
                let (size, mtime) = stat(&src)?;
                let listed = sums_for(i)
                    .and_then(|v| v.iter().find(|(f, _)| *f == file))
                    .map(|(_, m)| m.clone());
                let md5 = match store.existing_md5(&key, listed).await? {
                    None => None,
                    Some((_, stored)) => {
                        let s2 = src.clone();
                        let (_, local) = tokio::task::spawn_blocking(move || md5_file(&s2))
                            .await
                            .map_err(|e| Error::io(&src, std::io::Error::other(e)))??;
                        if stored != local {
                            return Err(Error::Immutable {
                                object: store.location(&key),
                                stored,
                                local: src,
                                local_md5: local,
                            });
                        }
                        Some(local)
                    }
                };
                Ok(Planned {
                    comp: i,
                    file,
                    src,
                    key,
                    size,
                    mtime,
                    md5,
                })
            }
        })
        .buffer_unordered(ctx.jobs)
        .try_collect()
        .await?;
    plan.sort_by(|a, b| a.key.cmp(&b.key));

    // Phase 2: store what is missing.
    let mut report = UploadReport::default();
    for p in plan.iter().filter(|p| p.md5.is_some()) {
        report.skipped += 1;
        ctx.progress.step(&format!(
            "skipped {}: already stored, md5 matches",
            store.location(&p.key)
        ));
    }
    // Largest first: the small files then go while the store assembles
    // the big ones (see `Ctx::read_turn`).
    let mut todo: Vec<&mut Planned> = plan.iter_mut().filter(|p| p.md5.is_none()).collect();
    todo.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.key.cmp(&b.key)));
    report.stored = todo.len();
    futures::stream::iter(todo)
        .map(|p| {
            let store = store.clone();
            let ctx = ctx.clone();
            async move {
                let bar = ctx.progress.transfer(&p.file, Some(p.size));
                let md5 = store.put_file(&p.key, &p.src, p.size, &bar, &ctx).await?;
                bar.finish();
                // A file rewritten while it was read would leave an object
                // that matches neither version.
                let now = stat(&p.src)?;
                if now != (p.size, p.mtime) {
                    return Err(Error::ChangedDuringUpload {
                        path: p.src.clone(),
                        detail: "size or mtime changed".into(),
                    });
                }
                ctx.progress.step(&format!(
                    "stored {} ({} bytes)",
                    store.location(&p.key),
                    p.size
                ));
                p.md5 = Some(md5);
                ctx.file_stored();
                Ok::<(), Error>(())
            }
        })
        .buffer_unordered(ctx.jobs)
        .try_collect::<Vec<()>>()
        .await?;

    // Phase 3: md5sums.txt, then pointers, per component.
    let mut lines = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        let st = &c.stamp.to_string();
        let sums: Vec<(String, String)> = plan
            .iter()
            .filter(|p| p.comp == i)
            .filter_map(|p| Some((p.file.clone(), p.md5.clone()?)))
            .collect();
        for p in plan.iter().filter(|p| p.comp == i) {
            lines.push(store.location(&p.key));
        }
        ctx.at(PausePoint::BeforeMd5sums);
        let md5_key = c.layout.md5sums(st);
        store
            .put_small(&md5_key, c.layout.md5sums_body(&sums).into_bytes())
            .await?;
        lines.push(store.location(&md5_key));
        ctx.at(PausePoint::BeforePointer);
        let stamp_dir = c.layout.stamp_dir(st);
        for ptr in Layout::pointers_for(&c.branch) {
            let key = c.layout.pointer(&ptr);
            if store.set_pointer(&key, &stamp_dir).await? {
                ctx.progress
                    .step(&format!("pointed {} at {st}", store.location(&key)));
            }
            lines.push(store.location(&key));
        }
        report
            .stamps
            .push((c.name.clone(), st.clone(), store.location(&stamp_dir)));
    }

    let tmp = opts.bits_dir.join(format!(".{ARTIFACTS}.partial"));
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    fs::write(&tmp, body).map_err(|e| Error::io(&tmp, e))?;
    fs::rename(&tmp, &artifacts).map_err(|e| Error::io(&artifacts, e))?;
    report.artifacts = artifacts;
    Ok(report)
}
