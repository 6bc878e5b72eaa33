//! Server state (store, images, channels) and request authentication.

use super::*;

/// The channels an updates server has, first is the default; `publish`
/// picks one of these from the branch (see `buildstamp::channel_for_branch`).
pub const DEFAULT_CHANNELS: &[(&str, &str)] = &[
    ("dev", "all development builds"),
    (
        "staging",
        "builds for testing in staging in prep for production release",
    ),
    ("release", "release gold bits"),
    ("experimental", "feature branch builds"),
];

pub struct ServerContext {
    pub(crate) store: Store,
    pub(crate) images: Mutex<BTreeMap<Uuid, Image>>,
    pub(crate) channels: Vec<Channel>,
    pub(crate) auth: Option<http_signature::KeyRing>,
    pub(crate) http: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("logger: {0}")]
    Logger(String),
    #[error("building the API description: {0}")]
    Api(String),
    #[error(transparent)]
    Serve(#[from] restify_error::StartError),
    #[error("HTTP client: {0}")]
    Http(String),
}

/// What the server serves and how.
pub struct Options {
    pub dir: PathBuf,
    pub listen: SocketAddr,
    pub auth: Option<http_signature::KeyRing>,
    pub tls: Option<ConfigTls>,
    pub log_level: ConfigLoggingLevel,
}

impl Options {
    pub fn new(dir: &Path, listen: SocketAddr) -> Options {
        Options {
            dir: dir.to_path_buf(),
            listen,
            auth: None,
            tls: None,
            log_level: ConfigLoggingLevel::Warn,
        }
    }
}

impl ServerContext {
    pub fn open(dir: &Path, auth: Option<http_signature::KeyRing>) -> Result<Self, StartError> {
        let (store, images) = Store::open(dir)?;
        let channels = DEFAULT_CHANNELS
            .iter()
            .enumerate()
            .map(|(i, (name, description))| Channel {
                name: name.to_string(),
                default: (i == 0).then_some(true),
                description: Some(description.to_string()),
            })
            .collect();
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(20))
            .build()
            .map_err(|e| StartError::Http(e.to_string()))?;
        Ok(ServerContext {
            store,
            images: Mutex::new(images),
            channels,
            auth,
            http,
        })
    }

    pub(crate) fn default_channel(&self) -> &str {
        self.channels
            .iter()
            .find(|c| c.default == Some(true))
            .map(|c| c.name.as_str())
            .unwrap_or("dev")
    }

    /// The channel a request names (or the default), if it exists.
    pub(crate) fn channel(&self, requested: Option<&str>) -> Result<String, ImgapiError> {
        let name = requested.unwrap_or(self.default_channel());
        if self.channels.iter().any(|c| c.name == name) {
            Ok(name.to_string())
        } else {
            Err(ImgapiError::validation(format!(
                "unknown channel \"{name}\"; this server has: {}",
                self.channels
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    pub(crate) fn authorize(
        &self,
        rqctx: &RequestContext<Arc<Self>>,
    ) -> Result<Option<String>, ImgapiError> {
        let Some(ring) = &self.auth else {
            return Ok(None);
        };
        let req = &rqctx.request;
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        ring.verify(req.method().as_str(), target, req.headers(), Utc::now())
            .map(|v| Some(v.user))
            .map_err(|e| ImgapiError::unauthorized(e.to_string()))
    }

    /// Persist `next`, then make it what `slot` holds: memory never gets
    /// ahead of the disk.
    pub(crate) fn replace(&self, slot: &mut Image, next: Image) -> Result<(), ImgapiError> {
        self.store.save(&next).map_err(internal)?;
        *slot = next;
        Ok(())
    }
}
