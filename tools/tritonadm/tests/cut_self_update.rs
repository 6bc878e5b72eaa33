//! `tritonadm self-update` downloading a real bundle from a real
//! imgapi-server through a fault-injecting TCP proxy: whatever point the
//! connection is cut or stalled at, nothing is installed from a partial
//! file and no download is left behind; a rerun installs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod bundle;
mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use bundle::*;
use fault_proxy::{Action, Direction, FaultProxy, XorShift};

/// Fixed, so a failure names a run that can be replayed.
const SEED: u64 = 0x5e1f_0bda_7e00_c0de;
const A: &str = "main-20261126T080000Z-gaaaaaaa";
const B: &str = "main-20261126T090000Z-gbbbbbbb";

/// Stall limit of runs that must not stall: generous, so a busy machine is
/// not taken for a stalled peer.
const PATIENT: &str = "30";
/// Stall limit of runs that are made to stall.
const IMPATIENT: &str = "2";

/// The installed tritonadm's `self-update -y` from `url`, giving up on a
/// stalled peer after `stall_secs`.
async fn self_update_via(root: &Path, url: &str, stall_secs: &str) -> Output {
    let fut = tokio::process::Command::new(link(root))
        .args(["self-update", "--source", url, "-y"])
        .env(ROOT_ENV, root)
        .env("TRITONADM_HEADNODE_CONFIG", "/nonexistent/usbkey/config")
        .env(tritonadm::imgapi::READ_TIMEOUT_ENV, stall_secs)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    // Only a guard against a hang: a stalled peer must end the run long
    // before this.
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .expect("tritonadm self-update hung")
        .expect("running tritonadm")
}

fn downloads_left(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("var/tmp"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A installed; A and B (the newer) in `dev`, the server's default.
struct Setup {
    _tmp: tempfile::TempDir,
    server: common::Server,
    proxy: FaultProxy,
    root: std::path::PathBuf,
    installer_size: u64,
}

async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let dir = tmp.path().to_path_buf();
    let (a, b) = tokio::task::spawn_blocking(move || {
        (
            build(&dir, A, now - chrono::Duration::hours(2)),
            build(&dir, B, now - chrono::Duration::hours(1)),
        )
    })
    .await
    .unwrap();
    let server = common::Server::start(&tmp.path().join("imgapi"));
    for t in [&a, &b] {
        let o = common::import(
            &server.url,
            &t.manifest_file,
            &t.installer,
            &["--channel", "dev"],
        )
        .await;
        assert!(o.status.success(), "{}", text(&o));
    }
    let root = tmp.path().join("root");
    let o = install(&root, &a.installer, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let upstream = server.url.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).unwrap();
    Setup {
        installer_size: std::fs::metadata(&b.installer).unwrap().len(),
        _tmp: tmp,
        server,
        proxy,
        root,
    }
}

/// Nothing changed since `before`, and nothing was left in /var/tmp.
fn nothing_installed(root: &Path, before: &[String], what: &str) {
    assert_eq!(state(root), before, "{what}: the install changed");
    assert_eq!(linked_version(root), format!("tritonadm {A}"), "{what}");
    assert!(
        downloads_left(root).is_empty(),
        "{what}: left {:?}",
        downloads_left(root)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_downloads_install_nothing_and_a_rerun_installs() {
    let s = setup().await;
    let before = state(&s.root);
    let mut rng = XorShift(SEED);
    for run in 0..20 {
        // Every cut lands before the download's last byte: the requests
        // (each well over 100 bytes), or the installer coming back.
        let (dir, span) = if run % 5 == 4 {
            (Direction::Up, 100)
        } else {
            (Direction::Down, s.installer_size)
        };
        let cut = 1 + rng.next_u64() % span;
        let what = format!("seed {SEED:#x} run {run}: cut {dir:?} after {cut} bytes");
        s.proxy.arm(dir, cut, Action::Reset);
        let o = self_update_via(&s.root, &s.proxy.url(), PATIENT).await;
        s.proxy.disarm();
        assert!(!o.status.success(), "{what}: succeeded: {}", text(&o));
        let err = stderr(&o);
        assert_eq!(
            err.lines().filter(|l| l.contains("error")).count(),
            1,
            "{what}: one error line: {err}"
        );
        nothing_installed(&s.root, &before, &what);
    }
    assert_eq!(s.proxy.fired(), 20);

    let o = self_update_via(&s.root, &s.proxy.url(), PATIENT).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(&s.root), format!("tritonadm {B}"));
    assert!(downloads_left(&s.root).is_empty());
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_download_times_out_with_a_clear_message() {
    let s = setup().await;
    let before = state(&s.root);
    s.proxy
        .arm(Direction::Down, s.installer_size / 2, Action::Stall);
    let o = self_update_via(&s.root, &s.proxy.url(), IMPATIENT).await;
    s.proxy.disarm();
    assert!(!o.status.success(), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains("GetImageFile")
            && err.contains("broke off after")
            && err.contains("stalled")
            && err.contains("TRITONADM_READ_TIMEOUT"),
        "{err}"
    );
    nothing_installed(&s.root, &before, "stall");

    let o = self_update_via(&s.root, &s.proxy.url(), PATIENT).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(&s.root), format!("tritonadm {B}"));
    s.server.stop().await;
}
