//! Real ZFS for tests: file-backed pools on zfs-fuse (or any working
//! `zfs`), and a synthetic origin chain built as real images.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use serde_json::{Value, json};
use zone_image::compress;

/// The origin of images/triton-api; the fixture's `origin` image uses it.
pub const TRITON_ORIGIN: &str = "41bd4100-eb86-409a-85b0-e649aadf6f62";

/// zfs-fuse can deadlock when several pools are created, mounted and
/// destroyed at once (seen with this suite in parallel), so the tests that
/// touch ZFS take turns. Hold the guard for the whole test.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Set once a command timed out, so the remaining tests fail at once.
static WEDGED: AtomicBool = AtomicBool::new(false);

/// Fail loudly (never skip) when ZFS is not usable here.
pub fn require_zfs() {
    assert!(
        !WEDGED.load(Ordering::SeqCst),
        "an earlier ZFS command timed out; the zfs-fuse daemon looks wedged (restart it)"
    );
    let ok = Command::new("timeout")
        .args(["60", "zpool", "list", "-H"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests need a working ZFS: install zfs-fuse (apt-get install zfs-fuse) and start it \
         with `mkdir -p /var/run/zfs /var/lock/zfs; zfs-fuse --pidfile /var/run/zfs-fuse.pid` \
         (.ci/run does both), and run as root"
    );
}

/// Longest a fixture command may take: a wedged zfs-fuse daemon then fails
/// the test instead of hanging CI.
const TIMEOUT: &str = "180";

pub fn sh(script: &str) -> String {
    let out = Command::new("timeout")
        .args([TIMEOUT, "bash", "-o", "pipefail", "-c", script])
        .output()
        .expect("running bash");
    if out.status.code() == Some(124) {
        WEDGED.store(true, Ordering::SeqCst);
        panic!("`{script}` took over {TIMEOUT}s: is the zfs-fuse daemon wedged? (restart it)");
    }
    assert!(
        out.status.success(),
        "`{script}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn retry_busy(script: &str) {
    for _ in 0..50 {
        let out = Command::new("timeout")
            .args([TIMEOUT, "bash", "-c", script])
            .output()
            .expect("bash");
        if out.status.success() {
            return;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("busy") {
            panic!("`{script}` failed: {err}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    panic!("`{script}`: still busy");
}

/// A file-backed pool in its own temp dir, destroyed on drop.
pub struct TestPool {
    pub name: String,
    pub mnt: PathBuf,
    _dir: tempfile::TempDir,
}

static POOLS: AtomicU32 = AtomicU32::new(0);

impl TestPool {
    pub fn new(tag: &str) -> TestPool {
        require_zfs();
        let dir = tempfile::tempdir().expect("tempdir");
        let n = POOLS.fetch_add(1, Ordering::SeqCst);
        let name = format!("zi{tag}{}x{n}", std::process::id());
        let file = dir.path().join("pool.img");
        let mnt = dir.path().join("mnt");
        sh(&format!("truncate -s 256M {}", file.display()));
        sh(&format!(
            "zpool create -m {} {name} {}",
            mnt.display(),
            file.display()
        ));
        TestPool {
            name,
            mnt,
            _dir: dir,
        }
    }

    /// `zfs list -t all` below this pool, names only, sorted.
    pub fn list(&self) -> Vec<String> {
        let mut v: Vec<String> = sh(&format!("zfs list -H -o name -t all -r {}", self.name))
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    }

    pub fn ds(&self, rel: &str) -> String {
        format!("{}/{rel}", self.name)
    }

    pub fn mountpoint(&self, rel: &str) -> PathBuf {
        PathBuf::from(sh(&format!("zfs get -H -o value mountpoint {}", self.ds(rel))).trim())
    }

    /// Receive an image file as imgadm would: `<pool>/<uuid>`.
    pub fn receive(&self, uuid: &str, file: &Path) {
        let cat = if file.extension().is_some_and(|e| e == "gz") {
            "gzip -dc"
        } else {
            "cat"
        };
        sh(&format!(
            "{cat} {} | zfs receive {}/{uuid}",
            file.display(),
            self.name
        ));
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        retry_busy(&format!("zpool destroy -f {}", self.name));
    }
}

/// One image of the chain: manifest plus file in the origin dir.
#[derive(Debug, Clone)]
pub struct FixtureImage {
    pub uuid: String,
    pub manifest: PathBuf,
    pub file: PathBuf,
}

/// base (full stream) -> origin (incremental), as real images in `dir`.
#[derive(Debug, Clone)]
pub struct Chain {
    pub dir: PathBuf,
    pub base: FixtureImage,
    pub origin: FixtureImage,
}

fn write_file(path: &Path, content: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Send a snapshot (incremental from `from` if given) through the
/// production gzip into `dir/<prefix>.zfs.gz`, and write a manifest.
fn image(
    dir: &Path,
    prefix: &str,
    from: Option<&str>,
    snap: &str,
    mut manifest: Value,
) -> FixtureImage {
    let file = dir.join(format!("{prefix}.zfs.gz"));
    let (child, stdout) = zone_image::zfs::ZfsChild::send(from, snap).expect("zfs send");
    let c = compress::gzip_stream(stdout, &file, 6).expect("gzip");
    child.finish().expect("zfs send finished");
    manifest["files"] = json!([{ "sha1": c.sha1, "size": c.size, "compression": "gzip" }]);
    let path = dir.join(format!("{prefix}.imgmanifest"));
    fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    FixtureImage {
        uuid: manifest["uuid"].as_str().unwrap().to_string(),
        manifest: path,
        file,
    }
}

/// A v4-shaped uuid without the uuid crate (xtask's tests share this file).
fn fresh_uuid() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = POOLS.fetch_add(1, Ordering::SeqCst);
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        std::process::id(),
        n & 0xffff,
        nanos & 0xffff_ffff_ffff
    )
}

/// Build the chain in a scratch pool (destroyed after) into `dir`.
pub fn make_chain(dir: &Path) -> Chain {
    fs::create_dir_all(dir).unwrap();
    let pool = TestPool::new("src");
    let base_uuid = fresh_uuid();
    sh(&format!("zfs create {}", pool.ds("base")));
    let b = pool.mountpoint("base");
    write_file(&b.join("root/etc/base.conf"), "base config\n", 0o644);
    write_file(
        &b.join("root/usr/bin/base-tool"),
        "#!/bin/sh\necho base\n",
        0o755,
    );
    write_file(&b.join("root/etc/motd"), "old motd\n", 0o644);
    write_file(&b.join("config/zone.xml"), "<zone/>\n", 0o644);
    sh(&format!("zfs snapshot {}@final", pool.ds("base")));
    let base = image(
        dir,
        "fixture-base-1.0",
        None,
        &format!("{}@final", pool.ds("base")),
        json!({
            "v": 2, "uuid": base_uuid, "owner": "00000000-0000-0000-0000-000000000000",
            "name": "fixture-base", "version": "1.0", "state": "active",
            "disabled": false, "public": true, "published_at": "2026-01-01T00:00:00.000Z",
            "type": "zone-dataset", "os": "smartos", "description": "fixture base",
            "requirements": { "brand": "joyent-minimal" }
        }),
    );

    sh(&format!(
        "zfs clone {}@final {}",
        pool.ds("base"),
        pool.ds("origin")
    ));
    let o = pool.mountpoint("origin");
    write_file(
        &o.join("root/opt/local/origin-file"),
        "from the origin\n",
        0o600,
    );
    write_file(&o.join("root/etc/base.conf"), "changed by origin\n", 0o640);
    sh(&format!("zfs snapshot {}@final", pool.ds("origin")));
    let origin = image(
        dir,
        "fixture-origin-2.0",
        Some(&format!("{}@final", pool.ds("base"))),
        &format!("{}@final", pool.ds("origin")),
        json!({
            "v": 2, "uuid": TRITON_ORIGIN, "owner": "00000000-0000-0000-0000-000000000000",
            "name": "fixture-origin", "version": "2.0", "state": "active",
            "disabled": false, "public": true, "published_at": "2026-01-02T00:00:00.000Z",
            "type": "zone-dataset", "os": "smartos", "description": "fixture origin",
            "origin": base_uuid,
            "requirements": {
                "brand": "joyent-minimal",
                "min_platform": { "7.0": "20100101T000000Z" },
                "networks": [{ "name": "net0", "description": "admin" }]
            },
            "users": [{ "name": "root" }, { "name": "admin" }],
            "billing_tags": ["fixture"],
            "traits": { "ssd": true },
            "generate_passwords": false,
            "inherited_directories": ["/opt/local"],
            "tags": { "role": "origin-only" },
            "not_an_imgapi_field": "must not be inherited"
        }),
    );
    drop(pool);
    Chain {
        dir: dir.to_path_buf(),
        base,
        origin,
    }
}

/// A proto tree with modes worth checking.
pub fn make_proto(dir: &Path) {
    let r = dir.join("root");
    write_file(
        &r.join("opt/smartdc/svc/bin/server"),
        "#!/bin/sh\nexec true\n",
        0o755,
    );
    write_file(
        &r.join("opt/smartdc/svc/etc/config.json"),
        "{\"port\": 80}\n",
        0o644,
    );
    write_file(
        &r.join("opt/custom/smf/svc.xml"),
        "<service_bundle/>\n",
        0o444,
    );
    write_file(&r.join("opt/smartdc/svc/secret"), "s3cret\n", 0o600);
    fs::set_permissions(
        r.join("opt/smartdc/svc/etc"),
        fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    symlink("bin/server", r.join("opt/smartdc/svc/run")).unwrap();
    write_file(&dir.join("site/.do-not-delete-me"), "", 0o644);
}

/// A workspace with one image definition; returns (workspace, def).
pub fn make_def(ws: &Path, name: &str, extra: &str) -> zone_image::definition::ImageDef {
    let dir = ws.join("images").join(name);
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("image.toml");
    let text = format!(
        "name = \"{name}\"\ndescription = \"test image\"\nkind = \"zone\"\n\
         origin = \"{TRITON_ORIGIN}\"\nos = \"smartos\"\n{extra}"
    );
    fs::write(&file, &text).unwrap();
    zone_image::definition::parse(ws, &dir, &file, &text).expect("definition")
}

pub fn git() -> zone_image::stamp::GitInfo {
    zone_image::stamp::GitInfo {
        branch: "master".into(),
        short_sha: "abc1234".into(),
        dirty: false,
        commit_time: 0,
        remote: Some("https://github.com/TritonDataCenter/triton-api.git".into()),
    }
}

pub fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}
