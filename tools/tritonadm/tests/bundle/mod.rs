//! Real tritonadm bundles for the installer and self-update tests: the
//! pipeline's tool stage (`zone_image::tool`, with the real
//! `images/tritonadm` definition) run on this test build's tritonadm, each
//! copy stamped with its own version, and the real `.sh` run with `sh`
//! into a scratch `TRITONADM_INSTALL_ROOT`.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use zone_image::binaries::CargoOptions;
use zone_image::tool::{ToolBuild, ToolOutputs};

pub const ROOT_ENV: &str = "TRITONADM_INSTALL_ROOT";
pub const PAUSE_ENV: &str = "TRITONADM_INSTALL_PAUSE_AT";

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// This build's tritonadm without its debug info (a debug build is over
/// 200 MB of it); the code, and the stamp field, are untouched. Made once
/// per build of tritonadm and shared by the test binaries.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_BIN_EXE_tritonadm"));
        let meta = fs::metadata(src).unwrap();
        let mtime = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dest = dir.join(format!("tritonadm-stripped-{}-{mtime}", meta.len()));
        if !dest.is_file() {
            let tmp = dir.join(format!("tritonadm-stripping-{}", std::process::id()));
            fs::copy(src, &tmp).unwrap();
            let st = Command::new("strip").arg(&tmp).status().unwrap();
            assert!(st.success(), "strip {}", tmp.display());
            fs::rename(&tmp, &dest).unwrap();
        }
        dest
    })
}

/// Build `tritonadm-<stamp>.sh` and its manifest into `dir/bits/`.
pub fn build(dir: &Path, stamp: &str, published_at: chrono::DateTime<chrono::Utc>) -> ToolOutputs {
    let def = zone_image::definition::load(&workspace(), "tritonadm").unwrap();
    let spec = def.tool.clone().unwrap();
    let c = &def.cargo[0];
    let proto = dir.join(format!("proto-{stamp}"));
    let dest = proto.join("root").join(&c.dest);
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::copy(binary(), &dest).unwrap();
    let scratch = dir.join(format!("scratch-{stamp}"));
    fs::create_dir_all(&scratch).unwrap();
    let out_dir = dir.join("bits");
    fs::create_dir_all(&out_dir).unwrap();
    let built = HashMap::from([((c.package.clone(), c.bin.clone()), binary().to_path_buf())]);
    let tarball = out_dir.join(format!("tritonadm-pkg-{stamp}.tar.gz"));
    let b = ToolBuild {
        def: &def,
        spec: &spec,
        proto_dir: &proto,
        scratch: &scratch,
        built: &built,
        cargo: &CargoOptions {
            target: None,
            profile: "dev".into(),
        },
        stamp,
        branch: "main",
        dev_reason: None,
        mtime: 1_764_000_000,
        out_dir: &out_dir,
        tarball: &tarball,
        published_at,
    };
    zone_image::tool::build(&b, &progress::Silent).unwrap().1
}

/// `sh INSTALLER ARGS` into `root`.
pub fn install(root: &Path, installer: &Path, args: &[&str]) -> Output {
    Command::new("sh")
        .arg(installer)
        .args(args)
        .env(ROOT_ENV, root)
        .env_remove(PAUSE_ENV)
        .output()
        .unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn link(root: &Path) -> PathBuf {
    root.join("opt/smartdc/bin/tritonadm")
}

/// Run the linked tritonadm with `args` under `root`.
pub fn linked(root: &Path, args: &[&str]) -> Output {
    Command::new(link(root))
        .args(args)
        .env(ROOT_ENV, root)
        .env("TRITONADM_HEADNODE_CONFIG", "/nonexistent/usbkey/config")
        .output()
        .unwrap()
}

/// What `--version` of the linked tritonadm prints.
pub fn linked_version(root: &Path) -> String {
    let o = linked(root, &["--version"]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `key=value` lines of the installed `etc/version`.
pub fn version_file(root: &Path) -> HashMap<String, String> {
    fs::read_to_string(root.join("opt/triton/tritonadm/etc/version"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Everything under `root/opt` (paths, sizes, link targets) and the
/// entries of the archive dir that are not archives: what must match
/// between an interrupted-then-rerun install and an uninterrupted one.
pub fn state(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(root.join("opt")).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().display().to_string();
        let ft = e.file_type();
        if ft.is_symlink() {
            out.push(format!(
                "{rel} -> {}",
                fs::read_link(e.path()).unwrap().display()
            ));
        } else if ft.is_file() {
            if rel.ends_with("etc/version") {
                let v: Vec<_> = fs::read_to_string(e.path())
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with("installed_at="))
                    .map(String::from)
                    .collect();
                out.push(format!("{rel}: {}", v.join(" ")));
            } else {
                out.push(format!("{rel} {}", e.metadata().unwrap().len()));
            }
        } else {
            out.push(format!("{rel}/"));
        }
    }
    if let Ok(rd) = fs::read_dir(root.join("var/tritonadm/self-updates")) {
        for e in rd {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            if !name.starts_with("20") || name.ends_with(".partial") {
                out.push(format!("leftover var/tritonadm/self-updates/{name}"));
            }
        }
    }
    out
}

/// The header (the installer without its payload), as the installer
/// itself counts it.
pub fn header(installer: &Path) -> String {
    let text = fs::read(installer).unwrap();
    let head = String::from_utf8_lossy(&text[..text.len().min(64 * 1024)]).into_owned();
    let lines: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("HEADER_LINES="))
        .unwrap()
        .parse()
        .unwrap();
    head.lines().take(lines).map(|l| format!("{l}\n")).collect()
}

/// [`linked`] for async tests, whose runtime also serves the imgapi-server
/// the command talks to.
pub async fn linked_async(root: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(link(root))
        .args(args)
        .env(ROOT_ENV, root)
        .env("TRITONADM_HEADNODE_CONFIG", "/nonexistent/usbkey/config")
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap()
}
