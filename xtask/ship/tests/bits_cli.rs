//! `cargo xtask bits` as users and CI run it: exit codes, one-line errors,
//! and uploads SIGKILLed at several points then rerun.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

#[path = "../../../tools/bits-store/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use bits_store::testing::{Moto, free_port};
use common::{STAMP, make_bits, md5_hex};

const OLD_STAMP: &str = "master-20261125T000000Z-g0000001";

fn xtask() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask-ship"));
    c.env_remove("BRANCH").env_remove("BITS_STORE_PAUSE_AT");
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("running xtask")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// stderr must be exactly one `error: ...` line; returns it.
fn one_error_line(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "want one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    lines[0].to_string()
}

/// `bits fetch triton-api --dest DEST --out OUT`; callers add the rest.
fn fetch_cmd(dest: &str, out: &Path) -> Command {
    let mut c = xtask();
    c.args(["bits", "fetch", "triton-api", "--dest", dest])
        .arg("--out")
        .arg(out);
    c
}

fn upload_cmd(bits: &Path, dest: &str) -> Command {
    let mut c = xtask();
    c.args([
        "bits",
        "upload",
        "triton-api",
        "--branch",
        "master",
        "--dest",
        dest,
    ])
    .arg("--bits-dir")
    .arg(bits);
    c
}

/// Every file and symlink under `root`: relative path -> md5 or link target.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.file_type().is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, md5_hex(&std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

#[test]
fn local_upload_fetch_and_bad_input_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let store = tmp.path().join("store");
    let files = make_bits(&bits, "triton-api", STAMP, 300_000);
    let dest = store.to_str().unwrap();

    let o = run(&mut upload_cmd(&bits, dest));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("uploaded 4 file(s), 0 already there"), "{out}");
    assert_eq!(
        std::fs::read_link(store.join("triton-api/master-latest")).unwrap(),
        Path::new(STAMP)
    );

    // file:// works too, and a rerun stores nothing.
    let o = run(&mut upload_cmd(&bits, &format!("file://{dest}")));
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("uploaded 0 file(s), 4 already there"));

    let fetched = tmp.path().join("fetched");
    let o = run(fetch_cmd(dest, &fetched).args(["--branch", "master"]));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    for f in &files {
        let got = std::fs::read(fetched.join("triton-api").join(f.file_name().unwrap())).unwrap();
        assert_eq!(got, std::fs::read(f).unwrap());
    }

    // Bad input: exit 2, one line naming what is wrong.
    let o = run(&mut upload_cmd(&bits, "ftp://host/x"));
    assert_eq!(code(&o), 2);
    assert!(one_error_line(&o).contains("--dest \"ftp://host/x\""));

    let o = run(xtask()
        .args(["bits", "upload", "nosuch", "--dest", dest])
        .arg("--bits-dir")
        .arg(&bits));
    assert_eq!(code(&o), 2);
    assert!(one_error_line(&o).contains("nosuch"));

    let dirty = tmp.path().join("dirty");
    make_bits(&dirty, "triton-api", &format!("{STAMP}-dirty"), 10);
    let o = run(&mut upload_cmd(&dirty, dest));
    assert_eq!(code(&o), 2);
    let line = one_error_line(&o);
    assert!(
        line.contains("dirty") && line.contains("latest-build-stamp"),
        "{line}"
    );

    // A changed file under a published stamp: refused, not bad input.
    std::fs::write(&files[1], b"different bytes").unwrap();
    let o = run(&mut upload_cmd(&bits, dest));
    assert_eq!(code(&o), 1);
    assert!(one_error_line(&o).contains("immutable"));

    let o = run(fetch_cmd(dest, &fetched).args(["--stamp", "nope"]));
    assert_eq!(code(&o), 2);
    assert!(one_error_line(&o).contains("--stamp"));
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

/// One branch rule for build, upload and fetch: a `feature/x` checkout
/// stamps `feature-...`, upload moves `feature-latest` (from the stamp),
/// and fetch there follows it; a detached HEAD needs BRANCH, and outside a
/// repository git's failure is the error, not a guess.
#[test]
fn branch_pointer_and_fetch_agree_and_git_failures_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "master"]);
    git(&repo, &["commit", "-q", "--allow-empty", "-m", "one"]);
    git(&repo, &["checkout", "-q", "-b", "feature/x"]);
    let stamp = "feature-20261126T031500Z-gabc1234";
    let bits = repo.join("bits");
    make_bits(&bits, "triton-api", stamp, 1000);
    let store = tmp.path().join("store");
    let dest = store.to_str().unwrap();

    let o = run(xtask()
        .current_dir(&repo)
        .args(["bits", "upload", "triton-api", "--dest", dest])
        .arg("--bits-dir")
        .arg(&bits));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_link(store.join("triton-api/feature-latest")).unwrap(),
        Path::new(stamp)
    );
    let fetch = |dir: &Path, out: &str| {
        let mut c = fetch_cmd(dest, &tmp.path().join(out));
        c.current_dir(dir);
        c
    };
    let o = run(&mut fetch(&repo, "a"));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains(stamp));

    git(&repo, &["checkout", "-q", "--detach"]);
    let o = run(&mut fetch(&repo, "b"));
    assert_eq!(code(&o), 2);
    let line = one_error_line(&o);
    assert!(
        line.contains("detached") && line.contains("BRANCH"),
        "{line}"
    );
    let o = run(fetch(&repo, "c").env("BRANCH", "feature"));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));

    let o = run(&mut fetch(tmp.path(), "d"));
    assert_eq!(code(&o), 2);
    let line = one_error_line(&o);
    assert!(
        line.contains("--branch") && line.contains("not a git repository"),
        "{line}"
    );
}

#[test]
fn dev_builds_zero_jobs_and_env_in_help() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dev = format!("{STAMP}-dev");
    make_bits(&bits, "triton-api", &dev, 1000);
    let store = tmp.path().join("store");
    let dest = store.to_str().unwrap();
    let o = run(&mut upload_cmd(&bits, dest));
    assert_eq!(code(&o), 2);
    let line = one_error_line(&o);
    assert!(
        line.contains("dev build") && line.contains("--allow-dev"),
        "{line}"
    );
    assert!(!store.exists());
    let o = run(upload_cmd(&bits, dest).arg("--allow-dev"));
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert!(store.join("triton-api").join(&dev).is_dir());

    // An I/O failure: one line, the OS error in it once.
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, "x").unwrap();
    let o = run(fetch_cmd(dest, &blocker).args(["--branch", "master"]));
    assert_eq!(code(&o), 1);
    let line = one_error_line(&o);
    assert!(line.contains("a-file/triton-api"), "{line}");
    assert_eq!(line.matches("(os error").count(), 1, "{line}");

    let o = run(upload_cmd(&bits, dest).args(["--allow-dev", "--jobs", "0"]));
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--jobs"));

    for (cmd, want) in [("upload", "[env: BRANCH="), ("fetch", "[env: BRANCH=")] {
        let o = run(xtask().args(["bits", cmd, "--help"]));
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(help.contains(want), "bits {cmd} --help: {help}");
        assert!(!help.contains("PAUSE"), "{help}");
    }
    let o = run(xtask().args(["image", "publish", "--help"]));
    let help = String::from_utf8_lossy(&o.stdout);
    for var in [
        "UPDATES_IMGADM_URL",
        "UPDATES_IMGADM_CHANNEL",
        "UPDATES_IMGADM_USER",
        "UPDATES_IMGADM_IDENTITY",
    ] {
        assert!(help.contains(&format!("[env: {var}")), "{var}: {help}");
    }
}

#[test]
fn s3_configuration_errors_are_one_line() {
    let moto = Moto::start().unwrap();
    moto.create_bucket("bits").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    make_bits(&bits, "triton-api", STAMP, 1000);

    // No credentials at all.
    let o = run(upload_cmd(&bits, "s3://bits/x").env("AWS_ENDPOINT_URL", moto.endpoint()));
    assert_eq!(code(&o), 2);
    assert!(one_error_line(&o).contains("AWS_ACCESS_KEY_ID"));

    let o = run(upload_cmd(&bits, "s3://missing-bucket/x").envs(moto.env()));
    assert_eq!(code(&o), 2);
    assert!(one_error_line(&o).contains("\"missing-bucket\" does not exist"));

    let port = free_port().unwrap();
    let o = run(upload_cmd(&bits, "s3://bits/x")
        .envs(moto.env())
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")));
    assert_eq!(code(&o), 1);
    assert!(one_error_line(&o).contains(&format!("127.0.0.1:{port}")));

    let o = run(upload_cmd(&bits, "s3://bits/x")
        .envs(moto.env())
        .env("AWS_ENDPOINT_URL", "127.0.0.1:1"));
    assert_eq!(code(&o), 2);
    assert!(one_error_line(&o).contains("AWS_ENDPOINT_URL"));
}

const PAUSES: &[&str] = &[
    "after-files:1",
    "mid-file:5",
    "after-files:3",
    "before-md5sums",
    "before-pointer",
];

/// Start an upload that stops at `pause`, wait until it says so, SIGKILL it.
fn upload_and_kill(mut cmd: Command, pause: &str) {
    let mut child = cmd
        .env("BITS_STORE_PAUSE_AT", pause)
        .args(["--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("paused at") {
            break;
        }
    }
    assert!(seen.contains("paused at"), "{pause}: never paused: {seen}");
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
}

#[test]
fn local_killed_midway_then_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let old = tmp.path().join("old");
    make_bits(&old, "triton-api", OLD_STAMP, 1000);
    make_bits(&bits, "triton-api", STAMP, 12 << 20);

    let reference = tmp.path().join("reference");
    let d = reference.to_str().unwrap();
    assert!(run(&mut upload_cmd(&old, d)).status.success());
    assert!(run(&mut upload_cmd(&bits, d)).status.success());
    let want = tree(&reference);

    for pause in PAUSES {
        let store = tmp
            .path()
            .join(format!("store-{}", pause.replace(':', "-")));
        let d = store.to_str().unwrap();
        assert!(run(&mut upload_cmd(&old, d)).status.success());
        upload_and_kill(upload_cmd(&bits, d), pause);
        // The pointer still names the old, complete stamp.
        assert_eq!(
            std::fs::read_link(store.join("triton-api/master-latest")).unwrap(),
            Path::new(OLD_STAMP),
            "{pause}"
        );
        let o = run(&mut upload_cmd(&bits, d));
        assert!(
            o.status.success(),
            "{pause}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(tree(&store), want, "{pause}");
    }
}

/// Every object under `prefix/`: key below it -> md5 of the body.
fn s3_tree(moto: &Moto, prefix: &str) -> BTreeMap<String, String> {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    use object_store::ObjectStoreExt;
    let s3 = moto.client("bits").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let p = object_store::path::Path::from(prefix);
        let metas: Vec<_> = s3.list(Some(&p)).try_collect().await.unwrap();
        let mut out = BTreeMap::new();
        for m in metas {
            let body = s3.get(&m.location).await.unwrap().bytes().await.unwrap();
            let key = m.location.to_string()[prefix.len() + 1..].to_string();
            // Pointers hold the absolute stamp dir; make them comparable.
            let text = String::from_utf8_lossy(&body).replace(prefix, "PREFIX");
            let v = if key.ends_with("-latest") {
                text
            } else {
                md5_hex(&body)
            };
            out.insert(key, v);
        }
        out
    })
}

#[test]
fn s3_killed_midway_then_rerun_completes() {
    let moto = Moto::start().unwrap();
    moto.create_bucket("bits").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let old = tmp.path().join("old");
    make_bits(&old, "triton-api", OLD_STAMP, 1000);
    // Three parts: mid-file:5 stops after the image's second part is sent.
    make_bits(
        &bits,
        "triton-api",
        STAMP,
        2 * bits_store::s3::PART_SIZE + 4096,
    );
    let up = |b: &Path, prefix: &str| {
        let mut c = upload_cmd(b, &format!("s3://bits/{prefix}"));
        c.envs(moto.env());
        c
    };
    assert!(run(&mut up(&old, "reference")).status.success());
    let o = run(&mut up(&bits, "reference"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = s3_tree(&moto, "reference");
    assert_eq!(
        want["triton-api/master-latest"],
        format!("/bits/PREFIX/triton-api/{STAMP}\n")
    );

    for pause in PAUSES {
        let prefix = format!("run-{}", pause.replace(':', "-"));
        assert!(run(&mut up(&old, &prefix)).status.success());
        upload_and_kill(up(&bits, &prefix), pause);
        let mid = s3_tree(&moto, &prefix);
        assert_eq!(
            mid["triton-api/master-latest"],
            format!("/bits/PREFIX/triton-api/{OLD_STAMP}\n"),
            "{pause}"
        );
        let o = run(&mut up(&bits, &prefix));
        assert!(
            o.status.success(),
            "{pause}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(s3_tree(&moto, &prefix), want, "{pause}");
    }

    // And what CI would do next: fetch the latest back, verified.
    let out = tmp.path().join("out");
    let o = run(fetch_cmd("s3://bits/reference", &out)
        .args(["--branch", "master"])
        .envs(moto.env()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("triton-api/latest-build-stamp")).unwrap(),
        format!("{STAMP}\n")
    );
}
