//! Key resolution and signing through a real `ssh-agent` started by the
//! test, with keys added by `ssh-add` (one passphrase-protected).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::{Path, PathBuf};

use chrono::Utc;
use http_signature::testing::{Agent, KeyPair, KeyType, ssh_keygen};
use http_signature::{KeyRing, KeySpec, Signer, resolve};

const SETTING: &str = "UPDATES_IMGADM_IDENTITY (or --key)";

fn spec(identity: Option<&str>, agent: Option<&Path>) -> KeySpec {
    KeySpec {
        user: "ops".into(),
        identity: identity.map(str::to_string),
        agent: agent.map(Path::to_path_buf),
        setting: SETTING.into(),
    }
}

fn verifies(signer: &Signer, key: &KeyPair) {
    let ring = KeyRing::parse(Path::new("keys"), &key.public).unwrap();
    let mut h = http::HeaderMap::new();
    signer.sign_headers(&mut h).unwrap();
    let v = ring
        .verify("POST", "/images", &h, Utc::now())
        .unwrap_or_else(|e| panic!("{}: {e}", key.private.display()));
    assert_eq!(v.fingerprint, key.md5);
}

struct Fixture {
    dir: tempfile::TempDir,
    agent: Agent,
    /// One of each type, the P-384 one passphrase-protected; all in the
    /// agent.
    keys: Vec<KeyPair>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path()).unwrap();
    let keys: Vec<KeyPair> = KeyType::ALL
        .into_iter()
        .map(|kind| {
            let pass = if kind == KeyType::EcdsaP384 {
                "open sesame"
            } else {
                ""
            };
            let key = ssh_keygen(dir.path(), &format!("{kind:?}"), kind, pass).unwrap();
            agent.add(&key.private, pass).unwrap();
            key
        })
        .collect();
    Fixture { dir, agent, keys }
}

#[test]
fn each_agent_key_signs_by_fingerprint() {
    let f = fixture();
    for key in &f.keys {
        for id in [key.md5.clone(), format!("MD5:{}", key.md5.to_uppercase())] {
            let signer = resolve(&spec(Some(&id), Some(&f.agent.socket))).unwrap();
            assert!(signer.uses_agent());
            assert_eq!(signer.key_id(), format!("/ops/keys/{}", key.md5));
            verifies(&signer, key);
        }
    }
}

#[test]
fn several_keys_and_no_fingerprint_says_what_to_set() {
    let f = fixture();
    let err = resolve(&spec(None, Some(&f.agent.socket)))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "ssh-agent at {}: holds 4 keys (",
            f.agent.socket.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with(
            "); set UPDATES_IMGADM_IDENTITY (or --key) to the MD5 fingerprint of the one the server knows"
        ),
        "{err}"
    );
    for key in &f.keys {
        assert!(err.contains(&key.md5), "{err}");
    }
    assert!(!err.contains('\n'));
}

#[test]
fn passphrase_protected_file_signs_through_the_agent() {
    let f = fixture();
    let p384 = &f.keys[2];
    let file = p384.private.to_str().unwrap();
    let signer = resolve(&spec(Some(file), Some(&f.agent.socket))).unwrap();
    assert!(signer.uses_agent());
    verifies(&signer, p384);

    // An unencrypted file signs by itself, agent or not.
    let ed = &f.keys[3];
    let signer = resolve(&spec(ed.private.to_str(), Some(&f.agent.socket))).unwrap();
    assert!(!signer.uses_agent());
    verifies(&signer, ed);
}

#[test]
fn passphrase_protected_file_not_in_the_agent_says_to_ssh_add_it() {
    let f = fixture();
    let other = ssh_keygen(f.dir.path(), "other", KeyType::Ed25519, "other secret").unwrap();
    let file = other.private.to_str().unwrap();
    let err = resolve(&spec(Some(file), Some(&f.agent.socket)))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{file}: the key is passphrase-protected and ssh-agent does not hold it; \
             run `ssh-add {file}`"
        )
    );
    let err = resolve(&spec(Some(file), None)).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{file}: the key is passphrase-protected and no ssh-agent is running \
             (SSH_AUTH_SOCK is not set); start one and run `ssh-add {file}`"
        )
    );
}

#[test]
fn encrypted_pem_is_found_in_the_agent_through_its_pub_file() {
    let f = fixture();
    let rsa = &f.keys[0];
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-p", "-N", "pem secret", "-P", "", "-m", "PEM", "-f"])
        .arg(&rsa.private)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let file = rsa.private.to_str().unwrap();
    let signer = resolve(&spec(Some(file), Some(&f.agent.socket))).unwrap();
    assert!(signer.uses_agent());
    verifies(&signer, rsa);

    std::fs::remove_file(format!("{file}.pub")).unwrap();
    let err = resolve(&spec(Some(file), Some(&f.agent.socket)))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "{file}: the key is passphrase-protected and {file}.pub is missing"
        )),
        "{err}"
    );
}

#[test]
fn one_agent_key_is_used_without_being_named() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path()).unwrap();
    let err = resolve(&spec(None, Some(&agent.socket)))
        .unwrap_err()
        .to_string();
    assert!(err.ends_with(": holds no keys; `ssh-add` the key the server knows, or set UPDATES_IMGADM_IDENTITY (or --key) to a private key file"), "{err}");

    let key = ssh_keygen(dir.path(), "only", KeyType::EcdsaP256, "").unwrap();
    agent.add(&key.private, "").unwrap();
    let signer = resolve(&spec(None, Some(&agent.socket))).unwrap();
    assert!(signer.uses_agent());
    verifies(&signer, &key);
}

#[test]
fn unknown_fingerprint_and_missing_agent() {
    let f = fixture();
    let fp = "00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff";
    let err = resolve(&spec(Some(fp), Some(&f.agent.socket)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "holds no key with MD5 fingerprint {fp} (it holds "
        )),
        "{err}"
    );
    let err = resolve(&spec(Some(fp), None)).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "UPDATES_IMGADM_IDENTITY (or --key) is the fingerprint {fp}, a key to take \
             from ssh-agent, but SSH_AUTH_SOCK is not set"
        )
    );
    let err = resolve(&spec(
        Some("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"),
        Some(&f.agent.socket),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.ends_with("use the MD5 one (`ssh-add -l -E md5`)"),
        "{err}"
    );
    let err = resolve(&spec(None, None)).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "no key to sign with: set UPDATES_IMGADM_IDENTITY (or --key) to a private key file"
        ),
        "{err}"
    );

    // A socket nobody listens on.
    let dead = PathBuf::from(f.dir.path()).join("dead.sock");
    let err = resolve(&spec(None, Some(&dead))).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("ssh-agent at {}: cannot connect", dead.display())),
        "{err}"
    );
}

#[test]
fn signing_fails_clearly_once_the_agent_is_gone() {
    let f = fixture();
    let signer = resolve(&spec(Some(&f.keys[3].md5), Some(&f.agent.socket))).unwrap();
    let socket = f.agent.socket.clone();
    drop(f.agent);
    let mut h = http::HeaderMap::new();
    let err = signer.sign_headers(&mut h).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "ssh-agent at {}: cannot connect",
            socket.display()
        )),
        "{err}"
    );
    assert!(h.is_empty());
}
