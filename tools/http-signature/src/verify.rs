//! The verifying side: the keys allowed to sign, and checking a request.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use rsa::signature::Verifier as _;
use sha2::Sha256;

use crate::{Algorithm, Error, MAX_CLOCK_SKEW_SECS, md5_fingerprint, signing_line};

/// Why a request was not authenticated; each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no Authorization header")]
    Missing,
    #[error("Authorization header: {0}")]
    Malformed(String),
    #[error(
        "unsupported signature algorithm {0:?}; expected rsa-sha256, ecdsa-sha256, \
         ecdsa-sha384 or ed25519-sha512"
    )]
    Algorithm(String),
    #[error("algorithm {algorithm:?} does not fit key {key_id:?}, which signs with {expected}")]
    WrongAlgorithm {
        algorithm: String,
        key_id: String,
        expected: Algorithm,
    },
    #[error("the signed headers must include \"date\"")]
    DateNotSigned,
    #[error("signed header {0:?} is not in the request")]
    MissingHeader(String),
    #[error("Date header {0:?} is not an HTTP date")]
    BadDate(String),
    #[error("Date header is {0} s away from the server's clock (at most 300 s allowed)")]
    ClockSkew(i64),
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    #[error("signature does not verify for key {0:?}")]
    BadSignature(String),
}

/// A successfully verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `<user>` of the key id.
    pub user: String,
    pub fingerprint: String,
}

enum PublicKey {
    Rsa(rsa::pkcs1v15::VerifyingKey<Sha256>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    fn from_ssh(key: &ssh_key::public::KeyData) -> Result<(Algorithm, PublicKey), String> {
        let algorithm = Algorithm::for_key(key)?;
        let bad = |e: ssh_key::Error| format!("bad {algorithm} key: {e}");
        let public = match (algorithm, key) {
            (Algorithm::RsaSha256, ssh_key::public::KeyData::Rsa(k)) => {
                let k = rsa::RsaPublicKey::try_from(k).map_err(bad)?;
                PublicKey::Rsa(rsa::pkcs1v15::VerifyingKey::new(k))
            }
            (Algorithm::EcdsaSha256, ssh_key::public::KeyData::Ecdsa(k)) => {
                PublicKey::P256(k.try_into().map_err(bad)?)
            }
            (Algorithm::EcdsaSha384, ssh_key::public::KeyData::Ecdsa(k)) => {
                PublicKey::P384(k.try_into().map_err(bad)?)
            }
            (Algorithm::Ed25519, ssh_key::public::KeyData::Ed25519(k)) => {
                PublicKey::Ed25519(k.try_into().map_err(bad)?)
            }
            _ => return Err(format!("unsupported key type {}", key.algorithm())),
        };
        Ok((algorithm, public))
    }

    /// Check `signature`, encoded as http-signature does (ECDSA in DER).
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(k) => rsa::pkcs1v15::Signature::try_from(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            PublicKey::P256(k) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            PublicKey::P384(k) => p384::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
        }
    }
}

struct AuthorizedKey {
    fingerprint: String,
    algorithm: Algorithm,
    key: PublicKey,
}

/// The public keys allowed to sign, from an `authorized_keys`-style file:
/// one `ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ssh-ed25519 AAAA...
/// [comment]` per line, `#` comments and blank lines ignored. Any listed key
/// may sign as any user: the user part of the key id is reported, not
/// checked, as on an updates server every key is an operator's.
pub struct KeyRing {
    keys: Vec<AuthorizedKey>,
}

impl KeyRing {
    pub fn load(path: &Path) -> Result<KeyRing, Error> {
        let text = std::fs::read_to_string(path).map_err(|err| Error::Read {
            path: path.to_path_buf(),
            err,
        })?;
        KeyRing::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<KeyRing, Error> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |message: String| Error::AuthorizedKeys {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            let public = ssh_key::PublicKey::from_openssh(line)
                .map_err(|e| err(format!("not an SSH public key: {e}")))?;
            let (algorithm, key) = PublicKey::from_ssh(public.key_data()).map_err(err)?;
            let fingerprint = md5_fingerprint(public.key_data()).map_err(err)?;
            keys.push(AuthorizedKey {
                fingerprint,
                algorithm,
                key,
            });
        }
        Ok(KeyRing { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Verify a request's signature. `method` and `path_and_query` are only
    /// used when the client signed `(request-target)`.
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &http::HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<Verified, VerifyError> {
        let auth = headers
            .get(http::header::AUTHORIZATION)
            .ok_or(VerifyError::Missing)?
            .to_str()
            .map_err(|_| VerifyError::Malformed("not ASCII".into()))?;
        let params = parse_authorization(auth)?;
        let algorithm = Algorithm::parse(&params.algorithm)
            .ok_or_else(|| VerifyError::Algorithm(params.algorithm.clone()))?;
        let signed: Vec<String> = params
            .headers
            .as_deref()
            .unwrap_or("date")
            .split_whitespace()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        if !signed.iter().any(|h| h == "date") {
            return Err(VerifyError::DateNotSigned);
        }
        let mut lines = Vec::with_capacity(signed.len());
        for name in &signed {
            if name == "(request-target)" {
                lines.push(signing_line(
                    name,
                    &format!("{} {path_and_query}", method.to_ascii_lowercase()),
                ));
                continue;
            }
            let value = headers
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| VerifyError::MissingHeader(name.clone()))?;
            lines.push(signing_line(name, value));
        }
        let date = headers
            .get(http::header::DATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let when = DateTime::parse_from_rfc2822(date)
            .map_err(|_| VerifyError::BadDate(date.to_string()))?;
        let skew = (now - when.with_timezone(&Utc)).num_seconds();
        if skew.abs() > MAX_CLOCK_SKEW_SECS {
            return Err(VerifyError::ClockSkew(skew));
        }

        let (user, fingerprint) = parse_key_id(&params.key_id)?;
        let fingerprint = fingerprint.to_ascii_lowercase();
        let key = self
            .keys
            .iter()
            .find(|k| k.fingerprint == fingerprint)
            .ok_or_else(|| VerifyError::UnknownKey(params.key_id.clone()))?;
        // The algorithm is the client's claim; only the one the key's type
        // signs with is allowed.
        if key.algorithm != algorithm {
            return Err(VerifyError::WrongAlgorithm {
                algorithm: params.algorithm,
                key_id: params.key_id,
                expected: key.algorithm,
            });
        }
        let raw = BASE64
            .decode(params.signature.as_bytes())
            .map_err(|_| VerifyError::Malformed("signature is not base64".into()))?;
        if !key.key.verify(lines.join("\n").as_bytes(), &raw) {
            return Err(VerifyError::BadSignature(params.key_id));
        }
        Ok(Verified { user, fingerprint })
    }
}

struct AuthParams {
    key_id: String,
    algorithm: String,
    headers: Option<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Result<AuthParams, VerifyError> {
    let rest = value
        .strip_prefix("Signature ")
        .ok_or_else(|| VerifyError::Malformed("expected the \"Signature\" scheme".into()))?;
    let (mut key_id, mut algorithm, mut headers, mut signature) = (None, None, None, None);
    let mut s = rest.trim();
    while !s.is_empty() {
        let eq = s
            .find('=')
            .ok_or_else(|| VerifyError::Malformed(format!("expected name=\"value\" at {s:?}")))?;
        let name = s[..eq].trim();
        let after = s[eq + 1..]
            .strip_prefix('"')
            .ok_or_else(|| VerifyError::Malformed(format!("value of {name} is not quoted")))?;
        let end = after
            .find('"')
            .ok_or_else(|| VerifyError::Malformed(format!("value of {name} is not closed")))?;
        let val = after[..end].to_string();
        match name {
            "keyId" => key_id = Some(val),
            "algorithm" => algorithm = Some(val),
            "headers" => headers = Some(val),
            "signature" => signature = Some(val),
            _ => {}
        }
        s = after[end + 1..].trim_start();
        s = s.strip_prefix(',').unwrap_or(s).trim_start();
    }
    let need = |v: Option<String>, n: &str| {
        v.ok_or_else(|| VerifyError::Malformed(format!("missing {n}")))
    };
    Ok(AuthParams {
        key_id: need(key_id, "keyId")?,
        algorithm: need(algorithm, "algorithm")?,
        headers,
        signature: need(signature, "signature")?,
    })
}

/// `/<user>/keys/<fingerprint>` -> (user, fingerprint).
fn parse_key_id(key_id: &str) -> Result<(String, &str), VerifyError> {
    let bad = || {
        VerifyError::Malformed(format!(
            "keyId {key_id:?} is not /<user>/keys/<fingerprint>"
        ))
    };
    let rest = key_id.strip_prefix('/').ok_or_else(bad)?;
    let (user, fp) = rest.split_once("/keys/").ok_or_else(bad)?;
    if user.is_empty() || fp.is_empty() {
        return Err(bad());
    }
    Ok((user.to_string(), fp.strip_prefix("MD5:").unwrap_or(fp)))
}
