//! Upload and fetch against a local directory store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bits_store::{Ctx, Dest, Error, FetchOptions, S3Env, UploadOptions, fetch, upload};
use common::{STAMP, make_bits, md5_hex};

fn opts(bits: &Path, dest: &Path, names: &[&str]) -> UploadOptions {
    UploadOptions {
        bits_dir: bits.to_path_buf(),
        names: names.iter().map(|s| s.to_string()).collect(),
        dest: Dest::Local(dest.to_path_buf()),
        prefix: String::new(),
        branch: Some("master".into()),
        allow_dirty: false,
        allow_dev: false,
        s3_env: S3Env::default(),
    }
}

fn ctx() -> std::sync::Arc<Ctx> {
    Ctx::new(
        std::num::NonZeroUsize::new(4).unwrap(),
        std::sync::Arc::new(progress::Silent),
    )
    .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Every entry under `root` (relative path -> what it is), symlinks unfollowed.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            let what = if ft.is_symlink() {
                format!("-> {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                md5_hex(&fs::read(&p).unwrap())
            };
            out.insert(rel, what);
        }
    }
    out
}

fn stat_all(root: &Path) -> BTreeMap<String, (u64, i64, i64)> {
    tree(root)
        .keys()
        .map(|k| {
            let m = fs::symlink_metadata(root.join(k)).unwrap();
            (k.clone(), (m.ino(), m.mtime(), m.mtime_nsec()))
        })
        .collect()
}

#[test]
fn exact_layout_pointer_md5sums_and_artifacts() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    let files = make_bits(&bits, "triton-api", STAMP, 3_000_000);
    let report = rt()
        .block_on(upload(&opts(&bits, &dest, &["triton-api"]), ctx()))
        .unwrap();
    assert_eq!((report.stored, report.skipped), (4, 0));

    let mut want = BTreeMap::new();
    let stamp_dir = format!("triton-api/{STAMP}");
    want.insert("triton-api".to_string(), "dir".to_string());
    want.insert(stamp_dir.clone(), "dir".into());
    want.insert(format!("{stamp_dir}/triton-api"), "dir".into());
    want.insert("triton-api/master-latest".into(), format!("-> {STAMP}"));
    let mut sums = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let md5 = md5_hex(&fs::read(f).unwrap());
        want.insert(format!("{stamp_dir}/triton-api/{name}"), md5.clone());
        sums.push(format!("{md5}  triton-api/{name}\n"));
    }
    sums.sort_by(|a, b| a[34..].cmp(&b[34..]));
    let sums = sums.concat();
    want.insert(format!("{stamp_dir}/md5sums.txt"), md5_hex(sums.as_bytes()));
    assert_eq!(tree(&dest), want);
    assert_eq!(
        fs::read_to_string(dest.join(&stamp_dir).join("md5sums.txt")).unwrap(),
        sums
    );

    // artifacts.txt: every object, then md5sums.txt, then the pointer.
    let abs = std::path::absolute(&dest).unwrap();
    let mut names: Vec<_> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut lines: Vec<String> = names
        .iter()
        .map(|n| format!("{}/{stamp_dir}/triton-api/{n}", abs.display()))
        .collect();
    lines.push(format!("{}/{stamp_dir}/md5sums.txt", abs.display()));
    lines.push(format!("{}/triton-api/master-latest", abs.display()));
    assert_eq!(
        fs::read_to_string(bits.join("artifacts.txt")).unwrap(),
        lines.iter().map(|l| format!("{l}\n")).collect::<String>()
    );
}

#[test]
fn release_branch_and_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    let stamp = "release-20261126-20261126T031500Z-gabc1234";
    make_bits(&bits, "imgapi", stamp, 1000);
    let mut o = opts(&bits, &dest, &["imgapi"]);
    o.branch = None; // not in a git repo: the stamp's branch
    o.prefix = "/public/builds/".into();
    rt().block_on(upload(&o, ctx())).unwrap();
    let base = dest.join("public/builds/imgapi");
    for p in ["release-20261126-latest", "latest-release"] {
        assert_eq!(
            fs::read_link(base.join(p)).unwrap(),
            Path::new(stamp),
            "{p}"
        );
    }
    assert!(
        base.join(stamp)
            .join("imgapi")
            .join("latest-build-stamp")
            .is_file()
    );
}

#[test]
fn rerun_is_a_no_op() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    make_bits(&bits, "triton-api", STAMP, 100_000);
    let o = opts(&bits, &dest, &["triton-api"]);
    rt().block_on(upload(&o, ctx())).unwrap();
    let before = stat_all(&dest);
    let report = rt().block_on(upload(&o, ctx())).unwrap();
    assert_eq!((report.stored, report.skipped), (0, 4));
    assert_eq!(stat_all(&dest), before);
}

#[test]
fn changed_file_under_existing_stamp_is_refused_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    let files = make_bits(&bits, "triton-api", STAMP, 100_000);
    let o = opts(&bits, &dest, &["triton-api"]);
    rt().block_on(upload(&o, ctx())).unwrap();
    let before = tree(&dest);
    // Same stamp, different image bytes, plus a new file that must not go.
    fs::write(&files[1], b"rebuilt with other bytes").unwrap();
    fs::write(bits.join("triton-api").join("extra.txt"), b"new").unwrap();
    let err = rt().block_on(upload(&o, ctx())).unwrap_err();
    assert!(matches!(err, Error::Immutable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(".zfs.gz") && msg.contains("immutable"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    assert_eq!(tree(&dest), before);
}

#[test]
fn dirty_stamp_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    let stamp = format!("{STAMP}-dirty");
    make_bits(&bits, "triton-api", &stamp, 1000);
    let mut o = opts(&bits, &dest, &["triton-api"]);
    let err = rt().block_on(upload(&o, ctx())).unwrap_err();
    assert!(
        matches!(err, Error::Dirty { .. }) && err.is_input(),
        "{err}"
    );
    assert!(err.to_string().contains("latest-build-stamp"));
    assert!(!dest.exists());
    o.allow_dirty = true;
    rt().block_on(upload(&o, ctx())).unwrap();
    assert_eq!(
        fs::read_link(dest.join("triton-api/master-latest")).unwrap(),
        Path::new(&stamp)
    );
}

#[test]
fn dev_build_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    let stamp = format!("{STAMP}-dev");
    make_bits(&bits, "triton-api", &stamp, 1000);
    let mut o = opts(&bits, &dest, &["triton-api"]);
    o.branch = None;
    let err = rt().block_on(upload(&o, ctx())).unwrap_err();
    assert!(
        matches!(err, Error::DevBuild { .. }) && err.is_input(),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("--allow-dev") && msg.contains(&stamp), "{msg}");
    assert!(!dest.exists(), "nothing stored");
    o.allow_dev = true;
    rt().block_on(upload(&o, ctx())).unwrap();
    // The stored stamp dir says dev too.
    assert_eq!(
        fs::read_link(dest.join("triton-api/master-latest")).unwrap(),
        Path::new(&stamp)
    );
}

#[test]
fn an_earlier_builds_artifact_is_refused_and_nothing_is_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    make_bits(&bits, "triton-api", STAMP, 10);
    let stale = bits.join("triton-api/triton-api-pkg-master-20200101T000000Z-g0000000.tar.gz");
    fs::write(&stale, b"old").unwrap();
    let err = rt()
        .block_on(upload(&opts(&bits, &dest, &["triton-api"]), ctx()))
        .unwrap_err();
    assert!(err.is_input(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("master-20200101T000000Z") && msg.contains(STAMP),
        "{msg}"
    );
    assert!(!dest.exists());
}

#[test]
fn bad_stamp_and_missing_bits_are_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    make_bits(&bits, "triton-api", STAMP, 10);
    fs::write(bits.join("triton-api/latest-build-stamp"), "not a stamp\n").unwrap();
    let err = rt()
        .block_on(upload(&opts(&bits, &dest, &["triton-api"]), ctx()))
        .unwrap_err();
    assert!(err.is_input(), "{err}");
    assert!(err.to_string().contains("latest-build-stamp"), "{err}");
    let err = rt()
        .block_on(upload(&opts(&bits, &dest, &["nope"]), ctx()))
        .unwrap_err();
    assert!(err.is_input() && err.to_string().contains("nope"), "{err}");
    assert!(!dest.exists());
}

#[test]
fn fetch_round_trip_then_detects_corruption_and_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    let files = make_bits(&bits, "triton-api", STAMP, 2_500_000);
    rt().block_on(upload(&opts(&bits, &dest, &["triton-api"]), ctx()))
        .unwrap();

    let fo = |out: &Path| FetchOptions {
        dest: Dest::Local(dest.clone()),
        prefix: String::new(),
        name: "triton-api".into(),
        branch: Some("master".into()),
        stamp: None,
        out: out.to_path_buf(),
        s3_env: S3Env::default(),
    };
    let out = tmp.path().join("out");
    let rep = rt().block_on(fetch(&fo(&out), ctx())).unwrap();
    assert_eq!(rep.stamp, STAMP);
    for f in &files {
        let got = out.join("triton-api").join(f.file_name().unwrap());
        assert_eq!(fs::read(&got).unwrap(), fs::read(f).unwrap());
    }
    assert_eq!(rep.files.len(), files.len());

    // Flip a byte of the stored image: same size, different md5.
    let stored = dest
        .join("triton-api")
        .join(STAMP)
        .join("triton-api")
        .join(files[1].file_name().unwrap());
    let mut data = fs::read(&stored).unwrap();
    data[1000] ^= 0xff;
    fs::write(&stored, &data).unwrap();
    let out2 = tmp.path().join("out2");
    let err = rt().block_on(fetch(&fo(&out2), ctx())).unwrap_err();
    assert!(matches!(err, Error::Mismatch { .. }), "{err}");
    let bad = out2.join("triton-api").join(files[1].file_name().unwrap());
    assert!(!bad.exists(), "a mismatching file must not be left behind");
    let leftovers: Vec<_> = fs::read_dir(out2.join("triton-api"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    fs::remove_file(&stored).unwrap();
    let err = rt()
        .block_on(fetch(&fo(&tmp.path().join("out3")), ctx()))
        .unwrap_err();
    assert!(matches!(err, Error::MissingObject { .. }), "{err}");

    // A stamp that was never uploaded, and a branch with no pointer.
    let mut o = fo(&tmp.path().join("out4"));
    o.stamp = Some("master-20200101T000000Z-gdeadbee".into());
    let err = rt().block_on(fetch(&o, ctx())).unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }) && err.is_input(),
        "{err}"
    );
    let mut o = fo(&tmp.path().join("out5"));
    o.branch = Some("nosuch".into());
    let err = rt().block_on(fetch(&o, ctx())).unwrap_err();
    assert!(err.to_string().contains("nosuch-latest"), "{err}");
}

#[test]
fn all_components_in_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    make_bits(&bits, "imgapi", STAMP, 1000);
    make_bits(&bits, "triton-api", STAMP, 1000);
    // A directory without a stamp is not a component.
    fs::create_dir_all(bits.join("scratch")).unwrap();
    let names = bits_store::list_components(&bits).unwrap();
    assert_eq!(names, vec!["imgapi", "triton-api"]);
    let refs: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    rt().block_on(upload(&opts(&bits, &dest, &refs), ctx()))
        .unwrap();
    for n in &names {
        assert_eq!(
            fs::read_link(dest.join(n).join("master-latest")).unwrap(),
            Path::new(STAMP)
        );
    }
    let arts = fs::read_to_string(bits.join("artifacts.txt")).unwrap();
    assert_eq!(arts.lines().count(), 2 * 6);
    let err = bits_store::list_components(&tmp.path().join("empty")).unwrap_err();
    assert!(err.is_input(), "{err}");
}

/// A stored md5sums.txt that does not parse is a damaged store: the
/// upload stops with an error naming that object, and changes nothing.
#[test]
fn damaged_stored_md5sums_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let bits = tmp.path().join("bits");
    let dest = tmp.path().join("store");
    make_bits(&bits, "triton-api", STAMP, 100_000);
    rt().block_on(upload(&opts(&bits, &dest, &["triton-api"]), ctx()))
        .unwrap();
    let sums = dest.join(format!("triton-api/{STAMP}/md5sums.txt"));
    fs::write(&sums, "not an md5 line\n").unwrap();
    let before = tree(&dest);
    let err = rt()
        .block_on(upload(&opts(&bits, &dest, &["triton-api"]), ctx()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("md5sums.txt") && msg.contains("line 1: not an md5"),
        "{msg}"
    );
    assert_eq!(tree(&dest), before);
}
