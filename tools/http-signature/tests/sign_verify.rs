//! Signing from key files as `ssh-keygen` writes them, and what the
//! verifier accepts and refuses, for every algorithm.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

use std::path::Path;

use base64::Engine as _;
use chrono::Utc;
use http_signature::testing::{KeyPair, KeyType, ssh_keygen};
use http_signature::{Algorithm, KeyRing, Signer, VerifyError, http_date};

fn ring(keys: &[&KeyPair]) -> KeyRing {
    let text: String = keys.iter().map(|k| format!("{}\n", k.public)).collect();
    KeyRing::parse(Path::new("keys"), &format!("# operators\n\n{text}")).unwrap()
}

fn signed(signer: &Signer) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    signer.sign_headers(&mut h).unwrap();
    h
}

fn auth(h: &http::HeaderMap) -> String {
    h[http::header::AUTHORIZATION].to_str().unwrap().to_string()
}

fn expected(kind: KeyType) -> Algorithm {
    match kind {
        KeyType::Rsa => Algorithm::RsaSha256,
        KeyType::EcdsaP256 => Algorithm::EcdsaSha256,
        KeyType::EcdsaP384 => Algorithm::EcdsaSha384,
        KeyType::Ed25519 => Algorithm::Ed25519,
    }
}

#[test]
fn each_algorithm_signs_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KeyType::ALL {
        let key = ssh_keygen(dir.path(), &format!("{kind:?}"), kind, "").unwrap();
        let signer = Signer::from_file("ops", &key.private).unwrap();
        assert_eq!(signer.key_id(), format!("/ops/keys/{}", key.md5));
        assert_eq!(signer.algorithm(), expected(kind));
        assert!(!signer.uses_agent());
        let h = signed(&signer);
        assert!(
            auth(&h).contains(&format!("algorithm=\"{}\"", expected(kind).name())),
            "{}",
            auth(&h)
        );
        let v = ring(&[&key])
            .verify("PUT", "/images/x/file", &h, Utc::now())
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(v.user, "ops");
        assert_eq!(v.fingerprint, key.md5);
    }
}

#[test]
fn pem_key_files_sign_like_openssh_ones() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, format) in [
        (KeyType::Rsa, "PEM"),
        (KeyType::Rsa, "PKCS8"),
        (KeyType::EcdsaP256, "PEM"),
        (KeyType::EcdsaP384, "PKCS8"),
    ] {
        let name = format!("{kind:?}-{format}");
        let key = ssh_keygen(dir.path(), &name, kind, "").unwrap();
        let out = std::process::Command::new("ssh-keygen")
            .args(["-q", "-p", "-N", "", "-P", "", "-m", format, "-f"])
            .arg(&key.private)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = std::fs::read_to_string(&key.private).unwrap();
        assert!(!text.contains("OPENSSH"), "{name}: {text}");
        let signer = Signer::from_file("ops", &key.private).unwrap();
        assert_eq!(signer.key_id(), format!("/ops/keys/{}", key.md5), "{name}");
        ring(&[&key])
            .verify("GET", "/", &signed(&signer), Utc::now())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn changed_date_is_refused_for_every_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    for kind in KeyType::ALL {
        let key = ssh_keygen(dir.path(), &format!("{kind:?}"), kind, "").unwrap();
        let signer = Signer::from_file("ops", &key.private).unwrap();
        let mut h = signed(&signer);
        let later = http_date(Utc::now() + chrono::Duration::seconds(1));
        h.insert(http::header::DATE, later.parse().unwrap());
        let err = ring(&[&key])
            .verify("POST", "/", &h, Utc::now())
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::BadSignature(_)),
            "{kind:?}: {err}"
        );
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
}

#[test]
fn wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ours = ssh_keygen(dir.path(), "ours", KeyType::Ed25519, "").unwrap();
    let theirs = ssh_keygen(dir.path(), "theirs", KeyType::Ed25519, "").unwrap();
    let signer = Signer::from_file("ops", &theirs.private).unwrap();

    // A key the server does not list.
    let err = ring(&[&ours])
        .verify("POST", "/", &signed(&signer), Utc::now())
        .unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKey(_)), "{err}");
    assert!(
        err.to_string().starts_with("unknown key \"/ops/keys/"),
        "{err}"
    );

    // A listed key's id over another key's signature.
    let mut h = signed(&signer);
    let forged = auth(&h).replace(&theirs.md5, &ours.md5);
    h.insert(http::header::AUTHORIZATION, forged.parse().unwrap());
    let err = ring(&[&ours, &theirs])
        .verify("POST", "/", &h, Utc::now())
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::BadSignature(format!("/ops/keys/{}", ours.md5))
    );
}

#[test]
fn unsupported_or_mismatched_algorithm_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = ssh_keygen(dir.path(), "k", KeyType::EcdsaP256, "").unwrap();
    let signer = Signer::from_file("ops", &key.private).unwrap();
    let keys = ring(&[&key]);
    for (claimed, unsupported) in [
        ("hmac-sha256", true),
        ("ecdsa-sha512", true),
        ("dsa-sha1", true),
        ("rsa-sha256", false),
        ("ecdsa-sha384", false),
    ] {
        let mut h = signed(&signer);
        let a = auth(&h).replace("ecdsa-sha256", claimed);
        h.insert(http::header::AUTHORIZATION, a.parse().unwrap());
        let err = keys.verify("GET", "/", &h, Utc::now()).unwrap_err();
        let msg = err.to_string();
        if unsupported {
            assert_eq!(err, VerifyError::Algorithm(claimed.to_string()));
            assert!(
                msg.contains("expected rsa-sha256, ecdsa-sha256, ecdsa-sha384 or ed25519-sha512"),
                "{msg}"
            );
        } else {
            assert!(matches!(err, VerifyError::WrongAlgorithm { .. }), "{msg}");
            assert!(msg.ends_with("which signs with ecdsa-sha256"), "{msg}");
        }
    }
}

#[test]
fn old_date_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = ssh_keygen(dir.path(), "k", KeyType::Ed25519, "").unwrap();
    let signer = Signer::from_file("ops", &key.private).unwrap();
    let err = ring(&[&key])
        .verify(
            "POST",
            "/",
            &signed(&signer),
            Utc::now() + chrono::Duration::minutes(10),
        )
        .unwrap_err();
    assert!(matches!(err, VerifyError::ClockSkew(_)), "{err}");
}

#[test]
fn request_target_is_covered_when_signed() {
    let dir = tempfile::tempdir().unwrap();
    let key = ssh_keygen(dir.path(), "k", KeyType::EcdsaP384, "").unwrap();
    let signer = Signer::from_file("ops", &key.private).unwrap();
    let date = http_date(Utc::now());
    let line = format!("date: {date}\n(request-target): put /images/x/file");
    let sig = signer.sign(line.as_bytes()).unwrap();
    let auth = format!(
        "Signature keyId=\"{}\",algorithm=\"ecdsa-sha384\",headers=\"date (request-target)\",signature=\"{}\"",
        signer.key_id(),
        base64::engine::general_purpose::STANDARD.encode(sig)
    );
    let mut h = http::HeaderMap::new();
    h.insert(http::header::DATE, date.parse().unwrap());
    h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
    let keys = ring(&[&key]);
    keys.verify("PUT", "/images/x/file", &h, Utc::now())
        .unwrap();
    assert!(matches!(
        keys.verify("PUT", "/images/y/file", &h, Utc::now()),
        Err(VerifyError::BadSignature(_))
    ));
}

#[test]
fn missing_and_malformed_headers() {
    let dir = tempfile::tempdir().unwrap();
    let key = ssh_keygen(dir.path(), "k", KeyType::Rsa, "").unwrap();
    let signer = Signer::from_file("ops", &key.private).unwrap();
    let keys = ring(&[&key]);
    assert_eq!(
        keys.verify("GET", "/", &http::HeaderMap::new(), Utc::now())
            .unwrap_err(),
        VerifyError::Missing
    );
    let mut h = signed(&signer);
    h.insert(
        http::header::AUTHORIZATION,
        "Basic Zm9vOmJhcg==".parse().unwrap(),
    );
    assert!(matches!(
        keys.verify("GET", "/", &h, Utc::now()).unwrap_err(),
        VerifyError::Malformed(_)
    ));
}

#[test]
fn passphrase_protected_file_says_to_ssh_add_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = ssh_keygen(dir.path(), "k", KeyType::Ed25519, "sesame").unwrap();
    let err = Signer::from_file("ops", &key.private)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{p}: the key is passphrase-protected; run `ssh-add {p}` and sign through ssh-agent",
            p = key.private.display()
        )
    );
}

#[test]
fn bad_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k");
    std::fs::write(&p, "hello").unwrap();
    let err = Signer::from_file("u", &p).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: expected a private key (OpenSSH or PEM format)",
            p.display()
        )
    );

    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-t", "ecdsa", "-b", "521", "-f"])
        .arg(dir.path().join("p521"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = Signer::from_file("u", &dir.path().join("p521"))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(
            "unsupported key type ecdsa-sha2-nistp521; expected RSA, ECDSA P-256 or P-384, or Ed25519"
        ),
        "{err}"
    );

    let line = std::fs::read_to_string(dir.path().join("p521.pub")).unwrap();
    let err = KeyRing::parse(Path::new("/etc/keys"), &format!("# c\n{line}"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("/etc/keys: line 2: unsupported key type ecdsa-sha2-nistp521"),
        "{err}"
    );
    let err = KeyRing::parse(Path::new("/etc/keys"), "\n# c\nssh-rsa notbase64 x\n")
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("/etc/keys: line 3: not an SSH public key"),
        "{err}"
    );
}

/// An OpenSSH P-256 key whose private scalar starts with a zero byte, so
/// its mpint is 31 bytes: ssh-keygen makes about one such key in 256, and
/// ssh-key 0.6 cannot read it (RustCrypto/SSH#350). We must.
#[test]
fn an_ecdsa_key_with_a_short_scalar_signs() {
    fn put_str(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s);
    }
    let mut d = [0u8; 32];
    for (i, b) in d.iter_mut().enumerate().skip(1) {
        *b = i as u8;
    }
    let key = p256::ecdsa::SigningKey::from_slice(&d).unwrap();
    let q = key.verifying_key().to_encoded_point(false);
    let mut public = Vec::new();
    put_str(&mut public, b"ecdsa-sha2-nistp256");
    put_str(&mut public, b"nistp256");
    put_str(&mut public, q.as_bytes());
    let mut private = Vec::new();
    private.extend_from_slice(&[0x5e, 0xed, 0x5e, 0xed, 0x5e, 0xed, 0x5e, 0xed]);
    private.extend_from_slice(&public);
    put_str(&mut private, &d[1..]); // an mpint drops leading zero bytes
    put_str(&mut private, b"short-scalar");
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut blob = b"openssh-key-v1\0".to_vec();
    put_str(&mut blob, b"none");
    put_str(&mut blob, b"none");
    put_str(&mut blob, b"");
    blob.extend_from_slice(&1u32.to_be_bytes());
    put_str(&mut blob, &public);
    put_str(&mut blob, &private);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(70)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let text = format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n{}\n-----END OPENSSH PRIVATE KEY-----\n",
        lines.join("\n")
    );
    assert!(
        ssh_key::PrivateKey::from_openssh(&text).is_err(),
        "ssh-key reads short scalars now: drop sign.rs's short_scalar_ecdsa"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id_short");
    std::fs::write(&path, &text).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // OpenSSH itself reads the file and derives the same public key.
    let out = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    let want = format!(
        "ecdsa-sha2-nistp256 {}",
        base64::engine::general_purpose::STANDARD.encode(&public)
    );
    assert_eq!(
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
        want
    );

    let signer = Signer::from_file("ops", &path).unwrap();
    assert_eq!(signer.algorithm(), Algorithm::EcdsaSha256);
    let keys = KeyRing::parse(Path::new("keys"), &format!("{want} short\n")).unwrap();
    keys.verify("GET", "/", &signed(&signer), Utc::now())
        .unwrap();
}
