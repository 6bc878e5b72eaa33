//! Test helpers for this crate and the crates that use it: key pairs as
//! files, made by `ssh-keygen` as users make them, and a real `ssh-agent`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Write `id_rsa` (OpenSSH private key) and `id_rsa.pub` under `dir`,
/// returning the public key line.
pub fn write_key_pair(dir: &Path, comment: &str) -> io::Result<String> {
    // 2048 bits: ssh-key's default of 4096 makes tests slow to set up.
    let pair = ssh_key::private::RsaKeypair::random(&mut ssh_key::rand_core::OsRng, 2048)
        .map_err(io::Error::other)?;
    let key = ssh_key::PrivateKey::new(pair.into(), comment).map_err(io::Error::other)?;
    let private = key
        .to_openssh(ssh_key::LineEnding::LF)
        .map_err(io::Error::other)?;
    let mut public = key.public_key().clone();
    public.set_comment(comment);
    let line = public.to_openssh().map_err(io::Error::other)?;
    std::fs::write(dir.join("id_rsa"), private.as_bytes())?;
    std::fs::write(dir.join("id_rsa.pub"), format!("{line}\n"))?;
    Ok(line)
}

/// Key types `ssh-keygen` makes for the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl KeyType {
    pub const ALL: [KeyType; 4] = [
        KeyType::Rsa,
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Ed25519,
    ];

    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyType::Rsa => &["-t", "rsa", "-b", "2048"],
            KeyType::EcdsaP256 => &["-t", "ecdsa", "-b", "256"],
            KeyType::EcdsaP384 => &["-t", "ecdsa", "-b", "384"],
            KeyType::Ed25519 => &["-t", "ed25519"],
        }
    }
}

/// A key pair made by `ssh-keygen`.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub private: PathBuf,
    /// The `authorized_keys` line.
    pub public: String,
    /// As `ssh-keygen -E md5 -l` prints it, without `MD5:`.
    pub md5: String,
}

/// `ssh-keygen` a key into `dir/name` (and `name.pub`); an empty
/// `passphrase` leaves it unencrypted.
pub fn ssh_keygen(dir: &Path, name: &str, kind: KeyType, passphrase: &str) -> io::Result<KeyPair> {
    let private = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-N", passphrase])
        .args(kind.keygen_args())
        .arg("-f")
        .arg(&private))?;
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub")))?
        .trim()
        .to_string();
    // ssh-keygen's own fingerprint, not ours: the tests compare the two.
    let out = run(Command::new("ssh-keygen")
        .args(["-E", "md5", "-l", "-f"])
        .arg(dir.join(format!("{name}.pub"))))?;
    let md5 = out
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.strip_prefix("MD5:"))
        .ok_or_else(|| io::Error::other(format!("unexpected ssh-keygen -l output {out:?}")))?
        .to_string();
    Ok(KeyPair {
        private,
        public,
        md5,
    })
}

fn run(cmd: &mut Command) -> io::Result<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A real `ssh-agent` in the foreground on a socket under a directory of
/// its own; killed when dropped.
pub struct Agent {
    pub socket: PathBuf,
    dir: PathBuf,
    child: Child,
}

impl Agent {
    /// Start an agent whose socket and helper files live under `dir`.
    pub fn start(dir: &Path) -> io::Result<Agent> {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()?;
        let mut agent = Agent {
            socket,
            dir: dir.to_path_buf(),
            child,
        };
        // The socket appears once the agent listens; give up after 10 s.
        for _ in 0..200 {
            if agent.socket.exists() {
                return Ok(agent);
            }
            if let Some(status) = agent.child.try_wait()? {
                return Err(io::Error::other(format!("ssh-agent exited: {status}")));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(io::Error::other("ssh-agent did not create its socket"))
    }

    /// `ssh-add` a key, answering its passphrase prompt through
    /// SSH_ASKPASS as a desktop session would.
    pub fn add(&self, key: &Path, passphrase: &str) -> io::Result<()> {
        let askpass = self.dir.join("askpass.sh");
        std::fs::write(
            &askpass,
            format!("#!/bin/sh\nprintf '%s\\n' '{passphrase}'\n"),
        )?;
        std::fs::set_permissions(
            &askpass,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )?;
        run(Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0"))?;
        Ok(())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Best effort: the agent may already be gone.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
