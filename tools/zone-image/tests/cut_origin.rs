//! Origins downloaded from an IMGAPI source (what `image build
//! --source` does) through a fault-injecting TCP proxy, into a real
//! pool on zfs-fuse: a connection cut at a random point is retried or
//! reported in one line, a partial origin never lands in the pool, and a
//! stalled source times out with a message that says so.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

#[path = "common/loopback_http.rs"]
mod loopback_http;
#[path = "common/zfs_fixture.rs"]
mod zfs_fixture;

use std::collections::HashMap;
use std::fs;
use std::process::{Command, Stdio};

use fault_proxy::{Action, Direction, FaultProxy, XorShift};
use zone_image::origin::{Origins, READ_TIMEOUT_ENV};

use loopback_http::Reply;
use zfs_fixture::{Chain, TRITON_ORIGIN, TestPool, make_chain, sh};

/// Fixed, so a failure names a run that can be replayed.
const SEED: u64 = 0x0419_1b5e_ed00_cafe;

/// An IMGAPI source serving the fixture chain.
fn serve(chain: &Chain) -> loopback_http::Server {
    let mut routes = HashMap::new();
    for img in [&chain.base, &chain.origin] {
        routes.insert(
            format!("/images/{}", img.uuid),
            Reply::Json(fs::read_to_string(&img.manifest).unwrap()),
        );
        routes.insert(
            format!("/images/{}/file", img.uuid),
            Reply::File(img.file.clone()),
        );
    }
    loopback_http::serve(routes)
}

fn ensure(pool: &str, source: &str) -> zone_image::Result<zone_image::manifest::Manifest> {
    Origins {
        pool,
        dir: None,
        source: Some(source),
        channel: None,
        fetch: None,
        progress: &progress::Reporter::lines("zone-image"),
    }
    .ensure(TRITON_ORIGIN.parse().unwrap())
}

/// `zfs list -t all` below `parent`, sorted.
fn list(parent: &str) -> Vec<String> {
    let mut v: Vec<String> = sh(&format!("zfs list -H -o name -t all -r {parent}"))
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// What may be under `parent` at any time: whole origins (dataset with
/// its `@final`) whose content is the fixture's, nothing else.
fn only_whole_origins(parent: &str, chain: &Chain, what: &str) {
    let list = list(parent);
    for d in &list {
        let whole = d == parent
            || [&chain.base.uuid, &chain.origin.uuid].iter().any(|u| {
                let ds = format!("{parent}/{u}");
                (*d == ds || *d == format!("{ds}@final"))
                    && list.contains(&ds)
                    && list.contains(&format!("{ds}@final"))
            });
        assert!(whole, "{what}: {d} under {parent}: {list:?}");
    }
    let origin = format!("{parent}/{TRITON_ORIGIN}");
    if list.contains(&origin) {
        let mnt = sh(&format!("zfs get -H -o value mountpoint {origin}"));
        let conf = std::path::Path::new(mnt.trim()).join("root/etc/base.conf");
        assert_eq!(
            fs::read_to_string(&conf).unwrap(),
            "changed by origin\n",
            "{what}"
        );
    }
}

/// Both origins, whole, and nothing else.
fn complete(parent: &str, chain: &Chain) -> Vec<String> {
    let mut want = vec![parent.to_string()];
    for u in [&chain.base.uuid, &chain.origin.uuid] {
        want.push(format!("{parent}/{u}"));
        want.push(format!("{parent}/{u}@final"));
    }
    want.sort();
    want
}

#[test]
fn cut_origin_downloads_are_retried_or_reported_and_never_half_received() {
    let _serial = zfs_fixture::serial();
    zfs_fixture::require_zfs();
    let tmp = tempfile::tempdir().unwrap();
    let chain = make_chain(&tmp.path().join("origins"));
    let server = serve(&chain);
    let upstream = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).unwrap();
    let pool = TestPool::new("cut");
    // Every byte that comes back: two manifests and two files (headers
    // on top), so every cut below lands inside the transfer.
    let down: u64 = [&chain.base, &chain.origin]
        .iter()
        .map(|i| fs::metadata(&i.file).unwrap().len() + fs::metadata(&i.manifest).unwrap().len())
        .sum();
    let mut rng = XorShift(SEED);
    let (mut retried, mut reported) = (0, 0);
    for run in 0..20 {
        let (dir, span) = if run % 5 == 4 {
            (Direction::Up, 100)
        } else {
            (Direction::Down, down)
        };
        let cut = 1 + rng.next_u64() % span;
        let what = format!("seed {SEED:#x} run {run}: cut {dir:?} after {cut} bytes");
        // A dataset per run to receive under: destroying on zfs-fuse
        // right after a receive is often "busy".
        let parent = pool.ds(&format!("r{run}"));
        sh(&format!("zfs create {parent}"));
        proxy.arm(dir, cut, Action::Reset);
        let first = ensure(&parent, &proxy.url());
        proxy.disarm();
        only_whole_origins(&parent, &chain, &what);
        match first {
            Ok(m) => {
                retried += 1;
                assert_eq!(m.uuid.to_string(), TRITON_ORIGIN, "{what}");
            }
            Err(e) => {
                reported += 1;
                let msg = e.to_string();
                assert!(!msg.contains('\n'), "{what}: not one line: {msg}");
                assert!(msg.contains(&proxy.url()), "{what}: {msg}");
                ensure(&parent, &proxy.url())
                    .unwrap_or_else(|e| panic!("{what}: rerun failed: {e}"));
            }
        }
        assert_eq!(list(&parent), complete(&parent, &chain), "{what}");
        only_whole_origins(&parent, &chain, &what);
    }
    assert!(proxy.fired() >= 15, "only {} cuts fired", proxy.fired());
    eprintln!("{retried} cut runs completed by a retry, {reported} reported and rerun");
}

const CHILD_ENV: &str = "ZI_CUT_ORIGIN_CHILD";

/// Runs `ensure` in its own process, so it can have its own
/// `ZONE_IMAGE_READ_TIMEOUT`; started by the stall test.
#[test]
#[ignore = "run as a child process by the stall test"]
fn child_ensure() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (pool, url) = spec.split_once(' ').unwrap();
    match ensure(pool, url) {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("child error: {e}");
            std::process::exit(3)
        }
    }
}

#[test]
fn a_stalled_source_times_out_and_the_request_starts_over() {
    let _serial = zfs_fixture::serial();
    zfs_fixture::require_zfs();
    let tmp = tempfile::tempdir().unwrap();
    let chain = make_chain(&tmp.path().join("origins"));
    let server = serve(&chain);
    let upstream = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).unwrap();
    let pool = TestPool::new("stall");
    // The first request never reaches the server, which so never answers.
    proxy.arm(Direction::Up, 1, Action::Stall);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_ensure",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{} {}", pool.name, proxy.url()))
        .env(READ_TIMEOUT_ENV, "2")
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(proxy.fired(), 1, "{err}");
    assert!(out.status.success(), "{err}");
    let warning = err
        .lines()
        .find(|l| l.contains("warning"))
        .unwrap_or_else(|| panic!("no warning about the stall: {err}"));
    assert!(
        warning.contains("stalled")
            && warning.contains(READ_TIMEOUT_ENV)
            && warning.contains("retrying"),
        "{warning}"
    );
    assert_eq!(list(&pool.name), complete(&pool.name, &chain));
    only_whole_origins(&pool.name, &chain, "after the stall");
}
