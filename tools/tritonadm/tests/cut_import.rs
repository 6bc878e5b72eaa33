//! `tritonadm image import` into a real imgapi-server through a
//! fault-injecting TCP proxy: connections reset at random points, or
//! stalled. Whatever happens, the server never holds an `active` image
//! whose file is partial or differs from the manifest, and a rerun
//! completes the import.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::*;
use fault_proxy::{Action, Direction, FaultProxy, XorShift};
use imgapi_api::ImageState;
use sha1::Digest as _;

/// Fixed, so a failure names a run that can be replayed.
const SEED: u64 = 0x1a2b_3c4d_5e6f_7081;
/// More than three 1 MiB upload chunks and a short last one, so cuts land
/// within chunks and between them.
const FILE_SIZE: usize = 3 * 1024 * 1024 + 12345;

/// `make_image`, with its file replaced by `FILE_SIZE` pseudo-random bytes
/// (the server stores the file as sent; only sha1 and size matter).
fn big_image(dir: &Path, name: &str, rng: &mut XorShift) -> (Fixture, Vec<u8>) {
    let mut img = make_image(dir, name, None);
    let mut data = vec![0u8; FILE_SIZE];
    for chunk in data.chunks_mut(8) {
        let r = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    std::fs::write(&img.file, &data).unwrap();
    img.sha1 = hex::encode(sha1::Sha1::digest(&data));
    img.size = data.len() as u64;
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&img.manifest).unwrap()).unwrap();
    m["files"][0]["sha1"] = img.sha1.clone().into();
    m["files"][0]["size"] = img.size.into();
    std::fs::write(&img.manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    (img, data)
}

/// Stall limit of runs that must not stall: generous, so a slow fsync on a
/// busy machine is not taken for one.
const PATIENT: &str = "30";
/// Stall limit of runs that are made to stall.
const IMPATIENT: &str = "2";

/// `tritonadm image import` against `url`, giving up on a stalled peer
/// after `stall_secs`.
async fn import_via(url: &str, img: &Fixture, stall_secs: &str) -> Output {
    let fut = tokio::process::Command::new(env!("CARGO_BIN_EXE_tritonadm"))
        .args(["--imgapi-url", url, "image", "import", "-m"])
        .arg(&img.manifest)
        .arg("-f")
        .arg(&img.file)
        .env_remove("IMGAPI_URL")
        .env_remove("TRITONADM_KEY")
        .env_remove("TRITONADM_USER")
        .env("TRITONADM_HEADNODE_CONFIG", "/nonexistent/usbkey/config")
        .env(tritonadm::imgapi::READ_TIMEOUT_ENV, stall_secs)
        .kill_on_drop(true)
        .output();
    // Only a guard against a hang: a stalled peer must end the run long
    // before this.
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .expect("tritonadm image import hung")
        .expect("running tritonadm")
}

fn error_lines(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.contains("error"))
        .map(str::to_string)
        .collect()
}

/// The invariant, asked of the server directly: an active image has the
/// manifest's file, byte for byte.
async fn never_active_with_a_wrong_file(server: &Server, img: &Fixture, good: &[u8], what: &str) {
    let api = lib_client(&server.url);
    let Some(i) = api.get_image(img.uuid, None).await.unwrap() else {
        return;
    };
    if i.state != ImageState::Active {
        return;
    }
    let body = reqwest::get(format!("{}/images/{}/file", server.url, img.uuid))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(
        i.files[0].sha1, img.sha1,
        "{what}: active with another sha1"
    );
    assert!(
        body.as_ref() == good,
        "{what}: active, but its file ({} bytes) is not the manifest's",
        body.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connections_never_leave_an_active_partial_or_wrong_image() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("imgapi"));
    let upstream = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).unwrap();
    let mut rng = XorShift(SEED);
    let mut failed_runs = 0;
    for run in 0..20 {
        let (img, good) = big_image(tmp.path(), &format!("cut{run}"), &mut rng);
        // Every fifth run sends a file with one flipped byte, anywhere.
        let corrupt = run % 5 == 4;
        if corrupt {
            let mut bad = good.clone();
            let at = (rng.next_u64() % bad.len() as u64) as usize;
            bad[at] ^= 0x20;
            std::fs::write(&img.file, &bad).unwrap();
        }
        // Mostly the upload; some runs the (small) answers coming back.
        let (dir, span) = if run % 4 == 3 {
            (Direction::Down, 6_000)
        } else {
            (Direction::Up, FILE_SIZE as u64 + 6_000)
        };
        let cut = 1 + rng.next_u64() % span;
        let what = format!(
            "seed {SEED:#x} run {run}: cut {dir:?} after {cut} bytes{}",
            if corrupt { ", one byte flipped" } else { "" }
        );
        proxy.arm(dir, cut, Action::Reset);
        let first = import_via(&proxy.url(), &img, PATIENT).await;
        proxy.disarm();
        never_active_with_a_wrong_file(&server, &img, &good, &what).await;
        if !first.status.success() {
            failed_runs += 1;
            let errors = error_lines(&first);
            assert_eq!(
                errors.len(),
                1,
                "{what}: one error line: {}",
                stderr(&first)
            );
        }

        let rerun = import_via(&proxy.url(), &img, PATIENT).await;
        never_active_with_a_wrong_file(&server, &img, &good, &what).await;
        let state = lib_client(&server.url)
            .get_image(img.uuid, None)
            .await
            .unwrap()
            .map(|i| i.state);
        if corrupt {
            assert_eq!(rerun.status.code(), Some(2), "{what}: {}", stderr(&rerun));
            let err = stderr(&rerun);
            assert!(
                err.contains("sha1 is ") && err.contains("files[0].sha1"),
                "{what}: {err}"
            );
            assert_ne!(state, Some(ImageState::Active), "{what}");
        } else {
            assert!(
                rerun.status.success(),
                "{what}: rerun failed: {}",
                stderr(&rerun)
            );
            assert_eq!(state, Some(ImageState::Active), "{what}");
        }
    }
    assert!(proxy.fired() >= 15, "only {} cuts fired", proxy.fired());
    eprintln!("{failed_runs} of 20 cut imports failed and were rerun");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_times_out_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("imgapi"));
    let upstream = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).unwrap();
    let mut rng = XorShift(SEED);
    let (img, good) = big_image(tmp.path(), "stall", &mut rng);

    // Mid-upload: the server stops taking the body.
    proxy.arm(Direction::Up, FILE_SIZE as u64 / 2, Action::Stall);
    let o = import_via(&proxy.url(), &img, IMPATIENT).await;
    proxy.disarm();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("AddImageFile")
            && err.contains("stalled")
            && err.contains("TRITONADM_READ_TIMEOUT")
            && err.contains("stays unactivated"),
        "{err}"
    );
    assert_eq!(error_lines(&o).len(), 1, "{err}");
    never_active_with_a_wrong_file(&server, &img, &good, "upload stall").await;

    // A server that never answers a plain call.
    proxy.arm(Direction::Down, 0, Action::Stall);
    let o = import_via(&proxy.url(), &img, IMPATIENT).await;
    proxy.disarm();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("GetImage")
            && err.contains("stalled")
            && err.contains("TRITONADM_READ_TIMEOUT"),
        "{err}"
    );

    let o = import_via(&proxy.url(), &img, PATIENT).await;
    assert!(o.status.success(), "{}", stderr(&o));
    never_active_with_a_wrong_file(&server, &img, &good, "after the stalls").await;
    assert_eq!(
        lib_client(&server.url)
            .get_image(img.uuid, None)
            .await
            .unwrap()
            .unwrap()
            .state,
        ImageState::Active
    );
    server.stop().await;
}
