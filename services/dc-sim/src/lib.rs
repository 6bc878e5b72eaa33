//! `dc-sim`: a simulated Triton headnode. SAPI, VMAPI, NAPI, PAPI and CNAPI
//! on their `apis/*-api` traits, each on its own port, plus the DC's IMGAPI
//! (`imgapi-server`) and an admin API for fault injection. State lives in
//! one JSON document under `--dir` and survives restarts; a fresh
//! directory is seeded like a new DC (`seed.json`).
//!
//! Layout by concern: `state`/`store`/`seed` (what is known and how it is
//! kept), `jobs` (VMAPI's workflow jobs), `faults` + `admin` (fault
//! injection), one module per simulated service.

pub mod admin;
pub mod cnapi;
pub mod faults;
pub mod jobs;
pub mod napi;
pub mod papi;
pub mod sapi;
pub mod seed;
pub mod state;
pub mod store;
pub mod vmapi;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dropshot::{ApiDescription, ConfigDropshot, RequestContext};
use restify_error::RestError;
use restify_error::RestServer;
use tokio::sync::{Mutex, watch};

use crate::faults::Faults;
use crate::state::State;
use crate::store::{Store, StoreError};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The bunyan `name` of every record dc-sim logs.
pub const LOG_NAME: &str = "dc-sim";

/// The headnode config dc-sim writes into `--dir`, in `/usbkey/config`
/// format.
pub const USBKEY_CONFIG: &str = "usbkey-config";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Seed(#[from] seed::SeedError),
    #[error("building the {service} API description: {message}")]
    Api {
        service: &'static str,
        message: String,
    },
    #[error("{service}: listening on {addr}: {message}")]
    Listen {
        service: &'static str,
        addr: SocketAddr,
        message: String,
    },
    #[error("imgapi: {0}")]
    Imgapi(#[from] imgapi_server::StartError),
    #[error("--base-port {0}: the seven ports from it must fit below 65536")]
    BasePort(u16),
}

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub listen_ip: IpAddr,
    /// SAPI listens here, VMAPI on the next port, then NAPI, PAPI, CNAPI,
    /// IMGAPI and the admin API; 0 gives every one an ephemeral port.
    pub base_port: u16,
    /// How long a job stays `queued`, then `running`.
    pub job_delay: Duration,
    pub log_level: slog::Level,
}

impl Options {
    pub fn new(dir: &Path) -> Options {
        Options {
            dir: dir.to_path_buf(),
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            base_port: 0,
            job_delay: Duration::from_millis(200),
            log_level: slog::Level::Info,
        }
    }
}

/// Where each API answers.
#[derive(Debug, Clone)]
pub struct Urls {
    pub sapi: String,
    pub vmapi: String,
    pub napi: String,
    pub papi: String,
    pub cnapi: String,
    pub imgapi: String,
    pub admin: String,
}

impl Urls {
    /// (name, URL) in the order dc-sim prints them.
    pub fn all(&self) -> [(&'static str, &str); 7] {
        [
            ("sapi", &self.sapi),
            ("vmapi", &self.vmapi),
            ("napi", &self.napi),
            ("papi", &self.papi),
            ("cnapi", &self.cnapi),
            ("imgapi", &self.imgapi),
            ("admin", &self.admin),
        ]
    }
}

/// The context every simulated service shares.
pub struct Sim {
    state: Mutex<State>,
    store: Store,
    pub faults: Faults,
    job_delay: Duration,
    /// Bumped on every job change; `GET /jobs/:uuid/wait` watches it.
    jobs_changed: watch::Sender<u64>,
    urls: OnceLock<Urls>,
    /// How provision jobs ask the DC's IMGAPI about images: over HTTP, as
    /// VMAPI does. (SAPI reaches VMAPI in-process, through the same fault
    /// gate as VMAPI's own endpoints.)
    http: reqwest::Client,
    pub log: slog::Logger,
}

impl Sim {
    /// Read the state (under its lock, without copying it).
    pub async fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&*self.state.lock().await)
    }

    /// Change the state: `f` works on a copy, which is saved to disk and
    /// only then becomes the state, so memory never gets ahead of the
    /// disk and a refused change leaves nothing behind.
    pub async fn write<R>(
        &self,
        f: impl FnOnce(&mut State) -> Result<R, RestError>,
    ) -> Result<R, RestError> {
        let mut guard = self.state.lock().await;
        let mut next = guard.clone();
        let out = f(&mut next)?;
        self.store
            .save(&next)
            .map_err(|e| RestError::internal(e.to_string()))?;
        *guard = next;
        Ok(out)
    }

    pub fn urls(&self) -> Result<&Urls, RestError> {
        self.urls
            .get()
            .ok_or_else(|| RestError::from_code("ServiceUnavailableError", "dc-sim is starting"))
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn job_delay(&self) -> Duration {
        self.job_delay
    }

    fn jobs_changed(&self) {
        self.jobs_changed.send_modify(|n| *n += 1);
    }

    /// The fault-injection gate every simulated endpoint passes first.
    pub async fn gate<C>(&self, service: &str, rqctx: &RequestContext<C>) -> Result<(), RestError>
    where
        C: dropshot::ServerContext,
    {
        let req = &rqctx.request;
        self.faults
            .check(service, req.method().as_str(), req.uri().path())
            .await
    }
}

/// A running simulator.
pub struct DcSim {
    pub sim: Arc<Sim>,
    pub urls: Urls,
    pub config_path: PathBuf,
    servers: Vec<(&'static str, RestServer<Arc<Sim>>)>,
    imgapi: imgapi_server::Server,
}

impl DcSim {
    /// Run until a server stops (they only stop on error).
    pub async fn wait(self) -> Result<(), String> {
        use futures::FutureExt as _;
        let mut all: Vec<_> = self
            .servers
            .into_iter()
            .map(|(name, s)| {
                s.map(move |r| r.map_err(|e| format!("{name}: {e}")))
                    .boxed()
            })
            .collect();
        all.push(
            self.imgapi
                .map(|r| r.map_err(|e| format!("imgapi: {e}")))
                .boxed(),
        );
        futures::future::select_all(all).await.0
    }

    /// Stop every server (tests restart a simulator on the same dir).
    pub async fn close(self) -> Result<(), String> {
        for (name, s) in self.servers {
            s.close().await.map_err(|e| format!("{name}: {e}"))?;
        }
        self.imgapi
            .close()
            .await
            .map_err(|e| format!("imgapi: {e}"))
    }
}

/// A logger writing bunyan JSON lines to stderr, like Triton's services.
pub fn logger(level: slog::Level) -> slog::Logger {
    bunyan_log::stderr_logger(LOG_NAME, level)
}

fn port(opts: &Options, offset: u16) -> Result<SocketAddr, StartError> {
    let p = if opts.base_port == 0 {
        0
    } else {
        opts.base_port
            .checked_add(offset)
            .ok_or(StartError::BasePort(opts.base_port))?
    };
    Ok(SocketAddr::new(opts.listen_ip, p))
}

fn serve(
    service: &'static str,
    api: Result<ApiDescription<Arc<Sim>>, String>,
    sim: &Arc<Sim>,
    addr: SocketAddr,
) -> Result<RestServer<Arc<Sim>>, StartError> {
    let api = api.map_err(|message| StartError::Api { service, message })?;
    let config = ConfigDropshot {
        bind_address: addr,
        default_request_body_max_bytes: 1024 * 1024,
        ..Default::default()
    };
    let log = sim.log.new(slog::o!("service" => service));
    // Dropshot's own errors (unknown route, 405, bad body) restify-shaped too.
    restify_error::start_server(api, sim.clone(), log, config, None).map_err(|e| {
        StartError::Listen {
            service,
            addr,
            message: e.to_string(),
        }
    })
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Open (seeding on first start) the state under `opts.dir`, start every
/// server and write the headnode config. Runs on the current tokio runtime.
pub async fn start(opts: Options, log: slog::Logger) -> Result<DcSim, StartError> {
    // Every port is known good before anything is written.
    port(&opts, 6)?;
    let (store, loaded) = Store::open::<State>(&opts.dir)?;
    let state = match loaded {
        Some(s) => s,
        None => {
            let s = seed::seed()?;
            store.save(&s)?;
            slog::info!(log, "seeded a fresh DC"; "dir" => %opts.dir.display());
            s
        }
    };

    let mut img_opts = imgapi_server::Options::new(&opts.dir.join("imgapi"), port(&opts, 5)?);
    img_opts.log_level = dropshot::ConfigLoggingLevel::Warn;
    let imgapi = imgapi_server::start(img_opts)?;

    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| StartError::Api {
            service: "http client",
            message: e.to_string(),
        })?;
    let sim = Arc::new(Sim {
        state: Mutex::new(state),
        store,
        faults: Faults::default(),
        job_delay: opts.job_delay,
        jobs_changed: watch::channel(0).0,
        urls: OnceLock::new(),
        http,
        log: log.clone(),
    });

    let servers = vec![
        ("sapi", serve("sapi", sapi::api(), &sim, port(&opts, 0)?)?),
        (
            "vmapi",
            serve("vmapi", vmapi::api(), &sim, port(&opts, 1)?)?,
        ),
        ("napi", serve("napi", napi::api(), &sim, port(&opts, 2)?)?),
        ("papi", serve("papi", papi::api(), &sim, port(&opts, 3)?)?),
        (
            "cnapi",
            serve("cnapi", cnapi::api(), &sim, port(&opts, 4)?)?,
        ),
        (
            "admin",
            serve("admin", admin::api(), &sim, port(&opts, 6)?)?,
        ),
    ];
    let addr_of = |name: &str| {
        servers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| url(s.local_addr()))
            .unwrap_or_default()
    };
    let urls = Urls {
        sapi: addr_of("sapi"),
        vmapi: addr_of("vmapi"),
        napi: addr_of("napi"),
        papi: addr_of("papi"),
        cnapi: addr_of("cnapi"),
        imgapi: url(imgapi.local_addr()),
        admin: addr_of("admin"),
    };
    let _ = sim.urls.set(urls.clone());

    let config_path = opts.dir.join(USBKEY_CONFIG);
    let text = sim
        .read(|s| usbkey_config(s, &servers, imgapi.local_addr()))
        .await;
    store::write_atomic(&config_path, text.as_bytes())?;

    jobs::resume(&sim).await;

    Ok(DcSim {
        sim,
        urls,
        config_path,
        servers,
        imgapi,
    })
}

/// `/usbkey/config` lines: the DC's names, the headnode and admin user,
/// and where each API answers (`<svc>_domain=<ip>:<port>`).
fn usbkey_config(
    s: &State,
    servers: &[(&'static str, RestServer<Arc<Sim>>)],
    imgapi: SocketAddr,
) -> String {
    let mut out = String::from("# dc-sim headnode config (/usbkey/config format)\n");
    out += &format!("datacenter_name={}\n", s.datacenter_name);
    out += &format!("dns_domain={}\n", s.dns_domain);
    out += &format!("server_uuid={}\n", s.headnode_uuid);
    out += &format!("admin_uuid={}\n", s.admin_uuid);
    out += &format!("ufds_admin_uuid={}\n", s.admin_uuid);
    for (name, server) in servers.iter().filter(|(n, _)| *n != "admin") {
        out += &format!("{name}_domain={}\n", server.local_addr());
    }
    out += &format!("imgapi_domain={imgapi}\n");
    out
}
