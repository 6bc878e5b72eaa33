//! `cargo xtask image build|check` end to end, up to the package tarball:
//! a scratch Cargo workspace with a tiny binary crate and an image
//! definition, built by the real xtask binary with real cargo, tar and gzip.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const XTASK: &str = env!("CARGO_BIN_EXE_xtask");

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent dir")
        .to_path_buf()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, text).expect("write");
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        ok.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

const IMAGE_TOML: &str = r#"
name = "demo"
description = "A demo zone image"
kind = "zone"
origin = "41bd4100-eb86-409a-85b0-e649aadf6f62"
os = "smartos"

[[cargo]]
package = "hello"
dest = "/opt/smartdc/demo/bin/hello"

[[files]]
src = "boot"
dest = "/opt/smartdc/boot"
kind = "script"

[[files]]
src = "smf/manifests/postboot.xml"
from = "workspace"
dest = "/opt/custom/smf/manifests/postboot.xml"
mode = "0644"

[[files]]
src = "smf/demo.xml"
dest = "/opt/custom/smf/manifests/demo.xml"
mode = "0644"

[[files]]
src = "sapi_manifests/demo"
dest = "/opt/smartdc/demo/sapi_manifests/demo"
mode = "0644"

[[files]]
src = "lib"
dest = "/opt/smartdc/demo/lib"

[[files]]
content = ""
tree = "site"
dest = "/.do-not-delete-me"
"#;

const DEMO_XML: &str = r#"<?xml version="1.0"?>
<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">
<service_bundle type="manifest" name="demo">
  <service name="triton/application/demo" type="service" version="1">
    <create_default_instance enabled="true"/>
    <single_instance/>
    <exec_method type="method" name="start" exec="/opt/smartdc/demo/bin/hello &amp;" timeout_seconds="60"/>
    <exec_method type="method" name="refresh" exec=":kill -HUP" timeout_seconds="60"/>
    <exec_method type="method" name="stop" exec=":kill" timeout_seconds="60"/>
    <stability value="Unstable"/>
  </service>
</service_bundle>
"#;

/// A scratch workspace: Cargo workspace, git repo, image `demo`.
struct Fixture {
    _tmp: tempfile::TempDir,
    ws: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ws = tmp.path().join("ws");
        write(
            &ws.join("Cargo.toml"),
            "[workspace]\nmembers = [\"hello\"]\nresolver = \"3\"\n",
        );
        write(
            &ws.join("hello/Cargo.toml"),
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        );
        write(
            &ws.join("hello/src/main.rs"),
            "fn main() { println!(\"hello\"); }\n",
        );
        write(&ws.join(".gitignore"), "/target\n/bits\n");
        let postboot = fs::read_to_string(repo_root().join("smf/manifests/postboot.xml"))
            .expect("shared postboot manifest");
        write(&ws.join("smf/manifests/postboot.xml"), &postboot);
        let img = ws.join("images/demo");
        write(&img.join("image.toml"), IMAGE_TOML);
        write(
            &img.join("boot/setup.sh"),
            "#!/bin/bash\nset -o errexit\nmkdir -p /opt/smartdc/demo/etc\n",
        );
        chmod(&img.join("boot/setup.sh"), 0o755);
        write(&img.join("smf/demo.xml"), DEMO_XML);
        write(
            &img.join("sapi_manifests/demo/manifest.json"),
            r#"{"name": "demo", "path": "/opt/smartdc/demo/etc/config.json", "post_cmd": "/usr/sbin/svcadm refresh demo"}"#,
        );
        write(
            &img.join("sapi_manifests/demo/template"),
            "{\"dc\": \"{{{datacenter_name}}}\", \"ip\": \"{{auto.ADMIN_IP}}\"}\n",
        );
        write(&img.join("lib/data.txt"), "some data\n");
        write(&img.join("lib/sub/more.txt"), "more\n");
        git(&ws, &["init", "-q", "-b", "master"]);
        git(&ws, &["add", "-A"]);
        git(&ws, &["commit", "-q", "-m", "init"]);
        Fixture { _tmp: tmp, ws }
    }

    fn image(&self) -> PathBuf {
        self.ws.join("images/demo")
    }

    fn bits(&self) -> PathBuf {
        self.ws.join("bits")
    }

    fn xtask(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(XTASK);
        cmd.args(args)
            .env("XTASK_WORKSPACE", &self.ws)
            .env_remove("TIMESTAMP")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("BRANCH")
            .env_remove("ZONE_IMAGE_ZPOOL");
        if xtask_launch::tool_for(args) == "xtask" {
            // The image's binaries get their own target dir: no wait on
            // the outer cargo's lock. A command xtask hands to another tool
            // builds that tool where the tools live.
            cmd.env("CARGO_TARGET_DIR", self.ws.join("target"));
        }
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().expect("xtask runs")
    }

    fn build(&self, extra: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut args = vec![
            "image",
            "build",
            "demo",
            "--cargo-profile",
            "dev",
            "--no-zfs",
        ];
        args.extend_from_slice(extra);
        self.xtask(&args, envs)
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn tarball(dir: &Path) -> PathBuf {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .expect("bits dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one tarball in {}: {found:?}",
        dir.display()
    );
    found.remove(0)
}

fn tar_list(path: &Path) -> String {
    let out = Command::new("tar")
        .args(["--full-time", "-tvzf"])
        .arg(path)
        .output()
        .expect("GNU tar runs");
    assert!(out.status.success(), "tar: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(mode string, owner, path)` of each tar entry.
fn entries(listing: &str) -> Vec<(String, String, String)> {
    listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f[f.len() - 1].to_string(),
            )
        })
        .collect()
}

#[test]
fn builds_the_package_tarball() {
    let fx = Fixture::new();
    let out = fx.build(&[], &[("SOURCE_DATE_EPOCH", "1700000000")]);
    assert!(out.status.success(), "build failed: {}", stderr(&out));
    assert!(stdout(&out).contains("ZFS stage skipped: --no-zfs given"));

    let dir = fx.bits().join("demo");
    let stamp = fs::read_to_string(dir.join("latest-build-stamp")).expect("stamp file");
    let stamp = stamp.trim();
    let parts: Vec<&str> = stamp.splitn(3, '-').collect();
    assert_eq!(parts[0], "master", "{stamp}");
    assert!(parts[1].len() == 16 && parts[1].ends_with('Z'), "{stamp}");
    assert!(
        parts[2].starts_with('g') && !stamp.ends_with("-dirty"),
        "{stamp}"
    );
    let tb = tarball(&dir);
    assert_eq!(
        tb.file_name().and_then(|n| n.to_str()),
        Some(format!("demo-pkg-{stamp}.tar.gz").as_str())
    );

    let listing = tar_list(&tb);
    let e = entries(&listing);
    let find = |p: &str| {
        e.iter()
            .find(|(_, _, path)| path == p)
            .unwrap_or_else(|| panic!("{p} not in tarball:\n{listing}"))
            .clone()
    };
    assert_eq!(find("root/opt/smartdc/demo/bin/hello").0, "-rwxr-xr-x");
    assert_eq!(find("root/opt/smartdc/boot/setup.sh").0, "-rwxr-xr-x");
    assert_eq!(
        find("root/opt/custom/smf/manifests/demo.xml").0,
        "-rw-r--r--"
    );
    assert_eq!(
        find("root/opt/custom/smf/manifests/postboot.xml").0,
        "-rw-r--r--"
    );
    assert_eq!(
        find("root/opt/smartdc/demo/sapi_manifests/demo/template").0,
        "-rw-r--r--"
    );
    assert_eq!(
        find("root/opt/smartdc/demo/lib/sub/more.txt").0,
        "-rw-r--r--"
    );
    assert_eq!(find("root/opt/smartdc/demo/lib/sub").0, "drwxr-xr-x");
    assert_eq!(find("site/.do-not-delete-me").0, "-rw-r--r--");
    for (_, owner, path) in &e {
        assert_eq!(owner, "root/root", "{path}");
    }
    // Sorted, and every entry carries the one fixed mtime.
    let paths: Vec<&String> = e.iter().map(|(_, _, p)| p).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    for line in listing.lines() {
        assert!(line.contains("2023-11-14 22:13:20"), "mtime: {line}");
    }
    // The binary is the one cargo built, byte for byte.
    let extract = tempfile::tempdir().expect("tempdir");
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&tb)
        .arg("-C")
        .arg(extract.path())
        .status()
        .expect("tar");
    assert!(st.success());
    let ran = Command::new(extract.path().join("root/opt/smartdc/demo/bin/hello"))
        .output()
        .expect("run extracted binary");
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "hello\n");
    // Host binaries in a smartos image make it a dev image, said loudly.
    assert!(stderr(&out).contains("dev image"), "{}", stderr(&out));
}

#[test]
fn same_commit_and_stamp_give_identical_tarballs_even_under_load() {
    let fx = Fixture::new();
    // Several compression blocks of mixed compressibility.
    let mut blob = Vec::with_capacity(6 << 20);
    let mut x = 0x2545_f491_4f6c_dd1du64;
    while blob.len() < 6 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (blob.len() >> 19) % 2 == 0 {
            blob.extend_from_slice(format!("line {} of text\n", x % 1000).as_bytes());
        } else {
            blob.extend_from_slice(&x.to_le_bytes());
        }
    }
    fs::write(fx.image().join("lib/blob.bin"), &blob).expect("write blob");
    git(&fx.ws, &["add", "-A"]);
    git(&fx.ws, &["commit", "-q", "-m", "blob"]);
    let env = [("TIMESTAMP", "20261126T031500Z")];
    let dirs: Vec<PathBuf> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| fx.ws.join(format!("bits-{n}")))
        .collect();
    for (i, d) in dirs.iter().enumerate() {
        // A CI runner is never idle: under load the compressor's workers
        // finish blocks in varying order.
        let _hogs = (i > 0).then(|| fault_proxy::CpuHogs::start().unwrap());
        let out = fx.build(&["--bits-dir", &d.to_string_lossy(), "--force"], &env);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let read = |d: &Path| {
        let t = tarball(&d.join("demo"));
        let bytes = fs::read(&t).expect("read tarball");
        (t, bytes)
    };
    let (ta, ba) = read(&dirs[0]);
    assert!(ta.to_string_lossy().contains("20261126T031500Z"));
    assert!(ba.len() > 1 << 20, "the tarball spans several blocks");
    for d in &dirs[1..] {
        let (tb, bb) = read(d);
        assert_eq!(ta.file_name(), tb.file_name());
        assert!(ba == bb, "{} differs from {}", tb.display(), ta.display());
    }
    // Published bits are immutable: a rebuilt, unchanged stamp uploads
    // again as a no-op instead of an md5 conflict.
    let store = fx.ws.join("store");
    for d in [&dirs[0], &dirs[3]] {
        let out = fx.xtask(
            &[
                "bits",
                "upload",
                "demo",
                "--allow-dev",
                "--bits-dir",
                &d.to_string_lossy(),
                "--dest",
                &store.to_string_lossy(),
            ],
            &[],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[test]
fn unchanged_inputs_skip_the_rebuild() {
    let fx = Fixture::new();
    let first = fx.build(&[], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let dir = fx.bits().join("demo");
    let before = tarball(&dir);
    let again = fx.build(&[], &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("up to date"), "{}", stdout(&again));
    assert_eq!(tarball(&dir), before);

    // A changed input is rebuilt (the tree is now dirty, a new stamp).
    write(&fx.image().join("lib/data.txt"), "changed\n");
    let third = fx.build(&[], &[]);
    assert!(third.status.success(), "{}", stderr(&third));
    assert!(!stdout(&third).contains("up to date"));
    let stamp = fs::read_to_string(dir.join("latest-build-stamp")).expect("stamp");
    assert!(stamp.trim().ends_with("-dirty"), "{stamp}");
}

/// One broken definition: how to break it, and what the error must name.
struct Case {
    what: &'static str,
    breakit: fn(&Path),
    file: &'static str,
    key: &'static str,
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    fs::write(path, text.replacen(from, to, 1)).expect("write");
}

fn toml(img: &Path) -> PathBuf {
    img.join("image.toml")
}

const CASES: &[Case] = &[
    Case {
        what: "unknown key",
        breakit: |i| {
            edit(
                &toml(i),
                "os = \"smartos\"",
                "os = \"smartos\"\ncolour = \"red\"",
            )
        },
        file: "image.toml",
        key: "colour",
    },
    Case {
        what: "unknown key in a table",
        breakit: |i| {
            edit(
                &toml(i),
                "package = \"hello\"",
                "package = \"hello\"\nstrip = true",
            )
        },
        file: "image.toml",
        key: "cargo[0].strip",
    },
    Case {
        what: "missing file",
        breakit: |i| edit(&toml(i), "src = \"lib\"", "src = \"nope\""),
        file: "image.toml",
        key: "files[4].src",
    },
    Case {
        what: "destination climbing out with ..",
        breakit: |i| edit(&toml(i), "/opt/smartdc/demo/lib\"", "/opt/../../etc\""),
        file: "image.toml",
        key: "files[4].dest",
    },
    Case {
        what: "relative destination",
        breakit: |i| {
            edit(
                &toml(i),
                "dest = \"/opt/smartdc/demo/lib\"",
                "dest = \"opt/lib\"",
            )
        },
        file: "image.toml",
        key: "files[4].dest",
    },
    Case {
        what: "absolute source escaping the repo",
        breakit: |i| edit(&toml(i), "src = \"lib\"", "src = \"/etc\""),
        file: "image.toml",
        key: "files[4].src",
    },
    Case {
        what: "source climbing out with ..",
        breakit: |i| edit(&toml(i), "src = \"lib\"", "src = \"../../hello\""),
        file: "image.toml",
        key: "files[4].src",
    },
    Case {
        what: "symlink pointing outside its source tree",
        breakit: |i| {
            std::os::unix::fs::symlink("/etc/passwd", i.join("lib/passwd")).expect("symlink")
        },
        file: "lib/passwd",
        key: "files[4].src",
    },
    Case {
        what: "duplicate destinations",
        breakit: |i| {
            edit(
                &toml(i),
                "dest = \"/opt/custom/smf/manifests/demo.xml\"",
                "dest = \"/opt/custom/smf/manifests/postboot.xml\"",
            )
        },
        file: "image.toml",
        key: "files[2].dest",
    },
    Case {
        what: "script without its run bit",
        breakit: |i| chmod(&i.join("boot/setup.sh"), 0o644),
        file: "boot/setup.sh",
        key: "files[0]",
    },
    Case {
        what: "script without a shebang",
        breakit: |i| write(&i.join("boot/setup.sh"), "set -o errexit\n"),
        file: "boot/setup.sh",
        key: "files[0]",
    },
    Case {
        what: "script failing bash -n",
        breakit: |i| write(&i.join("boot/setup.sh"), "#!/bin/bash\nif then fi\n"),
        file: "boot/setup.sh",
        key: "files[0]",
    },
    Case {
        what: "SMF manifest invalid against the DTD",
        breakit: |i| {
            edit(
                &i.join("smf/demo.xml"),
                " timeout_seconds=\"60\"/>\n    <exec_method type=\"method\" name=\"refresh\"",
                "/>\n    <exec_method type=\"method\" name=\"refresh\"",
            )
        },
        file: "smf/demo.xml",
        key: "files[2]",
    },
    Case {
        what: "SMF manifest that is not XML",
        breakit: |i| write(&i.join("smf/demo.xml"), "<service_bundle"),
        file: "smf/demo.xml",
        key: "files[2]",
    },
    Case {
        what: "SMF exec path not in the proto",
        breakit: |i| {
            edit(
                &i.join("smf/demo.xml"),
                "/opt/smartdc/demo/bin/hello",
                "/opt/smartdc/demo/bin/missing",
            )
        },
        file: "smf/demo.xml",
        key: "exec_method[start].exec",
    },
    Case {
        what: "SMF exec path not executable",
        breakit: |i| {
            edit(
                &i.join("smf/demo.xml"),
                "/opt/smartdc/demo/bin/hello",
                "/opt/smartdc/demo/lib/data.txt",
            )
        },
        file: "smf/demo.xml",
        key: "exec_method[start].exec",
    },
    Case {
        what: "SAPI manifest without path",
        breakit: |i| {
            write(
                &i.join("sapi_manifests/demo/manifest.json"),
                r#"{"name": "demo"}"#,
            )
        },
        file: "sapi_manifests/demo/manifest.json",
        key: "path",
    },
    Case {
        what: "SAPI template that does not compile",
        breakit: |i| {
            write(
                &i.join("sapi_manifests/demo/template"),
                "{{#auto}}{{ADMIN_IP}}\n",
            )
        },
        file: "sapi_manifests/demo/template",
        key: "template",
    },
    Case {
        what: "SAPI dir without a template",
        breakit: |i| fs::remove_file(i.join("sapi_manifests/demo/template")).expect("rm"),
        file: "image.toml",
        key: "files[3]",
    },
    Case {
        what: "invalid origin UUID",
        breakit: |i| {
            edit(
                &toml(i),
                "41bd4100-eb86-409a-85b0-e649aadf6f62",
                "41bd4100-nope",
            )
        },
        file: "image.toml",
        key: "origin",
    },
    Case {
        what: "unknown cargo package",
        breakit: |i| edit(&toml(i), "package = \"hello\"", "package = \"goodbye\""),
        file: "image.toml",
        key: "cargo[0].package",
    },
    Case {
        what: "bad mode",
        breakit: |i| edit(&toml(i), "mode = \"0644\"", "mode = \"0999\""),
        file: "image.toml",
        key: "files[1].mode",
    },
    Case {
        what: "binary without its run bit",
        breakit: |i| {
            edit(
                &toml(i),
                "dest = \"/opt/smartdc/demo/bin/hello\"",
                "dest = \"/opt/smartdc/demo/bin/hello\"\nmode = \"0644\"",
            )
        },
        file: "image.toml",
        key: "cargo[0].mode",
    },
    Case {
        what: "unknown kind",
        breakit: |i| edit(&toml(i), "kind = \"zone\"", "kind = \"vm\""),
        file: "image.toml",
        key: "kind",
    },
    Case {
        what: "missing description",
        breakit: |i| edit(&toml(i), "description = \"A demo zone image\"\n", ""),
        file: "image.toml",
        key: "description",
    },
    Case {
        what: "name not matching the folder",
        breakit: |i| edit(&toml(i), "name = \"demo\"", "name = \"other\""),
        file: "image.toml",
        key: "name",
    },
    Case {
        what: "zone image without an origin",
        breakit: |i| {
            edit(
                &toml(i),
                "origin = \"41bd4100-eb86-409a-85b0-e649aadf6f62\"\n",
                "",
            )
        },
        file: "image.toml",
        key: "origin",
    },
    Case {
        what: "file below a path another entry makes a file",
        breakit: |i| {
            edit(
                &toml(i),
                "dest = \"/.do-not-delete-me\"",
                "dest = \"/.do-not-delete-me\"\n\n[[files]]\ncontent = \"x\"\ndest = \"/opt/smartdc/demo/bin/hello/x\"",
            )
        },
        file: "image.toml",
        key: "files[6].dest",
    },
    Case {
        what: "TOML syntax error",
        breakit: |i| edit(&toml(i), "kind = \"zone\"", "kind = \"zone"),
        file: "image.toml",
        key: "line ",
    },
];

#[test]
fn broken_definitions_fail_with_one_line_and_write_nothing() {
    assert!(CASES.len() >= 15);
    let fx = Fixture::new();
    // Build the crate once so each case only pays for the pipeline.
    let warm = fx.xtask(&["image", "check", "demo"], &[]);
    assert!(warm.status.success(), "{}", stderr(&warm));
    let pristine = fx.image().with_extension("pristine");
    copy_tree(&fx.image(), &pristine);
    let mut failures = Vec::new();
    for case in CASES {
        fs::remove_dir_all(fx.image()).expect("reset");
        copy_tree(&pristine, &fx.image());
        (case.breakit)(&fx.image());
        for cmd in [
            &["image", "check", "demo"][..],
            &[
                "image",
                "build",
                "demo",
                "--cargo-profile",
                "dev",
                "--no-zfs",
            ][..],
        ] {
            let out = fx.xtask(cmd, &[]);
            let err = stderr(&out);
            let lines: Vec<&str> = err
                .lines()
                .filter(|l| !l.trim().is_empty() && !is_cargo_noise(l))
                .collect();
            let file = fx.image().join(case.file);
            let ok = out.status.code() == Some(2)
                && lines.len() == 1
                && lines[0].contains(&*file.to_string_lossy())
                && lines[0].contains(case.key)
                && !fx.bits().exists();
            if !ok {
                failures.push(format!(
                    "{} ({}): status {:?}, stderr:\n{err}",
                    case.what,
                    cmd[1],
                    out.status.code()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n---\n"));
}

/// cargo's own progress lines while building the demo binary.
fn is_cargo_noise(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("Compiling")
        || t.starts_with("Finished")
        || t.starts_with("Blocking")
        || t.starts_with("Locking")
        || t.starts_with("Adding")
        || line.starts_with("demo: ")
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success());
}

#[test]
fn the_triton_api_image_passes_its_check() {
    let out = Command::new(XTASK)
        .args(["image", "check", "triton-api"])
        .env_remove("XTASK_WORKSPACE")
        .output()
        .expect("xtask runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let list = Command::new(XTASK)
        .args(["image", "list"])
        .env_remove("XTASK_WORKSPACE")
        .output()
        .expect("xtask runs");
    assert!(stdout(&list).contains("triton-api") && stdout(&list).contains("zone"));
}

#[test]
fn the_triton_api_image_builds_its_package_tarball() {
    let bits = tempfile::tempdir().expect("tempdir");
    let out = Command::new(XTASK)
        .args([
            "image",
            "build",
            "triton-api",
            "--no-zfs",
            "--force",
            "--cargo-profile",
            "dev",
            "--bits-dir",
        ])
        .arg(bits.path())
        .env_remove("XTASK_WORKSPACE")
        .env_remove("ZONE_IMAGE_ZPOOL")
        .output()
        .expect("xtask runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = tar_list(&tarball(&bits.path().join("triton-api")));
    let e = entries(&listing);
    let mode = |p: &str| {
        e.iter()
            .find(|(_, _, path)| path == p)
            .map(|(m, _, _)| m.clone())
            .unwrap_or_else(|| panic!("{p} not in tarball:\n{listing}"))
    };
    assert_eq!(
        mode("root/opt/smartdc/triton-api/triton-api-server"),
        "-rwxr-xr-x"
    );
    assert_eq!(mode("root/opt/smartdc/boot/setup.sh"), "-rwxr-xr-x");
    assert_eq!(mode("root/opt/smartdc/boot/configure.sh"), "-rwxr-xr-x");
    assert_eq!(
        mode("root/opt/custom/smf/manifests/postboot.xml"),
        "-rw-r--r--"
    );
    assert_eq!(
        mode("root/opt/custom/smf/manifests/triton-api.xml"),
        "-rw-r--r--"
    );
    assert_eq!(
        mode("root/opt/smartdc/triton-api/sapi_manifests/triton-api/manifest.json"),
        "-rw-r--r--"
    );
    assert_eq!(
        mode("root/opt/smartdc/triton-api/sapi_manifests/triton-api/template"),
        "-rw-r--r--"
    );
    assert_eq!(mode("site/.do-not-delete-me"), "-rw-r--r--");
}

#[test]
fn sigint_during_the_tarball_leaves_nothing_behind() {
    use std::io::{BufRead, BufReader};
    let fx = Fixture::new();
    let warm = fx.xtask(&["image", "check", "demo"], &[]);
    assert!(warm.status.success(), "{}", stderr(&warm));
    let mut child = Command::new(XTASK)
        .args([
            "image",
            "build",
            "demo",
            "--cargo-profile",
            "dev",
            "--no-zfs",
        ])
        .env("XTASK_WORKSPACE", &fx.ws)
        .env("CARGO_TARGET_DIR", fx.ws.join("target"))
        .env("ZONE_IMAGE_TEST_PAUSE_AT", "tarball")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("xtask starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("xtask ended before pausing: {seen:?}"))
            .expect("read stderr");
        if line.contains("paused at tarball") {
            break;
        }
        seen.push(line);
    }
    // Mid-stream: the temp tarball exists now.
    let dir = fx.bits().join("demo");
    assert!(fs::read_dir(&dir).expect("bits dir").count() > 0);
    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130));
    let left: Vec<_> = fs::read_dir(&dir)
        .expect("bits dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let scratch: Vec<_> = fs::read_dir(fx.ws.join("target/zone-image"))
        .expect("scratch base")
        .flatten()
        .map(|e| e.path())
        .filter(|p| !p.ends_with("cache"))
        .collect();
    assert!(scratch.is_empty(), "scratch left behind: {scratch:?}");
}

/// `image build --help` names the variables it reads and calls the
/// origin's channel by its own name.
#[test]
fn build_help_names_its_variables() {
    let o = Command::new(XTASK)
        .args(["image", "build", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{help}");
    assert!(help.contains("ZONE_IMAGE_ZPOOL"), "{help}");
    assert!(help.contains("[env: BRANCH="), "{help}");
    assert!(
        help.contains("--origin-channel") && help.contains("--source"),
        "{help}"
    );
    assert!(!help.contains("--channel "), "{help}");
}
