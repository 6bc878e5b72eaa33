//! What current IMGAPIs serve: `xz` files, manifests with values and fields
//! newer than this contract, and `Content-MD5` on every download, checked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use sha1::Digest as _;

/// A real xz-compressed file (by the `xz` tool) and its manifest with
/// `extra` merged in; returns (manifest, file, uuid).
fn xz_image(dir: &Path, name: &str, extra: Value) -> (PathBuf, PathBuf, String) {
    let uuid = uuid::Uuid::new_v4().to_string();
    let raw = dir.join(format!("{name}.zfs"));
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(&raw, &data).unwrap();
    let status = std::process::Command::new("xz")
        .args(["-k", "-1"])
        .arg(&raw)
        .status()
        .expect("running xz");
    assert!(status.success());
    let file = dir.join(format!("{name}.zfs.xz"));
    let bytes = std::fs::read(&file).unwrap();
    let mut m = json!({
        "v": 2, "uuid": uuid, "owner": OWNER, "name": name, "version": "1.0.0",
        "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": hex::encode(sha1::Sha1::digest(&bytes)),
                   "size": bytes.len(), "compression": "xz"}],
    });
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    let manifest = dir.join(format!("{name}.imgmanifest"));
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    (manifest, file, uuid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xz_and_unknown_type_import_and_list_keeps_them() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("imgapi"));

    let (m, f, xz_uuid) = xz_image(tmp.path(), "xz-image", json!({}));
    let out = import(&server.url, &m, &f, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let future = json!({"type": "wasm-blob", "os": "plan9", "brand_new": {"a": [1, 2]}});
    let (m, f, odd_uuid) = xz_image(tmp.path(), "future-image", future.clone());
    let out = import(&server.url, &m, &f, &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let out = tritonadm(&["--imgapi-url", &server.url, "image", "list", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let by_uuid = |u: &str| {
        list.iter()
            .find(|i| i["uuid"] == u)
            .unwrap_or_else(|| panic!("{u} not listed: {list:?}"))
    };
    assert_eq!(by_uuid(&xz_uuid)["files"][0]["compression"], "xz");
    assert_eq!(by_uuid(&xz_uuid)["state"], "active");
    let odd = by_uuid(&odd_uuid);
    for k in ["type", "os", "brand_new"] {
        assert_eq!(odd[k], future[k], "{k}: {odd}");
    }

    // The table shows the unknown values as they are.
    let table = list_named(&server.url, "future-image").await;
    let row = table.lines().find(|l| l.starts_with(&odd_uuid)).unwrap();
    assert!(row.contains(" plan9 "), "{row}");
    let out = tritonadm(&["--imgapi-url", &server.url, "image", "get", &odd_uuid]).await;
    assert!(
        stdout(&out).contains("type:         wasm-blob"),
        "{}",
        stdout(&out)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_damaged_on_the_server_fails_the_content_md5_check() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("imgapi"));
    let img = make_image(tmp.path(), "damaged", None);
    seed(&server.url, &[&img]).await;
    let uuid = img.uuid.to_string();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();

    let good = out_dir.join("good.zfs.gz");
    let get = |dest: &Path| {
        let dest = dest.to_str().unwrap().to_string();
        let (url, uuid) = (server.url.clone(), uuid.clone());
        async move {
            tritonadm(&[
                "--imgapi-url",
                &url,
                "image",
                "get-file",
                &uuid,
                "-o",
                &dest,
            ])
            .await
        }
    };
    let out = get(&good).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&good).unwrap(),
        std::fs::read(&img.file).unwrap()
    );

    // Same size, one byte changed, behind the server's back.
    let stored = server.dir.join(format!("files/{uuid}/file"));
    let mut bytes = std::fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&stored, &bytes).unwrap();

    let bad = out_dir.join("bad.zfs.gz");
    let out = get(&bad).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert!(
        matches!(errors[..], [e] if e.starts_with("tritonadm: error: ")
            && e.contains("Content-MD5 mismatch")
            && e.contains(&uuid)
            && e.contains(&server.url)),
        "one error line: {err}"
    );
    let left: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["good.zfs.gz"], "nothing half-written");
    server.stop().await;
}
