//! `tritonadm self-update` against a real imgapi-server on loopback that
//! holds real tritonadm bundles (built by the pipeline's tool stage) in two
//! channels, installing into a scratch `TRITONADM_INSTALL_ROOT`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod bundle;
mod common;
// A loopback HTTP server with canned replies, for failures a real
// imgapi-server cannot be made to produce on demand (a 5xx).
#[path = "../../zone-image/tests/common/loopback_http.rs"]
mod loopback_http;

use std::collections::HashMap;
use std::path::Path;

use bundle::*;
use zone_image::tool::ToolOutputs;

const A: &str = "main-20261126T080000Z-gaaaaaaa";
const B: &str = "main-20261126T090000Z-gbbbbbbb";
const C: &str = "feature-20261126T100000Z-gccccccc";

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn publish(url: &str, t: &ToolOutputs, channel: &str) {
    let o = common::import(url, &t.manifest_file, &t.installer, &["--channel", channel]).await;
    assert!(o.status.success(), "{}", text(&o));
}

/// A (older) and B (newer) in `dev`, the server's default channel; C,
/// the newest of all, in `experimental`. A is installed.
struct Setup {
    tmp: tempfile::TempDir,
    server: common::Server,
    root: std::path::PathBuf,
    a: ToolOutputs,
    b: ToolOutputs,
    c: ToolOutputs,
}

async fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let now = chrono::Utc::now();
    let dir = tmp.path().to_path_buf();
    let (a, b, c) = tokio::task::spawn_blocking(move || {
        (
            build(&dir, A, now - chrono::Duration::hours(2)),
            build(&dir, B, now - chrono::Duration::hours(1)),
            build(&dir, C, now),
        )
    })
    .await
    .unwrap();
    let server = common::Server::start(&tmp.path().join("imgapi"));
    publish(&server.url, &a, "dev").await;
    publish(&server.url, &b, "dev").await;
    publish(&server.url, &c, "experimental").await;
    let root = tmp.path().join("root");
    let o = install(&root, &a.installer, &[]);
    assert!(o.status.success(), "{}", text(&o));
    Setup {
        tmp,
        server,
        root,
        a,
        b,
        c,
    }
}

fn downloads_left(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("var/tmp"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picks_the_newest_in_the_channel_and_stops_when_up_to_date() {
    let s = setup().await;
    let url = s.server.url.clone();
    let root = &s.root;

    // A dry run says what it would do and does nothing.
    let o = linked_async(root, &["self-update", "--source", &url, "-n"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out(&o).contains(&format!("newest in channel dev of {url}: {B}")),
        "{}",
        out(&o)
    );
    assert_eq!(linked_version(root), format!("tritonadm {A}"));

    // Without -y and without a terminal to ask on, nothing happens.
    let o = linked_async(root, &["self-update", "--source", &url]).await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(err(&o).contains("pass -y"), "{}", err(&o));
    assert_eq!(linked_version(root), format!("tritonadm {A}"));

    // The default channel (dev): B, the newer of A and B.
    let o = linked_async(root, &["self-update", "--source", &url, "-y"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(root), format!("tritonadm {B}"));
    let v = version_file(root);
    assert_eq!(v["uuid"], s.b.uuid.to_string());
    assert_eq!(
        v["source"],
        format!("{url}/images/{}?channel=dev", s.b.uuid)
    );
    assert!(out(&o).contains("log: "), "{}", out(&o));

    let o = linked_async(root, &["self-update", "--latest", "--source", &url, "-y"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(out(&o).contains("already up to date"), "{}", out(&o));

    // The channel given, here through the source URL.
    let exp = format!("{url}?channel=experimental");
    let o = linked_async(root, &["self-update", "--source", &exp, "-y"]).await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(root), format!("tritonadm {C}"));

    // A given image.
    let a = s.a.uuid.to_string();
    let o = linked_async(
        root,
        &[
            "self-update",
            &a,
            "--channel",
            "dev",
            "--source",
            &url,
            "-y",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(root), format!("tritonadm {A}"));
    // ... which must be in that channel: a 404 is "not found".
    let c = s.c.uuid.to_string();
    let o = linked_async(
        root,
        &[
            "self-update",
            &c,
            "--channel",
            "dev",
            "--source",
            &url,
            "-y",
        ],
    )
    .await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        err(&o).contains("was not found in channel dev"),
        "{}",
        err(&o)
    );

    assert!(
        downloads_left(root).is_empty(),
        "{:?}",
        downloads_left(root)
    );
    drop(s.tmp);
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sha1_mismatch_on_download_is_refused_and_nothing_installed() {
    let s = setup().await;
    // Damage B where the server keeps it, keeping its size.
    let stored = s
        .server
        .dir
        .join("files")
        .join(s.b.uuid.to_string())
        .join("file");
    let mut bytes = std::fs::read(&stored).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&stored, &bytes).unwrap();
    let before = state(&s.root);

    let o = linked_async(&s.root, &["self-update", "--source", &s.server.url, "-y"]).await;
    assert!(!o.status.success(), "{}", text(&o));
    let e = err(&o);
    // The server's Content-MD5 (checked by Imgapi::get_file) catches it
    // first; without one the sha1 check would.
    assert!(
        e.contains("Content-MD5 mismatch") && e.contains(&s.b.uuid.to_string()),
        "{e}"
    );
    assert_eq!(state(&s.root), before);
    assert_eq!(linked_version(&s.root), format!("tritonadm {A}"));
    assert!(
        downloads_left(&s.root).is_empty(),
        "{:?}",
        downloads_left(&s.root)
    );
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_an_error_not_no_update() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let a = tokio::task::spawn_blocking(move || build(&dir, A, chrono::Utc::now()))
        .await
        .unwrap();
    let root = tmp.path().join("root");
    let o = install(&root, &a.installer, &[]);
    assert!(o.status.success(), "{}", text(&o));

    let failing = loopback_http::serve(HashMap::from([
        ("/channels".to_string(), loopback_http::Reply::Status(500)),
        ("/images".to_string(), loopback_http::Reply::Status(503)),
    ]));
    let o = linked_async(&root, &["self-update", "--source", &failing.url, "-y"]).await;
    assert!(!o.status.success(), "{}", text(&o));
    let e = err(&o);
    assert!(e.contains("ListChannels") && e.contains("500"), "{e}");
    assert!(!out(&o).contains("up to date"), "{}", out(&o));

    let o = linked_async(
        &root,
        &[
            "self-update",
            "--channel",
            "dev",
            "--source",
            &failing.url,
            "-y",
        ],
    )
    .await;
    assert!(!o.status.success(), "{}", text(&o));
    let e = err(&o);
    assert!(e.contains("ListImages") && e.contains("503"), "{e}");
    assert_eq!(linked_version(&root), format!("tritonadm {A}"));

    // One self-update at a time.
    let layout = tritonadm::self_update::Layout::new(&root);
    let held = tritonadm::self_update::lock(&layout).unwrap();
    let o = linked_async(&root, &["self-update", "--source", &failing.url, "-y"]).await;
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        err(&o).contains("another tritonadm self-update is running"),
        "{}",
        err(&o)
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_passes_the_pipeline_checks_and_imports_active() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let t = tokio::task::spawn_blocking(move || build(&dir, A, chrono::Utc::now()))
        .await
        .unwrap();
    let name = t
        .manifest_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(name, format!("tritonadm-{A}.imgmanifest"));
    assert_eq!(t.uuid, zone_image::tool::image_uuid("tritonadm", A));

    // The checks a zone image manifest passes: the pipeline's parser, and
    // tritonadm's before it sends anything (including the file's size and
    // sha1).
    let text = std::fs::read_to_string(&t.manifest_file).unwrap();
    let m = zone_image::manifest::Manifest::parse(&t.manifest_file, &text).unwrap();
    let f = m.file().unwrap();
    assert_eq!(f.compression, zone_image::manifest::Compression::None);
    assert_eq!((m.name.as_str(), m.version.as_str()), ("tritonadm", A));
    let local = tritonadm::import::load_manifest(&t.manifest_file).unwrap();
    tritonadm::import::verify_file(&t.installer, &local.file, &progress::Silent).unwrap();
    let i = &local.image;
    assert_eq!(i.image_type, imgapi_api::ImageType::OtherType);
    assert_eq!(i.os, imgapi_api::ImageOs::OtherOs);
    assert!(i.origin.is_none() && i.published_at.is_some());
    let tags = i.tags.as_ref().unwrap();
    assert_eq!(tags["smartdc_service"], "true");
    assert_eq!(tags["branch"], "main");
    assert!(i.description.as_deref().unwrap().contains("tritonadm"));

    let server = common::Server::start(&tmp.path().join("imgapi"));
    publish(&server.url, &t, "dev").await;
    let got = common::lib_client(&server.url)
        .get_image(t.uuid, Some("dev"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.state, imgapi_api::ImageState::Active);
    assert_eq!(got.files[0].sha1, t.sha1);
    assert_eq!(got.files[0].compression, imgapi_api::Compression::None);
    server.stop().await;
}
