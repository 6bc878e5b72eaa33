//! imgapi-server as Triton's own tools see it: the Node.js IMGAPI client of
//! `sdc-clients` (what updates-imgadm and sdcadm are built on) imports,
//! lists, gets and downloads images from it, checking `Content-MD5` as it
//! does against sdc-imgapi. Needs `npm ci` in tests/node (`.ci/run` does it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sha1::Digest as _;

const OWNER: &str = "930896af-bf8c-48d4-885c-6573a94b1853";

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

/// Run tests/node/client.js with `input` on stdin; its JSON answer.
fn run_client(input: &Value) -> Value {
    let dir = node_dir();
    node_check::require(&dir, "sdc-clients");
    node_check::run(&dir.join("client.js"), &dir, input)
}

/// An image file compressed by the real tool for `compression`, and its
/// manifest (with a field this contract does not know).
fn image(dir: &Path, compression: &str) -> (Value, PathBuf, Vec<u8>) {
    let uuid = uuid::Uuid::new_v4();
    let raw = dir.join(format!("{compression}.zfs"));
    let data: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&raw, &data).unwrap();
    let (tool, ext) = match compression {
        "gzip" => ("gzip", "gz"),
        "bzip2" => ("bzip2", "bz2"),
        "xz" => ("xz", "xz"),
        other => panic!("no tool for {other}"),
    };
    let status = Command::new(tool).arg("-k").arg(&raw).status().unwrap();
    assert!(status.success(), "{tool}");
    let file = dir.join(format!("{compression}.zfs.{ext}"));
    let bytes = std::fs::read(&file).unwrap();
    let manifest = json!({
        "v": 2, "uuid": uuid, "owner": OWNER, "name": format!("node-{compression}"),
        "version": "1.0.0", "state": "active", "disabled": false, "public": true,
        "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": hex::encode(sha1::Sha1::digest(&bytes)),
                   "size": bytes.len(), "compression": compression}],
        "requirements": {"min_platform": {"7.0": "20250101T000000Z"}},
        "a_field_from_the_future": {"kept": true},
    });
    (manifest, file, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_imgapi_client_imports_lists_gets_and_downloads() {
    let tmp = tempfile::tempdir().unwrap();
    let opts =
        imgapi_server::Options::new(&tmp.path().join("imgapi"), "127.0.0.1:0".parse().unwrap());
    let server = imgapi_server::start(opts).unwrap();
    let url = format!("http://{}", server.local_addr());
    let out_dir = tmp.path().join("downloads");
    std::fs::create_dir(&out_dir).unwrap();

    let images: Vec<_> = ["gzip", "bzip2", "xz"]
        .iter()
        .map(|c| image(tmp.path(), c))
        .collect();
    let missing = uuid::Uuid::new_v4().to_string();
    // Blocking: node runs while this runtime's workers serve it.
    let input = json!({
        "url": url, "mode": "import", "out_dir": out_dir, "missing": missing,
        "images": images.iter().map(|(m, f, _)| json!({"manifest": m, "file": f})).collect::<Vec<_>>(),
    });
    let out = tokio::task::spawn_blocking(move || run_client(&input))
        .await
        .unwrap();

    for ((manifest, _, bytes), rec) in images.iter().zip(out["images"].as_array().unwrap()) {
        let compression = &manifest["files"][0]["compression"];
        assert_eq!(rec["import"]["state"], "unactivated", "{rec}");
        assert_eq!(
            rec["addFile"]["files"][0]["compression"], *compression,
            "{rec}"
        );
        assert_eq!(
            rec["addFile"]["files"][0]["sha1"],
            manifest["files"][0]["sha1"]
        );
        assert_eq!(rec["activate"]["state"], "active", "{rec}");
        // The client checked Content-MD5 itself (it errors otherwise); the
        // bytes it saved are the file.
        let saved = rec["getFile"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{rec}"));
        assert_eq!(&std::fs::read(saved).unwrap(), bytes);
        assert!(rec["getFile"]["contentMD5"].as_str().is_some(), "{rec}");
    }

    let list = out["list"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", out["list"]));
    for (manifest, _, _) in &images {
        let listed = list
            .iter()
            .find(|i| i["uuid"] == manifest["uuid"])
            .unwrap_or_else(|| panic!("{} not listed", manifest["uuid"]));
        assert_eq!(listed["state"], "active");
        assert_eq!(
            listed["files"][0]["compression"],
            manifest["files"][0]["compression"]
        );
    }
    let got = &out["get"];
    assert_eq!(got["uuid"], images[0].0["uuid"]);
    assert_eq!(got["a_field_from_the_future"], json!({"kept": true}));
    assert_eq!(got["requirements"], images[0].0["requirements"]);

    let e = &out["missing"]["error"];
    assert_eq!(e["statusCode"], 404, "{}", out["missing"]);
    assert_eq!(e["restCode"], "ResourceNotFound", "{}", out["missing"]);

    // A file damaged behind the server's back: the client's own
    // Content-MD5 check must catch it.
    let uuid = images[1].0["uuid"].as_str().unwrap().to_string();
    let stored = tmp.path().join(format!("imgapi/files/{uuid}/file"));
    let mut bytes = std::fs::read(&stored).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&stored, &bytes).unwrap();
    let input = json!({"url": url, "mode": "get-file", "uuid": uuid,
                       "out": out_dir.join("damaged")});
    let out = tokio::task::spawn_blocking(move || run_client(&input))
        .await
        .unwrap();
    assert_eq!(out["error"]["code"], "ChecksumError", "{out}");

    server.close().await.unwrap();
}
