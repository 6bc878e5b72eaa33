//! Test fixtures shared by the bits-store and xtask tests: bits dirs made
//! of real files, and a fault-injecting proxy in front of moto (which is
//! `bits_store::testing::Moto`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

pub const STAMP: &str = "master-20261126T031500Z-gabc1234";

/// Deterministic, incompressible-ish bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// bits/<name>/ as `image build` leaves it: pkg tarball, image, manifest
/// and latest-build-stamp. `big` sets the image file's size.
pub fn make_bits(bits: &Path, name: &str, stamp: &str, big: usize) -> Vec<PathBuf> {
    let dir = bits.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let files = [
        (format!("{name}-pkg-{stamp}.tar.gz"), bytes(1, 70_000)),
        (format!("{name}-zfs-{stamp}.zfs.gz"), bytes(2, big)),
        (
            format!("{name}-zfs-{stamp}.imgmanifest"),
            format!("{{\"name\":\"{name}\",\"version\":\"{stamp}\"}}\n").into_bytes(),
        ),
        (
            "latest-build-stamp".to_string(),
            format!("{stamp}\n").into_bytes(),
        ),
    ];
    files
        .iter()
        .map(|(f, data)| {
            let p = dir.join(f);
            std::fs::write(&p, data).unwrap();
            p
        })
        .collect()
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

/// What the proxy answers a request itself, if anything: (status, S3 code).
type Verdict = Option<(u16, &'static str)>;

/// A loopback HTTP proxy in front of moto that answers chosen requests
/// itself (e.g. 503, 403) and forwards the rest, one request per
/// connection. `fail(n, line)` sees the 1-based request count and the
/// request line (`PUT /bucket/key?partNumber=2&... HTTP/1.1`).
pub struct FlakyProxy {
    pub port: u16,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pub failed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyProxy {
    pub fn start(
        upstream: u16,
        fail: impl Fn(usize, &str) -> Verdict + Send + Sync + 'static,
    ) -> FlakyProxy {
        use std::sync::Arc;
        use std::sync::atomic::AtomicUsize;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(fail);
        let (rq, fl) = (requests.clone(), failed.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (rq, fl, fail) = (rq.clone(), fl.clone(), fail.clone());
                std::thread::spawn(move || {
                    let _ = proxy_one(conn, upstream, &rq, &fl, &*fail);
                });
            }
        });
        FlakyProxy {
            port,
            requests,
            failed,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn proxy_one(
    mut client: TcpStream,
    upstream: u16,
    requests: &std::sync::atomic::AtomicUsize,
    failed: &std::sync::atomic::AtomicUsize,
    fail: &(dyn Fn(usize, &str) -> Verdict + Send + Sync),
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    // Headers, byte by byte up to the blank line.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut b)? == 0 {
            return Ok(());
        }
        head.push(b[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let len: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    client.read_exact(&mut body)?;
    let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some((status, code)) = fail(n, text.lines().next().unwrap_or_default()) {
        failed.fetch_add(1, Ordering::SeqCst);
        let xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
        );
        let head_only = text.starts_with("HEAD ");
        write!(
            client,
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            xml.len()
        )?;
        if !head_only {
            client.write_all(xml.as_bytes())?;
        }
        return Ok(());
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut lines: Vec<&str> = text
        .trim_end()
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    up.write_all(format!("{}\r\n\r\n", lines.join("\r\n")).as_bytes())?;
    up.write_all(&body)?;
    std::io::copy(&mut up, &mut client)?;
    Ok(())
}
