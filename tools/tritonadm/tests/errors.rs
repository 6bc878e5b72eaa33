//! Failures of the remote side each come out as one clear error naming the
//! call and the server, never as an empty result.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A loopback HTTP server that answers every request with `status` and
/// `body`: stands in for an IMGAPI whose backend is failing.
async fn failing_server(status: &'static str, body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let _ = sock.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_reported_with_its_code() {
    let url = failing_server(
        "503 Service Unavailable",
        r#"{"code":"StorageIsDown","message":"storage system is down"}"#,
    )
    .await;
    let out = tritonadm(&["--imgapi-url", &url, "image", "list"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("ListImages at ")
            && err.contains(&url)
            && err.contains("503")
            && err.contains("StorageIsDown: storage system is down"),
        "{err}"
    );
    assert!(stdout(&out).is_empty(), "no empty table on failure");

    // GetImage: a 5xx must not pass for "absent" and start an import.
    let tmp = tempfile::tempdir().unwrap();
    let img = make_image(tmp.path(), "x", None);
    let out = import(&url, &img.manifest, &img.file, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("GetImage"), "{}", stderr(&out));

    let url = failing_server("500 Internal Server Error", "<html>oops</html>").await;
    let out = tritonadm(&["--imgapi-url", &url, "image", "get", &img.uuid.to_string()]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("not an IMGAPI response") && err.contains("oops"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = tritonadm(&["--imgapi-url", &url, "image", "list"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&url) && err.to_lowercase().contains("connection refused"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_reported_and_insecure_is_opt_in() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let mut opts = options(&tmp.path().join("imgapi"));
    opts.tls = Some(dropshot::ConfigTls::AsBytes {
        certs: cert.cert.pem().into_bytes(),
        key: cert.signing_key.serialize_pem().into_bytes(),
    });
    let server = Server::start_with(opts);
    assert!(server.url.starts_with("https://"));

    let out = tritonadm(&["--imgapi-url", &server.url, "image", "list"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("certificate") && err.contains("--insecure"),
        "{err}"
    );

    let out = tritonadm(&["--imgapi-url", &server.url, "--insecure", "image", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_imgapi_anywhere_is_an_input_error() {
    let out = tritonadm(&["image", "list"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--imgapi-url"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_writes_against_an_auth_server() {
    let tmp = tempfile::tempdir().unwrap();
    let line = http_signature::testing::write_key_pair(tmp.path(), "ops").unwrap();
    let ring = http_signature::KeyRing::parse(std::path::Path::new("keys"), &line).unwrap();
    let mut opts = options(&tmp.path().join("imgapi"));
    opts.auth = Some(ring);
    let server = Server::start_with(opts);
    let img = make_image(tmp.path(), "signed", None);
    let m = img.manifest.to_str().unwrap();
    let f = img.file.to_str().unwrap();

    let out = import(&server.url, &img.manifest, &img.file, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("401") && err.contains("UnauthorizedError"),
        "{err}"
    );

    // Reads stay open.
    let out = tritonadm(&["--imgapi-url", &server.url, "image", "list"]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let key = tmp.path().join("id_rsa");
    let out = tritonadm(&[
        "--imgapi-url",
        &server.url,
        "--key",
        key.to_str().unwrap(),
        "--user",
        "ops",
        "image",
        "import",
        "-m",
        m,
        "-f",
        f,
    ])
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Activated image"));
    server.stop().await;
}
