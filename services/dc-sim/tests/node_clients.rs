//! dc-sim against Triton's own Node.js clients (npm `sdc-clients`, the
//! package `services/imgapi-server/tests/node` installs; `.ci/run` runs
//! `npm ci` there), not only against the clients this project generates.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::path::PathBuf;

use common::DcSim;

#[test]
fn sdc_clients_read_and_write_every_api() {
    let modules =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../imgapi-server/tests/node/node_modules");
    node_check::require(&modules.join(".."), "sdc-clients");
    let sim = DcSim::start();
    let input = serde_json::json!({
        "modules": modules,
        "sapi": sim.url("sapi"),
        "vmapi": sim.url("vmapi"),
        "napi": sim.url("napi"),
        "papi": sim.url("papi"),
        "cnapi": sim.url("cnapi"),
    });
    let node = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let got = node_check::run(&node.join("sdc_clients.js"), &node, &input);
    eprintln!("{got}");
    assert_eq!(got["apps"], serde_json::json!(["sdc"]));
    // Created with accept-version ~2: the answer carries `type`.
    assert_eq!(got["created"]["name"], "node-made");
    assert_eq!(got["created"]["type"], "vm");
    assert_eq!(got["created"]["metadata"]["FROM"], "node");
    let services: Vec<&str> = got["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for want in ["node-made", "sapi", "vmapi", "imgapi", "adminui"] {
        assert!(services.contains(&want), "{want} not in {services:?}");
    }
    assert_eq!(got["missing"]["status"], 404);
    assert_eq!(got["missing"]["code"], "ResourceNotFound");
    assert!(!got["vms"].as_array().unwrap().is_empty(), "{got}");
    assert_eq!(got["networks"], serde_json::json!(["admin"]));
    assert_eq!(got["packages"], serde_json::json!(["sdc_1024"]));
    assert_eq!(got["headnodes"], 1);
}
