//! `tritonadm image ...` against a real imgapi-server on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use common::*;
use imgapi_api::{Compression, Image, ImageState, StateFilter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_list_get_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("imgapi"));
    let img = make_image(tmp.path(), "triton-api", None);
    let uuid = img.uuid.to_string();
    let m = img.manifest.to_str().unwrap();
    let f = img.file.to_str().unwrap();

    let out = tritonadm(&[
        "--imgapi-url",
        &server.url,
        "-v",
        "image",
        "import",
        "-m",
        m,
        "-f",
        f,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("Activated image {uuid}")),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains(&format!("using IMGAPI {} (from --imgapi-url)", server.url)));

    // The file went through intact, and unknown manifest fields survived.
    let body = reqwest::get(format!("{}/images/{uuid}/file", server.url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), std::fs::read(&img.file).unwrap().as_slice());

    let out = tritonadm(&["--imgapi-url", &server.url, "image", "list", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Vec<Image> = serde_json::from_str(&stdout(&out)).expect("list --json parses");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].uuid, img.uuid);
    assert_eq!(list[0].state, ImageState::Active);
    assert!(list[0].published_at.is_some());

    let table = list_named(&server.url, "triton-api").await;
    let row = table
        .lines()
        .find(|l| l.starts_with(&uuid))
        .expect("row for the image");
    assert!(row.contains(" active "), "{row}");
    assert!(!list_named(&server.url, "other").await.contains(&uuid));

    let out = tritonadm(&["--imgapi-url", &server.url, "image", "get", &uuid, "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let got: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("get --json parses");
    assert_eq!(got["uuid"], uuid.as_str());
    assert_eq!(got["files"][0]["sha1"], img.sha1.as_str());
    assert_eq!(got["files"][0]["size"], img.size);
    assert_eq!(got["a_field_from_the_future"], serde_json::json!([1, 2, 3]));

    // A rerun says so and succeeds without touching anything.
    let out = import(&server.url, &img.manifest, &img.file, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("is already active"),
        "{}",
        stdout(&out)
    );

    let out = tritonadm(&["--imgapi-url", &server.url, "image", "delete", &uuid]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = tritonadm(&["--imgapi-url", &server.url, "image", "get", &uuid]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("image {uuid} not found")),
        "{}",
        stderr(&out)
    );
    let out = tritonadm(&["--imgapi-url", &server.url, "image", "delete", &uuid]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ResourceNotFound"),
        "{}",
        stderr(&out)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_short_file_is_refused_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("imgapi"));
    let img = make_image(tmp.path(), "flip", None);
    let f = img.file.to_str().unwrap();

    let mut bytes = std::fs::read(&img.file).unwrap();
    bytes[1000] ^= 0x01;
    std::fs::write(&img.file, &bytes).unwrap();
    let out = import(&server.url, &img.manifest, &img.file, &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(f) && err.contains("sha1 is ") && err.contains("files[0].sha1"),
        "{err}"
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one-line error: {err}");
    assert!(
        errors[0].starts_with("tritonadm: error: ") && errors[0].contains(f),
        "{err}"
    );

    bytes.push(0);
    std::fs::write(&img.file, &bytes).unwrap();
    let out = import(&server.url, &img.manifest, &img.file, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("files[0].size"), "{}", stderr(&out));

    // Nothing is left on the server, in any state: the corrupt upload
    // never activated and its image was removed.
    let api = lib_client(&server.url);
    assert!(
        api.list_images(None, StateFilter::All, None)
            .await
            .unwrap()
            .is_empty()
    );

    // The check comes before any request: a dead server is never reached.
    let out = import("http://127.0.0.1:9", &img.manifest, &img.file, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("files[0].size"), "{}", stderr(&out));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifest_is_a_one_line_input_error() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), "bad", None);
    let text = std::fs::read_to_string(&img.manifest).unwrap();
    // An unknown os is carried through (newer servers add values); one
    // that is not even a string is an error.
    std::fs::write(&img.manifest, text.replace("\"smartos\"", "7")).unwrap();
    let out = import("http://127.0.0.1:9", &img.manifest, &img.file, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(img.manifest.to_str().unwrap()) && err.contains("field 'os'"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_sha1_mismatch_leaves_it_unactivated_and_a_rerun_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("imgapi"));
    let img = make_image(tmp.path(), "mismatch", None);
    let api = lib_client(&server.url);
    let local = tritonadm::import::load_manifest(&img.manifest).unwrap();
    api.import_manifest(img.uuid, None, &local.raw)
        .await
        .unwrap();

    let wrong = "0".repeat(40);
    let body = reqwest::Body::from(std::fs::read(&img.file).unwrap());
    let err = api
        .add_file(img.uuid, None, &Compression::Gzip, &wrong, img.size, body)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("400") && err.contains("Upload") && err.contains("sha1 mismatch"),
        "{err}"
    );

    let after = api.get_image(img.uuid, None).await.unwrap().unwrap();
    assert_eq!(after.state, ImageState::Unactivated);
    assert!(after.files.is_empty());
    let err = api.activate(img.uuid, None).await.unwrap_err().to_string();
    assert!(err.contains("NoActivationNoFile"), "{err}");

    let out = import(&server.url, &img.manifest, &img.file, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Completing unactivated image"),
        "{}",
        stderr(&out)
    );
    let done = api.get_image(img.uuid, None).await.unwrap().unwrap();
    assert_eq!(done.state, ImageState::Active);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgapi");
    let server = Server::start(&dir);
    let a = make_image(tmp.path(), "a", None);
    let b = make_image(tmp.path(), "b", None);
    let api = lib_client(&server.url);
    let opts = quiet_opts("http://127.0.0.1:9");
    tritonadm::import::import_image(&api, &a.manifest, &a.file, &opts)
        .await
        .unwrap();
    // b: stopped midway, after AdminImportImage.
    let local = tritonadm::import::load_manifest(&b.manifest).unwrap();
    api.import_manifest(b.uuid, None, &local.raw).await.unwrap();
    server.stop().await;

    let server = Server::start(&dir);
    let api = lib_client(&server.url);
    let got_a = api.get_image(a.uuid, None).await.unwrap().unwrap();
    assert_eq!(got_a.state, ImageState::Active);
    assert_eq!(got_a.files[0].sha1, a.sha1);
    let body = reqwest::get(format!("{}/images/{}/file", server.url, a.uuid))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), std::fs::read(&a.file).unwrap().as_slice());
    let got_b = api.get_image(b.uuid, None).await.unwrap().unwrap();
    assert_eq!(got_b.state, ImageState::Unactivated);

    let outcome = tritonadm::import::import_image(&api, &b.manifest, &b.file, &opts)
        .await
        .unwrap();
    assert!(matches!(outcome, tritonadm::import::Outcome::Completed(_)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_chain_is_imported_origins_first() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Server::start(&tmp.path().join("source"));
    let target = Server::start(&tmp.path().join("target"));
    let base = make_image(tmp.path(), "base", None);
    let origin = make_image(tmp.path(), "origin", Some(base.uuid));
    let image = make_image(tmp.path(), "image", Some(origin.uuid));
    seed(&source.url, &[&base, &origin]).await;

    // The server refuses an incremental image whose origin is missing, which
    // is why the order matters.
    let tgt = lib_client(&target.url);
    let err = tgt
        .import_remote(origin.uuid, &source.url, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("OriginDoesNotExist"), "{err}");

    let source_dev = format!("{}?channel=dev", source.url);
    let out = import(
        &target.url,
        &image.manifest,
        &image.file,
        &["--source", &source_dev],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stderr(&out);
    let pos = |needle: String| {
        text.find(&needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {text}"))
    };
    let b = pos(format!("Importing origin image {}", base.uuid));
    let o = pos(format!("Importing origin image {}", origin.uuid));
    let i = pos(format!("Imported image {}", image.uuid));
    assert!(b < o && o < i, "{text}");
    for f in [&base, &origin, &image] {
        let got = tgt.get_image(f.uuid, None).await.unwrap().unwrap();
        assert_eq!(got.state, ImageState::Active, "{}", f.uuid);
        assert_eq!(got.files[0].sha1, f.sha1);
    }

    // An origin the source does not have either is a clear error.
    let orphan = make_image(tmp.path(), "orphan", Some(uuid::Uuid::new_v4()));
    let out = import(
        &target.url,
        &orphan.manifest,
        &orphan.file,
        &["--source", &source.url],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is neither in"), "{}", stderr(&out));

    // import-remote of an image already there says so.
    let out = tritonadm(&[
        "--imgapi-url",
        &target.url,
        "image",
        "import-remote",
        &base.uuid.to_string(),
        "--source",
        &source.url,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("is already active"));
    source.stop().await;
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_remote_brings_the_image_and_its_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Server::start(&tmp.path().join("source"));
    let target = Server::start(&tmp.path().join("target"));
    let base = make_image(tmp.path(), "base", None);
    let child = make_image(tmp.path(), "child", Some(base.uuid));
    seed(&source.url, &[&base, &child]).await;
    let out = tritonadm(&[
        "--imgapi-url",
        &target.url,
        "image",
        "import-remote",
        &child.uuid.to_string(),
        "--source",
        &source.url,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let tgt = lib_client(&target.url);
    for f in [&base, &child] {
        let got = tgt.get_image(f.uuid, None).await.unwrap().unwrap();
        assert_eq!(got.state, ImageState::Active);
    }
    source.stop().await;
    target.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_manifest_is_an_input_error() {
    let out = import(
        "http://127.0.0.1:9",
        std::path::Path::new("/nonexistent.imgmanifest"),
        std::path::Path::new("/nonexistent.zfs.gz"),
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "tritonadm: error: /nonexistent.imgmanifest: cannot read manifest: \
         No such file or directory (os error 2)"
    );
}

/// `IMGAPI_URL` is read by the option parser (so `--help` shows it), and
/// `-v` still says whether the URL came from the flag or the variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imgapi_url_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("imgapi"));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_tritonadm"))
        .args(["-v", "image", "list"])
        .env("IMGAPI_URL", &server.url)
        .env("TRITONADM_HEADNODE_CONFIG", "/nonexistent/usbkey/config")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let want = format!("using IMGAPI {} (from IMGAPI_URL)", server.url);
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));

    let help = tritonadm(&["--help"]).await;
    assert!(
        stdout(&help).contains("[env: IMGAPI_URL="),
        "{}",
        stdout(&help)
    );
}
