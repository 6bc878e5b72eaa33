//! Runs the real `dc-sim` binary on loopback ephemeral ports in a
//! temporary directory, and reads the URLs it prints.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct DcSim {
    child: Child,
    pub urls: BTreeMap<String, String>,
    pub config: PathBuf,
    /// Keeps the directory alive when the simulator owns it.
    _dir: Option<tempfile::TempDir>,
    pub dir: PathBuf,
}

impl DcSim {
    /// A fresh simulator in a new temporary directory.
    pub fn start() -> DcSim {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let mut sim = DcSim::start_in(&path);
        sim._dir = Some(dir);
        sim
    }

    /// A simulator on an existing directory (a restart).
    pub fn start_in(dir: &Path) -> DcSim {
        DcSim::start_with_delay(dir, 30)
    }

    /// Jobs stay queued, then running, `job_delay_ms` each.
    pub fn start_with_delay(dir: &Path, job_delay_ms: u64) -> DcSim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dc-sim"))
            .arg("--dir")
            .arg(dir)
            .args(["--listen-ip", "127.0.0.1", "--base-port", "0"])
            .arg(format!("--job-delay-ms={job_delay_ms}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut urls = BTreeMap::new();
        let mut config = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let (name, value) = line.split_once(' ').unwrap();
            if name == "usbkey-config" {
                config = Some(PathBuf::from(value));
                break;
            }
            urls.insert(name.to_string(), value.to_string());
        }
        let config = config.unwrap_or_else(|| {
            let status = child.wait().unwrap();
            panic!("dc-sim exited ({status}) before printing its config path")
        });
        DcSim {
            child,
            urls,
            config,
            _dir: None,
            dir: dir.to_path_buf(),
        }
    }

    pub fn url(&self, api: &str) -> &str {
        &self.urls[api]
    }

    pub fn sapi(&self) -> sapi_client::Client {
        sapi_client::Client::new(self.url("sapi"))
    }

    pub fn vmapi(&self) -> vmapi_client::Client {
        vmapi_client::Client::new(self.url("vmapi"))
    }

    pub fn napi(&self) -> napi_client::Client {
        napi_client::Client::new(self.url("napi"))
    }

    pub fn papi(&self) -> papi_client::Client {
        papi_client::Client::new(self.url("papi"))
    }

    pub fn cnapi(&self) -> cnapi_client::Client {
        cnapi_client::Client::new(self.url("cnapi"))
    }

    /// Kill (SIGKILL, no clean shutdown) and wait for the process.
    pub fn kill(mut self) -> Option<tempfile::TempDir> {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self._dir.take()
    }

    /// Arm a fault through the admin API.
    pub async fn fault(&self, body: serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}/faults", self.url("admin")))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    pub async fn fail_next_provision(&self, message: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/faults/provision", self.url("admin")))
            .json(&serde_json::json!({"count": 1, "message": message}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    /// `key=value` from the headnode config.
    pub fn config_value(&self, key: &str) -> String {
        let text = std::fs::read_to_string(&self.config).unwrap();
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("{key} not in {text}"))
    }
}

impl Drop for DcSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw request, for what the generated clients cannot send (no
/// accept-version, malformed bodies): (status, JSON body).
pub async fn raw(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}"))
    };
    (status, json)
}

/// The body of a client error: (status, restify code, message).
pub fn rest_error(e: progenitor_client::Error<restify_error::RestError>) -> (u16, String, String) {
    match e {
        progenitor_client::Error::ErrorResponse(r) => {
            let status = r.status().as_u16();
            let body = r.into_inner();
            (status, body.code, body.message)
        }
        other => panic!("expected an error response, got {other:?}"),
    }
}

/// Import an image into the simulator's IMGAPI, with a file, and activate
/// it unless `active` is false. Returns its UUID.
pub async fn add_image(sim: &DcSim, active: bool) -> uuid::Uuid {
    let uuid = uuid::Uuid::new_v4();
    let base = sim.url("imgapi");
    let http = reqwest::Client::new();
    let manifest = serde_json::json!({
        "v": 2, "uuid": uuid, "owner": sim.config_value("admin_uuid"),
        "name": "triton-api", "version": "1.0.0", "type": "zone-dataset", "os": "smartos",
    });
    let r = http
        .post(format!("{base}/images/{uuid}?action=import"))
        .json(&manifest)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = http
        .put(format!("{base}/images/{uuid}/file?compression=none"))
        .body(b"zfs stream".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    if active {
        let r = http
            .post(format!("{base}/images/{uuid}?action=activate"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    uuid
}
