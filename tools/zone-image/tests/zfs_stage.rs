//! The ZFS image stage on real ZFS (zfs-fuse in CI): a synthetic origin
//! chain of real images, builds on it, and the result received into a
//! fresh pool the way a compute node's imgadm would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

#[path = "common/loopback_http.rs"]
mod loopback_http;
#[path = "common/zfs_fixture.rs"]
mod zfs_fixture;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use zone_image::definition::ImageDef;
use zone_image::zfs_image::{self, ZfsInput, ZfsOptions, ZfsOutputs};

use loopback_http::Reply;
use zfs_fixture::{Chain, TRITON_ORIGIN, TestPool, make_chain, mode, sh};

const IMAGE: &str = "zfs-fixture";
const STAMP: &str = "master-20260101T000000Z-gabc1234";

struct Setup {
    tmp: tempfile::TempDir,
    def: ImageDef,
    chain: Chain,
    // Last, so it is released after everything above is cleaned up.
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Setup {
    fn new(def_extra: &str) -> Setup {
        let serial = zfs_fixture::serial();
        zfs_fixture::require_zfs();
        let tmp = tempfile::tempdir().unwrap();
        let chain = make_chain(&tmp.path().join("origins"));
        zfs_fixture::make_proto(&tmp.path().join("proto"));
        let def = zfs_fixture::make_def(&tmp.path().join("ws"), IMAGE, def_extra);
        Setup {
            tmp,
            def,
            chain,
            _serial: serial,
        }
    }

    fn proto(&self) -> PathBuf {
        self.tmp.path().join("proto")
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("bits")
    }

    /// Origins from the fixture dir only; "" keeps the default remote
    /// source (the internet) out of the tests.
    fn opts(&self, pool: &TestPool) -> ZfsOptions {
        ZfsOptions {
            zpool: Some(pool.name.clone()),
            origin_dir: Some(self.chain.dir.clone()),
            origin_source: Some(String::new()),
            ..Default::default()
        }
    }

    fn build(&self, opts: &ZfsOptions) -> zone_image::Result<Option<ZfsOutputs>> {
        let git = zfs_fixture::git();
        zfs_image::build(&ZfsInput {
            def: &self.def,
            proto_dir: &self.proto(),
            stamp: STAMP,
            dev_reason: None,
            git: &git,
            out_dir: &self.out(),
            opts,
            progress: &progress::Reporter::lines("zone-image"),
        })
    }
}

fn origins_only(pool: &TestPool, chain: &Chain) -> Vec<String> {
    let mut v = vec![
        pool.name.clone(),
        pool.ds(&chain.base.uuid),
        format!("{}@final", pool.ds(&chain.base.uuid)),
        pool.ds(&chain.origin.uuid),
        format!("{}@final", pool.ds(&chain.origin.uuid)),
    ];
    v.sort();
    v
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
}

fn out_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn one_line_input_error(r: zone_image::Result<Option<ZfsOutputs>>) -> String {
    let e = r.expect_err("expected an error");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "not one line: {msg}");
    assert!(e.is_input(), "expected an input error, got: {msg}");
    msg
}

#[test]
fn builds_an_image_that_receives_into_a_fresh_pool() {
    let s = Setup::new(
        "[manifest]\nusers = [{ name = \"nobody\" }]\nmin_platform = { \"7.0\" = \"20240101T000000Z\" }\n",
    );
    let pool = TestPool::new("bld");
    let out = s.build(&s.opts(&pool)).unwrap().expect("a pool was given");

    // The manifest describes the file byte for byte.
    let m = read_json(&out.manifest_file);
    let on_disk = zone_image::compress::sha1_file(&out.image_file).unwrap();
    assert_eq!(m["files"][0]["sha1"], on_disk.sha1);
    assert_eq!(m["files"][0]["size"], on_disk.size);
    assert_eq!(m["files"][0]["compression"], "gzip");
    assert_eq!(
        (out.sha1.as_str(), out.size),
        (on_disk.sha1.as_str(), on_disk.size)
    );
    assert_eq!(m["uuid"], out.uuid.to_string());
    assert_eq!(m["v"], 2);
    assert_eq!(m["name"], IMAGE);
    assert_eq!(m["version"], STAMP);
    assert_eq!(m["owner"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(m["origin"], TRITON_ORIGIN);
    assert_eq!(m["tags"]["smartdc_service"], true);
    assert!(m["tags"].get("dev_build").is_none());
    // Inherited from the origin, except where the definition says otherwise.
    assert_eq!(m["type"], "zone-dataset");
    assert_eq!(m["os"], "smartos");
    assert_eq!(m["billing_tags"], serde_json::json!(["fixture"]));
    assert_eq!(m["traits"], serde_json::json!({ "ssd": true }));
    assert_eq!(m["generate_passwords"], false);
    assert_eq!(
        m["inherited_directories"],
        serde_json::json!(["/opt/local"])
    );
    assert_eq!(m["users"], serde_json::json!([{ "name": "nobody" }]));
    assert_eq!(m["requirements"]["brand"], "joyent-minimal");
    assert_eq!(m["requirements"]["networks"][0]["name"], "net0");
    assert_eq!(
        m["requirements"]["min_platform"],
        serde_json::json!({ "7.0": "20240101T000000Z" })
    );
    assert!(m.get("not_an_imgapi_field").is_none());
    assert_eq!(m["tags"].get("role"), None, "tags are not inherited");
    assert!(m["published_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        out.image_file.file_name().unwrap().to_string_lossy(),
        format!("{IMAGE}-zfs-{STAMP}.zfs.gz")
    );
    assert_eq!(mode(&out.image_file), 0o644);

    // Nothing but the pool and the origins stays behind.
    assert_eq!(pool.list(), origins_only(&pool, &s.chain));
    assert_eq!(
        out_files(&s.out()),
        vec![
            format!("{IMAGE}-zfs-{STAMP}.imgmanifest"),
            format!("{IMAGE}-zfs-{STAMP}.zfs.gz")
        ]
    );

    // A compute node: base, origin, image, in order, into a fresh pool.
    let node = TestPool::new("node");
    node.receive(&s.chain.base.uuid, &s.chain.base.file);
    node.receive(&s.chain.origin.uuid, &s.chain.origin.file);
    let uuid = out.uuid.to_string();
    node.receive(&uuid, &out.image_file);
    let origin_of = sh(&format!("zfs get -H -o value origin {}", node.ds(&uuid)));
    assert_eq!(
        origin_of.trim(),
        format!("{}@final", node.ds(TRITON_ORIGIN))
    );

    let top = node.mountpoint(&uuid);
    let root = top.join("root");
    let svc = root.join("opt/smartdc/svc");
    assert_eq!(
        fs::read_to_string(svc.join("bin/server")).unwrap(),
        "#!/bin/sh\nexec true\n"
    );
    assert_eq!(mode(&svc.join("bin/server")), 0o755);
    assert_eq!(mode(&svc.join("etc/config.json")), 0o644);
    assert_eq!(mode(&svc.join("etc")), 0o750);
    assert_eq!(mode(&svc.join("secret")), 0o600);
    assert_eq!(mode(&root.join("opt/custom/smf/svc.xml")), 0o444);
    assert_eq!(
        fs::read_link(svc.join("run")).unwrap(),
        Path::new("bin/server")
    );
    for p in ["bin/server", "etc", "secret", "run"] {
        let md = fs::symlink_metadata(svc.join(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (0, 0), "{p} owner");
    }
    // The origin chain's files are there too, with the origin's changes.
    assert_eq!(
        fs::read_to_string(root.join("usr/bin/base-tool")).unwrap(),
        "#!/bin/sh\necho base\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("opt/local/origin-file")).unwrap(),
        "from the origin\n"
    );
    assert_eq!(
        fs::read_to_string(root.join("etc/base.conf")).unwrap(),
        "changed by origin\n"
    );
    assert!(top.join("site/.do-not-delete-me").is_file());
    assert!(
        !top.join("config").exists(),
        "the zoneroot config dir must go"
    );
    let motd = fs::read_to_string(root.join("etc/motd")).unwrap();
    assert!(motd.contains(&format!("{IMAGE} ({STAMP})")), "{motd}");
    assert!(
        motd.contains("https://github.com/TritonDataCenter/triton-api.git"),
        "{motd}"
    );
    assert!(motd.contains("fixture-origin@2.0"), "{motd}");
}

#[test]
fn origins_already_in_the_pool_are_reused() {
    let s = Setup::new("");
    let pool = TestPool::new("reuse");
    // Received by hand, as imgadm would have: no manifest kept on them.
    pool.receive(&s.chain.base.uuid, &s.chain.base.file);
    pool.receive(&s.chain.origin.uuid, &s.chain.origin.file);
    let guid = |p: &TestPool| {
        sh(&format!(
            "zfs get -H -o value guid {}@final",
            p.ds(TRITON_ORIGIN)
        ))
    };
    let before = guid(&pool);

    // Manifests only: a build that tried to receive would find no file.
    let manifests_only = s.tmp.path().join("manifests-only");
    fs::create_dir_all(&manifests_only).unwrap();
    for img in [&s.chain.base, &s.chain.origin] {
        fs::copy(
            &img.manifest,
            manifests_only.join(img.manifest.file_name().unwrap()),
        )
        .unwrap();
    }
    let mut opts = s.opts(&pool);
    opts.origin_dir = Some(manifests_only);
    let out = s.build(&opts).unwrap().unwrap();
    assert_eq!(read_json(&out.manifest_file)["origin"], TRITON_ORIGIN);
    assert_eq!(guid(&pool), before);
    assert_eq!(pool.list(), origins_only(&pool, &s.chain));

    // Origins this tool received carry their manifest: no source needed.
    let pool2 = TestPool::new("reuse2");
    s.build(&s.opts(&pool2)).unwrap().unwrap();
    let before2 = guid(&pool2);
    let bare = ZfsOptions {
        zpool: Some(pool2.name.clone()),
        origin_source: Some(String::new()),
        ..Default::default()
    };
    let out2 = s.build(&bare).unwrap().unwrap();
    assert_eq!(read_json(&out2.manifest_file)["origin"], TRITON_ORIGIN);
    assert_eq!(guid(&pool2), before2);
}

#[test]
fn origin_files_are_verified_before_receive() {
    let s = Setup::new("");
    let pool = TestPool::new("verify");

    // A flipped byte in the base: nothing at all may be received.
    let bad = s.tmp.path().join("bad-base");
    copy_dir(&s.chain.dir, &bad);
    let base_file = bad.join(s.chain.base.file.file_name().unwrap());
    let mut bytes = fs::read(&base_file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    fs::write(&base_file, &bytes).unwrap();
    let mut opts = s.opts(&pool);
    opts.origin_dir = Some(bad);
    let msg = one_line_input_error(s.build(&opts));
    assert!(
        msg.contains("sha1") && msg.contains(&base_file.display().to_string()),
        "{msg}"
    );
    assert_eq!(pool.list(), vec![pool.name.clone()]);

    // Wrong size of the origin: the base is fine and lands, the origin not.
    let short = s.tmp.path().join("short-origin");
    copy_dir(&s.chain.dir, &short);
    let origin_file = short.join(s.chain.origin.file.file_name().unwrap());
    let mut bytes = fs::read(&origin_file).unwrap();
    bytes.push(0);
    fs::write(&origin_file, &bytes).unwrap();
    opts.origin_dir = Some(short);
    let msg = one_line_input_error(s.build(&opts));
    assert!(msg.contains("size") && msg.contains("bytes"), "{msg}");
    let mut want = vec![
        pool.name.clone(),
        pool.ds(&s.chain.base.uuid),
        format!("{}@final", pool.ds(&s.chain.base.uuid)),
    ];
    want.sort();
    assert_eq!(pool.list(), want);
    assert!(out_files(&s.out()).is_empty(), "{:?}", out_files(&s.out()));
}

/// Re-encode a chain image: `cmd` turns the raw stream into `suffix`.
fn recompress(img: &zfs_fixture::FixtureImage, to: &Path, cmd: &str, suffix: &str, name: &str) {
    let prefix = img
        .manifest
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".imgmanifest", "");
    let file = to.join(format!("{prefix}{suffix}"));
    sh(&format!(
        "gzip -dc {} | {cmd} > {}",
        img.file.display(),
        file.display()
    ));
    let sum = zone_image::compress::sha1_file(&file).unwrap();
    let mut m = read_json(&img.manifest);
    m["files"] = serde_json::json!([{ "sha1": sum.sha1, "size": sum.size, "compression": name }]);
    fs::write(to.join(format!("{prefix}.imgmanifest")), m.to_string()).unwrap();
}

#[test]
fn origins_in_every_compression() {
    let s = Setup::new("");
    for (origin_cmd, suffix, name) in [
        ("bzip2 -c", ".zfs.bz2", "bzip2"),
        ("xz -c", ".zfs.xz", "xz"),
    ] {
        let dir = s.tmp.path().join(format!("origins-{name}"));
        fs::create_dir_all(&dir).unwrap();
        recompress(&s.chain.base, &dir, "cat", ".zfs", "none");
        recompress(&s.chain.origin, &dir, origin_cmd, suffix, name);
        let pool = TestPool::new(&name[..2]);
        let mut opts = s.opts(&pool);
        opts.origin_dir = Some(dir.clone());
        let out = s.build(&opts).unwrap().unwrap();
        assert_eq!(read_json(&out.manifest_file)["origin"], TRITON_ORIGIN);
        assert_eq!(pool.list(), origins_only(&pool, &s.chain));
        let root = pool.mountpoint(TRITON_ORIGIN).join("root");
        assert_eq!(
            fs::read_to_string(root.join("opt/local/origin-file")).unwrap(),
            "from the origin\n"
        );
    }

    // The suffix must agree with the manifest's compression.
    let dir = s.tmp.path().join("mismatch");
    fs::create_dir_all(&dir).unwrap();
    recompress(&s.chain.base, &dir, "bzip2 -c", ".zfs.bz2", "gzip");
    let pool = TestPool::new("mm");
    let mut opts = s.opts(&pool);
    opts.origin_dir = Some(dir);
    recompress(
        &s.chain.origin,
        opts.origin_dir.as_ref().unwrap(),
        "cat",
        ".zfs",
        "none",
    );
    let msg = one_line_input_error(s.build(&opts));
    assert!(
        msg.contains("files[0].compression") && msg.contains(".zfs.bz2"),
        "{msg}"
    );
    assert_eq!(pool.list(), vec![pool.name.clone()]);
}

#[test]
fn origins_come_from_an_imgapi_source() {
    let s = Setup::new("");
    let pool = TestPool::new("src");
    let mut routes = HashMap::new();
    for img in [&s.chain.base, &s.chain.origin] {
        routes.insert(
            format!("/images/{}", img.uuid),
            Reply::Json(fs::read_to_string(&img.manifest).unwrap()),
        );
        routes.insert(
            format!("/images/{}/file", img.uuid),
            Reply::File(img.file.clone()),
        );
    }
    let server = loopback_http::serve(routes);
    let opts = ZfsOptions {
        zpool: Some(pool.name.clone()),
        origin_source: Some(server.url.clone()),
        channel: Some("dev".into()),
        ..Default::default()
    };
    let out = s.build(&opts).unwrap().unwrap();
    assert_eq!(read_json(&out.manifest_file)["origin"], TRITON_ORIGIN);
    assert_eq!(pool.list(), origins_only(&pool, &s.chain));
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.contains(&format!("/images/{TRITON_ORIGIN}/file?channel=dev")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&format!("/images/{}?channel=dev", s.chain.base.uuid)),
        "{seen:?}"
    );

    // A server whose file doesn't match its manifest: refused, nothing lands.
    let pool2 = TestPool::new("srcbad");
    let mut routes = HashMap::new();
    routes.insert(
        format!("/images/{TRITON_ORIGIN}"),
        Reply::Json(fs::read_to_string(&s.chain.origin.manifest).unwrap()),
    );
    routes.insert(
        format!("/images/{}", s.chain.base.uuid),
        Reply::Json(fs::read_to_string(&s.chain.base.manifest).unwrap()),
    );
    let mut bytes = fs::read(&s.chain.base.file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x80;
    let flipped = s.tmp.path().join("flipped.zfs.gz");
    fs::write(&flipped, &bytes).unwrap();
    routes.insert(
        format!("/images/{}/file", s.chain.base.uuid),
        Reply::File(flipped),
    );
    let bad = loopback_http::serve(routes);
    let mut opts2 = opts.clone();
    opts2.zpool = Some(pool2.name.clone());
    opts2.origin_source = Some(bad.url.clone());
    let msg = s.build(&opts2).unwrap_err().to_string();
    assert!(msg.contains("sha1"), "{msg}");
    assert_eq!(pool2.list(), vec![pool2.name.clone()]);

    // A failing server is an error, not "not found".
    let mut routes = HashMap::new();
    routes.insert(format!("/images/{TRITON_ORIGIN}"), Reply::Status(503));
    let down = loopback_http::serve(routes);
    opts2.origin_source = Some(down.url.clone());
    let e = s.build(&opts2).unwrap_err();
    let msg = e.to_string();
    assert!(!e.is_input() && msg.contains("503"), "{msg}");
}

#[test]
fn bad_inputs_give_one_line_errors() {
    let s = Setup::new("");
    let pool = TestPool::new("bad");

    let mut opts = s.opts(&pool);
    opts.zpool = Some("zinosuchpool".into());
    let msg = one_line_input_error(s.build(&opts));
    assert!(
        msg.contains("no such ZFS pool or dataset 'zinosuchpool'"),
        "{msg}"
    );

    // Origin nowhere: empty dir, and a source that answers 404.
    let empty = s.tmp.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let nowhere = loopback_http::serve(HashMap::new());
    let opts = ZfsOptions {
        zpool: Some(pool.name.clone()),
        origin_dir: Some(empty.clone()),
        origin_source: Some(nowhere.url.clone()),
        ..Default::default()
    };
    let msg = one_line_input_error(s.build(&opts));
    assert!(
        msg.contains(TRITON_ORIGIN) && msg.contains("not found"),
        "{msg}"
    );

    // Manifest without files, and with an unknown compression.
    for (files, expect) in [
        (serde_json::json!([]), "files: "),
        (
            serde_json::json!([{ "sha1": "97f20b32c2016782257176fb58a35e5044f05840", "size": 3, "compression": "lz4" }]),
            "unsupported compression 'lz4'",
        ),
    ] {
        let dir = s.tmp.path().join(format!("m{}", expect.len()));
        copy_dir(&s.chain.dir, &dir);
        let mpath = dir.join(s.chain.origin.manifest.file_name().unwrap());
        let mut m = read_json(&mpath);
        m["files"] = files;
        fs::write(&mpath, m.to_string()).unwrap();
        let opts = ZfsOptions {
            zpool: Some(pool.name.clone()),
            origin_dir: Some(dir),
            origin_source: Some(String::new()),
            ..Default::default()
        };
        let msg = one_line_input_error(s.build(&opts));
        assert!(
            msg.contains(expect) && msg.contains(&mpath.display().to_string()),
            "{msg}"
        );
    }
    assert_eq!(pool.list(), vec![pool.name.clone()]);
}

#[test]
fn pkgsrc_needs_illumos_or_skip_pkgsrc() {
    let s = Setup::new("[pkgsrc]\npackages = [\"nodejs\"]\n");
    let pool = TestPool::new("pkg");
    if cfg!(target_os = "illumos") {
        return;
    }
    let msg = one_line_input_error(s.build(&s.opts(&pool)));
    assert!(
        msg.contains("pkgsrc.packages") && msg.contains("--skip-pkgsrc"),
        "{msg}"
    );
    assert_eq!(pool.list(), vec![pool.name.clone()]);

    let mut opts = s.opts(&pool);
    opts.skip_pkgsrc = true;
    let out = s.build(&opts).unwrap().unwrap();
    let m = read_json(&out.manifest_file);
    assert_eq!(m["version"], format!("{STAMP}-dev"));
    assert_eq!(m["tags"]["dev_build"], true);
}

#[test]
fn no_pool_configured_skips_the_stage() {
    let s = Setup::new("");
    if std::env::var_os("ZONE_IMAGE_ZPOOL").is_some() {
        return;
    }
    let opts = ZfsOptions {
        origin_dir: Some(s.chain.dir.clone()),
        ..Default::default()
    };
    assert!(s.build(&opts).unwrap().is_none());
    assert!(out_files(&s.out()).is_empty());
}

// ---- interrupts: the stage runs in a child process we can signal ----

const CHILD_ENV: &str = "ZI_TEST_CHILD";

/// Runs the stage when started by [`spawn_child`]; ignored otherwise.
#[test]
#[ignore = "run as a child process by the interrupt tests"]
fn child_stage_worker() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let v: Value = serde_json::from_str(&spec).unwrap();
    let s = |k: &str| PathBuf::from(v[k].as_str().unwrap());
    zone_image::cancel::install_handler();
    let def = zone_image::definition::load(&s("ws"), IMAGE).unwrap();
    let git = zfs_fixture::git();
    let opts = ZfsOptions {
        zpool: Some(v["pool"].as_str().unwrap().to_string()),
        origin_dir: Some(s("origins")),
        origin_source: Some(String::new()),
        ..Default::default()
    };
    let r = zfs_image::build(&ZfsInput {
        def: &def,
        proto_dir: &s("proto"),
        stamp: STAMP,
        dev_reason: None,
        git: &git,
        out_dir: &s("out"),
        opts: &opts,
        progress: &progress::Reporter::lines("zone-image"),
    });
    match r {
        Ok(Some(_)) => std::process::exit(0),
        Ok(None) => std::process::exit(4),
        Err(e) => {
            eprintln!("child error: {e}");
            std::process::exit(3)
        }
    }
}

struct Child {
    proc: std::process::Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Child {
    fn wait_for(&mut self, needle: &str) {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(300)) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.log.push(l);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "child never said '{needle}'; it said:\n{}",
                    self.log.join("\n")
                ),
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child's pid.
        assert_eq!(unsafe { libc::kill(self.proc.id() as i32, sig) }, 0);
    }

    fn finish(mut self) -> (i32, String) {
        let status = self.proc.wait().unwrap();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.log.push(l);
        }
        (status.code().unwrap_or(-1), self.log.join("\n"))
    }
}

fn spawn_child(s: &Setup, pool: &TestPool, pause_at: Option<&str>) -> Child {
    let spec = serde_json::json!({
        "ws": s.tmp.path().join("ws"), "proto": s.proto(), "out": s.out(),
        "origins": s.chain.dir, "pool": pool.name,
    });
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        "child_stage_worker",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, spec.to_string())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    match pause_at {
        Some(p) => cmd.env(zfs_image::PAUSE_ENV, p),
        None => cmd.env_remove(zfs_image::PAUSE_ENV),
    };
    let mut proc = cmd.spawn().unwrap();
    let stderr = proc.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    Child {
        proc,
        lines: rx,
        log: Vec::new(),
    }
}

/// Datasets a build made (or was making): not the pool, not an origin.
fn leftovers(pool: &TestPool, chain: &Chain) -> Vec<String> {
    let keep = origins_only(pool, chain);
    pool.list()
        .into_iter()
        .filter(|d| !keep.contains(d))
        .collect()
}

#[test]
fn sigint_at_any_step_leaves_only_pool_and_origins() {
    let s = Setup::new("");
    let pool = TestPool::new("int");
    for step in [
        "origin-receive",
        "clone",
        "copy",
        "motd",
        "snapshot",
        "send",
        "send-stream",
        "manifest",
    ] {
        let mut child = spawn_child(&s, &pool, Some(step));
        child.wait_for(&format!("paused at {step}"));
        child.signal(libc::SIGINT);
        let (code, log) = child.finish();
        assert_eq!(code, 3, "step {step}: {log}");
        assert!(
            log.contains("child error: interrupted"),
            "step {step}: {log}"
        );
        let named = match step {
            "origin-receive" => "origin",
            "send-stream" => "send",
            s => s,
        };
        assert!(log.contains(&format!("'{named}' step")), "{log}");
        assert_eq!(
            leftovers(&pool, &s.chain),
            Vec::<String>::new(),
            "step {step}: {log}"
        );
        assert!(
            out_files(&s.out()).is_empty(),
            "step {step}: {:?}",
            out_files(&s.out())
        );
    }
    // Whatever was interrupted, a clean run still works afterwards.
    let (code, log) = spawn_child(&s, &pool, None).finish();
    assert_eq!(code, 0, "{log}");
    assert_eq!(leftovers(&pool, &s.chain), Vec::<String>::new());
}

#[test]
fn sigkill_then_rerun_sweeps_what_was_left() {
    let s = Setup::new("");
    let pool = TestPool::new("kill");
    for step in ["origin-receive", "copy", "send-stream"] {
        let mut child = spawn_child(&s, &pool, Some(step));
        child.wait_for(&format!("paused at {step}"));
        child.signal(libc::SIGKILL);
        let (code, log) = child.finish();
        assert_eq!(code, -1, "killed: {log}");
        if step != "origin-receive" {
            // The kill really left something for the next run to clean.
            let left = leftovers(&pool, &s.chain);
            assert!(
                left.iter().any(|d| d.contains(zfs_image::BUILD_PREFIX)),
                "step {step}: {left:?}"
            );
        }
        if step == "send-stream" {
            assert!(out_files(&s.out()).iter().any(|f| f.ends_with(".tmp")));
        }

        let (code, log) = spawn_child(&s, &pool, None).finish();
        assert_eq!(code, 0, "rerun after a kill at {step}: {log}");
        if step != "origin-receive" {
            assert!(log.contains("removing stale"), "{log}");
        }
        assert_eq!(
            leftovers(&pool, &s.chain),
            Vec::<String>::new(),
            "after {step}: {log}"
        );
        assert!(
            out_files(&s.out()).iter().all(|f| !f.ends_with(".tmp")),
            "{:?}",
            out_files(&s.out())
        );
        fs::remove_dir_all(s.out()).unwrap();
    }
}

#[test]
fn a_live_build_is_never_swept() {
    let s = Setup::new("");
    let pool = TestPool::new("live");
    let mut paused = spawn_child(&s, &pool, Some("copy"));
    paused.wait_for("paused at copy");
    let live: Vec<String> = leftovers(&pool, &s.chain);
    assert_eq!(live.len(), 1, "{live:?}");

    // Another build on the same pool runs its sweep and finishes.
    let (code, log) = spawn_child(&s, &pool, None).finish();
    assert_eq!(code, 0, "{log}");
    assert!(
        pool.list().contains(&live[0]),
        "the paused build's dataset was swept"
    );
    paused.signal(libc::SIGINT);
    let (code, _) = paused.finish();
    assert_eq!(code, 3);
    assert_eq!(leftovers(&pool, &s.chain), Vec::<String>::new());
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}
