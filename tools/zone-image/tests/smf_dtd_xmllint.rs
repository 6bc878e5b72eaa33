//! Cross-check: our encoding of the service_bundle DTD must give the same
//! verdict as `xmllint --dtdvalid` on the reference DTD, for the project's
//! own manifests and for many broken variants of them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::{Path, PathBuf};
use std::process::Command;

use zone_image::validate::smf::check_dtd;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The illumos DTD itself, kept as test data only: builds never read it.
fn reference_dtd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/service_bundle.dtd.1")
}

fn xmllint_accepts(dtd: &Path, text: &str) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("m.xml");
    std::fs::write(&file, text).expect("write");
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--dtdvalid"])
        .arg(dtd)
        .arg(&file)
        .output()
        .expect("xmllint is installed (Debian package libxml2-utils)");
    out.status.success()
}

/// Each mutation: (what, from, to). Applied to the base manifest one at a time.
const MUTATIONS: &[(&str, &str, &str)] = &[
    ("unchanged", "", ""),
    ("missing timeout", " timeout_seconds=\"60\"/>", "/>"),
    (
        "bad restart_on",
        "restart_on=\"error\"",
        "restart_on=\"sometimes\"",
    ),
    (
        "bad grouping",
        "grouping=\"require_all\"",
        "grouping=\"require_some\"",
    ),
    (
        "unknown element",
        "<single_instance/>",
        "<single_instance/><frobnicate/>",
    ),
    (
        "unknown attribute",
        "<single_instance/>",
        "<single_instance count=\"1\"/>",
    ),
    (
        "order: stability first",
        "<create_default_instance enabled=\"true\"/>",
        "<stability value=\"Unstable\"/><create_default_instance enabled=\"true\"/>",
    ),
    (
        "two create_default_instance",
        "<single_instance/>",
        "<create_default_instance enabled=\"true\"/><single_instance/>",
    ),
    ("bad enabled", "enabled=\"true\"", "enabled=\"yes\""),
    ("service without version", " version=\"1\"", ""),
    (
        "bad service type",
        "type=\"service\" version",
        "type=\"daemon\" version",
    ),
    (
        "text in element content",
        "<single_instance/>",
        "<single_instance/>hello",
    ),
    (
        "empty with content",
        "<single_instance/>",
        "<single_instance><stability value=\"Stable\"/></single_instance>",
    ),
    (
        "restarter without fmri",
        "<single_instance/>",
        "<single_instance/><restarter/>",
    ),
    (
        "method_environment empty",
        "<method_environment>",
        "<method_environment></method_environment><method_environment>",
    ),
    (
        "propval missing value",
        "<propval name=\"duration\" type=\"astring\" value=\"transient\"/>",
        "<propval name=\"duration\" type=\"astring\"/>",
    ),
    (
        "propval bad type",
        "type=\"astring\" value=\"transient\"",
        "type=\"string\" value=\"transient\"",
    ),
    (
        "property with list",
        "<property_group name=\"startd\" type=\"framework\">",
        "<property_group name=\"startd\" type=\"framework\"><property name=\"p\" type=\"astring\"><astring_list><value_node value=\"a\"/></astring_list></property>",
    ),
    (
        "property list without nodes",
        "<property_group name=\"startd\" type=\"framework\">",
        "<property_group name=\"startd\" type=\"framework\"><property name=\"p\" type=\"astring\"><astring_list/></property>",
    ),
    (
        "template without common_name",
        "<common_name>",
        "<description>",
    ),
    ("loctext without lang", " xml:lang=\"C\"", ""),
    (
        "instance",
        "<stability value=\"Unstable\"/>",
        "<instance name=\"default\" enabled=\"true\"/><stability value=\"Unstable\"/>",
    ),
    (
        "instance after stability",
        "<stability value=\"Unstable\"/>",
        "<stability value=\"Unstable\"/><instance name=\"default\" enabled=\"true\"/>",
    ),
    (
        "dependent",
        "<method_context",
        "<dependent name=\"d\" grouping=\"optional_all\" restart_on=\"none\"><service_fmri value=\"svc:/x\"/></dependent><method_context",
    ),
    (
        "credential and profile",
        "<method_credential",
        "<method_profile name=\"p\"/><method_credential",
    ),
    ("bundle without name", " name=\"triton-api\">", ">"),
    ("bad stability", "value=\"Unstable\"", "value=\"Shaky\""),
    (
        "exec_method monitor",
        "type=\"method\" name=\"stop\"",
        "type=\"monitor\" name=\"stop\"",
    ),
    (
        "exec_method bad type",
        "type=\"method\" name=\"stop\"",
        "type=\"script\" name=\"stop\"",
    ),
];

#[test]
fn our_dtd_rules_agree_with_xmllint() {
    let dtd = reference_dtd();
    let mut bases = Vec::new();
    for p in [
        "smf/manifests/postboot.xml",
        "images/triton-api/smf/manifests/triton-api.xml",
    ] {
        let text = std::fs::read_to_string(repo().join(p)).expect("project manifest");
        bases.push((p, text));
    }
    let mut checked = 0;
    let mut disagreements = Vec::new();
    let mut rejected = 0;
    for (name, base) in &bases {
        for (what, from, to) in MUTATIONS {
            if !from.is_empty() && !base.contains(from) {
                continue;
            }
            let text = if from.is_empty() {
                base.clone()
            } else {
                base.replacen(from, to, 1)
            };
            let ours = check_dtd(&text);
            let theirs = xmllint_accepts(&dtd, &text);
            checked += 1;
            if ours.is_err() {
                rejected += 1;
            }
            if ours.is_ok() != theirs {
                disagreements.push(format!(
                    "{name} / {what}: ours {:?}, xmllint {}",
                    ours.err(),
                    if theirs { "valid" } else { "invalid" }
                ));
            }
        }
        // The project's own manifests must be valid.
        assert!(
            check_dtd(base).is_ok(),
            "{name}: {:?}",
            check_dtd(base).err()
        );
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    assert!(checked >= 30, "only {checked} variants checked");
    assert!(rejected >= 15, "only {rejected} variants were invalid");
}
