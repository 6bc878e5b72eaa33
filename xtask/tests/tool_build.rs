//! A tool end to end through xtask: `image build` of a `kind = "tool"`
//! definition in a scratch workspace (real cargo, a tiny binary with a
//! build-stamp field), its installer run with `sh` into a scratch root,
//! `bits upload`, and `image publish` into a real imgapi-server (a dev
//! build refused without `--allow-dev`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

const IMAGE_TOML: &str = r#"
name = "demo-tool"
description = "A demo tool"
kind = "tool"
os = "smartos"

[[cargo]]
package = "demo-tool"
dest = "/opt/triton/demo-tool/bin/demo-tool"

[tool]
prefix = "/opt/triton/demo-tool"
bin = "bin/demo-tool"
link = "/opt/smartdc/bin/demo-tool"
generate = [{ args = ["completion", "bash"], dest = "share/completions/demo-tool.bash" }]
"#;

/// Declares the stamp field as tritonadm's `version` module does.
const MAIN_RS: &str = r#"
const MARKER: &[u8] = b"@(#)triton-build-stamp:";
const fn field() -> [u8; 128] {
    let mut f = [0u8; 128];
    let mut i = 0;
    while i < MARKER.len() {
        f[i] = MARKER[i];
        i += 1;
    }
    f
}
#[used]
static STAMP: [u8; 128] = field();

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("--version") => {
            let f: [u8; 128] = unsafe { std::ptr::read_volatile(&STAMP) };
            let v = &f[MARKER.len()..];
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            println!("demo-tool {}", String::from_utf8_lossy(&v[..end]));
        }
        Some("completion") => println!("complete -W 'completion' demo-tool"),
        _ => println!("hello"),
    }
}
"#;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn git(dir: &Path, args: &[&str]) {
    let o = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-C"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn text(o: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn xtask(ws: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(XTASK);
    c.args(args)
        .env("XTASK_WORKSPACE", ws)
        .env("TIMESTAMP", "20261126T091302Z")
        .env_remove("SOURCE_DATE_EPOCH")
        .env_remove("BRANCH")
        .env_remove("UPDATES_IMGADM_IDENTITY")
        .env_remove("UPDATES_IMGADM_USER")
        .env_remove("SSH_AUTH_SOCK");
    if xtask_launch::tool_for(args) == "xtask" {
        // The image's binaries get their own target dir: no wait on the
        // outer cargo's lock. Bits and publish go to xtask-ship, which is
        // built where the tools live.
        c.env("CARGO_TARGET_DIR", ws.join("target"));
    }
    c
}

fn workspace(dir: &Path) -> PathBuf {
    let ws = dir.join("ws");
    write(
        &ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"demo-tool\"]\nresolver = \"3\"\n",
    );
    write(
        &ws.join("demo-tool/Cargo.toml"),
        "[package]\nname = \"demo-tool\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    );
    write(&ws.join("demo-tool/src/main.rs"), MAIN_RS);
    write(&ws.join("images/demo-tool/image.toml"), IMAGE_TOML);
    write(&ws.join(".gitignore"), "/target\n/bits\n");
    git(&ws, &["init", "-q", "-b", "main"]);
    git(&ws, &["add", "-A"]);
    git(&ws, &["commit", "-q", "-m", "init"]);
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_builds_installs_uploads_and_publishes() {
    let tmp = tempfile::tempdir().unwrap();
    let ws = workspace(tmp.path());
    let stamp = {
        let o = Command::new("git")
            .args(["-C"])
            .arg(&ws)
            .args(["rev-parse", "--short=7", "HEAD"])
            .output()
            .unwrap();
        // Host binaries in a smartos tool: the stamp says dev.
        format!(
            "main-20261126T091302Z-g{}-dev",
            String::from_utf8_lossy(&o.stdout).trim()
        )
    };

    let ws2 = ws.clone();
    let o = tokio::task::spawn_blocking(move || {
        xtask(
            &ws2,
            &["image", "build", "demo-tool", "--cargo-profile", "dev"],
        )
        .output()
        .unwrap()
    })
    .await
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("installer: "), "{out}");
    assert!(!out.contains("ZFS stage skipped"), "{out}");
    let bits = ws.join("bits/demo-tool");
    let installer = bits.join(format!("demo-tool-{stamp}.sh"));
    let manifest = bits.join(format!("demo-tool-{stamp}.imgmanifest"));
    assert!(installer.is_file() && manifest.is_file(), "{out}");
    let m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["type"], "other");
    assert_eq!(m["os"], "other");
    assert_eq!(m["files"][0]["compression"], "none");
    assert_eq!(m["tags"]["dev_build"], true, "host binaries: a dev build");
    assert_eq!(
        m["files"][0]["size"].as_u64().unwrap(),
        fs::metadata(&installer).unwrap().len()
    );

    // The installer, into a scratch root.
    let root = tmp.path().join("root");
    let o = Command::new("sh")
        .arg(&installer)
        .env("DEMO_TOOL_INSTALL_ROOT", &root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(root.join("opt/smartdc/bin/demo-tool"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("demo-tool {stamp}")
    );
    let completions =
        fs::read_to_string(root.join("opt/triton/demo-tool/share/completions/demo-tool.bash"))
            .unwrap();
    assert!(completions.contains("complete -W"), "{completions}");

    // Bits, in the eng layout.
    let store = tmp.path().join("store");
    let o = xtask(
        &ws,
        &["bits", "upload", "demo-tool", "--allow-dev", "--dest"],
    )
    .arg(&store)
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let stored = store.join(format!("demo-tool/{stamp}/demo-tool"));
    for f in [&installer, &manifest] {
        assert!(
            stored.join(f.file_name().unwrap()).is_file(),
            "{}",
            f.display()
        );
    }

    // Publish: refused as a dev build, then forced.
    let server = imgapi_server::start(imgapi_server::Options::new(
        &tmp.path().join("imgapi"),
        "127.0.0.1:0".parse().unwrap(),
    ))
    .unwrap();
    let url = format!("http://{}", server.local_addr());
    let publish = |extra: &'static [&'static str]| {
        let mut c = tokio::process::Command::from(xtask(
            &ws,
            &["image", "publish", "demo-tool", "--url", &url],
        ));
        c.args(extra);
        c
    };
    let o = publish(&[]).output().await.unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-dev"));
    let o = publish(&["--allow-dev"]).output().await.unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let got: serde_json::Value = reqwest::get(format!(
        "{url}/images/{}?channel=dev",
        m["uuid"].as_str().unwrap()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(got["state"], "active");
    assert_eq!(got["files"][0]["compression"], "none");
    server.close().await.unwrap();
}
