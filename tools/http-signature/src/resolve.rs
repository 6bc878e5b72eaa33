//! Which key signs, from what the user configured, in the order Triton's
//! tools (updates-imgadm, the `triton` CLI) use: the identity setting as a
//! key file, or as the fingerprint of an ssh-agent key; otherwise the
//! agent's only key. `cargo xtask image publish` and tritonadm both decide
//! it here.

use std::path::{Path, PathBuf};

use ssh_key::public::KeyData;

use crate::agent::{self, AgentKey};
use crate::sign::{Key, KeyFile, read_key_file};
use crate::{Error, Signer, md5_fingerprint, parse_md5_fingerprint};

/// What the user configured.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// The `<user>` of the key id.
    pub user: String,
    /// A private key file, or the MD5 fingerprint of a key in ssh-agent.
    pub identity: Option<String>,
    /// The ssh-agent socket.
    pub agent: Option<PathBuf>,
    /// How the user sets `identity`, for messages, e.g.
    /// `UPDATES_IMGADM_IDENTITY (or --key)`.
    pub setting: String,
}

impl KeySpec {
    /// A spec whose agent is the one at `SSH_AUTH_SOCK` (unset or empty:
    /// none).
    pub fn new(user: &str, identity: Option<&str>, setting: &str) -> KeySpec {
        KeySpec {
            user: user.to_string(),
            identity: identity.map(str::to_string),
            agent: std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            setting: setting.to_string(),
        }
    }
}

/// The signer `spec` names, or a one-line error saying what to set or run.
pub fn resolve(spec: &KeySpec) -> Result<Signer, Error> {
    let identity = spec
        .identity
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    match identity {
        // A file named like a fingerprint is still a file.
        Some(id) => match parse_md5_fingerprint(id) {
            Some(fp) if !Path::new(id).exists() => by_fingerprint(spec, &fp),
            _ if id.starts_with("SHA256:") && !Path::new(id).exists() => {
                Err(Error::NoKey(format!(
                    "{} is a SHA256 fingerprint, but key ids name keys by MD5; \
                     use the MD5 one (`ssh-add -l -E md5`)",
                    spec.setting
                )))
            }
            _ => from_file(spec, Path::new(id)),
        },
        None => only_agent_key(spec),
    }
}

fn from_file(spec: &KeySpec, path: &Path) -> Result<Signer, Error> {
    let key_err = |message: String| Error::Key {
        path: path.to_path_buf(),
        message,
    };
    let public = match read_key_file(path)? {
        KeyFile::Plain { public, key } => {
            return Signer::new(&spec.user, &public, *key).map_err(key_err);
        }
        KeyFile::Encrypted { public: Some(p) } => p,
        KeyFile::Encrypted { public: None } => public_beside(path, &spec.setting)?,
    };
    let ssh_add = format!("run `ssh-add {}`", path.display());
    let Some(socket) = &spec.agent else {
        return Err(key_err(format!(
            "the key is passphrase-protected and no ssh-agent is running \
             (SSH_AUTH_SOCK is not set); start one and {ssh_add}"
        )));
    };
    if !agent::identities(socket)?.contains(&public) {
        return Err(key_err(format!(
            "the key is passphrase-protected and ssh-agent does not hold it; {ssh_add}"
        )));
    }
    agent_signer(spec, socket, public)
}

/// An encrypted PEM file does not carry its public half: `<file>.pub` does.
fn public_beside(path: &Path, setting: &str) -> Result<KeyData, Error> {
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    let pub_path = PathBuf::from(pub_path);
    let missing = || Error::Key {
        path: path.to_path_buf(),
        message: format!(
            "the key is passphrase-protected and {} is missing, so its copy in \
             ssh-agent cannot be found; ssh-add it and set {setting} to its MD5 \
             fingerprint (`ssh-add -l -E md5`)",
            pub_path.display()
        ),
    };
    let text = match std::fs::read_to_string(&pub_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(err) => {
            return Err(Error::Read {
                path: pub_path,
                err,
            });
        }
    };
    let public = ssh_key::PublicKey::from_openssh(text.trim()).map_err(|e| Error::Key {
        path: pub_path.clone(),
        message: format!("not an SSH public key: {e}"),
    })?;
    Ok(public.key_data().clone())
}

fn by_fingerprint(spec: &KeySpec, fp: &str) -> Result<Signer, Error> {
    let Some(socket) = &spec.agent else {
        return Err(Error::NoKey(format!(
            "{} is the fingerprint {fp}, a key to take from ssh-agent, but \
             SSH_AUTH_SOCK is not set",
            spec.setting
        )));
    };
    let keys = agent::identities(socket)?;
    for key in &keys {
        if fingerprint(socket, key)? == fp {
            return agent_signer(spec, socket, key.clone());
        }
    }
    Err(Error::Agent {
        socket: socket.clone(),
        message: format!(
            "holds no key with MD5 fingerprint {fp} (it holds {}); ssh-add it",
            describe(socket, &keys)?
        ),
    })
}

fn only_agent_key(spec: &KeySpec) -> Result<Signer, Error> {
    let setting = &spec.setting;
    let Some(socket) = &spec.agent else {
        return Err(Error::NoKey(format!(
            "no key to sign with: set {setting} to a private key file or the MD5 \
             fingerprint of an ssh-agent key, or start ssh-agent (SSH_AUTH_SOCK is not set)"
        )));
    };
    let mut keys = agent::identities(socket)?;
    let message = match keys.len() {
        1 => return agent_signer(spec, socket, keys.remove(0)),
        0 => format!(
            "holds no keys; `ssh-add` the key the server knows, or set {setting} \
             to a private key file"
        ),
        // Only the server knows which key is registered for the user.
        n => format!(
            "holds {n} keys ({}); set {setting} to the MD5 fingerprint of the one \
             the server knows",
            describe(socket, &keys)?
        ),
    };
    Err(Error::Agent {
        socket: socket.clone(),
        message,
    })
}

fn agent_signer(spec: &KeySpec, socket: &Path, public: KeyData) -> Result<Signer, Error> {
    let fp = fingerprint(socket, &public)?;
    let key = Key::Agent(AgentKey {
        socket: socket.to_path_buf(),
        public: public.clone(),
    });
    Signer::new(&spec.user, &public, key).map_err(|m| Error::Agent {
        socket: socket.to_path_buf(),
        message: format!("key {fp}: {m}"),
    })
}

fn fingerprint(socket: &Path, key: &KeyData) -> Result<String, Error> {
    md5_fingerprint(key).map_err(|message| Error::Agent {
        socket: socket.to_path_buf(),
        message,
    })
}

/// `aa:bb:… ssh-ed25519, cc:dd:… ssh-rsa`
fn describe(socket: &Path, keys: &[KeyData]) -> Result<String, Error> {
    let parts = keys
        .iter()
        .map(|k| Ok(format!("{} {}", fingerprint(socket, k)?, k.algorithm())))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(parts.join(", "))
}
