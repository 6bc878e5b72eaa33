//! A manifest written by the pipeline's own manifest stage
//! (`zone_image::manifest::build`, from the real `images/triton-api`
//! definition) imports with `tritonadm image import`, its origin pulled from
//! a source IMGAPI first, and lists as active. The image file is a real
//! gzip stream of test data: producing a ZFS send stream needs the ZFS
//! stage, which has its own tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use common::*;
use imgapi_api::Image;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_manifest_imports_and_lists_active() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Server::start(&tmp.path().join("source"));
    let target = Server::start(&tmp.path().join("target"));

    // The origin image, as published on the source (updates) server.
    let origin = make_image(tmp.path(), "triton-origin", None);
    seed(&source.url, &[&origin]).await;
    let origin_manifest = zone_image::manifest::Manifest::parse(
        &origin.manifest,
        &std::fs::read_to_string(&origin.manifest).unwrap(),
    )
    .unwrap();

    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let def = zone_image::definition::load(&workspace, "triton-api").unwrap();
    let file = make_image(tmp.path(), "payload", None);
    let stamp = "master-20261126T040638Z-gabc1234";
    let value = zone_image::manifest::build(&zone_image::manifest::NewManifest {
        def: &def,
        version: stamp,
        dev: false,
        origin: &origin_manifest,
        sha1: &file.sha1,
        size: file.size,
        published_at: chrono::Utc::now(),
        min_platform: None,
    });
    let manifest = tmp
        .path()
        .join(format!("triton-api-zfs-{stamp}.imgmanifest"));
    std::fs::write(&manifest, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    let built: Image = serde_json::from_value(value).unwrap();
    assert_eq!(built.origin, Some(origin.uuid));

    let out = import(
        &target.url,
        &manifest,
        &file.file,
        &["--source", &source.url],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));

    let table = list_named(&target.url, "triton-api").await;
    let row = table
        .lines()
        .find(|l| l.starts_with(&built.uuid.to_string()))
        .unwrap_or_else(|| panic!("no row for {} in {table}", built.uuid));
    assert!(row.contains(" active "), "{row}");
    let got = lib_client(&target.url)
        .get_image(built.uuid, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.tags, built.tags);
    assert_eq!(got.requirements, built.requirements);
    source.stop().await;
    target.stop().await;
}
