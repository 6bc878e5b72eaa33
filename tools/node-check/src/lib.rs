//! How tests cross-check against Joyent's own Node.js packages: a script
//! under the test's `tests/node/` reads one JSON document on stdin and
//! answers one on stdout.
// Test support: a failure here is the calling test's failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Panic with the way to install it unless `dir/node_modules/<package>`
/// is there.
pub fn require(dir: &Path, package: &str) {
    assert!(
        dir.join("node_modules").join(package).is_dir(),
        "{package} is not installed: run `npm ci --prefix {}` first (.ci/run does)",
        dir.display()
    );
}

/// Run `node script` in `cwd` with `input` on stdin; its JSON answer.
pub fn run(script: &Path, cwd: &Path, input: &Value) -> Value {
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (Node.js) must be installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "node {}: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "node {} output: {e}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
