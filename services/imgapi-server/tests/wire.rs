//! imgapi-server speaks IMGAPI's wire format: raw HTTP requests as the
//! Node.js clients and curl send them, checked against the API reference.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use imgapi_server::Options;
use serde_json::{Value, json};
use sha1::Digest as _;

struct Srv {
    url: String,
    server: imgapi_server::Server,
    http: reqwest::Client,
}

fn options(dir: &std::path::Path) -> Options {
    Options::new(dir, "127.0.0.1:0".parse().unwrap())
}

fn start(dir: &std::path::Path) -> Srv {
    start_with(options(dir))
}

fn start_with(opts: Options) -> Srv {
    let server = imgapi_server::start(opts).unwrap();
    Srv {
        url: format!("http://{}", server.local_addr()),
        server,
        http: reqwest::Client::new(),
    }
}

fn manifest(uuid: &str, origin: Option<&str>) -> Value {
    let mut m = json!({
        "v": 2, "uuid": uuid, "owner": "930896af-bf8c-48d4-885c-6573a94b1853",
        "name": "wire", "version": "1.0.0", "type": "zone-dataset", "os": "smartos",
        "tags": {"role": "db", "smartdc_service": true},
    });
    if let Some(o) = origin {
        m["origin"] = json!(o);
    }
    m
}

/// Status and JSON body (null when there is none) of a response.
async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

impl Srv {
    async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req).await
    }

    /// `POST /images/<uuid>?action=<action>`.
    async fn action(&self, uuid: &str, action: &str, body: Option<Value>) -> (u16, Value) {
        self.post(&format!("/images/{uuid}?action={action}"), body)
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        send(self.http.get(format!("{}{path}", self.url))).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        send(self.http.delete(format!("{}{path}", self.url))).await
    }

    async fn put_file(&self, uuid: &str, query: &str, data: Vec<u8>) -> (u16, Value) {
        let url = format!("{}/images/{uuid}/file?{query}", self.url);
        send(self.http.put(url).body(data)).await
    }

    /// Import, upload, activate (no body on activate, as curl -X POST sends).
    async fn add_active(&self, uuid: &str, origin: Option<&str>) {
        let (s, _) = self
            .action(uuid, "import", Some(manifest(uuid, origin)))
            .await;
        assert_eq!(s, 200);
        let (s, _) = self
            .put_file(uuid, "compression=none", b"data".to_vec())
            .await;
        assert_eq!(s, 200);
        let (s, body) = self.action(uuid, "activate", None).await;
        assert_eq!(s, 200, "{body}");
    }
}

fn is_restify_error(body: &Value, code: &str) -> bool {
    body["code"] == code && body["message"].as_str().is_some_and(|m| !m.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_upload_activate_and_errors_follow_the_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start(tmp.path());
    let uuid = uuid::Uuid::new_v4().to_string();

    let (s, body) = srv.get("/ping").await;
    assert_eq!(
        (s, body["ping"].as_str(), body["imgapi"].as_bool()),
        (200, Some("pong"), Some(true))
    );
    let (s, body) = srv.get("/ping?error=ValidationFailed&message=boom").await;
    assert_eq!(s, 422);
    assert!(is_restify_error(&body, "ValidationFailed"));

    let (s, body) = srv.get(&format!("/images/{uuid}")).await;
    assert_eq!(s, 404);
    assert!(is_restify_error(&body, "ResourceNotFound"), "{body}");

    let (s, body) = srv
        .action(&uuid, "import", Some(manifest(&uuid, None)))
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["state"], "unactivated");
    assert_eq!(body["channels"], json!(["dev"]));
    let (s, body) = srv
        .action(&uuid, "import", Some(manifest(&uuid, None)))
        .await;
    assert_eq!(s, 409);
    assert!(is_restify_error(&body, "ImageUuidAlreadyExists"));

    let (s, body) = srv.action(&uuid, "activate", None).await;
    assert_eq!(s, 422);
    assert!(is_restify_error(&body, "NoActivationNoFile"));

    let data = b"hello image".to_vec();
    let sha1 = hex::encode(sha1::Sha1::digest(&data));
    let (s, body) = srv
        .put_file(
            &uuid,
            &format!("compression=none&size={}", data.len() + 1),
            data.clone(),
        )
        .await;
    assert_eq!(s, 400);
    assert!(is_restify_error(&body, "Upload"), "{body}");
    let (s, body) = srv.put_file(&uuid, "compression=zstd", data.clone()).await;
    assert_eq!(s, 422, "{body}");
    assert!(is_restify_error(&body, "InvalidParameter"), "{body}");
    let (s, body) = srv
        .put_file(
            &uuid,
            &format!("compression=none&sha1={sha1}&size={}", data.len()),
            data.clone(),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["files"][0]["sha1"], sha1.as_str());
    assert_eq!(body["files"][0]["compression"], "none");

    let (s, body) = srv.action(&uuid, "activate", None).await;
    assert_eq!(s, 200);
    assert_eq!(body["state"], "active");
    let published = body["published_at"].as_str().unwrap().to_string();
    assert!(
        published.ends_with('Z') && published.len() == 24,
        "{published}"
    );
    let (s, body) = srv.action(&uuid, "activate", None).await;
    assert_eq!(s, 422);
    assert!(is_restify_error(&body, "ImageAlreadyActivated"));
    let (s, body) = srv.put_file(&uuid, "compression=none", data.clone()).await;
    assert_eq!(s, 422);
    assert!(is_restify_error(&body, "ImageFilesImmutable"));

    let (s, body) = srv.action(&uuid, "disable", None).await;
    assert_eq!(
        (s, body["state"].as_str(), body["disabled"].as_bool()),
        (200, Some("disabled"), Some(true))
    );
    let (_, list) = srv.get("/images").await;
    assert_eq!(list, json!([]), "disabled images are not listed by default");
    let (_, list) = srv.get("/images?state=disabled").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (s, body) = srv.action(&uuid, "enable", None).await;
    assert_eq!((s, body["state"].as_str()), (200, Some("active")));

    let (s, body) = srv
        .action(&uuid, "update", Some(json!({"description": "new"})))
        .await;
    assert_eq!((s, body["description"].as_str()), (200, Some("new")));
    let (s, body) = srv
        .action(&uuid, "update", Some(json!({"name": "renamed"})))
        .await;
    assert_eq!(s, 422);
    assert!(
        is_restify_error(&body, "ValidationFailed")
            && body["message"].as_str().unwrap().starts_with("name:")
    );

    let file = srv
        .http
        .get(format!("{}/images/{uuid}/file", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        file.headers()["content-length"],
        data.len().to_string().as_str()
    );
    assert_eq!(file.headers()["content-md5"], content_md5(&data).as_str());
    assert_eq!(file.bytes().await.unwrap().as_ref(), data.as_slice());
    srv.server.close().await.unwrap();
}

/// `printf DATA | openssl md5 -binary | base64`, by the real tools.
fn content_md5(data: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("sh")
        .args(["-c", "openssl md5 -binary | base64"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn get_file(srv: &Srv, uuid: &str) -> (Option<String>, Vec<u8>) {
    let r = srv
        .http
        .get(format!("{}/images/{uuid}/file", srv.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let md5 = r
        .headers()
        .get("content-md5")
        .map(|v| v.to_str().unwrap().to_string());
    (md5, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_errors_are_restify_shaped() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start(tmp.path());
    let keys = |b: &Value| {
        let mut k: Vec<String> = b.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    for (req, status, code) in [
        (
            srv.http.get(format!("{}/no/such/route", srv.url)),
            404,
            "ResourceNotFound",
        ),
        (
            srv.http.patch(format!("{}/images", srv.url)),
            405,
            "MethodNotAllowedError",
        ),
        (
            srv.http
                .post(format!(
                    "{}/images?account=930896af-bf8c-48d4-885c-6573a94b1853",
                    srv.url
                ))
                .header("content-type", "application/json")
                .body("{\"name\": "),
            400,
            "BadRequestError",
        ),
        (
            srv.http.get(format!("{}/images?state=bogus", srv.url)),
            422,
            "InvalidParameter",
        ),
    ] {
        let (s, body) = send(req).await;
        assert_eq!(s, status, "{body}");
        assert!(is_restify_error(&body, code), "{body}");
        assert_eq!(keys(&body), ["code", "message"], "{body}");
    }
    srv.server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_manifests_xz_and_content_md5_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start(tmp.path());
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut m = manifest(&uuid, None);
    m["type"] = json!("wasm-blob");
    m["os"] = json!("plan9");
    m["future_field"] = json!({"nested": [1, 2, {"x": null}]});
    m["requirements"] = json!({"min_platform": {"7.0": "20240101T000000Z"}, "gpu": "any"});
    let (s, body) = srv.action(&uuid, "import", Some(m.clone())).await;
    assert_eq!(s, 200, "{body}");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (s, body) = srv
        .put_file(
            &uuid,
            &format!("compression=xz&size={}", data.len()),
            data.clone(),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["files"][0]["compression"], "xz");
    let (s, _) = srv.action(&uuid, "activate", None).await;
    assert_eq!(s, 200);

    let check = |body: &Value| {
        for k in ["type", "os", "future_field", "requirements"] {
            assert_eq!(body[k], m[k], "{k}: {body}");
        }
    };
    let (_, got) = srv.get(&format!("/images/{uuid}")).await;
    check(&got);
    let (_, list) = srv.get("/images").await;
    check(&list[0]);
    let (_, list) = srv.get("/images?type=wasm-blob").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");

    let want_md5 = content_md5(&data);
    assert_eq!(
        get_file(&srv, &uuid).await,
        (Some(want_md5.clone()), data.clone())
    );
    srv.server.close().await.unwrap();

    // A store from before MD5s were kept: the MD5 is recomputed on open.
    let sidecar = tmp.path().join(format!("files/{uuid}/file.md5"));
    std::fs::remove_file(&sidecar).unwrap();
    let srv = start(tmp.path());
    let (_, got) = srv.get(&format!("/images/{uuid}")).await;
    check(&got);
    assert_eq!(get_file(&srv, &uuid).await.0, Some(want_md5));
    srv.server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_channels_and_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = start(tmp.path());
    let a = uuid::Uuid::new_v4().to_string();
    let b = uuid::Uuid::new_v4().to_string();
    srv.add_active(&a, None).await;

    let (s, body) = srv
        .action(
            &b,
            "import",
            Some(manifest(&b, Some(&uuid::Uuid::new_v4().to_string()))),
        )
        .await;
    assert_eq!(s, 422);
    assert!(is_restify_error(&body, "OriginDoesNotExist"));
    srv.add_active(&b, Some(&a)).await;

    let count = |v: &Value| v.as_array().map(|a| a.len()).unwrap_or(usize::MAX);
    assert_eq!(count(&srv.get("/images?tag.role=db").await.1), 2);
    assert_eq!(count(&srv.get("/images?tag.role=web").await.1), 0);
    assert_eq!(
        count(
            &srv.get("/images?tag.smartdc_service=true&name=wire")
                .await
                .1
        ),
        2
    );
    assert_eq!(count(&srv.get("/images?name=~ir").await.1), 2);
    assert_eq!(count(&srv.get("/images?name=wir").await.1), 0);
    assert_eq!(count(&srv.get("/images?type=!zone-dataset").await.1), 0);
    assert_eq!(count(&srv.get("/images?limit=1").await.1), 1);
    assert_eq!(count(&srv.get("/images?channel=staging").await.1), 0);
    let (s, body) = srv.get("/images?channel=nope").await;
    assert_eq!(s, 422);
    assert!(is_restify_error(&body, "ValidationFailed"));

    let (_, chans) = srv.get("/channels").await;
    assert_eq!(
        chans[0],
        json!({"name": "dev", "default": true, "description": "all development builds"})
    );

    let (s, body) = srv
        .action(&a, "channel-add", Some(json!({"channel": "staging"})))
        .await;
    assert_eq!(
        (s, body["channels"].clone()),
        (200, json!(["dev", "staging"]))
    );
    assert_eq!(count(&srv.get("/images?channel=staging").await.1), 1);
    assert_eq!(count(&srv.get("/images?channel=*").await.1), 2);

    // a is b's origin: removing it from its last channel is refused.
    let (s, _) = srv.delete(&format!("/images/{a}?channel=staging")).await;
    assert_eq!(s, 204);
    let (s, body) = srv.delete(&format!("/images/{a}")).await;
    assert_eq!(s, 422);
    assert!(is_restify_error(&body, "ImageHasDependentImages"));
    assert_eq!(srv.delete(&format!("/images/{b}")).await.0, 204);
    assert_eq!(srv.delete(&format!("/images/{a}")).await.0, 204);
    assert_eq!(srv.get(&format!("/images/{a}")).await.0, 404);
    assert!(!tmp.path().join("files").join(&a).exists());
    srv.server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_a_signature_when_keys_are_configured() {
    let tmp = tempfile::tempdir().unwrap();
    let line = http_signature::testing::write_key_pair(tmp.path(), "ops").unwrap();
    let mut opts = options(&tmp.path().join("data"));
    opts.auth = Some(http_signature::KeyRing::parse(std::path::Path::new("k"), &line).unwrap());
    let Srv { url, server, http } = start_with(opts);
    let uuid = uuid::Uuid::new_v4().to_string();

    let r = http
        .post(format!("{url}/images/{uuid}?action=import"))
        .json(&manifest(&uuid, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(is_restify_error(&body, "UnauthorizedError"), "{body}");

    let signer = http_signature::Signer::from_file("ops", &tmp.path().join("id_rsa")).unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    signer.sign_headers(&mut headers).unwrap();
    let r = http
        .post(format!("{url}/images/{uuid}?action=import"))
        .headers(headers.clone())
        .json(&manifest(&uuid, None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let r = http
        .get(format!("{url}/ping"))
        .headers(headers)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"], "ops");
    server.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_remote_checks_the_sources_content_md5() {
    let tmp = tempfile::tempdir().unwrap();
    let source = start(&tmp.path().join("source"));
    let target = start(&tmp.path().join("target"));
    let (good, bad) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    source.add_active(&good, None).await;
    source.add_active(&bad, None).await;
    // The source's word about the bytes is wrong, the bytes are right.
    let sidecar = tmp.path().join(format!("source/files/{bad}/file.md5"));
    let text = std::fs::read_to_string(&sidecar).unwrap();
    let (sha1, _) = text.trim().split_once(' ').unwrap();
    std::fs::write(&sidecar, format!("{sha1} AAAAAAAAAAAAAAAAAAAAAA==\n")).unwrap();

    let from = format!("import-remote&source={}", source.url);
    let (s, body) = target.action(&good, &from, None).await;
    assert_eq!(s, 200, "{body}");
    let (s, body) = target.action(&bad, &from, None).await;
    assert_eq!(s, 503, "{body}");
    assert!(is_restify_error(&body, "RemoteSourceError"), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Content-MD5 mismatch"),
        "{body}"
    );
    let (s, _) = target.get(&format!("/images/{bad}")).await;
    assert_eq!(s, 404, "nothing imported");
    source.server.close().await.unwrap();
    target.server.close().await.unwrap();
}
