//! Keys held by ssh-agent, through ssh-agent-lib's blocking client. Each
//! call opens its own short connection: the agent is local, a signer can be
//! shared between tasks without a lock, and a restarted agent is found.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use ssh_agent_lib::blocking::Client;
use ssh_agent_lib::proto::{PublicCredential, RSA_SHA2_256, SignRequest};
use ssh_key::HashAlg;
use ssh_key::public::KeyData;

use crate::{Algorithm, Error};

const AGENT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

pub(crate) struct AgentKey {
    pub socket: PathBuf,
    pub public: KeyData,
}

fn agent_err(socket: &Path, message: String) -> Error {
    Error::Agent {
        socket: socket.to_path_buf(),
        message,
    }
}

fn connect(socket: &Path) -> Result<Client<UnixStream>, Error> {
    let stream = UnixStream::connect(socket).map_err(|e| {
        agent_err(
            socket,
            format!("cannot connect (is SSH_AUTH_SOCK stale?): {e}"),
        )
    })?;
    // A forwarded agent whose connection died never answers. A minute
    // still leaves time to confirm a key added with `ssh-add -c`.
    for set in [UnixStream::set_read_timeout, UnixStream::set_write_timeout] {
        set(&stream, Some(AGENT_TIMEOUT)).map_err(|e| agent_err(socket, e.to_string()))?;
    }
    Ok(Client::new(stream))
}

/// The public keys the agent holds, in its order; a certificate counts as
/// the key it certifies.
pub(crate) fn identities(socket: &Path) -> Result<Vec<KeyData>, Error> {
    let list = connect(socket)?
        .request_identities()
        .map_err(|e| agent_err(socket, format!("listing keys failed: {e}")))?;
    Ok(list
        .into_iter()
        .map(|i| i.credential.key_data().clone())
        .collect())
}

impl AgentKey {
    /// Sign `data`, returning the signature in http-signature's encoding.
    pub fn sign(&self, data: &[u8], algorithm: Algorithm) -> Result<Vec<u8>, Error> {
        let socket = &self.socket;
        // Without the flag an RSA key signs with SHA-1 (`ssh-rsa`).
        let flags = if algorithm == Algorithm::RsaSha256 {
            RSA_SHA2_256
        } else {
            0
        };
        let sig = connect(socket)?
            .sign(SignRequest {
                credential: PublicCredential::Key(self.public.clone()),
                data: data.to_vec(),
                flags,
            })
            .map_err(|e| agent_err(socket, format!("signing with {algorithm} failed: {e}")))?;
        let unexpected = || {
            agent_err(
                socket,
                format!(
                    "answered with a {} signature where {algorithm} was asked for",
                    sig.algorithm()
                ),
            )
        };
        match algorithm {
            Algorithm::RsaSha256 => {
                if sig.algorithm()
                    != (ssh_key::Algorithm::Rsa {
                        hash: Some(HashAlg::Sha256),
                    })
                {
                    return Err(unexpected());
                }
                Ok(sig.as_bytes().to_vec())
            }
            Algorithm::EcdsaSha256 => {
                let s = p256::ecdsa::Signature::try_from(&sig).map_err(|_| unexpected())?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            Algorithm::EcdsaSha384 => {
                let s = p384::ecdsa::Signature::try_from(&sig).map_err(|_| unexpected())?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            Algorithm::Ed25519 => {
                let s = ed25519_dalek::Signature::try_from(&sig).map_err(|_| unexpected())?;
                Ok(s.to_bytes().to_vec())
            }
        }
    }
}
