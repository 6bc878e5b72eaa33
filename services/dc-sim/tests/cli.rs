//! The `dc-sim` command line: what it prints, its logs, its errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

fn dc_sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dc-sim"))
}

#[test]
fn prints_urls_and_config_then_logs_bunyan_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = dc_sim()
        .arg("--dir")
        .arg(dir.path())
        .arg("--verbose")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut names = Vec::new();
    for line in out.by_ref() {
        let line = line.unwrap();
        let (name, value) = line.split_once(' ').unwrap();
        names.push(name.to_string());
        if name == "usbkey-config" {
            assert_eq!(value, dir.path().join("usbkey-config").to_str().unwrap());
            break;
        }
        assert!(value.starts_with("http://127.0.0.1:"), "{line}");
    }
    assert_eq!(
        names,
        [
            "sapi",
            "vmapi",
            "napi",
            "papi",
            "cnapi",
            "imgapi",
            "admin",
            "usbkey-config"
        ]
    );
    // The first log record, in node-bunyan's core fields.
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = err.next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let rec: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(rec["name"], "dc-sim");
    assert_eq!(rec["v"], 0);
    assert_eq!(rec["level"], 30);
    assert_eq!(rec["pid"], child.id());
    for key in ["hostname", "time", "msg"] {
        assert!(rec[key].is_string(), "{key} in {first}");
    }
}

#[test]
fn bad_state_and_bad_dir_fail_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("state.json"), "{\"truncated\": ").unwrap();
    let out = dc_sim().arg("--dir").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("state.json: not a dc-sim state document"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing announced");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = dc_sim().arg("--dir").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("dc-sim: error: starting with --dir"),
        "{err}"
    );
    assert!(err.contains("a-file"), "{err}");

    let fresh = dir.path().join("fresh");
    let out = dc_sim()
        .arg("--dir")
        .arg(&fresh)
        .args(["--base-port", "65533"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--base-port 65533"), "{err}");
    assert!(!fresh.exists(), "nothing written");
}
