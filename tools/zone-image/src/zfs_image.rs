//! Stage 5: the incremental ZFS image on its origin chain.
//!
//! Clone `<pool>/<origin>@final` to a build dataset, lay the proto over
//! it, snapshot, and send the increment through the parallel gzip that
//! hashes as it writes. Whatever fails or is interrupted, the build
//! dataset, its snapshot and any partial output are removed; a build
//! killed outright leaves a dataset whose name carries its pid, and the
//! next build sweeps it.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use progress::Progress;
use uuid::Uuid;

use crate::cancel;
use crate::compress;
use crate::definition::{ImageDef, Kind};
use crate::error::{Error, IoContext, Result};
use crate::manifest::{self, Manifest, NewManifest};
use crate::origin::{self, Origins};
use crate::stamp::GitInfo;
use crate::zfs::{self, ZfsChild, ZfsError};

/// Name prefix of build datasets; the sweep recognises it.
pub const BUILD_PREFIX: &str = "zone-image-build-";

/// A build dataset this old is stale even if a process with its pid lives
/// (pids get reused).
const STALE_AGE: Duration = Duration::from_secs(12 * 3600);

/// Test hook (re-exported where the ZFS tests look for it).
pub use crate::cancel::PAUSE_ENV;

/// Flags of `image build` that drive this stage.
#[derive(Debug, Clone, Default)]
pub struct ZfsOptions {
    /// `--zpool`; `None` falls back to the zone's dataset or `ZONE_IMAGE_ZPOOL`.
    pub zpool: Option<String>,
    /// `--origin-dir`: where `*.imgmanifest` + image files of origins live.
    pub origin_dir: Option<PathBuf>,
    /// `--source`: IMGAPI to fetch origins from; `None` means
    /// [`origin::DEFAULT_SOURCE`], an empty string means no remote source.
    pub origin_source: Option<String>,
    /// `--channel` for the origin source.
    pub channel: Option<String>,
    /// `--skip-pkgsrc`: build without installing pkgsrc packages (dev image).
    pub skip_pkgsrc: bool,
    /// Downloads origins from the source through this instead of our own
    /// client (see [`origin::FetchOrigin`]).
    pub fetch: Option<std::sync::Arc<dyn origin::FetchOrigin>>,
}

/// Why leaving out pkgsrc packages makes this a dev image, when it does.
pub fn skipped_pkgsrc(def: &ImageDef, opts: &ZfsOptions) -> Option<String> {
    (opts.skip_pkgsrc && !def.pkgsrc.is_empty())
        .then(|| "pkgsrc packages skipped (--skip-pkgsrc)".to_string())
}

/// What the pipeline hands to this stage.
pub struct ZfsInput<'a> {
    pub def: &'a ImageDef,
    /// The assembled proto: `root/` and `site/` below it.
    pub proto_dir: &'a Path,
    /// The build stamp, the manifest's `version` (marked `-dev` here for a
    /// dev image if it is not already).
    pub stamp: &'a str,
    /// `Some(reason)` when this is a dev image (host binaries, ...).
    pub dev_reason: Option<String>,
    pub git: &'a GitInfo,
    /// `bits/<name>/`
    pub out_dir: &'a Path,
    pub opts: &'a ZfsOptions,
    /// Where steps, warnings and the origin download are reported.
    pub progress: &'a dyn Progress,
}

/// Files this stage wrote into `out_dir`.
#[derive(Debug, Clone)]
pub struct ZfsOutputs {
    pub image_file: PathBuf,
    pub manifest_file: PathBuf,
    /// The new image's uuid.
    pub uuid: Uuid,
    /// sha1 and size of `image_file`, as the manifest has them.
    pub sha1: String,
    pub size: u64,
    /// The manifest's `version` (the stamp, `-dev` for dev images).
    pub version: String,
    /// Why this is a dev image: the caller's reason, or this stage's own
    /// (`--skip-pkgsrc`).
    pub dev_reason: Option<String>,
}

/// Where the pool came from, for error messages.
struct PoolChoice {
    pool: String,
    file: &'static str,
    key: &'static str,
}

/// Run the stage. `Ok(None)` means no pool is configured here, and the
/// caller says so in one line.
pub fn build(input: &ZfsInput<'_>) -> Result<Option<ZfsOutputs>> {
    let Some(choice) = resolve_pool(input.opts) else {
        return Ok(None);
    };
    let def = input.def;
    if def.kind != Kind::Zone {
        return Err(Error::input(
            &def.file,
            "kind",
            "only a zone image has a ZFS image",
        ));
    }
    let origin_uuid = def.origin.ok_or_else(|| {
        Error::input(
            &def.file,
            "origin",
            "a zone image needs an origin image UUID",
        )
    })?;

    let mut dev_reason = input.dev_reason.clone();
    let install_pkgsrc = if def.pkgsrc.is_empty() {
        false
    } else if let Some(why) = skipped_pkgsrc(def, input.opts) {
        dev_reason.get_or_insert(why);
        false
    } else if !cfg!(target_os = "illumos") {
        return Err(Error::input(
            &def.file,
            "pkgsrc.packages",
            format!(
                "installing pkgsrc packages ({}) needs an illumos build host; \
                 pass --skip-pkgsrc to build a dev image without them",
                def.pkgsrc.join(", ")
            ),
        ));
    } else {
        true
    };

    check_pool(&choice)?;
    let pool = choice.pool.as_str();
    let dev = dev_reason.is_some();
    // The stamp says dev (build.rs marks it); a caller's plain stamp is
    // marked here, so the version always does.
    let version = if dev {
        let mut s = crate::stamp::Stamp::parse(input.stamp)?;
        s.dev = true;
        s.to_string()
    } else {
        input.stamp.to_string()
    };

    fs::create_dir_all(input.out_dir)
        .io_context(|| format!("creating {}", input.out_dir.display()))?;
    step(input.progress, "sweep", || {
        sweep(pool, input.progress)?;
        sweep_temp_files(input.out_dir);
        Ok(())
    })?;

    let origins = Origins {
        pool,
        dir: input.opts.origin_dir.as_deref(),
        source: match input.opts.origin_source.as_deref() {
            None => Some(origin::DEFAULT_SOURCE),
            Some("") => None,
            Some(s) => Some(s),
        },
        channel: input.opts.channel.as_deref(),
        fetch: input.opts.fetch.as_deref(),
        progress: input.progress,
    };
    let origin = step(input.progress, "origin", || origins.ensure(origin_uuid))?;

    let mut cleanup = Cleanup::new(input.progress);
    let build_ds = format!(
        "{pool}/{BUILD_PREFIX}{}-{}-{}",
        def.name,
        std::process::id(),
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let origin_snap = format!("{pool}/{origin_uuid}@final");
    step(input.progress, "clone", || {
        cleanup.dataset = Some(build_ds.clone());
        zfs::clone(&origin_snap, &build_ds).map_err(Error::from)
    })?;
    let mp = step(input.progress, "mount", || Ok(zfs::mountpoint(&build_ds)?))?;

    step(input.progress, "copy", || {
        let root = input.proto_dir.join("root");
        if !root.is_dir() {
            return Err(Error::Command(format!(
                "the proto has no root/ at {}",
                root.display()
            )));
        }
        copy_tree(&root, &mp.join("root"))?;
        let site = input.proto_dir.join("site");
        if site.is_dir() {
            copy_tree(&site, &mp.join("site"))?;
        }
        Ok(())
    })?;
    if install_pkgsrc {
        step(input.progress, "pkgsrc", || {
            pkg_add(&mp.join("root"), &def.pkgsrc)
        })?;
    }
    step(input.progress, "motd", || {
        write_motd(&mp.join("root"), def, &version, input.git, &origin)
    })?;
    step(input.progress, "config", || {
        // The zoneroot's config/ is per-instance state vmadm writes.
        let config = mp.join("config");
        match fs::remove_dir_all(&config) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(e).io_context(|| format!("removing {}", config.display()))
            }
            _ => Ok(()),
        }
    })?;
    let build_snap = format!("{build_ds}@final");
    step(input.progress, "snapshot", || {
        Ok(zfs::snapshot(&build_snap)?)
    })?;

    let base = format!("{}-zfs-{}", def.name, input.stamp);
    let image_file = input.out_dir.join(format!("{base}.zfs.gz"));
    let manifest_file = input.out_dir.join(format!("{base}.imgmanifest"));
    let tmp_image = input
        .out_dir
        .join(format!(".{base}.zfs.gz.{}.tmp", std::process::id()));
    let compressed = step(input.progress, "send", || {
        cleanup.files.push(tmp_image.clone());
        send_compressed(&origin_snap, &build_snap, &tmp_image)
    })?;

    let (min_platform, warning) = manifest::min_platform(def);
    if let Some(w) = warning {
        input.progress.warn(&w);
    }
    let image = manifest::new_image(&NewManifest {
        def,
        version: &version,
        dev,
        origin: &origin,
        sha1: &compressed.sha1,
        size: compressed.size,
        published_at: chrono::Utc::now(),
        min_platform,
    });
    let uuid = image.uuid;
    step(input.progress, "manifest", || {
        fs::set_permissions(&tmp_image, fs::Permissions::from_mode(0o644))
            .io_context(|| format!("chmod {}", tmp_image.display()))?;
        fs::rename(&tmp_image, &image_file)
            .io_context(|| format!("renaming into {}", image_file.display()))?;
        cleanup.files.push(image_file.clone());
        manifest::write_json_atomic(&manifest_file, &manifest::document(&image))
    })?;

    // Done: the outputs stay. A build dataset that won't go now is swept
    // by the next build, so it isn't worth failing a finished image over.
    cleanup.files.clear();
    if let Some(ds) = cleanup.dataset.take()
        && let Err(e) = zfs::destroy_recursive(&ds)
    {
        input.progress.warn(&format!(
            "could not destroy {ds} ({}); the next build removes it",
            error_line::one_line(&e)
        ));
    }
    Ok(Some(ZfsOutputs {
        image_file,
        manifest_file,
        uuid,
        sha1: compressed.sha1,
        size: compressed.size,
        version,
        dev_reason,
    }))
}

/// Run one step: honour the pause hook and Ctrl-C, and name the step in
/// the error.
fn step<T>(progress: &dyn Progress, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    progress.step(&format!("ZFS stage: {name}"));
    let r = cancel::pause_point(name)
        .and_then(|()| cancel::check())
        .and_then(|()| f());
    r.map_err(|e| {
        if cancel::is_cancelled() {
            progress.warn(&format!(
                "interrupted during the ZFS stage's '{name}' step; cleaning up"
            ));
            return Error::Interrupted;
        }
        match e {
            Error::Io { context, source } => Error::Io {
                context: format!("ZFS stage, step '{name}': {context}"),
                source,
            },
            Error::Command(m) => Error::Command(format!("ZFS stage, step '{name}': {m}")),
            other => other,
        }
    })
}

/// Removes what a failed or interrupted build made.
struct Cleanup<'a> {
    dataset: Option<String>,
    files: Vec<PathBuf>,
    progress: &'a dyn Progress,
}

impl<'a> Cleanup<'a> {
    fn new(progress: &'a dyn Progress) -> Cleanup<'a> {
        Cleanup {
            dataset: None,
            files: Vec::new(),
            progress,
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for f in self.files.drain(..) {
            let _ = fs::remove_file(&f);
        }
        if let Some(ds) = self.dataset.take()
            && let Err(e) = zfs::destroy_recursive(&ds)
        {
            self.progress.warn(&format!(
                "could not destroy {ds}: {}",
                error_line::one_line(&e)
            ));
        }
    }
}

fn resolve_pool(opts: &ZfsOptions) -> Option<PoolChoice> {
    if let Some(p) = opts.zpool.as_deref().filter(|p| !p.is_empty()) {
        return Some(PoolChoice {
            pool: p.trim_end_matches('/').to_string(),
            file: "command line",
            key: "--zpool",
        });
    }
    if let Some(zone) = zonename() {
        let pool = if zone == "global" {
            "zones".to_string()
        } else {
            format!("zones/{zone}/data")
        };
        return Some(PoolChoice {
            pool,
            file: "SmartOS zone",
            key: "zpool",
        });
    }
    match std::env::var("ZONE_IMAGE_ZPOOL") {
        Ok(p) if !p.is_empty() => Some(PoolChoice {
            pool: p.trim_end_matches('/').to_string(),
            file: "environment",
            key: "ZONE_IMAGE_ZPOOL",
        }),
        _ => None,
    }
}

/// The zone this runs in, on illumos only.
fn zonename() -> Option<String> {
    if !cfg!(target_os = "illumos") {
        return None;
    }
    let out = Command::new("zonename").output().ok()?;
    let z = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !z.is_empty()).then_some(z)
}

fn check_pool(choice: &PoolChoice) -> Result<()> {
    match zfs::exists(&choice.pool) {
        Ok(true) => Ok(()),
        Ok(false) => {
            let pools = zfs::pools().unwrap_or_default();
            let have = if pools.is_empty() {
                "there are no pools".to_string()
            } else {
                format!("pools here: {}", pools.join(", "))
            };
            Err(Error::input(
                choice.file,
                choice.key,
                format!("no such ZFS pool or dataset '{}' ({have})", choice.pool),
            ))
        }
        Err(e @ ZfsError::Missing(_)) => Err(e.into()),
        Err(e) => Err(Error::Command(format!(
            "checking pool '{}': {}",
            choice.pool,
            error_line::one_line(&e)
        ))),
    }
}

/// `<pid>` of a `<prefix>...-<pid>-<unique>` dataset name.
fn pid_of(leaf: &str) -> Option<i32> {
    let mut parts = leaf.rsplit('-');
    let _unique = parts.next()?;
    parts.next()?.parse().ok()
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Destroy build and receive datasets left by builds that died: their pid
/// is gone, or they are older than any build runs. Live builds' datasets
/// and origins are never touched.
pub fn sweep(pool: &str, progress: &dyn Progress) -> Result<()> {
    let now = chrono::Utc::now().timestamp();
    for ds in zfs::children(pool)? {
        let leaf = ds.rsplit('/').next().unwrap_or(&ds);
        if !(leaf.starts_with(BUILD_PREFIX) || leaf.starts_with(origin::RECV_PREFIX)) {
            continue;
        }
        let Some(pid) = pid_of(leaf) else { continue };
        if pid == std::process::id() as i32 {
            continue;
        }
        let age = zfs::get(&ds, "creation")
            .ok()
            .and_then(|c| c.parse::<i64>().ok())
            .map(|c| now - c);
        let why = if !pid_alive(pid) {
            format!("pid {pid} is gone")
        } else if age.is_some_and(|a| a > STALE_AGE.as_secs() as i64) {
            format!("older than {}h", STALE_AGE.as_secs() / 3600)
        } else {
            continue;
        };
        progress.step(&format!("removing stale {ds} ({why})"));
        if let Err(e) = zfs::destroy_recursive(&ds) {
            progress.warn(&format!(
                "could not remove {ds}: {}",
                error_line::one_line(&e)
            ));
        }
    }
    Ok(())
}

/// Remove `.<base>.zfs.gz.<pid>.tmp` files of builds that died.
fn sweep_temp_files(out_dir: &Path) {
    let Ok(entries) = fs::read_dir(out_dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
            continue;
        };
        let Some((_, pid)) = rest.rsplit_once('.') else {
            continue;
        };
        if !rest.contains(".zfs.gz.") {
            continue;
        }
        if let Ok(pid) = pid.parse::<i32>()
            && !pid_alive(pid)
        {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Reads the send stream; the "send-stream" pause point sits after the
/// first chunk, so an interrupt lands mid-stream.
struct SendReader<R> {
    inner: R,
    started: bool,
}

impl<R: Read> Read for SendReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.started {
            cancel::pause_point("send-stream").map_err(|e| io::Error::other(e.to_string()))?;
        }
        self.started = true;
        self.inner.read(buf)
    }
}

/// `zfs send -i origin build` through the parallel gzip into `dest`,
/// hashed in the same pass (also the "ours" side of `xtask bench image`).
pub fn send_compressed(
    origin_snap: &str,
    build_snap: &str,
    dest: &Path,
) -> Result<compress::Compressed> {
    let (mut child, stdout) = ZfsChild::send(Some(origin_snap), build_snap)?;
    let reader = SendReader {
        inner: stdout,
        started: false,
    };
    match compress::gzip_stream(reader, dest, compress::DEFAULT_LEVEL) {
        Ok(c) => {
            // A send that died early leaves a short stream that gzips
            // fine; only its exit status tells.
            child.finish()?;
            Ok(c)
        }
        Err(e) => {
            child.kill();
            Err(e)
        }
    }
}

/// Copy a proto tree over `dst`: modes as in the proto, owner root.
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(src).sort_by_file_name() {
        cancel::check()?;
        let entry = entry.map_err(|e| Error::Command(format!("walking {}: {e}", src.display())))?;
        let rel = entry
            .path()
            .strip_prefix(src)
            .map_err(|e| Error::Command(format!("walking {}: {e}", src.display())))?;
        let to = dst.join(rel);
        let meta = entry
            .path()
            .symlink_metadata()
            .io_context(|| format!("reading {}", entry.path().display()))?;
        let ft = meta.file_type();
        let mode = meta.permissions().mode() & 0o7777;
        if ft.is_dir() {
            match to.symlink_metadata() {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&to).io_context(|| format!("replacing {}", to.display()))?;
                    fs::create_dir(&to).io_context(|| format!("creating {}", to.display()))?;
                }
                Err(_) => {
                    fs::create_dir_all(&to).io_context(|| format!("creating {}", to.display()))?
                }
            }
            // The top directory is the origin's (the zone root); keep it.
            if rel.as_os_str().is_empty() {
                continue;
            }
        } else {
            match to.symlink_metadata() {
                Ok(m) if m.is_dir() => {
                    return Err(Error::Command(format!(
                        "{} is a directory in the origin but not in the proto ({})",
                        to.display(),
                        entry.path().display()
                    )));
                }
                Ok(_) => {
                    fs::remove_file(&to).io_context(|| format!("replacing {}", to.display()))?
                }
                Err(_) => {}
            }
            if ft.is_symlink() {
                let target = fs::read_link(entry.path())
                    .io_context(|| format!("reading {}", entry.path().display()))?;
                symlink(&target, &to).io_context(|| format!("creating {}", to.display()))?;
                lchown(&to, Some(0), Some(0))
                    .io_context(|| format!("chown 0:0 {}", to.display()))?;
                continue;
            } else if ft.is_file() {
                fs::copy(entry.path(), &to).io_context(|| {
                    format!("copying {} to {}", entry.path().display(), to.display())
                })?;
            } else {
                return Err(Error::Command(format!(
                    "{}: only files, directories and symlinks belong in a proto",
                    entry.path().display()
                )));
            }
        }
        // chown before chmod: chown clears setuid bits.
        lchown(&to, Some(0), Some(0)).io_context(|| format!("chown 0:0 {}", to.display()))?;
        fs::set_permissions(&to, fs::Permissions::from_mode(mode))
            .io_context(|| format!("chmod {mode:o} {}", to.display()))?;
    }
    Ok(())
}

/// `chroot <root> /opt/local/sbin/pkg_add -U <pkgs>` (illumos only).
fn pkg_add(root: &Path, pkgs: &[String]) -> Result<()> {
    let out = Command::new("chroot")
        .arg(root)
        .arg("/opt/local/sbin/pkg_add")
        .arg("-U")
        .args(pkgs)
        .output()
        .io_context(|| "running chroot ... pkg_add".to_string())?;
    if !out.status.success() {
        return Err(Error::Command(format!(
            "pkg_add -U {}: {}",
            pkgs.join(" "),
            crate::util::snippet(&String::from_utf8_lossy(&out.stderr), 500)
        )));
    }
    Ok(())
}

/// The login banner eng's buildimage writes: image, build, source repo
/// and origin.
pub fn motd_text(name: &str, version: &str, remote: Option<&str>, origin: &Manifest) -> String {
    let mut s = format!(" =  J O Y E N T  =\n\n    {name} ({version})\n");
    if let Some(r) = remote {
        s.push_str(&format!("    {r}\n"));
    }
    s.push_str(&format!("    {}\n\n", origin.label()));
    s
}

fn write_motd(
    root: &Path,
    def: &ImageDef,
    version: &str,
    git: &GitInfo,
    origin: &Manifest,
) -> Result<()> {
    let etc = root.join("etc");
    if !etc.is_dir() {
        fs::create_dir_all(&etc).io_context(|| format!("creating {}", etc.display()))?;
        fs::set_permissions(&etc, fs::Permissions::from_mode(0o755))
            .io_context(|| format!("chmod {}", etc.display()))?;
    }
    let motd = etc.join("motd");
    if motd.symlink_metadata().is_ok() {
        fs::remove_file(&motd).io_context(|| format!("replacing {}", motd.display()))?;
    }
    fs::write(
        &motd,
        motd_text(&def.name, version, git.remote.as_deref(), origin),
    )
    .io_context(|| format!("writing {}", motd.display()))?;
    lchown(&motd, Some(0), Some(0)).io_context(|| format!("chown 0:0 {}", motd.display()))?;
    fs::set_permissions(&motd, fs::Permissions::from_mode(0o644))
        .io_context(|| format!("chmod {}", motd.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_from_names() {
        assert_eq!(
            pid_of("zone-image-build-triton-api-1234-abcdef01"),
            Some(1234)
        );
        assert_eq!(
            pid_of("zone-image-recv-41bd4100-eb86-409a-85b0-e649aadf6f62-77-0badf00d"),
            Some(77)
        );
        assert_eq!(pid_of("zone-image-build-x"), None);
    }

    #[test]
    fn no_pool_means_no_stage() {
        if std::env::var("ZONE_IMAGE_ZPOOL").is_err() && zonename().is_none() {
            assert!(resolve_pool(&ZfsOptions::default()).is_none());
        }
        let p = resolve_pool(&ZfsOptions {
            zpool: Some("tank/x/".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!((p.pool.as_str(), p.key), ("tank/x", "--zpool"));
    }
}
