//! The real self-extracting installer, built by the pipeline's tool stage
//! from this build's tritonadm, run with `sh` into scratch install roots.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod bundle;
// The pipeline's ZFS test fixture: file-backed zfs-fuse pools.
#[path = "../../zone-image/tests/common/zfs_fixture.rs"]
mod zfs_fixture;

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use bundle::*;

const A: &str = "main-20261126T090000Z-gaaaaaaa";
const B: &str = "main-20261126T100000Z-gbbbbbbb";

fn two_bundles(dir: &Path) -> (zone_image::tool::ToolOutputs, zone_image::tool::ToolOutputs) {
    let now = chrono::Utc::now();
    (
        build(dir, A, now - chrono::Duration::hours(1)),
        build(dir, B, now),
    )
}

#[test]
fn fresh_install_upgrade_and_rollback() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_bundles(tmp.path());
    let root = tmp.path().join("root");

    // A dry run changes nothing.
    let o = install(&root, &a.installer, &["--dry-run"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!root.exists(), "a dry run created {}", root.display());

    let o = install(&root, &a.installer, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(&root), format!("tritonadm {A}"));
    assert_eq!(
        fs::read_link(link(&root)).unwrap(),
        Path::new("../../triton/tritonadm/bin/tritonadm")
    );
    let v = version_file(&root);
    assert_eq!(v["version"], A);
    assert_eq!(v["uuid"], a.uuid.to_string());
    assert_eq!(v["source"], a.installer.display().to_string());
    assert!(
        v.contains_key("build_at") && v.contains_key("installed_at"),
        "{v:?}"
    );
    let prefix = root.join("opt/triton/tritonadm");
    for f in [
        "share/completions/tritonadm.bash",
        "share/completions/tritonadm.zsh",
        "share/completions/tritonadm.fish",
        "share/man/man1/tritonadm.1",
        "lib/installer.sh",
    ] {
        assert!(prefix.join(f).is_file(), "{f} not installed");
    }
    let man = fs::read_to_string(prefix.join("share/man/man1/tritonadm.1")).unwrap();
    assert!(man.contains(A), "the man page names another version");
    let bash = fs::read_to_string(prefix.join("share/completions/tritonadm.bash")).unwrap();
    assert!(
        bash.contains("self-update"),
        "bash completions lack self-update"
    );
    let logs: Vec<_> = fs::read_dir(root.join("var/log/tritonadm/self-updates"))
        .unwrap()
        .collect();
    assert_eq!(logs.len(), 1);

    // Upgrade: A is archived, B is live.
    let o = install(&root, &b.installer, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(&root), format!("tritonadm {B}"));
    let archives: Vec<_> = fs::read_dir(root.join("var/tritonadm/self-updates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(archives.len(), 1, "{archives:?}");
    let old = fs::read_to_string(archives[0].join("tritonadm.old/etc/version")).unwrap();
    assert!(old.contains(&format!("version={A}")), "{old}");

    // Rollback with the installed tritonadm: back to A, B archived.
    let o = linked(&root, &["self-update", "--rollback", "-y"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(&root), format!("tritonadm {A}"));
    let v = version_file(&root);
    assert_eq!(v["uuid"], a.uuid.to_string());
    assert!(v["source"].starts_with("rollback from "), "{v:?}");
    // And rollback again returns to B: the newest archive that differs.
    let o = linked(&root, &["self-update", "--rollback", "-y"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(&root), format!("tritonadm {B}"));
    assert!(state(&root).iter().all(|l| !l.starts_with("leftover")));
}

#[test]
fn preflight_names_the_check_that_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let a = build(tmp.path(), A, chrono::Utc::now());

    // No install root: the real paths, so the headnode check applies (and
    // this Linux machine is no SmartOS headnode). Dry runs: nothing to undo.
    let o = Command::new("sh")
        .arg(&a.installer)
        .arg("--dry-run")
        .env_remove(ROOT_ENV)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("headnode check: no zonename command"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let o = Command::new("sh")
        .arg(&a.installer)
        .args(["--dry-run", "--force"])
        .env_remove(ROOT_ENV)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("would install tritonadm"),
        "{}",
        text(&o)
    );

    // A live install holding the lock stops a second one.
    let root = tmp.path().join("root");
    let lock = root.join("var/tritonadm/self-updates/.install.lock");
    fs::create_dir_all(&lock).unwrap();
    fs::write(lock.join("pid"), std::process::id().to_string()).unwrap();
    let o = install(&root, &a.installer, &[]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another install"),
        "{}",
        text(&o)
    );
    assert!(!root.join("opt").exists());
    // Once that process is gone, its lock is taken over.
    let gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    let _ = gone.wait_with_output();
    fs::write(lock.join("pid"), pid.to_string()).unwrap();
    let o = install(&root, &a.installer, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!lock.exists());
}

#[test]
fn archives_keep_the_newest_five() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_bundles(tmp.path());
    let root = tmp.path().join("root");
    for i in 0..8 {
        let sh = if i % 2 == 0 {
            &a.installer
        } else {
            &b.installer
        };
        let o = install(&root, sh, &[]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let n = fs::read_dir(root.join("var/tritonadm/self-updates"))
        .unwrap()
        .filter(|e| {
            !e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(n, 5);
    assert_eq!(linked_version(&root), format!("tritonadm {B}"));
}

#[test]
fn a_flipped_payload_byte_is_refused_before_anything_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_bundles(tmp.path());
    let root = tmp.path().join("root");
    let o = install(&root, &a.installer, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let before = state(&root);
    let logs_before = fs::read_dir(root.join("var/log/tritonadm/self-updates"))
        .unwrap()
        .count();

    let bad = tmp.path().join("bad.sh");
    let mut bytes = fs::read(&b.installer).unwrap();
    let at = bytes.len() - 1000;
    bytes[at] ^= 0x40;
    fs::write(&bad, &bytes).unwrap();
    let o = install(&root, &bad, &[]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("payload check") && err.contains("sha256"),
        "{err}"
    );
    assert_eq!(state(&root), before);
    assert_eq!(
        fs::read_dir(root.join("var/log/tritonadm/self-updates"))
            .unwrap()
            .count(),
        logs_before
    );
    assert_eq!(linked_version(&root), format!("tritonadm {A}"));

    // A truncated download too.
    bytes.truncate(bytes.len() - 10);
    fs::write(&bad, &bytes).unwrap();
    let o = install(&root, &bad, &[]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("payload check"));
    assert_eq!(state(&root), before);
}

/// Each step of the swap where the installer can be killed; it waits at
/// the step (test hook) and is SIGKILLed there.
const STEPS: [&str; 6] = [
    "unpacked",
    "verified",
    "archived",
    "moved-live",
    "moved-new",
    "linked",
];

#[test]
fn sigkill_at_each_swap_step_then_rerun() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_bundles(tmp.path());

    // The reference: A then B, uninterrupted.
    let reference = tmp.path().join("reference");
    for sh in [&a.installer, &b.installer] {
        let o = install(&reference, sh, &[]);
        assert!(o.status.success(), "{}", text(&o));
    }
    let want = state(&reference);

    for step in STEPS {
        let root = tmp.path().join(format!("root-{step}"));
        let o = install(&root, &a.installer, &[]);
        assert!(o.status.success(), "{}", text(&o));

        let mut child = Command::new("sh")
            .arg(&b.installer)
            .env(ROOT_ENV, &root)
            .env(PAUSE_ENV, step)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the installer ended before {step}: {seen}"
            );
            seen.push_str(&line);
            if line.trim() == format!("paused at {step}") {
                break;
            }
        }
        // The whole group: sh and the sleep it waits in.
        let st = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status()
            .unwrap();
        assert!(st.success());
        child.wait().unwrap();

        // Any later run repairs first; this one also finishes the update.
        let o = install(&root, &b.installer, &[]);
        assert!(o.status.success(), "after a kill at {step}: {}", text(&o));
        assert_eq!(linked_version(&root), format!("tritonadm {B}"), "{step}");
        let got = state(&root);
        assert_eq!(got, want, "end state after a kill at {step}");
    }
}

#[test]
fn a_rollback_repairs_a_killed_install_first() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = two_bundles(tmp.path());
    let root = tmp.path().join("root");
    for sh in [&a.installer, &b.installer] {
        let o = install(&root, sh, &[]);
        assert!(o.status.success(), "{}", text(&o));
    }
    // As a kill between the two renames leaves it: live gone, .old there.
    let live = root.join("opt/triton/tritonadm");
    fs::rename(&live, root.join("opt/triton/tritonadm.old")).unwrap();
    fs::create_dir_all(root.join("opt/triton/tritonadm.new/bin")).unwrap();

    let installer = tmp.path().join("header.sh");
    fs::write(&installer, header(&b.installer)).unwrap();
    let o = install(&root, &installer, &["--rollback"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("repair: an install was killed between its renames"),
        "{out}"
    );
    assert_eq!(linked_version(&root), format!("tritonadm {A}"));
    assert!(!root.join("opt/triton/tritonadm.new").exists());
    assert!(!root.join("opt/triton/tritonadm.old").exists());
}

#[test]
fn a_too_small_filesystem_is_refused_by_the_preflight() {
    let _serial = zfs_fixture::serial();
    let tmp = tempfile::tempdir().unwrap();
    let (a, _) = two_bundles(tmp.path());
    let pool = zfs_fixture::TestPool::new("tadm");
    // Room for the payload but not for twice the unpacked tree.
    let unpacked: u64 = walkdir::WalkDir::new(tmp.path().join(format!("proto-{A}")))
        .into_iter()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let quota = unpacked * 3 / 2;
    zfs_fixture::sh(&format!("zfs create -o quota={quota} {}", pool.ds("small")));
    let root = pool.mountpoint("small");
    let before = zfs_fixture::sh(&format!("find {} | sort", root.display()));
    let o = install(&root, &a.installer, &[]);
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("free space check") && err.contains("nothing was changed"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        zfs_fixture::sh(&format!("find {} | sort", root.display())),
        before
    );
    // With the quota lifted, the same installer goes through.
    zfs_fixture::sh(&format!("zfs set quota=none {}", pool.ds("small")));
    let o = install(&root, &a.installer, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(linked_version(&root), format!("tritonadm {A}"));
}

#[test]
fn the_installer_header_passes_shellcheck() {
    let tmp = tempfile::tempdir().unwrap();
    let a = build(tmp.path(), A, chrono::Utc::now());
    let header = tmp.path().join("header.sh");
    fs::write(&header, bundle::header(&a.installer)).unwrap();
    let o = Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .arg(&header)
        .output()
        .expect("shellcheck is needed (apt-get install shellcheck; .ci/run installs it)");
    assert!(o.status.success(), "{}", text(&o));
}
