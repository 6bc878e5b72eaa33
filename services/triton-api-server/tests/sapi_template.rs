//! The image's SAPI template, rendered the way config-agent renders it
//! (mustache over the instance's metadata plus `auto.*`), must give a config
//! the server accepts, at the path the SMF manifest tells the server to read.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::{Path, PathBuf};

use triton_api_server::Config;

const ZONENAME: &str = "5f6d1e36-7a0e-4c3b-a7c1-3c56a9e0d2b1";
const SERVER_UUID: &str = "44454c4c-5000-104d-8037-b7c04f5a5131";
const DATACENTER: &str = "us-test-1";

fn repo_root() -> PathBuf {
    // services/triton-api-server -> repo root
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate dir is two levels below the repo root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn read_json(rel: &str) -> serde_json::Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// The metadata SAPI hands config-agent for a triton-api instance: the
/// service's metadata from `manifests/triton-api.json`, the datacenter
/// metadata every Triton application carries, and the `auto` object
/// config-agent fills in from the zone itself.
fn sapi_metadata() -> serde_json::Map<String, serde_json::Value> {
    let manifest = read_json("manifests/triton-api.json");
    let mut md = manifest
        .get("metadata")
        .and_then(serde_json::Value::as_object)
        .expect("manifests/triton-api.json has a metadata object")
        .clone();
    md.insert("datacenter_name".into(), DATACENTER.into());
    md.insert(
        "auto".into(),
        serde_json::json!({
            "ZONENAME": ZONENAME,
            "SERVER_UUID": SERVER_UUID,
            "ADMIN_IP": "127.0.0.1",
            "DATACENTER_NAME": DATACENTER,
        }),
    );
    md
}

fn render(md: &serde_json::Map<String, serde_json::Value>) -> String {
    let text = read("images/triton-api/sapi_manifests/triton-api/template");
    let template = mustache::compile_str(&text).expect("the SAPI template compiles as mustache");
    template
        .render_to_string(md)
        .expect("the SAPI template renders")
}

fn parse_rendered(rendered: &str) -> Config {
    Config::parse(Path::new("rendered/config.json"), rendered)
        .unwrap_or_else(|e| panic!("server rejects the rendered template: {e}\n{rendered}"))
}

fn sapi_config_path() -> String {
    let manifest = read_json("images/triton-api/sapi_manifests/triton-api/manifest.json");
    manifest
        .get("path")
        .and_then(serde_json::Value::as_str)
        .expect("sapi manifest.json has a string path")
        .to_string()
}

#[test]
fn rendered_template_is_a_config_the_server_accepts() {
    let md = sapi_metadata();
    let rendered = render(&md);
    let config = parse_rendered(&rendered);

    assert_eq!(config.bind_address.to_string(), "127.0.0.1:80");
    assert_eq!(config.datacenter_name, DATACENTER);
    assert_eq!(config.instance_uuid.to_string(), ZONENAME);
    assert_eq!(config.server_uuid.to_string(), SERVER_UUID);
    assert_eq!(config.admin_ip.to_string(), "127.0.0.1");
    let level = md
        .get("TRITON_API_LOG_LEVEL")
        .and_then(serde_json::Value::as_str)
        .expect("manifests/triton-api.json sets TRITON_API_LOG_LEVEL");
    assert_eq!(config.log_level, level);
}

#[test]
fn log_level_metadata_reaches_the_config() {
    let mut md = sapi_metadata();
    md.insert("TRITON_API_LOG_LEVEL".into(), "debug".into());
    let rendered = render(&md);
    let config = parse_rendered(&rendered);
    assert_eq!(config.log_level, "debug");
}

#[test]
fn rendered_template_without_log_level_still_parses() {
    for unset in [
        None,
        Some(serde_json::json!("")),
        Some(serde_json::json!(false)),
    ] {
        let mut md = sapi_metadata();
        match &unset {
            None => {
                md.remove("TRITON_API_LOG_LEVEL");
            }
            Some(v) => {
                md.insert("TRITON_API_LOG_LEVEL".into(), v.clone());
            }
        }
        let rendered = render(&md);
        assert!(
            !rendered.contains("log_level"),
            "TRITON_API_LOG_LEVEL={unset:?} still renders log_level:\n{rendered}"
        );
        let config =
            Config::parse(Path::new("rendered/config.json"), &rendered).unwrap_or_else(|e| {
                panic!("TRITON_API_LOG_LEVEL={unset:?}: server rejects: {e}\n{rendered}")
            });
        assert_eq!(config.log_level, "info");
        assert_eq!(config.instance_uuid.to_string(), ZONENAME);
    }
}

#[test]
fn rendered_template_without_auto_is_rejected_by_field() {
    // If config-agent ever rendered without `auto`, the server must say which
    // field is wrong rather than start with garbage.
    let mut md = sapi_metadata();
    md.remove("auto");
    let rendered = render(&md);
    let err = Config::parse(Path::new("/opt/x/config.json"), &rendered)
        .expect_err("a config without auto.* values must be rejected")
        .to_string();
    assert!(
        err.starts_with("/opt/x/config.json: field 'bind_address'"),
        "{err}"
    );
}

#[test]
fn sapi_manifest_path_matches_the_smf_config_file() {
    let path = sapi_config_path();
    assert!(
        path.starts_with('/'),
        "sapi manifest path is not absolute: {path}"
    );
    let xml = read("images/triton-api/smf/manifests/triton-api.xml");
    // Every <envvar .../> element, attributes in any order.
    let envvars: Vec<&str> = xml
        .split("<envvar")
        .skip(1)
        .filter_map(|rest| rest.split("/>").next())
        .collect();
    let attr = |elem: &str, name: &str| -> Option<String> {
        let start = elem.find(&format!("{name}=\""))? + name.len() + 2;
        let len = elem[start..].find('"')?;
        Some(elem[start..start + len].to_string())
    };
    let values: Vec<String> = envvars
        .iter()
        .filter(|e| attr(e, "name").as_deref() == Some("TRITON__CONFIG_FILE"))
        .filter_map(|e| attr(e, "value"))
        .collect();
    assert_eq!(
        values,
        vec![path.clone()],
        "the SMF manifest must pass TRITON__CONFIG_FILE={path} (the SAPI manifest's path) exactly once"
    );
}

#[test]
fn sapi_manifest_post_cmd_refreshes_the_smf_service() {
    // config-agent runs post_cmd after rewriting the file; it must refresh
    // the service the SMF manifest defines (refresh sends SIGHUP).
    let manifest = read_json("images/triton-api/sapi_manifests/triton-api/manifest.json");
    let post_cmd = manifest
        .get("post_cmd")
        .and_then(serde_json::Value::as_str)
        .expect("sapi manifest.json has a post_cmd");
    let xml = read("images/triton-api/smf/manifests/triton-api.xml");
    let fmri = xml
        .split("<service name=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the SMF manifest names its service");
    assert!(
        post_cmd.contains("svcadm refresh") && post_cmd.ends_with(fmri),
        "post_cmd {post_cmd:?} does not refresh {fmri}"
    );
    assert!(
        xml.contains(r#"name="refresh" exec=":kill -HUP""#),
        "the SMF refresh method does not send SIGHUP"
    );
}
