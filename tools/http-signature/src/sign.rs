//! The signing side: a key (from a file or ssh-agent) and the user it
//! signs for.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use sha2::Sha256;
use ssh_key::public::{EcdsaPublicKey, Ed25519PublicKey, KeyData};

use crate::agent::AgentKey;
use crate::{Algorithm, Error, SUPPORTED_KEYS, http_date, md5_fingerprint, signing_line};

pub(crate) enum Key {
    Rsa(rsa::pkcs1v15::SigningKey<Sha256>),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    Agent(AgentKey),
}

/// Signs requests with one key on behalf of one user.
pub struct Signer {
    key_id: String,
    algorithm: Algorithm,
    key: Key,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .field("algorithm", &self.algorithm)
            .field("agent", &matches!(self.key, Key::Agent(_)))
            .finish()
    }
}

/// What a private key file holds.
pub(crate) enum KeyFile {
    Plain {
        public: KeyData,
        key: Box<Key>,
    },
    /// Passphrase-protected; the public half when the file carries it
    /// (OpenSSH format does, encrypted PEM does not).
    Encrypted {
        public: Option<KeyData>,
    },
}

impl Signer {
    pub(crate) fn new(user: &str, public: &KeyData, key: Key) -> Result<Signer, String> {
        let algorithm = Algorithm::for_key(public)?;
        let fp = md5_fingerprint(public)?;
        Ok(Signer {
            key_id: format!("/{user}/keys/{fp}"),
            algorithm,
            key,
        })
    }

    /// Load an unencrypted private key file: OpenSSH format (RSA, ECDSA
    /// P-256/P-384, Ed25519), or PEM (PKCS#1 RSA, SEC1 EC, PKCS#8). A
    /// passphrase-protected key is an error; [`crate::resolve`] signs
    /// with its copy in ssh-agent instead.
    pub fn from_file(user: &str, path: &Path) -> Result<Signer, Error> {
        let key_err = |message: String| Error::Key {
            path: path.to_path_buf(),
            message,
        };
        match read_key_file(path)? {
            KeyFile::Plain { public, key } => Signer::new(user, &public, *key).map_err(key_err),
            KeyFile::Encrypted { .. } => Err(key_err(format!(
                "the key is passphrase-protected; run `ssh-add {}` and sign through ssh-agent",
                path.display()
            ))),
        }
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether signing goes through ssh-agent.
    pub fn uses_agent(&self) -> bool {
        matches!(self.key, Key::Agent(_))
    }

    /// The signature over `data`, encoded as http-signature expects.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let sign_err = |e: rsa::signature::Error| Error::Sign(e.to_string());
        Ok(match &self.key {
            Key::Rsa(k) => k.try_sign(data).map_err(sign_err)?.to_vec(),
            Key::P256(k) => {
                let s: p256::ecdsa::Signature = k.try_sign(data).map_err(sign_err)?;
                s.to_der().as_bytes().to_vec()
            }
            Key::P384(k) => {
                let s: p384::ecdsa::Signature = k.try_sign(data).map_err(sign_err)?;
                s.to_der().as_bytes().to_vec()
            }
            Key::Ed25519(k) => k.try_sign(data).map_err(sign_err)?.to_vec(),
            Key::Agent(a) => a.sign(data, self.algorithm)?,
        })
    }

    /// The `Authorization` value for a request whose `Date` is `date`,
    /// signing the `date` header only.
    pub fn authorization(&self, date: &str) -> Result<String, Error> {
        let signature = self.sign(signing_line("date", date).as_bytes())?;
        Ok(format!(
            "Signature keyId=\"{}\",algorithm=\"{}\",headers=\"date\",signature=\"{}\"",
            self.key_id,
            self.algorithm,
            BASE64.encode(signature)
        ))
    }

    /// Set `Date` (now) and `Authorization` on a request's headers.
    pub fn sign_headers(&self, headers: &mut http::HeaderMap) -> Result<(), Error> {
        let date = http_date(Utc::now());
        let auth = self.authorization(&date)?;
        let date = http::HeaderValue::from_str(&date).map_err(|e| Error::Sign(e.to_string()))?;
        let auth = http::HeaderValue::from_str(&auth).map_err(|e| Error::Sign(e.to_string()))?;
        headers.insert(http::header::DATE, date);
        headers.insert(http::header::AUTHORIZATION, auth);
        Ok(())
    }
}

pub(crate) fn read_key_file(path: &Path) -> Result<KeyFile, Error> {
    let text = std::fs::read_to_string(path).map_err(|err| Error::Read {
        path: path.to_path_buf(),
        err,
    })?;
    parse_private_key(&text).map_err(|message| Error::Key {
        path: path.to_path_buf(),
        message,
    })
}

fn parse_private_key(text: &str) -> Result<KeyFile, String> {
    use p256::pkcs8::DecodePrivateKey as _;
    use rsa::pkcs1::DecodeRsaPrivateKey as _;

    if text.contains("BEGIN OPENSSH PRIVATE KEY") {
        let key = match ssh_key::PrivateKey::from_openssh(text) {
            Ok(key) => key,
            Err(e) => {
                return short_scalar_ecdsa(text)
                    .unwrap_or_else(|| Err(format!("not a valid OpenSSH private key: {e}")));
            }
        };
        if key.is_encrypted() {
            return Ok(KeyFile::Encrypted {
                public: Some(key.public_key().key_data().clone()),
            });
        }
        return from_openssh(key.key_data());
    }
    // Encrypted PEM: PKCS#8 `ENCRYPTED PRIVATE KEY`, or a legacy header.
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Ok(KeyFile::Encrypted { public: None });
    }
    if text.contains("BEGIN RSA PRIVATE KEY") {
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(text)
            .map_err(|e| format!("not a valid PKCS#1 RSA key: {e}"))?;
        return rsa_key(key);
    }
    if text.contains("BEGIN EC PRIVATE KEY") {
        if let Ok(k) = p256::SecretKey::from_sec1_pem(text) {
            return Ok(p256_key(k.into()));
        }
        if let Ok(k) = p384::SecretKey::from_sec1_pem(text) {
            return Ok(p384_key(k.into()));
        }
        return Err("not a P-256 or P-384 EC private key (SEC1 PEM)".to_string());
    }
    if text.contains("BEGIN PRIVATE KEY") {
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(text) {
            return rsa_key(k);
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(text) {
            return Ok(p256_key(k));
        }
        if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_pem(text) {
            return Ok(p384_key(k));
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(text) {
            return Ok(ed25519_key(k));
        }
        return Err("not an RSA, P-256, P-384 or Ed25519 private key (PKCS#8 PEM)".to_string());
    }
    Err("expected a private key (OpenSSH or PEM format)".to_string())
}

/// ssh-key 0.6 cannot read an OpenSSH ECDSA key whose private scalar is
/// shorter than the curve size once its leading zero bytes are dropped
/// (about one key in 256; RustCrypto/SSH#350): it reads past the mpint and
/// reports "length invalid". Such keys are valid and ssh-keygen makes them,
/// so read unencrypted ones here (and name P-521, which fails the same way
/// half the time, as the unsupported type it is); None for anything else.
fn short_scalar_ecdsa(text: &str) -> Option<Result<KeyFile, String>> {
    fn u32_of(r: &mut &[u8]) -> Option<u32> {
        let (n, rest) = r.split_first_chunk::<4>()?;
        *r = rest;
        Some(u32::from_be_bytes(*n))
    }
    fn string<'a>(r: &mut &'a [u8]) -> Option<&'a [u8]> {
        let n = u32_of(r)? as usize;
        let (s, rest) = (r.get(..n)?, r.get(n..)?);
        *r = rest;
        Some(s)
    }
    fn padded<const N: usize>(d: &[u8]) -> Option<[u8; N]> {
        let d = &d[d.iter().take_while(|b| **b == 0).count()..];
        let mut out = [0u8; N];
        out.get_mut(N.checked_sub(d.len())?..)?.copy_from_slice(d);
        Some(out)
    }

    let b64: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let blob = BASE64.decode(b64).ok()?;
    let mut r = blob.strip_prefix(b"openssh-key-v1\0")?;
    if string(&mut r)? != b"none" {
        return None;
    }
    string(&mut r)?; // kdf name
    string(&mut r)?; // kdf options
    if u32_of(&mut r)? != 1 {
        return None;
    }
    string(&mut r)?; // public key blob
    let mut p = string(&mut r)?;
    if u32_of(&mut p)? != u32_of(&mut p)? {
        return None;
    }
    let kind = string(&mut p)?;
    string(&mut p)?; // curve name
    let q = string(&mut p)?;
    let d = string(&mut p)?;
    // The public point in the file must be the one the scalar gives.
    match kind {
        b"ecdsa-sha2-nistp256" => {
            let k = p256::ecdsa::SigningKey::from_slice(&padded::<32>(d)?).ok()?;
            (k.verifying_key().to_encoded_point(false).as_bytes() == q).then(|| Ok(p256_key(k)))
        }
        b"ecdsa-sha2-nistp384" => {
            let k = p384::ecdsa::SigningKey::from_slice(&padded::<48>(d)?).ok()?;
            (k.verifying_key().to_encoded_point(false).as_bytes() == q).then(|| Ok(p384_key(k)))
        }
        b"ecdsa-sha2-nistp521" => Some(Err(format!(
            "unsupported key type ecdsa-sha2-nistp521; expected {SUPPORTED_KEYS}"
        ))),
        _ => None,
    }
}

fn from_openssh(pair: &ssh_key::private::KeypairData) -> Result<KeyFile, String> {
    use ssh_key::private::{EcdsaKeypair, KeypairData};
    match pair {
        KeypairData::Rsa(k) => rsa_key(rsa_from_ssh(k).map_err(|e| format!("bad RSA key: {e}"))?),
        KeypairData::Ecdsa(EcdsaKeypair::NistP256 { private, .. }) => {
            let k = p256::ecdsa::SigningKey::from_slice(private.as_slice())
                .map_err(|e| format!("bad P-256 key: {e}"))?;
            Ok(p256_key(k))
        }
        KeypairData::Ecdsa(EcdsaKeypair::NistP384 { private, .. }) => {
            let k = p384::ecdsa::SigningKey::from_slice(private.as_slice())
                .map_err(|e| format!("bad P-384 key: {e}"))?;
            Ok(p384_key(k))
        }
        KeypairData::Ed25519(k) => {
            let k = ed25519_dalek::SigningKey::try_from(k)
                .map_err(|e| format!("bad Ed25519 key: {e}"))?;
            Ok(ed25519_key(k))
        }
        other => Err(format!(
            "unsupported key type {}; expected {SUPPORTED_KEYS}",
            other
                .algorithm()
                .map_or_else(|_| "(unknown)".to_string(), |a| a.to_string())
        )),
    }
}

fn rsa_key(key: rsa::RsaPrivateKey) -> Result<KeyFile, String> {
    let public = ssh_key::public::RsaPublicKey::try_from(key.to_public_key())
        .map_err(|e| format!("bad RSA key: {e}"))?;
    Ok(KeyFile::Plain {
        public: KeyData::Rsa(public),
        key: Box::new(Key::Rsa(rsa::pkcs1v15::SigningKey::<Sha256>::new(key))),
    })
}

fn p256_key(key: p256::ecdsa::SigningKey) -> KeyFile {
    KeyFile::Plain {
        public: KeyData::Ecdsa(EcdsaPublicKey::from(key.verifying_key())),
        key: Box::new(Key::P256(key)),
    }
}

fn p384_key(key: p384::ecdsa::SigningKey) -> KeyFile {
    KeyFile::Plain {
        public: KeyData::Ecdsa(EcdsaPublicKey::from(key.verifying_key())),
        key: Box::new(Key::P384(key)),
    }
}

fn ed25519_key(key: ed25519_dalek::SigningKey) -> KeyFile {
    KeyFile::Plain {
        public: KeyData::Ed25519(Ed25519PublicKey::from(key.verifying_key())),
        key: Box::new(Key::Ed25519(key)),
    }
}

/// ssh-key 0.6's own conversion passes `p` twice instead of `p` and `q`,
/// so every key fails validation; build the key from its parts here.
fn rsa_from_ssh(pair: &ssh_key::private::RsaKeypair) -> Result<rsa::RsaPrivateKey, String> {
    let big = |m: &ssh_key::Mpint| -> Result<rsa::BigUint, String> {
        let bytes = m.as_positive_bytes().ok_or("negative RSA component")?;
        Ok(rsa::BigUint::from_bytes_be(bytes))
    };
    rsa::RsaPrivateKey::from_components(
        big(&pair.public.n)?,
        big(&pair.public.e)?,
        big(&pair.private.d)?,
        vec![big(&pair.private.p)?, big(&pair.private.q)?],
    )
    .map_err(|e| e.to_string())
}
