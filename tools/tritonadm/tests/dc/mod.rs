//! Shared fixtures for the datacenter commands: a `dc-sim` (in-process,
//! from its library, on loopback ports), an `imgapi-server` as the updates
//! server, the tritonadm binary pointed at the simulator's headnode config,
//! and `triton-api` images built once per test binary by
//! `cargo xtask image build triton-api` on zfs-fuse, origins included.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use serde_json::Value;

#[path = "../../../zone-image/tests/common/zfs_fixture.rs"]
pub mod zfs_fixture;

pub struct Dc {
    pub sim: dc_sim::DcSim,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Dc {
    pub async fn start() -> Dc {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = dc_sim::Options::new(dir.path());
        opts.job_delay = std::time::Duration::from_millis(20);
        opts.log_level = slog::Level::Warning;
        let log = dc_sim::logger(opts.log_level);
        let sim = dc_sim::start(opts, log).await.expect("dc-sim starts");
        let config = sim.config_path.clone();
        Dc {
            sim,
            config,
            _dir: dir,
        }
    }

    /// `tritonadm --headnode-config <dc-sim>/usbkey-config ARGS`, with no
    /// API URLs from the environment.
    pub async fn tritonadm(&self, args: &[&str]) -> Output {
        let config = self.config.to_str().unwrap();
        tokio::process::Command::new(env!("CARGO_BIN_EXE_tritonadm"))
            .args(["--headnode-config", config])
            .args(args)
            .env_remove("TRITONADM_HEADNODE_CONFIG")
            .env_remove("TRITONADM_KEY")
            .env_remove("TRITONADM_USER")
            .env_remove("UPDATES_URL")
            .envs(
                ["SAPI", "VMAPI", "NAPI", "PAPI", "CNAPI", "IMGAPI"]
                    .map(|a| (format!("{a}_URL"), "")),
            )
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("running tritonadm")
    }

    pub fn sapi(&self) -> sapi_client::Client {
        sapi_client::Client::new(&self.sim.urls.sapi)
    }

    pub fn vmapi(&self) -> vmapi_client::Client {
        vmapi_client::Client::new(&self.sim.urls.vmapi)
    }

    pub fn imgapi(&self) -> tritonadm::imgapi::Imgapi {
        tritonadm::imgapi::Imgapi::connect(&self.sim.urls.imgapi, &Default::default()).unwrap()
    }

    /// The `triton-api` services in SAPI.
    pub async fn services_named(&self, name: &str) -> Vec<sapi_api::Service> {
        self.sapi()
            .list_services()
            .name(name)
            .send()
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn instances_of(&self, service: uuid::Uuid) -> Vec<sapi_api::Instance> {
        self.sapi()
            .list_instances()
            .service_uuid(service)
            .send()
            .await
            .unwrap()
            .into_inner()
    }

    /// VMs (any state) with this alias.
    pub async fn vms_aliased(&self, alias: &str) -> Vec<vmapi_api::Vm> {
        self.vmapi()
            .list_vms()
            .alias(alias)
            .send()
            .await
            .unwrap()
            .into_inner()
    }

    pub fn fault(&self, f: Value) {
        let fault: dc_sim::faults::Fault = serde_json::from_value(f).unwrap();
        self.sim.sim.faults.add(fault).unwrap();
    }

    pub fn fail_next_provision(&self, message: &str) {
        self.sim
            .sim
            .faults
            .add_provision(dc_sim::faults::ProvisionFault {
                count: 1,
                message: message.into(),
            })
            .unwrap();
    }

    pub async fn close(self) {
        self.sim.close().await.unwrap();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One image as `cargo xtask image build` left it in bits/.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub uuid: uuid::Uuid,
    pub version: String,
    pub manifest: PathBuf,
    pub file: PathBuf,
}

/// The origin chain (base → triton-origin) and two successive builds of
/// `triton-api` on it.
pub struct Built {
    pub chain: zfs_fixture::Chain,
    pub first: BuiltImage,
    pub second: BuiltImage,
}

/// Build once per test binary: the xtask run is the slow part.
pub fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let _serial = zfs_fixture::serial();
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Statics are never dropped: clear what earlier runs left, but
        // not the dirs of test processes still running (nextest runs each
        // test in a process of its own, several at once).
        for old in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
            let name = old.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("tritonadm-dc-") else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(old.path());
            }
        }
        let dir = tmp.join(format!("tritonadm-dc-{}", std::process::id()));
        let chain = zfs_fixture::make_chain(&dir.join("origins"));
        let pool = zfs_fixture::TestPool::new("ta");
        let first = xtask_build(&pool, &chain.dir, &dir.join("bits1"));
        let second = xtask_build(&pool, &chain.dir, &dir.join("bits2"));
        assert_ne!(first.uuid, second.uuid, "two builds, two images");
        Built {
            chain,
            first,
            second,
        }
    })
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `cargo xtask image build triton-api` on the test pool.
fn xtask_build(pool: &zfs_fixture::TestPool, origins: &Path, bits: &Path) -> BuiltImage {
    let out = std::process::Command::new(env!("CARGO"))
        .current_dir(workspace())
        .args(["xtask", "image", "build", "triton-api", "--force"])
        .args(["--cargo-profile", "dev", "--zpool", &pool.name])
        .arg("--origin-dir")
        .arg(origins)
        .arg("--bits-dir")
        .arg(bits)
        .env_remove("XTASK_WORKSPACE")
        .env_remove("ZONE_IMAGE_ZPOOL")
        .env_remove("ZONE_IMAGE_TEST_PAUSE_AT")
        .env_remove("TIMESTAMP")
        .output()
        .expect("running cargo xtask");
    assert!(
        out.status.success(),
        "cargo xtask image build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = bits.join("triton-api");
    let find = |suffix: &str| {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(suffix))
            .unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
    };
    let manifest = find(".imgmanifest");
    let file = find(".zfs.gz");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m["origin"], zfs_fixture::TRITON_ORIGIN);
    BuiltImage {
        uuid: m["uuid"].as_str().unwrap().parse().unwrap(),
        version: m["version"].as_str().unwrap().to_string(),
        manifest,
        file,
    }
}

/// An updates server (imgapi-server) in its own directory.
pub struct Updates {
    pub url: String,
    pub dir: PathBuf,
    server: imgapi_server::Server,
    _dir: Option<tempfile::TempDir>,
}

impl Updates {
    pub fn start() -> Updates {
        let dir = tempfile::tempdir().unwrap();
        let mut u = Updates::start_in(dir.path());
        u._dir = Some(dir);
        u
    }

    /// On an existing directory (a restart keeps what was published).
    pub fn start_in(dir: &Path) -> Updates {
        let opts = imgapi_server::Options::new(dir, "127.0.0.1:0".parse().unwrap());
        let server = imgapi_server::start(opts).expect("imgapi-server starts");
        Updates {
            url: format!("http://{}", server.local_addr()),
            dir: dir.to_path_buf(),
            server,
            _dir: None,
        }
    }

    /// Publish into the `dev` channel (the sim's sdc update_channel), as
    /// `cargo xtask image publish` does: import, add the file, activate.
    pub async fn publish(&self, manifest: &Path, file: &Path) {
        let api = tritonadm::imgapi::Imgapi::connect(&self.url, &Default::default()).unwrap();
        let opts = tritonadm::import::ImportOptions {
            // Origins are published explicitly, first; nothing is fetched.
            source: "http://127.0.0.1:9".into(),
            channel: Some("dev".into()),
            ..Default::default()
        };
        tritonadm::import::import_image(&api, manifest, file, &opts)
            .await
            .unwrap_or_else(|e| panic!("publishing {}: {e}", manifest.display()));
    }

    /// The origin chain, then `image`.
    pub async fn publish_with_origins(&self, built: &Built, image: &BuiltImage) {
        for f in [&built.chain.base, &built.chain.origin] {
            self.publish(&f.manifest, &f.file).await;
        }
        self.publish(&image.manifest, &image.file).await;
    }

    /// Stop serving; returns the directory (kept while `self` owned it).
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        self.server.close().await.unwrap();
        self._dir
    }
}
