//! `cargo xtask image publish` against a real imgapi-server with signature
//! auth on loopback, from a bits/ directory laid out as the build leaves it.

use std::io::Write as _;
use std::path::Path;
use std::process::Output;

use sha1::Digest as _;

const STAMP: &str = "master-20261126T040638Z-gabc1234";

fn bits(dir: &Path, dev_build: bool) -> uuid::Uuid {
    let d = dir.join("bits/demo");
    std::fs::create_dir_all(&d).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(
        &(0..100_000u32)
            .map(|i| (i * 7 % 253) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let bytes = gz.finish().unwrap();
    std::fs::write(d.join(format!("demo-zfs-{STAMP}.zfs.gz")), &bytes).unwrap();
    let uuid = uuid::Uuid::new_v4();
    let mut tags = serde_json::json!({"smartdc_service": true});
    if dev_build {
        tags["dev_build"] = serde_json::json!(true);
    }
    let m = serde_json::json!({
        "v": 2, "uuid": uuid, "owner": "930896af-bf8c-48d4-885c-6573a94b1853",
        "name": "demo", "version": STAMP, "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": hex::encode(sha1::Sha1::digest(&bytes)), "size": bytes.len(), "compression": "gzip"}],
        "tags": tags,
    });
    std::fs::write(
        d.join(format!("demo-zfs-{STAMP}.imgmanifest")),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("latest-build-stamp"), format!("{STAMP}\n")).unwrap();
    uuid
}

async fn publish(dir: &Path, url: &str, extra: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["image", "publish", "demo", "--url", url, "--bits-dir"])
        .arg(dir.join("bits"))
        .args(extra)
        .env_remove("UPDATES_IMGADM_IDENTITY")
        .env_remove("UPDATES_IMGADM_USER")
        .output()
        .await
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_signed_into_the_branch_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let line = http_signature::testing::write_key_pair(tmp.path(), "ops").unwrap();
    let mut opts =
        imgapi_server::Options::new(&tmp.path().join("imgapi"), "127.0.0.1:0".parse().unwrap());
    opts.auth = Some(http_signature::KeyRing::parse(Path::new("keys"), &line).unwrap());
    let server = imgapi_server::start(opts).unwrap();
    let url = format!("http://{}", server.local_addr());
    let uuid = bits(tmp.path(), true);
    let key = tmp.path().join("id_rsa");
    let key = key.to_str().unwrap();

    let out = publish(tmp.path(), &url, &["--key", key, "--user", "ops"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("tags.dev_build"));

    let out = publish(tmp.path(), &url, &["--allow-dev"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401"));

    let out = publish(
        tmp.path(),
        &url,
        &["--allow-dev", "--key", key, "--user", "ops"],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    // master -> dev, the server's default channel; not in staging.
    let got: serde_json::Value = reqwest::get(format!("{url}/images/{uuid}?channel=dev"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["state"], "active");
    assert_eq!(got["channels"], serde_json::json!(["dev"]));

    let out = publish(
        tmp.path(),
        &url,
        &["--allow-dev", "--key", key, "--user", "ops"],
    )
    .await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already active"));
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_stamp_is_an_input_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = publish(tmp.path(), "http://127.0.0.1:9", &[]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("latest-build-stamp") && err.contains("image build demo"),
        "{err}"
    );
}
