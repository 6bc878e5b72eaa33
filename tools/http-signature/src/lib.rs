//! HTTP Signature auth as Triton's updates servers, IMGAPI and Manta speak
//! it (the Joyent draft-cavage scheme):
//!
//! ```text
//! Date: Thu, 26 Nov 2026 03:29:34 GMT
//! Authorization: Signature keyId="/<user>/keys/<md5 fingerprint>",algorithm="rsa-sha256",headers="date",signature="<base64>"
//! ```
//!
//! The signature is RSA PKCS#1 v1.5 over SHA-256 of the signing string:
//! one `name: value` line per signed header (`(request-target)` is
//! `<method> <path>`), joined with `\n`. Keys are SSH keys; the key id
//! names the key by its MD5 fingerprint, as `ssh-keygen -E md5 -l` prints
//! it without the `MD5:` prefix.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use md5::{Digest as _, Md5};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding as _, Signer as _, Verifier as _};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;

/// How far a request's `Date` may be from the verifier's clock.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// The only algorithm offered and accepted.
pub const ALGORITHM: &str = "rsa-sha256";

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
    #[error("signing failed: {0}")]
    Sign(String),
}

/// Why a request was not authenticated; each says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no Authorization header")]
    Missing,
    #[error("Authorization header: {0}")]
    Malformed(String),
    #[error("unsupported signature algorithm {0:?}; expected \"rsa-sha256\"")]
    Algorithm(String),
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

/// `Thu, 26 Nov 2026 03:29:34 GMT`: the HTTP date format (RFC 7231).
pub fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// MD5 fingerprint of an RSA public key's SSH wire encoding, `aa:bb:...`.
pub fn md5_fingerprint(key: &RsaPublicKey) -> Result<String, String> {
    let ssh = ssh_key::public::RsaPublicKey::try_from(key).map_err(|e| e.to_string())?;
    let blob = ssh_key::PublicKey::from(ssh_key::public::KeyData::Rsa(ssh))
        .to_bytes()
        .map_err(|e| e.to_string())?;
    let digest = Md5::digest(&blob);
    Ok(digest
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

/// Signs requests with one RSA key on behalf of one user.
pub struct Signer {
    key_id: String,
    key: SigningKey<Sha256>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Signer {
    pub fn new(user: &str, key: RsaPrivateKey) -> Result<Signer, String> {
        let fp = md5_fingerprint(&key.to_public_key())?;
        Ok(Signer {
            key_id: format!("/{user}/keys/{fp}"),
            key: SigningKey::<Sha256>::new(key),
        })
    }

    /// Load an unencrypted RSA private key: OpenSSH format, or PEM
    /// (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`).
    pub fn from_file(user: &str, path: &Path) -> Result<Signer, Error> {
        let text = std::fs::read_to_string(path).map_err(|err| Error::Read {
            path: path.to_path_buf(),
            err,
        })?;
        let key_err = |message: String| Error::Key {
            path: path.to_path_buf(),
            message,
        };
        let key = parse_private_key(&text).map_err(key_err)?;
        Signer::new(user, key).map_err(key_err)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The `Authorization` value for a request whose `Date` is `date`,
    /// signing the `date` header only.
    pub fn authorization(&self, date: &str) -> String {
        let signature: Signature = self.key.sign(signing_line("date", date).as_bytes());
        format!(
            "Signature keyId=\"{}\",algorithm=\"{ALGORITHM}\",headers=\"date\",signature=\"{}\"",
            self.key_id,
            BASE64.encode(signature.to_bytes())
        )
    }

    /// Set `Date` (now) and `Authorization` on a request's headers.
    pub fn sign_headers(&self, headers: &mut http::HeaderMap) -> Result<(), Error> {
        let date = http_date(Utc::now());
        let auth = self.authorization(&date);
        let date = http::HeaderValue::from_str(&date).map_err(|e| Error::Sign(e.to_string()))?;
        let auth = http::HeaderValue::from_str(&auth).map_err(|e| Error::Sign(e.to_string()))?;
        headers.insert(http::header::DATE, date);
        headers.insert(http::header::AUTHORIZATION, auth);
        Ok(())
    }
}

fn parse_private_key(text: &str) -> Result<RsaPrivateKey, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    if text.contains("BEGIN OPENSSH PRIVATE KEY") {
        let key = ssh_key::PrivateKey::from_openssh(text)
            .map_err(|e| format!("not a valid OpenSSH private key: {e}"))?;
        if key.is_encrypted() {
            return Err("the key is passphrase-protected; decrypt a copy \
                 (ssh-keygen -p) for unattended use"
                .to_string());
        }
        let pair = key
            .key_data()
            .rsa()
            .ok_or_else(|| format!("expected an RSA key, found {}", key.algorithm()))?;
        return rsa_from_ssh(pair).map_err(|e| format!("bad RSA key: {e}"));
    }
    if text.contains("BEGIN RSA PRIVATE KEY") {
        return RsaPrivateKey::from_pkcs1_pem(text)
            .map_err(|e| format!("not a valid PKCS#1 RSA key: {e}"));
    }
    if text.contains("BEGIN PRIVATE KEY") {
        return RsaPrivateKey::from_pkcs8_pem(text)
            .map_err(|e| format!("not a valid PKCS#8 RSA key: {e}"));
    }
    Err("expected an RSA private key (OpenSSH or PEM format)".to_string())
}

/// ssh-key 0.6's own conversion passes `p` twice instead of `p` and `q`,
/// so every key fails validation; build the key from its parts here.
fn rsa_from_ssh(pair: &ssh_key::private::RsaKeypair) -> Result<RsaPrivateKey, String> {
    let big = |m: &ssh_key::Mpint| -> Result<rsa::BigUint, String> {
        let bytes = m.as_positive_bytes().ok_or("negative RSA component")?;
        Ok(rsa::BigUint::from_bytes_be(bytes))
    };
    RsaPrivateKey::from_components(
        big(&pair.public.n)?,
        big(&pair.public.e)?,
        big(&pair.private.d)?,
        vec![big(&pair.private.p)?, big(&pair.private.q)?],
    )
    .map_err(|e| e.to_string())
}

fn signing_line(name: &str, value: &str) -> String {
    format!("{name}: {value}")
}

/// A successfully verified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `<user>` of the key id.
    pub user: String,
    pub fingerprint: String,
}

struct AuthorizedKey {
    fingerprint: String,
    key: VerifyingKey<Sha256>,
}

/// The public keys allowed to sign, from an `authorized_keys`-style file:
/// one `ssh-rsa AAAA... [comment]` per line, `#` comments and blank lines
/// ignored. Any listed key may sign as any user: the user part of the key
/// id is reported, not checked, as on an updates server every key is an
/// operator's.
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
            let rsa_ssh = public.key_data().rsa().ok_or_else(|| {
                err(format!(
                    "expected an ssh-rsa key, found {}",
                    public.algorithm()
                ))
            })?;
            let rsa_key =
                RsaPublicKey::try_from(rsa_ssh).map_err(|e| err(format!("bad RSA key: {e}")))?;
            let fingerprint = md5_fingerprint(&rsa_key).map_err(err)?;
            keys.push(AuthorizedKey {
                fingerprint,
                key: VerifyingKey::<Sha256>::new(rsa_key),
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
        if params.algorithm.to_ascii_lowercase() != ALGORITHM {
            return Err(VerifyError::Algorithm(params.algorithm));
        }
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
        let key = self
            .keys
            .iter()
            .find(|k| k.fingerprint == fingerprint)
            .ok_or_else(|| VerifyError::UnknownKey(params.key_id.clone()))?;
        let raw = BASE64
            .decode(params.signature.as_bytes())
            .map_err(|_| VerifyError::Malformed("signature is not base64".into()))?;
        let signature = Signature::try_from(raw.as_slice())
            .map_err(|_| VerifyError::BadSignature(params.key_id.clone()))?;
        key.key
            .verify(lines.join("\n").as_bytes(), &signature)
            .map_err(|_| VerifyError::BadSignature(params.key_id.clone()))?;
        Ok(Verified {
            user,
            fingerprint: fingerprint.to_string(),
        })
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

/// Test helpers: a fresh RSA key pair as files, for tests of this crate
/// and of the crates that use it.
pub mod testing {
    use std::path::Path;

    /// Write `id_rsa` (OpenSSH private key) and `id_rsa.pub` under `dir`,
    /// returning the public key line.
    pub fn write_key_pair(dir: &Path, comment: &str) -> std::io::Result<String> {
        // 2048 bits: ssh-key's default of 4096 makes tests slow to set up.
        let pair = ssh_key::private::RsaKeypair::random(&mut ssh_key::rand_core::OsRng, 2048)
            .map_err(std::io::Error::other)?;
        let key = ssh_key::PrivateKey::new(pair.into(), comment).map_err(std::io::Error::other)?;
        let private = key
            .to_openssh(ssh_key::LineEnding::LF)
            .map_err(std::io::Error::other)?;
        let mut public = key.public_key().clone();
        public.set_comment(comment);
        let line = public.to_openssh().map_err(std::io::Error::other)?;
        std::fs::write(dir.join("id_rsa"), private.as_bytes())?;
        std::fs::write(dir.join("id_rsa.pub"), format!("{line}\n"))?;
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        signer: Signer,
        ring: KeyRing,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let line = testing::write_key_pair(dir.path(), "ops@example").unwrap();
        let signer = Signer::from_file("ops", &dir.path().join("id_rsa")).unwrap();
        let ring = KeyRing::parse(Path::new("keys"), &format!("# ops\n\n{line}\n")).unwrap();
        Fixture {
            _dir: dir,
            signer,
            ring,
        }
    }

    fn signed(signer: &Signer) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        signer.sign_headers(&mut h).unwrap();
        h
    }

    #[test]
    fn signed_request_verifies_and_names_the_user() {
        let f = fixture();
        let h = signed(&f.signer);
        let v = f.ring.verify("POST", "/images", &h, Utc::now()).unwrap();
        assert_eq!(v.user, "ops");
        assert!(f.signer.key_id().ends_with(&v.fingerprint));
        assert_eq!(v.fingerprint.split(':').count(), 16);
    }

    #[test]
    fn tampered_date_fails() {
        let f = fixture();
        let mut h = signed(&f.signer);
        let later = http_date(Utc::now() + chrono::Duration::seconds(1));
        h.insert(http::header::DATE, later.parse().unwrap());
        let err = f.ring.verify("POST", "/", &h, Utc::now()).unwrap_err();
        assert!(matches!(err, VerifyError::BadSignature(_)), "{err}");
    }

    #[test]
    fn old_date_is_refused() {
        let f = fixture();
        let h = signed(&f.signer);
        let err = f
            .ring
            .verify("POST", "/", &h, Utc::now() + chrono::Duration::minutes(10))
            .unwrap_err();
        assert!(matches!(err, VerifyError::ClockSkew(_)), "{err}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let f = fixture();
        let other = fixture();
        let h = signed(&other.signer);
        let err = f.ring.verify("POST", "/", &h, Utc::now()).unwrap_err();
        assert!(matches!(err, VerifyError::UnknownKey(_)), "{err}");
    }

    #[test]
    fn missing_and_malformed_headers() {
        let f = fixture();
        let h = http::HeaderMap::new();
        assert_eq!(
            f.ring.verify("GET", "/", &h, Utc::now()).unwrap_err(),
            VerifyError::Missing
        );
        let mut h = signed(&f.signer);
        h.insert(
            http::header::AUTHORIZATION,
            "Basic Zm9vOmJhcg==".parse().unwrap(),
        );
        assert!(matches!(
            f.ring.verify("GET", "/", &h, Utc::now()).unwrap_err(),
            VerifyError::Malformed(_)
        ));
        let mut h = signed(&f.signer);
        let auth = h[http::header::AUTHORIZATION]
            .to_str()
            .unwrap()
            .replace("rsa-sha256", "hmac-sha256");
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        assert!(matches!(
            f.ring.verify("GET", "/", &h, Utc::now()).unwrap_err(),
            VerifyError::Algorithm(_)
        ));
    }

    #[test]
    fn request_target_is_covered_when_signed() {
        let f = fixture();
        let date = http_date(Utc::now());
        let line = format!("date: {date}\n(request-target): put /images/x/file");
        let sig: Signature = f.signer.key.sign(line.as_bytes());
        let auth = format!(
            "Signature keyId=\"{}\",algorithm=\"rsa-sha256\",headers=\"date (request-target)\",signature=\"{}\"",
            f.signer.key_id(),
            BASE64.encode(sig.to_bytes())
        );
        let mut h = http::HeaderMap::new();
        h.insert(http::header::DATE, date.parse().unwrap());
        h.insert(http::header::AUTHORIZATION, auth.parse().unwrap());
        assert!(
            f.ring
                .verify("PUT", "/images/x/file", &h, Utc::now())
                .is_ok()
        );
        assert!(matches!(
            f.ring.verify("PUT", "/images/y/file", &h, Utc::now()),
            Err(VerifyError::BadSignature(_))
        ));
    }

    #[test]
    fn bad_authorized_keys_line_is_named() {
        let err = KeyRing::parse(Path::new("/etc/keys"), "\n# c\nssh-rsa notbase64 x\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("/etc/keys: line 3: not an SSH public key"),
            "{err}"
        );
    }

    #[test]
    fn bad_private_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, "hello").unwrap();
        let err = Signer::from_file("u", &p).unwrap_err().to_string();
        assert!(err.contains("expected an RSA private key"), "{err}");
    }
}
