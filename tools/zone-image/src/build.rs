//! Runs the stages in order and fills `bits/<name>/` (stage 7).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use progress::Progress;

use crate::binaries::{self, CargoOptions};
use crate::definition::{self, ImageDef, Kind};
use crate::error::{IoContext, Result};
use crate::proto::{self, EntrySource, ProtoPlan};
use crate::zfs_image::{self, ZfsOptions, ZfsOutputs};
use crate::{cache, cancel, compress, stamp, tarball, tool, util};

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub workspace: PathBuf,
    pub name: String,
    /// Where `<name>/` with the artifacts goes; eng's `bits/`.
    pub bits_dir: PathBuf,
    /// Stop after the package tarball.
    pub no_zfs: bool,
    pub cargo: CargoOptions,
    pub zfs: ZfsOptions,
    /// Rebuild even when the inputs are unchanged.
    pub force: bool,
    /// The branch the stamp names (eng's `BRANCH`); None: git's.
    pub branch: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BuildReport {
    pub stamp: String,
    pub tarball: PathBuf,
    pub tarball_sha1: String,
    pub tarball_size: u64,
    pub zfs: Option<ZfsOutputs>,
    /// A tool's installer and manifest.
    pub tool: Option<tool::ToolOutputs>,
    /// Why the ZFS stage did not run, when it did not.
    pub zfs_skipped: Option<String>,
    pub dev_reason: Option<String>,
    /// The outputs were already there for these inputs.
    pub cached: bool,
}

/// Stage 1 and 3 without building anything: load the definition, check
/// its packages, assemble a throwaway proto with placeholder binaries and
/// validate it.
pub fn check(workspace: &Path, name: &str) -> Result<ImageDef> {
    let def = definition::load(workspace, name)?;
    binaries::check_packages(&def, &binaries::workspace_packages(workspace)?)?;
    let plan = proto::plan(&def)?;
    let scratch = scratch_dir(workspace)?;
    proto::assemble(&def, &plan, None, &scratch.path().join("proto"))?;
    Ok(def)
}

fn scratch_dir(workspace: &Path) -> Result<tempfile::TempDir> {
    let base = workspace.join("target").join("zone-image");
    fs::create_dir_all(&base).io_context(|| format!("creating {}", base.display()))?;
    tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&base)
        .io_context(|| format!("creating a temp dir in {}", base.display()))
}

/// Each step, warning and transfer is reported to `progress`.
pub fn build(opts: &BuildOptions, progress: &dyn Progress) -> Result<BuildReport> {
    cancel::install_handler();
    let def = definition::load(&opts.workspace, &opts.name)?;
    binaries::check_packages(&def, &binaries::workspace_packages(&opts.workspace)?)?;
    let plan = proto::plan(&def)?;
    let git = stamp::git_info(&opts.workspace, opts.branch.as_deref())?;
    let mut stamp = stamp::make(&git, chrono::Utc::now())?;
    let mtime = stamp::source_date_epoch(&git)?;
    cancel::check()?;

    progress.step(&format!(
        "building binaries ({} profile): {}",
        opts.cargo.profile,
        def.cargo
            .iter()
            .map(|c| c.package.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let bins = binaries::build(&def, &opts.cargo)?;
    let dev_reason = match binaries::dev_reason(&def, &bins)? {
        Some(why) => Some(why),
        None if def.kind == Kind::Zone && !opts.no_zfs => {
            zfs_image::skipped_pkgsrc(&def, &opts.zfs)
        }
        None => None,
    };
    // The stamp, and so every file name and the version, says dev.
    stamp.dev = dev_reason.is_some();
    cancel::check()?;

    let key = input_key(&def, &plan, &bins, &git, mtime, opts)?;
    let record_path = record_path(opts)?;
    if !opts.force
        && let Some(rec) = cache::load(&record_path)
        && rec.key == key
        && rec.outputs_present()
    {
        let report = cached_report(opts, def.kind, rec)?;
        remove_earlier_builds(
            &opts.bits_dir.join(&def.name),
            &def.name,
            &report.stamp,
            progress,
        )?;
        return Ok(report);
    }

    let scratch = scratch_dir(&opts.workspace)?;
    let proto_dir = scratch.path().join("proto");
    progress.step("assembling and validating the proto tree");
    proto::assemble(&def, &plan, Some(&bins), &proto_dir)?;

    let out_dir = opts.bits_dir.join(&def.name);
    fs::create_dir_all(&out_dir).io_context(|| format!("creating {}", out_dir.display()))?;
    let stamp_s = stamp.to_string();
    let tarball_path = out_dir.join(format!("{}-pkg-{stamp_s}.tar.gz", def.name));
    let (done, tool_out) = match &def.tool {
        Some(spec) => {
            let b = tool::ToolBuild {
                def: &def,
                spec,
                proto_dir: &proto_dir,
                scratch: scratch.path(),
                built: &bins,
                cargo: &opts.cargo,
                stamp: &stamp_s,
                branch: &git.branch,
                dev_reason: dev_reason.clone(),
                mtime,
                out_dir: &out_dir,
                tarball: &tarball_path,
                published_at: chrono::Utc::now(),
            };
            let (done, t) = tool::build(&b, progress)?;
            (done, Some(t))
        }
        None => {
            progress.step(&format!("writing {}", tarball_path.display()));
            let done = tarball::write(&proto_dir, &tarball_path, mtime, compress::DEFAULT_LEVEL)
                .inspect_err(|_| {
                    let _ = fs::remove_file(&tarball_path);
                })?;
            (done, None)
        }
    };
    let mut outputs = vec![(tarball_path.clone(), done.size)];
    if let Some(t) = &tool_out {
        outputs.push((t.installer.clone(), t.size));
        let len = fs::metadata(&t.manifest_file)
            .io_context(|| format!("reading {}", t.manifest_file.display()))?
            .len();
        outputs.push((t.manifest_file.clone(), len));
    }

    let (zfs, zfs_skipped) = if def.kind != Kind::Zone {
        (None, Some("a tool has no ZFS stage".to_string()))
    } else if opts.no_zfs {
        (None, Some("--no-zfs given".to_string()))
    } else {
        progress.step("building the ZFS image");
        let input = zfs_image::ZfsInput {
            def: &def,
            proto_dir: &proto_dir,
            stamp: &stamp_s,
            dev_reason: dev_reason.clone(),
            git: &git,
            out_dir: &out_dir,
            opts: &opts.zfs,
            progress,
        };
        match zfs_image::build(&input) {
            Ok(Some(z)) => (Some(z), None),
            Ok(None) => (
                None,
                Some("no ZFS pool configured (--zpool or ZONE_IMAGE_ZPOOL) or no working zfs command".into()),
            ),
            Err(e) => {
                let _ = fs::remove_file(&tarball_path);
                return Err(e);
            }
        }
    };
    let dev_reason = zfs.as_ref().map_or(dev_reason, |z| z.dev_reason.clone());
    if let Some(z) = &zfs {
        for p in [&z.image_file, &z.manifest_file] {
            let len = fs::metadata(p)
                .io_context(|| format!("reading {}", p.display()))?
                .len();
            outputs.push((p.clone(), len));
        }
    }

    util::write_atomic(
        &out_dir.join("latest-build-stamp"),
        format!("{stamp_s}\n").as_bytes(),
    )?;
    remove_earlier_builds(&out_dir, &def.name, &stamp_s, progress)?;
    cache::store(
        &record_path,
        &cache::Record {
            key,
            stamp: stamp_s.clone(),
            outputs,
            dev_reason: dev_reason.clone(),
        },
    )?;
    Ok(BuildReport {
        stamp: stamp_s,
        tarball: tarball_path,
        tarball_sha1: done.sha1,
        tarball_size: done.size,
        zfs,
        tool: tool_out,
        zfs_skipped,
        dev_reason,
        cached: false,
    })
}

/// What a build writes into `bits/<name>/`, by file name ending.
const ARTIFACT_SUFFIXES: &[&str] = &[".tar.gz", ".zfs.gz", ".imgmanifest", ".sh"];

/// Remove artifacts of earlier builds from `bits/<name>/`: `bits upload`
/// sends every file there, and must not send an old stamp's files under
/// the new stamp's directory.
fn remove_earlier_builds(
    out_dir: &Path,
    name: &str,
    stamp: &str,
    progress: &dyn Progress,
) -> Result<()> {
    let entries = fs::read_dir(out_dir).io_context(|| format!("reading {}", out_dir.display()))?;
    for e in entries {
        let e = e.io_context(|| format!("reading {}", out_dir.display()))?;
        let file = e.file_name().to_string_lossy().into_owned();
        let ours = file.starts_with(&format!("{name}-"))
            && ARTIFACT_SUFFIXES.iter().any(|s| file.ends_with(s));
        if !ours || file.contains(stamp) {
            continue;
        }
        progress.step(&format!("removing {file} (an earlier build's)"));
        fs::remove_file(e.path()).io_context(|| format!("removing {}", e.path().display()))?;
    }
    Ok(())
}

fn cached_report(opts: &BuildOptions, kind: Kind, rec: cache::Record) -> Result<BuildReport> {
    let tarball = rec
        .outputs
        .first()
        .map(|(p, _)| p.clone())
        .unwrap_or_default();
    let sum = compress::sha1_file(&tarball)?;
    let (zfs, tool) = match (rec.outputs.get(1), rec.outputs.get(2), kind) {
        (Some((sh, _)), Some((manifest, _)), Kind::Tool) => {
            (None, Some(tool::outputs_from_manifest(sh, manifest)?))
        }
        (Some((image, _)), Some((manifest, _)), Kind::Zone) => (
            Some(zfs_from_manifest(image, manifest, rec.dev_reason.clone())?),
            None,
        ),
        _ => (None, None),
    };
    // The cached stamp is the current one again.
    util::write_atomic(
        &opts.bits_dir.join(&opts.name).join("latest-build-stamp"),
        format!("{}\n", rec.stamp).as_bytes(),
    )?;
    Ok(BuildReport {
        stamp: rec.stamp,
        tarball,
        tarball_sha1: sum.sha1,
        tarball_size: sum.size,
        zfs_skipped: zfs
            .is_none()
            .then(|| "not part of the cached build".to_string()),
        zfs,
        tool,
        dev_reason: rec.dev_reason,
        cached: true,
    })
}

/// Rebuild the ZFS stage's report from the manifest it wrote.
fn zfs_from_manifest(
    image: &Path,
    manifest: &Path,
    dev_reason: Option<String>,
) -> Result<ZfsOutputs> {
    let bad = |what: &str| {
        crate::Error::Command(format!(
            "{}: {what}; rebuild with --force",
            manifest.display()
        ))
    };
    let text =
        fs::read_to_string(manifest).io_context(|| format!("reading {}", manifest.display()))?;
    let m: serde_json::Value = serde_json::from_str(&text).map_err(|_| bad("not JSON"))?;
    let file = &m["files"][0];
    Ok(ZfsOutputs {
        image_file: image.to_path_buf(),
        manifest_file: manifest.to_path_buf(),
        uuid: m["uuid"]
            .as_str()
            .and_then(|u| uuid::Uuid::parse_str(u).ok())
            .ok_or_else(|| bad("no uuid"))?,
        sha1: file["sha1"]
            .as_str()
            .ok_or_else(|| bad("no files[0].sha1"))?
            .to_string(),
        size: file["size"]
            .as_u64()
            .ok_or_else(|| bad("no files[0].size"))?,
        version: m["version"]
            .as_str()
            .ok_or_else(|| bad("no version"))?
            .to_string(),
        dev_reason,
    })
}

fn record_path(opts: &BuildOptions) -> Result<PathBuf> {
    let bits = std::path::absolute(&opts.bits_dir)
        .io_context(|| format!("resolving {}", opts.bits_dir.display()))?;
    let mut k = cache::KeyBuilder::default();
    k.field("bits", bits.as_os_str().as_encoded_bytes());
    let id = &k.finish()[..16];
    Ok(opts
        .workspace
        .join("target")
        .join("zone-image")
        .join("cache")
        .join(format!("{}-{id}.json", opts.name)))
}

fn input_key(
    def: &ImageDef,
    plan: &ProtoPlan,
    bins: &HashMap<(String, String), PathBuf>,
    git: &stamp::GitInfo,
    mtime: i64,
    opts: &BuildOptions,
) -> Result<String> {
    let mut k = cache::KeyBuilder::default();
    k.field("tool", env!("CARGO_PKG_VERSION").as_bytes());
    k.file("definition", &def.file)?;
    k.field("branch", git.branch.as_bytes())
        .field("sha", git.short_sha.as_bytes())
        .field("dirty", &[u8::from(git.dirty)])
        .field("mtime", &mtime.to_le_bytes())
        .field("profile", opts.cargo.profile.as_bytes())
        .field(
            "target",
            opts.cargo.target.as_deref().unwrap_or("").as_bytes(),
        )
        .field("no_zfs", &[u8::from(opts.no_zfs)])
        .field("zpool", opts.zfs.zpool.as_deref().unwrap_or("").as_bytes())
        .field(
            "zpool_env",
            std::env::var("ZONE_IMAGE_ZPOOL")
                .unwrap_or_default()
                .as_bytes(),
        )
        .field("skip_pkgsrc", &[u8::from(opts.zfs.skip_pkgsrc)]);
    for e in &plan.entries {
        k.field("dest", e.proto_path().as_os_str().as_encoded_bytes())
            .field("mode", &e.mode.to_le_bytes())
            .field("kind", format!("{:?}", e.kind).as_bytes());
        match &e.source {
            EntrySource::File(p) => {
                k.file("file", p)?;
            }
            EntrySource::Content(c) => {
                k.field("content", c.as_bytes());
            }
            EntrySource::Binary { package, bin } => {
                if let Some(p) = bins.get(&(package.clone(), bin.clone())) {
                    k.file("binary", p)?;
                }
            }
        }
    }
    Ok(k.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_builds_artifacts_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (
            "main-20261125T000000Z-gaaaaaaa",
            "main-20261126T000000Z-gbbbbbbb",
        );
        let keep = [
            format!("triton-api-pkg-{new}.tar.gz"),
            format!("triton-api-zfs-{new}.zfs.gz"),
            format!("triton-api-zfs-{new}.imgmanifest"),
            "latest-build-stamp".to_string(),
            format!("other-pkg-{old}.tar.gz"),
            "notes.txt".to_string(),
        ];
        let gone = [
            format!("triton-api-pkg-{old}.tar.gz"),
            format!("triton-api-zfs-{old}.zfs.gz"),
            format!("triton-api-zfs-{old}.imgmanifest"),
            format!("triton-api-{old}.sh"),
        ];
        for f in keep.iter().chain(&gone) {
            fs::write(dir.path().join(f), b"x").unwrap();
        }
        remove_earlier_builds(dir.path(), "triton-api", new, &progress::Silent).unwrap();
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = keep.to_vec();
        want.sort();
        assert_eq!(left, want);
    }
}
