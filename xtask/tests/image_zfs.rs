//! `cargo xtask image build triton-api` through the ZFS stage, on real ZFS
//! (zfs-fuse in CI): the real image definition on a synthetic origin
//! chain, then the result received into a fresh pool as a compute node's
//! imgadm would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

#[path = "../../tools/zone-image/tests/common/loopback_http.rs"]
mod loopback_http;
#[path = "../../tools/zone-image/tests/common/zfs_fixture.rs"]
mod zfs_fixture;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use zfs_fixture::{TRITON_ORIGIN, TestPool, make_chain, mode};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn xtask_build(pool: &TestPool, origins: &Path, bits: &Path) -> Command {
    let mut c = Command::new(XTASK);
    c.args([
        "image",
        "build",
        "triton-api",
        "--force",
        "--cargo-profile",
        "dev",
    ])
    .args(["--zpool", &pool.name])
    .arg("--origin-dir")
    .arg(origins)
    .arg("--bits-dir")
    .arg(bits)
    .env_remove("XTASK_WORKSPACE")
    .env_remove("ZONE_IMAGE_ZPOOL")
    .env_remove("ZONE_IMAGE_TEST_PAUSE_AT")
    .env_remove("TIMESTAMP");
    c
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn find(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.to_string_lossy().ends_with(suffix));
    v
}

fn origins_only(pool: &TestPool, base: &str) -> Vec<String> {
    let mut v = vec![
        pool.name.clone(),
        pool.ds(base),
        format!("{}@final", pool.ds(base)),
        pool.ds(TRITON_ORIGIN),
        format!("{}@final", pool.ds(TRITON_ORIGIN)),
    ];
    v.sort();
    v
}

#[test]
fn triton_api_builds_a_zfs_image_that_installs_on_a_fresh_pool() {
    let _serial = zfs_fixture::serial();
    let tmp = tempfile::tempdir().unwrap();
    let chain = make_chain(&tmp.path().join("origins"));
    let pool = TestPool::new("xt");
    let bits = tmp.path().join("bits");

    let out = xtask_build(&pool, &chain.dir, &bits).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = bits.join("triton-api");
    let manifests = find(&dir, ".imgmanifest");
    let images = find(&dir, ".zfs.gz");
    assert_eq!(
        (manifests.len(), images.len()),
        (1, 1),
        "{:?}",
        fs::read_dir(&dir)
    );
    assert_eq!(find(&dir, ".tmp"), Vec::<PathBuf>::new());

    let m: Value = serde_json::from_str(&fs::read_to_string(&manifests[0]).unwrap()).unwrap();
    let file = zone_image::compress::sha1_file(&images[0]).unwrap();
    assert_eq!(m["files"][0]["sha1"], file.sha1);
    assert_eq!(m["files"][0]["size"], file.size);
    assert_eq!(m["name"], "triton-api");
    assert_eq!(m["origin"], TRITON_ORIGIN);
    assert_eq!(m["tags"]["smartdc_service"], true);
    assert_eq!(m["requirements"]["min_platform"]["7.0"], "20240905T002459Z");
    assert_eq!(m["requirements"]["brand"], "joyent-minimal");
    assert_eq!(
        m["users"],
        serde_json::json!([{ "name": "root" }, { "name": "admin" }])
    );
    if !cfg!(target_os = "illumos") {
        // Host binaries: a dev image, and it says so.
        let version = buildstamp::Stamp::parse(m["version"].as_str().unwrap()).unwrap();
        assert!(version.dev, "{m}");
        assert_eq!(m["tags"]["dev_build"], true);
    }
    assert_eq!(pool.list(), origins_only(&pool, &chain.base.uuid));

    // A compute node: base, origin, then the image, into a fresh pool.
    let node = TestPool::new("xtnode");
    node.receive(&chain.base.uuid, &chain.base.file);
    node.receive(TRITON_ORIGIN, &chain.origin.file);
    let uuid = m["uuid"].as_str().unwrap();
    node.receive(uuid, &images[0]);
    let top = node.mountpoint(uuid);
    let root = top.join("root");
    let server = root.join("opt/smartdc/triton-api/triton-api-server");
    assert_eq!(mode(&server), 0o755);
    assert_eq!(fs::metadata(&server).unwrap().uid(), 0);
    assert!(
        fs::metadata(&server).unwrap().len() > 100_000,
        "a real binary"
    );
    assert_eq!(mode(&root.join("opt/smartdc/boot/setup.sh")), 0o755);
    assert_eq!(
        mode(&root.join("opt/custom/smf/manifests/triton-api.xml")),
        0o644
    );
    assert!(top.join("site/.do-not-delete-me").is_file());
    assert_eq!(
        fs::read_to_string(root.join("opt/local/origin-file")).unwrap(),
        "from the origin\n"
    );
    assert!(!top.join("config").exists());
    let motd = fs::read_to_string(root.join("etc/motd")).unwrap();
    assert!(
        motd.contains("triton-api (") && motd.contains("fixture-origin@2.0"),
        "{motd}"
    );

    // An operator: origins first, then the image, into an IMGAPI (a local
    // imgapi-server) with tritonadm's import; each ends up active.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let opts =
            imgapi_server::Options::new(&tmp.path().join("imgapi"), "127.0.0.1:0".parse().unwrap());
        let server = imgapi_server::start(opts).expect("imgapi-server starts");
        let url = format!("http://{}", server.local_addr());
        let api = tritonadm::imgapi::Imgapi::connect(&url, &Default::default()).unwrap();
        let import = tritonadm::import::ImportOptions {
            // Every origin is imported explicitly; nothing may be fetched.
            source: "http://127.0.0.1:9".into(),
            ..Default::default()
        };
        for (m, f) in [
            (&chain.base.manifest, &chain.base.file),
            (&chain.origin.manifest, &chain.origin.file),
            (&manifests[0], &images[0]),
        ] {
            tritonadm::import::import_image(&api, m, f, &import)
                .await
                .unwrap_or_else(|e| panic!("importing {}: {e}", m.display()));
        }
        for u in [chain.base.uuid.as_str(), TRITON_ORIGIN, uuid] {
            let img = api
                .get_image(u.parse().unwrap(), None)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{u} not in IMGAPI"));
            assert_eq!(
                serde_json::to_value(&img).unwrap()["state"],
                "active",
                "{u}"
            );
        }
        server.close().await.unwrap();
    });
}

#[test]
fn sigint_in_the_zfs_stage_and_bad_pools() {
    let _serial = zfs_fixture::serial();
    let tmp = tempfile::tempdir().unwrap();
    let chain = make_chain(&tmp.path().join("origins"));
    let pool = TestPool::new("xtint");
    let bits = tmp.path().join("bits");

    let mut child = xtask_build(&pool, &chain.dir, &bits)
        .env("ZONE_IMAGE_TEST_PAUSE_AT", "send-stream")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        let hit = l.contains("paused at send-stream");
        log.push(l);
        if hit {
            break;
        }
    }
    assert!(
        log.last().is_some_and(|l| l.contains("paused")),
        "{}",
        log.join("\n")
    );
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    log.extend(lines.map_while(Result::ok));
    let log = log.join("\n");
    assert!(!status.success(), "{log}");
    assert!(log.contains("interrupted"), "{log}");
    assert_eq!(pool.list(), origins_only(&pool, &chain.base.uuid), "{log}");
    let dir = bits.join("triton-api");
    assert!(
        find(&dir, ".zfs.gz").is_empty()
            && find(&dir, ".tmp").is_empty()
            && find(&dir, ".imgmanifest").is_empty()
    );

    // No such pool: exit 2, one error line naming the flag.
    let out = Command::new(XTASK)
        .args([
            "image",
            "build",
            "triton-api",
            "--force",
            "--cargo-profile",
            "dev",
        ])
        .args(["--zpool", "zinosuchpool"])
        .arg("--bits-dir")
        .arg(&bits)
        .env_remove("XTASK_WORKSPACE")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: ") && last.contains("--zpool") && last.contains("zinosuchpool"),
        "{err}"
    );
}

/// xtask links no HTTPS client: an origin neither in the pool nor in
/// --origin-dir is downloaded by `cargo xtask image fetch-origin`
/// (xtask-ship, which the launcher builds when first asked), and the build
/// goes on with it.
#[test]
fn origins_to_download_are_handed_to_xtask_ship() {
    let _serial = zfs_fixture::serial();
    let tmp = tempfile::tempdir().unwrap();
    let chain = make_chain(&tmp.path().join("origins"));
    let mut routes = HashMap::new();
    for img in [&chain.base, &chain.origin] {
        routes.insert(
            format!("/images/{}", img.uuid),
            loopback_http::Reply::Json(fs::read_to_string(&img.manifest).unwrap()),
        );
        routes.insert(
            format!("/images/{}/file", img.uuid),
            loopback_http::Reply::File(img.file.clone()),
        );
    }
    let server = loopback_http::serve(routes);
    let empty = tmp.path().join("no-origins");
    fs::create_dir(&empty).unwrap();
    let pool = TestPool::new("xf");
    let bits = tmp.path().join("bits");

    let out = xtask_build(&pool, &empty, &bits)
        .args(["--source", &server.url, "--origin-channel", "dev"])
        .output()
        .unwrap();
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("handing the download to xtask-ship"), "{log}");
    assert_eq!(find(&bits.join("triton-api"), ".zfs.gz").len(), 1, "{log}");
    assert_eq!(pool.list(), origins_only(&pool, &chain.base.uuid), "{log}");
    let seen = server.seen.lock().unwrap().clone();
    for img in [&chain.base, &chain.origin] {
        let file = format!("/images/{}/file?channel=dev", img.uuid);
        assert!(seen.contains(&file), "{seen:?}");
    }
}
