//! `start_server` against real HTTP clients on loopback: every error body
//! is restify-shaped, and everything else passes through unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use dropshot::{
    ApiDescription, ConfigDropshot, ConfigTls, HttpError, HttpResponseOk, RequestContext,
    StreamingBody, TypedBody, endpoint,
};
use futures::StreamExt as _;
use restify_error::{RestError, RestServer, start_server};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, schemars::JsonSchema)]
struct Thing {
    name: String,
}

#[endpoint { method = POST, path = "/things" }]
async fn create(
    _rqctx: RequestContext<()>,
    body: TypedBody<Thing>,
) -> Result<HttpResponseOk<Value>, RestError> {
    let thing = body.into_inner();
    if thing.name.is_empty() {
        return Err(RestError::missing_parameter("name: required"));
    }
    Ok(HttpResponseOk(json!({"name": thing.name})))
}

/// An endpoint on Dropshot's own error type: its errors are rewritten too.
#[endpoint { method = GET, path = "/legacy" }]
async fn legacy(_rqctx: RequestContext<()>) -> Result<HttpResponseOk<Value>, HttpError> {
    Err(HttpError::for_bad_request(None, "no legacy here".into()))
}

/// Counts an uploaded body, so a streamed upload through the front is seen
/// whole.
#[endpoint { method = PUT, path = "/upload", request_body_max_bytes = 67108864 }]
async fn upload(
    _rqctx: RequestContext<()>,
    body: StreamingBody,
) -> Result<HttpResponseOk<u64>, RestError> {
    let mut stream = std::pin::pin!(body.into_stream());
    let mut n = 0u64;
    while let Some(chunk) = stream.next().await {
        n += chunk?.len() as u64;
    }
    Ok(HttpResponseOk(n))
}

fn start(tls: Option<ConfigTls>) -> RestServer<()> {
    let mut api = ApiDescription::new();
    api.register(create).unwrap();
    api.register(legacy).unwrap();
    api.register(upload).unwrap();
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let config = ConfigDropshot {
        bind_address: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    start_server(api, (), log, config, tls).unwrap()
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn restify(code: &str, body: &Value) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(keys, ["code", "message"], "{body}");
    assert_eq!(obj["code"], code, "{body}");
    assert!(!obj["message"].as_str().unwrap().is_empty(), "{body}");
}

#[tokio::test]
async fn dropshot_errors_are_restify_and_the_rest_passes_through() {
    let srv = start(None);
    let base = format!("http://{}", srv.local_addr());
    let http = reqwest::Client::new();

    let (s, b) = call(http.get(format!("{base}/nope/at/all"))).await;
    assert_eq!(s, 404);
    restify("ResourceNotFound", &b);

    let (s, b) = call(http.delete(format!("{base}/things"))).await;
    assert_eq!(s, 405);
    restify("MethodNotAllowedError", &b);

    let (s, b) = call(
        http.post(format!("{base}/things"))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(s, 400);
    restify("BadRequestError", &b);

    let (s, b) = call(http.get(format!("{base}/legacy"))).await;
    assert_eq!(s, 400);
    restify("BadRequestError", &b);
    assert_eq!(b["message"], "no legacy here");

    // The endpoint's own restify error, status and all.
    let (s, b) = call(
        http.post(format!("{base}/things"))
            .json(&json!({"name": ""})),
    )
    .await;
    assert_eq!(s, 409);
    restify("MissingParameter", &b);

    let (s, b) = call(
        http.post(format!("{base}/things"))
            .json(&json!({"name": "x"})),
    )
    .await;
    assert_eq!((s, b), (200, json!({"name": "x"})));

    // A streamed upload of unknown length (chunked) arrives whole.
    let chunks =
        futures::stream::iter((0..40).map(|i| Ok::<_, std::io::Error>(vec![i as u8; 256 * 1024])));
    let (s, b) = call(
        http.put(format!("{base}/upload"))
            .body(reqwest::Body::wrap_stream(chunks)),
    )
    .await;
    assert_eq!((s, b), (200, json!(40 * 256 * 1024)));

    srv.close().await.unwrap();
    // Closed means closed, also for a kept-alive connection: not a 503
    // from a front left behind.
    let r = http
        .post(format!("{base}/things"))
        .json(&json!({"name": "x"}))
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test]
async fn https_front_serves_and_rewrites() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let tls = ConfigTls::AsBytes {
        certs: key.cert.pem().into_bytes(),
        key: key.signing_key.serialize_pem().into_bytes(),
    };
    let srv = start(Some(tls));
    let root = reqwest::Certificate::from_pem(key.cert.pem().as_bytes()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([root])
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", srv.local_addr().port());
    let (s, b) = call(http.get(format!("{base}/missing"))).await;
    assert_eq!(s, 404);
    restify("ResourceNotFound", &b);
    let (s, _) = call(
        http.post(format!("{base}/things"))
            .json(&json!({"name": "x"})),
    )
    .await;
    assert_eq!(s, 200);
}
