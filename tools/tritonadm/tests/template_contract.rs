//! The template-variable contract at build time: `cargo xtask image check
//! triton-api` fails, naming the template and the variable, when the
//! image's SAPI template needs a variable that neither the service
//! definition (`manifests/triton-api.json`: metadata and declared
//! application keys) nor config-agent's `auto.*` provides. The check runs
//! on a scratch copy of the workspace (XTASK_WORKSPACE): the image and the
//! definition copied, everything else linked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let dest = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else {
            // fs::copy keeps the mode: the boot scripts' run bits matter.
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// A scratch workspace: `images/triton-api`, `manifests/` and `smf/` are
/// copies, every other top-level entry a symlink.
fn scratch() -> tempfile::TempDir {
    let ws = workspace();
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&ws).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if matches!(
            name.to_str(),
            Some("images" | "manifests" | "smf" | "target" | "bits" | ".git")
        ) {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), tmp.path().join(&name)).unwrap();
    }
    copy_tree(
        &ws.join("images/triton-api"),
        &tmp.path().join("images/triton-api"),
    );
    // Copied too: the image's files may not point outside the workspace.
    for dir in ["manifests", "smf"] {
        copy_tree(&ws.join(dir), &tmp.path().join(dir));
    }
    tmp
}

fn image_check(ws: &Path) -> Output {
    Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args(["xtask", "image", "check", "triton-api"])
        .env("XTASK_WORKSPACE", ws)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_template_variable_nothing_provides_fails_image_check() {
    let ws = scratch();
    let out = image_check(ws.path());
    assert!(out.status.success(), "the shipped image: {}", stderr(&out));

    let template = ws
        .path()
        .join("images/triton-api/sapi_manifests/triton-api/template");
    let text = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &template,
        text.replacen("{", "{\n    \"ufds\": \"{{{ufds_url}}}\",", 1),
    )
    .unwrap();
    let out = image_check(ws.path());
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("sapi_manifests/triton-api/template") && err.contains("{{ufds_url}}"),
        "{err}"
    );

    // Declared as an application key, it passes.
    let def = ws.path().join("manifests/triton-api.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&def).unwrap()).unwrap();
    m["application_metadata"]
        .as_array_mut()
        .unwrap()
        .push("ufds_url".into());
    std::fs::write(&def, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    let out = image_check(ws.path());
    assert!(out.status.success(), "{}", stderr(&out));
}
