//! Boot and method scripts: a shebang, the run bit, and `bash -n`.
//! (The seed's bug: `setup.sh` shipped without its run bit and the zone
//! never came up.)

use std::path::Path;
use std::process::Command;

pub fn check(path: &Path, mode: u32) -> Result<(), String> {
    let head = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    if !first.starts_with(b"#!") {
        return Err("expected a shebang line (#!/bin/bash) at the top".into());
    }
    if mode & 0o111 == 0 {
        return Err(format!(
            "script has mode {mode:04o}, expected the run bit (e.g. 0755)"
        ));
    }
    let interp = String::from_utf8_lossy(first);
    if interp.contains("sh") {
        let out = Command::new("bash")
            .arg("-n")
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run bash -n: {e}"))?;
        if !out.status.success() {
            let msg = String::from_utf8_lossy(&out.stderr);
            let msg = msg.lines().next().unwrap_or("syntax error").trim();
            return Err(format!("bash -n: {msg}"));
        }
    }
    Ok(())
}
