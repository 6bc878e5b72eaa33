//! HTTP Signature auth as Triton's updates servers, IMGAPI and Manta speak
//! it (the Joyent draft-cavage scheme):
//!
//! ```text
//! Date: Thu, 26 Nov 2026 03:29:34 GMT
//! Authorization: Signature keyId="/<user>/keys/<md5 fingerprint>",algorithm="rsa-sha256",headers="date",signature="<base64>"
//! ```
//!
//! The signing string is one `name: value` line per signed header
//! (`(request-target)` is `<method> <path>`), joined with `\n`. Keys are SSH
//! keys, from a file or held by ssh-agent; the key id names the key by its
//! MD5 fingerprint, as `ssh-keygen -E md5 -l` prints it without `MD5:`.
//! Signatures are encoded as node's `http-signature`/`sshpk` do: RSA
//! PKCS#1 v1.5, ECDSA as ASN.1 DER, Ed25519 as the raw 64 bytes.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use md5::{Digest as _, Md5};

mod agent;
mod resolve;
mod sign;
pub mod testing;
mod verify;

pub use resolve::{KeySpec, resolve};
pub use sign::Signer;
pub use verify::{KeyRing, Verified, VerifyError};

/// How far a request's `Date` may be from the verifier's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Not named `source`: the message already carries it, and a source
    // would print twice in an anyhow chain.
    #[error("{path}: cannot read: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("{path}: line {line}: {message}")]
    AuthorizedKeys {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("ssh-agent at {socket}: {message}")]
    Agent { socket: PathBuf, message: String },
    /// No usable key in what the user configured; says what to set.
    #[error("{0}")]
    NoKey(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

const SUPPORTED_KEYS: &str = "RSA, ECDSA P-256 or P-384, or Ed25519";

/// The signature algorithms offered and accepted, one per key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RsaSha256,
    /// ECDSA on P-256.
    EcdsaSha256,
    /// ECDSA on P-384.
    EcdsaSha384,
    Ed25519,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::RsaSha256,
        Algorithm::EcdsaSha256,
        Algorithm::EcdsaSha384,
        Algorithm::Ed25519,
    ];

    /// The `algorithm` parameter. Ed25519 is `ed25519-sha512` because
    /// node's http-signature (what Triton's servers run) only accepts
    /// `<key type>-<hash>` names, and sshpk hashes Ed25519 with SHA-512.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::EcdsaSha256 => "ecdsa-sha256",
            Algorithm::EcdsaSha384 => "ecdsa-sha384",
            Algorithm::Ed25519 => "ed25519-sha512",
        }
    }

    /// Parse an `algorithm` parameter (case-insensitive); bare `ed25519`
    /// is taken too.
    pub fn parse(name: &str) -> Option<Algorithm> {
        let name = name.to_ascii_lowercase();
        if name == "ed25519" {
            return Some(Algorithm::Ed25519);
        }
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The algorithm a key signs with, or why it cannot be used.
    pub fn for_key(key: &ssh_key::public::KeyData) -> Result<Algorithm, String> {
        use ssh_key::public::{EcdsaPublicKey, KeyData};
        match key {
            KeyData::Rsa(_) => Ok(Algorithm::RsaSha256),
            KeyData::Ecdsa(EcdsaPublicKey::NistP256(_)) => Ok(Algorithm::EcdsaSha256),
            KeyData::Ecdsa(EcdsaPublicKey::NistP384(_)) => Ok(Algorithm::EcdsaSha384),
            KeyData::Ed25519(_) => Ok(Algorithm::Ed25519),
            other => Err(format!(
                "unsupported key type {}; expected {SUPPORTED_KEYS}",
                other.algorithm()
            )),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `Thu, 26 Nov 2026 03:29:34 GMT`: the HTTP date format (RFC 7231).
pub fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// MD5 fingerprint of a public key's SSH wire encoding, `aa:bb:...`.
pub fn md5_fingerprint(key: &ssh_key::public::KeyData) -> Result<String, String> {
    let blob = ssh_key::PublicKey::from(key.clone())
        .to_bytes()
        .map_err(|e| e.to_string())?;
    let digest = Md5::digest(&blob);
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// `aa:bb:…` (16 hex pairs, optionally `MD5:`-prefixed) in lower case, or
/// `None` when `s` is not an MD5 fingerprint.
pub fn parse_md5_fingerprint(s: &str) -> Option<String> {
    let s = s.trim();
    let s = match s.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("md5:") => &s[4..],
        _ => s,
    };
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() == 16
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then(|| s.to_ascii_lowercase())
}

fn signing_line(name: &str, value: &str) -> String {
    format!("{name}: {value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse() {
        let fp = "3b:A5:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd";
        let want = fp.to_ascii_lowercase();
        assert_eq!(parse_md5_fingerprint(fp), Some(want.clone()));
        assert_eq!(parse_md5_fingerprint(&format!("MD5:{fp}")), Some(want));
        assert_eq!(parse_md5_fingerprint("/home/ops/.ssh/id_ed25519"), None);
        assert_eq!(parse_md5_fingerprint("3b:a5"), None);
        assert_eq!(
            parse_md5_fingerprint("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"),
            None
        );
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.name()), Some(a));
            assert_eq!(Algorithm::parse(&a.name().to_uppercase()), Some(a));
        }
        assert_eq!(Algorithm::parse("ed25519"), Some(Algorithm::Ed25519));
        assert_eq!(Algorithm::parse("hmac-sha256"), None);
        assert_eq!(Algorithm::parse("ecdsa-sha512"), None);
    }
}
