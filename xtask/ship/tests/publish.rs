//! `cargo xtask image publish` against a real imgapi-server with signature
//! auth on loopback, from a bits/ directory laid out as the build leaves it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::io::Write as _;
use std::path::Path;
use std::process::Output;

use http_signature::testing::{Agent, KeyPair, KeyType, ssh_keygen};
use sha1::Digest as _;

const STAMP: &str = "master-20261126T040638Z-gabc1234";

fn bits(dir: &Path, dev_build: bool) -> uuid::Uuid {
    bits_of(dir, STAMP, dev_build)
}

/// bits/demo/ as a zone image build of `stamp` leaves it.
fn bits_of(dir: &Path, stamp: &str, dev_build: bool) -> uuid::Uuid {
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
    std::fs::write(d.join(format!("demo-zfs-{stamp}.zfs.gz")), &bytes).unwrap();
    let uuid = uuid::Uuid::new_v4();
    let mut tags = serde_json::json!({"smartdc_service": true});
    if dev_build {
        tags["dev_build"] = serde_json::json!(true);
    }
    let m = serde_json::json!({
        "v": 2, "uuid": uuid, "owner": "930896af-bf8c-48d4-885c-6573a94b1853",
        "name": "demo", "version": stamp, "type": "zone-dataset", "os": "smartos",
        "files": [{"sha1": hex::encode(sha1::Sha1::digest(&bytes)), "size": bytes.len(), "compression": "gzip"}],
        "tags": tags,
    });
    std::fs::write(
        d.join(format!("demo-zfs-{stamp}.imgmanifest")),
        serde_json::to_vec(&m).unwrap(),
    )
    .unwrap();
    std::fs::write(d.join("latest-build-stamp"), format!("{stamp}\n")).unwrap();
    uuid
}

async fn publish(dir: &Path, url: &str, extra: &[&str]) -> Output {
    publish_env(dir, url, extra, &[]).await
}

/// `publish` with only the key settings in `env` (the caller's own
/// UPDATES_IMGADM_* and ssh-agent are not inherited).
async fn publish_env(dir: &Path, url: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask-ship"))
        .args(["image", "publish", "demo", "--url", url, "--bits-dir"])
        .arg(dir.join("bits"))
        .args(extra)
        .env_remove("UPDATES_IMGADM_IDENTITY")
        .env_remove("UPDATES_IMGADM_USER")
        .env_remove("UPDATES_IMGADM_URL")
        .env_remove("UPDATES_IMGADM_CHANNEL")
        .env_remove("SSH_AUTH_SOCK")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
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
    assert!(stdout(&out).contains("already active"));
    server.close().await.unwrap();
}

async fn channels_of(url: &str, uuid: uuid::Uuid, channel: &str) -> serde_json::Value {
    reqwest::get(format!("{url}/images/{uuid}?channel={channel}"))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["channels"]
        .clone()
}

/// eng's variables: UPDATES_IMGADM_URL names the server, a release branch
/// goes to staging, UPDATES_IMGADM_CHANNEL overrides the branch rule, and
/// a stamp marked -dev is refused without --allow-dev.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eng_variables_pick_server_and_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let server = imgapi_server::start(imgapi_server::Options::new(
        &tmp.path().join("imgapi"),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let url = format!("http://{}", server.local_addr());
    let run = |dir: &Path, env: &[(&str, &str)]| {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_xtask-ship"));
        c.args(["image", "publish", "demo", "--bits-dir"])
            .arg(dir.join("bits"))
            .env_remove("UPDATES_IMGADM_IDENTITY")
            .env_remove("UPDATES_IMGADM_USER")
            .env_remove("UPDATES_IMGADM_CHANNEL")
            .env_remove("SSH_AUTH_SOCK")
            .env("UPDATES_IMGADM_URL", &url)
            .envs(env.iter().copied());
        c
    };

    let a = tmp.path().join("a");
    let uuid = bits_of(&a, "release-20261126-20261126T040638Z-gabc1234", false);
    let out = run(&a, &[]).output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("channel staging"), "{}", stdout(&out));
    assert_eq!(
        channels_of(&url, uuid, "staging").await,
        serde_json::json!(["staging"])
    );

    let b = tmp.path().join("b");
    let uuid = bits_of(&b, "release-20261126-20261126T050638Z-gabc1234", false);
    let out = run(&b, &[("UPDATES_IMGADM_CHANNEL", "experimental")])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        channels_of(&url, uuid, "experimental").await,
        serde_json::json!(["experimental"])
    );

    // Dev says the stamp alone (no dev_build tag in this manifest).
    let c = tmp.path().join("c");
    bits_of(&c, "master-20261126T060638Z-gabc1234-dev", false);
    let out = run(&c, &[]).output().await.unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("latest-build-stamp") && err.contains("--allow-dev"),
        "{err}"
    );
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

/// Options for an updates server whose `--auth-keys` file lists `keys`.
fn options_with_keys(dir: &Path, keys: &[&KeyPair]) -> imgapi_server::Options {
    let auth_keys = dir.join("authorized_keys");
    let lines: String = keys.iter().map(|k| format!("{}\n", k.public)).collect();
    std::fs::write(&auth_keys, lines).unwrap();
    let mut opts = imgapi_server::Options::new(&dir.join("imgapi"), "127.0.0.1:0".parse().unwrap());
    opts.auth = Some(http_signature::KeyRing::load(&auth_keys).unwrap());
    opts
}

async fn state(url: &str, uuid: uuid::Uuid) -> serde_json::Value {
    reqwest::get(format!("{url}/images/{uuid}?channel=dev"))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["state"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_rsa_ecdsa_and_ed25519_keys_from_files_and_ssh_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::start(tmp.path()).unwrap();
    let socket = agent.socket.to_str().unwrap().to_string();
    let mut keys = Vec::new();
    for kind in KeyType::ALL {
        // The P-384 key is passphrase-protected: usable only via the agent.
        let pass = if kind == KeyType::EcdsaP384 {
            "p384 secret"
        } else {
            ""
        };
        let key = ssh_keygen(tmp.path(), &format!("{kind:?}"), kind, pass).unwrap();
        agent.add(&key.private, pass).unwrap();
        keys.push(key);
    }
    let server = imgapi_server::start(options_with_keys(
        tmp.path(),
        &keys.iter().collect::<Vec<_>>(),
    ))
    .unwrap();
    let url = format!("http://{}", server.local_addr());

    let mut runs = Vec::new();
    for key in &keys {
        let file = key.private.to_str().unwrap().to_string();
        let by_file = key.public.starts_with("ecdsa-sha2-nistp384");
        if !by_file {
            // Unencrypted files sign by themselves, with an agent running.
            runs.push((
                format!("--key {file}"),
                vec!["--key".to_string(), file.clone()],
                vec![],
                false,
            ));
        }
        runs.push((
            format!("UPDATES_IMGADM_IDENTITY={}", key.md5),
            vec![],
            vec![("UPDATES_IMGADM_IDENTITY", key.md5.clone())],
            true,
        ));
        if by_file {
            runs.push((
                format!("--key {file} (encrypted)"),
                vec!["--key".to_string(), file],
                vec![],
                true,
            ));
        }
    }
    for (i, (what, flags, env, via_agent)) in runs.iter().enumerate() {
        let dir = tmp.path().join(format!("run{i}"));
        let uuid = bits(&dir, false);
        let mut args = vec!["--user", "ops"];
        args.extend(flags.iter().map(String::as_str));
        let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.push(("SSH_AUTH_SOCK", &socket));
        let out = publish_env(&dir, &url, &args, &env).await;
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        assert_eq!(
            stdout(&out).contains("via ssh-agent)"),
            *via_agent,
            "{what}: {}",
            stdout(&out)
        );
        assert_eq!(state(&url, uuid).await, "active", "{what}");
    }
    // Every key and every way of naming it was used.
    assert_eq!(runs.len(), 8);

    // A key the server does not list is refused by the server.
    let stranger = ssh_keygen(tmp.path(), "stranger", KeyType::Ed25519, "").unwrap();
    let dir = tmp.path().join("stranger-run");
    bits(&dir, false);
    let out = publish_env(
        &dir,
        &url,
        &["--user", "ops", "--key", stranger.private.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_with_several_keys_needs_the_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::start(tmp.path()).unwrap();
    let socket = agent.socket.to_str().unwrap();
    let first = ssh_keygen(tmp.path(), "first", KeyType::Ed25519, "").unwrap();
    let second = ssh_keygen(tmp.path(), "second", KeyType::EcdsaP256, "").unwrap();
    let server = imgapi_server::start(options_with_keys(tmp.path(), &[&first, &second])).unwrap();
    let url = format!("http://{}", server.local_addr());
    let user = [("UPDATES_IMGADM_USER", "ops"), ("SSH_AUTH_SOCK", socket)];

    // One key in the agent: used without being named.
    agent.add(&first.private, "").unwrap();
    let dir = tmp.path().join("one");
    let uuid = bits(&dir, false);
    let out = publish_env(&dir, &url, &[], &user).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "signing as /ops/keys/{} (ed25519-sha512 via ssh-agent)",
            first.md5
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(state(&url, uuid).await, "active");

    // Two: the client cannot know which one the server knows.
    agent.add(&second.private, "").unwrap();
    let dir = tmp.path().join("two");
    bits(&dir, false);
    let out = publish_env(&dir, &url, &[], &user).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("holds 2 keys")
            && err.contains("set UPDATES_IMGADM_IDENTITY (or --key) to the MD5 fingerprint of the one the server knows"),
        "{err}"
    );
    server.close().await.unwrap();
}
