//! Shared fixtures: a real imgapi-server on loopback (in-process, from its
//! library, so it can be stopped and restarted on the same directory), real
//! gzip image files with manifests, and the tritonadm binary.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use sha1::Digest as _;
use uuid::Uuid;

pub const OWNER: &str = "930896af-bf8c-48d4-885c-6573a94b1853";

pub struct Server {
    pub dir: PathBuf,
    pub url: String,
    server: Option<imgapi_server::Server>,
}

/// Server options for `dir` on a free loopback port.
pub fn options(dir: &Path) -> imgapi_server::Options {
    imgapi_server::Options::new(dir, "127.0.0.1:0".parse().unwrap())
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        Self::start_with(options(dir))
    }

    pub fn start_with(opts: imgapi_server::Options) -> Server {
        let dir = opts.dir.clone();
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        let server = imgapi_server::start(opts).expect("starting imgapi-server");
        let addr: SocketAddr = server.local_addr();
        let host = if scheme == "https" {
            format!("localhost:{}", addr.port())
        } else {
            addr.to_string()
        };
        Server {
            dir,
            url: format!("{scheme}://{host}"),
            server: Some(server),
        }
    }

    /// Stop serving (as a crash would, between requests).
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.close().await.expect("closing imgapi-server");
        }
    }
}

/// A real gzip image file and its manifest under `dir`.
pub struct Fixture {
    pub uuid: Uuid,
    pub manifest: PathBuf,
    pub file: PathBuf,
    pub sha1: String,
    pub size: u64,
}

pub fn make_image(dir: &Path, name: &str, origin: Option<Uuid>) -> Fixture {
    let uuid = Uuid::new_v4();
    // Pseudo-random content so gzip cannot shrink it to nothing.
    let mut data = Vec::with_capacity(200_000);
    let mut x: u64 = uuid.as_u128() as u64 | 1;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.push((x % 251) as u8);
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&data).unwrap();
    let bytes = gz.finish().unwrap();
    let sha1 = hex::encode(sha1::Sha1::digest(&bytes));
    let file = dir.join(format!("{name}-{uuid}.zfs.gz"));
    std::fs::write(&file, &bytes).unwrap();
    let mut manifest = serde_json::json!({
        "v": 2,
        "uuid": uuid,
        "owner": OWNER,
        "name": name,
        "version": "1.0.0",
        "state": "active",
        "disabled": false,
        "public": true,
        "type": "zone-dataset",
        "os": "smartos",
        "files": [{"sha1": sha1, "size": bytes.len(), "compression": "gzip"}],
        "tags": {"smartdc_service": true},
        "requirements": {"min_platform": {"7.0": "20250101T000000Z"}},
        "a_field_from_the_future": [1, 2, 3]
    });
    if let Some(o) = origin {
        manifest["origin"] = serde_json::json!(o);
    }
    let mpath = dir.join(format!("{name}-{uuid}.imgmanifest"));
    std::fs::write(&mpath, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
    Fixture {
        uuid,
        manifest: mpath,
        file,
        sha1,
        size: bytes.len() as u64,
    }
}

/// Run tritonadm with a scrubbed environment (no IMGAPI_URL, no headnode).
pub async fn tritonadm(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tritonadm"))
        .args(args)
        .env_remove("IMGAPI_URL")
        .env_remove("TRITONADM_KEY")
        .env_remove("TRITONADM_USER")
        .env("TRITONADM_HEADNODE_CONFIG", "/nonexistent/usbkey/config")
        .output()
        .await
        .expect("running tritonadm")
}

/// `tritonadm --imgapi-url URL image import -m MANIFEST -f FILE [extra...]`.
pub async fn import(url: &str, manifest: &Path, file: &Path, extra: &[&str]) -> Output {
    let (m, f) = (manifest.to_str().unwrap(), file.to_str().unwrap());
    let args = ["--imgapi-url", url, "image", "import", "-m", m, "-f", f];
    tritonadm(&[&args[..], extra].concat()).await
}

/// `tritonadm --imgapi-url URL image list --name NAME`: the table.
pub async fn list_named(url: &str, name: &str) -> String {
    stdout(&tritonadm(&["--imgapi-url", url, "image", "list", "--name", name]).await)
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn lib_client(url: &str) -> tritonadm::imgapi::Imgapi {
    tritonadm::imgapi::Imgapi::connect(url, &Default::default()).unwrap()
}

pub fn quiet_opts(source: &str) -> tritonadm::import::ImportOptions {
    tritonadm::import::ImportOptions {
        source: source.to_string(),
        ..Default::default()
    }
}

/// Import `images` into the server at `url` with the library, in order
/// (origins first); no origin is fetched from anywhere else.
pub async fn seed(url: &str, images: &[&Fixture]) {
    let api = lib_client(url);
    let opts = quiet_opts("http://127.0.0.1:9");
    for f in images {
        tritonadm::import::import_image(&api, &f.manifest, &f.file, &opts)
            .await
            .unwrap();
    }
}
