//! Cross-check with an independent implementation: Joyent's node
//! `http-signature` (and `sshpk`, which it verifies with), the code Triton's
//! own servers and CLIs run. Signatures our code makes, from files and
//! through ssh-agent, must verify there; signatures it makes must verify
//! here. Needs `npm ci` in tests/node (`.ci/run` does it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::{Path, PathBuf};

use chrono::Utc;
use http_signature::testing::{Agent, KeyPair, KeyType, ssh_keygen};
use http_signature::{KeyRing, KeySpec, Signer, http_date, resolve};
use serde_json::{Value, json};

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

fn run_node(input: &Value) -> Value {
    let dir = node_dir();
    node_check::require(&dir, "http-signature");
    node_check::run(Path::new("crosscheck.js"), &dir, input)
}

fn request(name: &str, signer: &Signer, key: &KeyPair) -> Value {
    let mut h = http::HeaderMap::new();
    signer.sign_headers(&mut h).unwrap();
    json!({
        "name": name,
        "publicKey": key.public,
        "method": "GET",
        "url": "/images",
        "headers": {
            "date": h[http::header::DATE].to_str().unwrap(),
            "authorization": h[http::header::AUTHORIZATION].to_str().unwrap(),
        },
    })
}

#[test]
fn reference_implementation_verifies_our_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path()).unwrap();
    let mut cases = Vec::new();
    for kind in KeyType::ALL {
        let key = ssh_keygen(dir.path(), &format!("{kind:?}"), kind, "").unwrap();
        let file = Signer::from_file("ops", &key.private).unwrap();
        // Several signatures each: ECDSA's are random, and DER length
        // varies with leading zero bytes of r and s.
        for i in 0..4 {
            cases.push(request(&format!("{kind:?} file #{i}"), &file, &key));
        }
        agent.add(&key.private, "").unwrap();
        let spec = KeySpec {
            user: "ops".into(),
            identity: Some(key.md5.clone()),
            agent: Some(agent.socket.clone()),
            setting: "UPDATES_IMGADM_IDENTITY".into(),
        };
        let via_agent = resolve(&spec).unwrap();
        assert!(via_agent.uses_agent());
        for i in 0..4 {
            cases.push(request(&format!("{kind:?} agent #{i}"), &via_agent, &key));
        }
    }
    let got = run_node(&json!({ "verify": cases }));
    let results = got["verify"].as_array().unwrap();
    assert_eq!(results.len(), cases.len());
    for r in results {
        assert_eq!(r["ok"], json!(true), "{r}");
        // http-signature has no SHA-384; sshpk checks those (see
        // crosscheck.js).
        let via = if r["name"].as_str().unwrap().starts_with("EcdsaP384") {
            "sshpk"
        } else {
            "http-signature"
        };
        assert_eq!(r["via"], json!(via), "{r}");
    }

    // The check is not a rubber stamp: a signature over another date fails.
    let key = ssh_keygen(dir.path(), "tampered", KeyType::Ed25519, "").unwrap();
    let mut case = request(
        "tampered",
        &Signer::from_file("ops", &key.private).unwrap(),
        &key,
    );
    case["headers"]["date"] = json!(http_date(Utc::now() - chrono::Duration::seconds(5)));
    let got = run_node(&json!({ "verify": [case] }));
    assert_eq!(got["verify"][0]["ok"], json!(false), "{got}");
}

#[test]
fn we_verify_the_reference_implementations_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let mut sign = Vec::new();
    let mut keys = Vec::new();
    for kind in KeyType::ALL {
        let key = ssh_keygen(dir.path(), &format!("{kind:?}"), kind, "").unwrap();
        for i in 0..4 {
            sign.push(json!({
                "name": format!("{kind:?} #{i}"),
                "privateKey": std::fs::read_to_string(&key.private).unwrap(),
                "keyId": format!("/ops/keys/{}", key.md5),
                "date": http_date(Utc::now()),
            }));
        }
        keys.push(key);
    }
    let ring_text: String = keys.iter().map(|k| format!("{}\n", k.public)).collect();
    let ring = KeyRing::parse(Path::new("keys"), &ring_text).unwrap();
    let got = run_node(&json!({ "sign": sign }));
    let results = got["sign"].as_array().unwrap();
    assert_eq!(results.len(), sign.len());
    for (r, s) in results.iter().zip(&sign) {
        let name = r["name"].as_str().unwrap();
        if name.starts_with("EcdsaP384") {
            // The reference cannot sign with P-384 at all.
            assert!(
                r["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("SHA384 is not a supported hash algorithm")),
                "{r}"
            );
            continue;
        }
        let auth = r["authorization"].as_str().unwrap_or_else(|| panic!("{r}"));
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::DATE,
            s["date"].as_str().unwrap().parse().unwrap(),
        );
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        let v = ring
            .verify("GET", "/images", &h, Utc::now())
            .unwrap_or_else(|e| panic!("{name}: {e} ({auth})"));
        assert_eq!(v.user, "ops");
    }
}
