//! A moto S3 server on a loopback port, for the tests here and in xtask and
//! for `cargo xtask bench bits` (hence public, not a dev-only fixture).
//! Needs `python3 -m pip install 'moto[server]'`.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};

// moto accepts any credentials; these are what `env` and `client` use.
const KEY: &str = "testing";
const REGION: &str = "us-east-1";

/// A loopback port nothing listens on (as of now).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A moto server, killed when dropped.
pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Start moto and wait (up to 60 s) until it answers.
    pub fn start() -> io::Result<Moto> {
        let port = free_port()?;
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("starting moto (python3 -m pip install 'moto[server]'): {e}"),
                )
            })?;
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while moto.request("GET", "/").is_err() {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("moto did not answer on 127.0.0.1:{port} within 60s"),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(moto)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One unsigned HTTP/1.1 request without a body (moto does not check
    /// signatures), with extra header lines (`"Name: value\r\n"` each);
    /// returns the whole answer, status line, headers and body.
    pub fn raw(&self, method: &str, path: &str, headers: &str) -> io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// [`Moto::raw`] without extra headers; returns the status code.
    pub fn request(&self, method: &str, path: &str) -> io::Result<u16> {
        self.raw(method, path, "")?
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::other("no HTTP status from moto"))
    }

    pub fn create_bucket(&self, bucket: &str) -> io::Result<()> {
        match self.request("PUT", &format!("/{bucket}"))? {
            200 => Ok(()),
            status => Err(io::Error::other(format!(
                "creating bucket {bucket} on moto: HTTP {status}"
            ))),
        }
    }

    /// The AWS_* settings that point a client at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), KEY.into()),
            ("AWS_REGION".into(), REGION.into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint()),
        ]
    }

    /// A plain object_store client for `bucket`, for looking behind the
    /// library's back.
    pub fn client(&self, bucket: &str) -> object_store::Result<AmazonS3> {
        AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(REGION)
            .with_access_key_id(KEY)
            .with_secret_access_key(KEY)
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .build()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
