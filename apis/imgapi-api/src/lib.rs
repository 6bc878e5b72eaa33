//! The wire contract of IMGAPI, for the subset the toolchain uses: listing
//! and fetching images, the import path (AdminImportImage, AddImageFile,
//! ActivateImage), AdminImportRemoteImage, state changes and channels.
//!
//! It follows the Node.js sdc-imgapi (`shared/reference/imgapi-api.md`), not
//! what would be convenient in Dropshot: restify-style error bodies
//! (`{"code": ..., "message": ...}`), 200 (not 201) for creation, 204 for
//! deletion, and the `POST /images/:uuid?action=...` multiplexing. The
//! OpenAPI document in `openapi/imgapi.json` is generated from this trait.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Version of this API contract, as published in the OpenAPI document.
pub const API_VERSION: &str = "0.1.0";

/// The largest image file IMGAPI accepts (the docs' "never hit it" cap).
pub const MAX_FILE_SIZE: u64 = 20 * 1024 * 1024 * 1024;

/// The public updates server: where images come from when nothing else
/// names a source.
pub const DEFAULT_UPDATES_URL: &str = "https://updates.tritondatacenter.com";

// ---------------------------------------------------------------------------
// Manifest

// COORDINATOR NOTE (remove when done): for enums that must carry unknown values
// (`Other(String)`), use the shared `wire-enum` crate (apis/wire-enum, macro
// `wire_enum::wire_enum!`) that the SAPI/VMAPI helper created: say it once.
// Values a newer IMGAPI may add to these enums are kept as `Other(String)`
// (see `wire_enum`): one image with a new `type` must not make a whole
// listing unreadable.

wire_enum::wire_enum! {
    /// `state`: computed by the server from activation and `disabled`.
    #[derive(Default)]
    pub enum ImageState {
        Active = "active",
        #[default]
        Unactivated = "unactivated",
        Disabled = "disabled",
        Creating = "creating",
        Failed = "failed",
    }
}

impl ImageState {
    /// Activated at some point: active, or disabled after activation.
    pub fn is_activated(&self) -> bool {
        matches!(self, ImageState::Active | ImageState::Disabled)
    }
}

wire_enum::wire_enum! {
    /// `type`.
    pub enum ImageType {
        ZoneDataset = "zone-dataset",
        LxDataset = "lx-dataset",
        Zvol = "zvol",
        Docker = "docker",
        Lxd = "lxd",
        /// The documented value `other` (tools, installers); `Other(_)` is
        /// a value this contract does not know.
        OtherType = "other",
    }
}

wire_enum::wire_enum! {
    /// `os`.
    pub enum ImageOs {
        Smartos = "smartos",
        Linux = "linux",
        Windows = "windows",
        Bsd = "bsd",
        Illumos = "illumos",
        /// The documented value `other`; `Other(_)` is a value this
        /// contract does not know.
        OtherOs = "other",
    }
}

wire_enum::wire_enum! {
    /// `files[].compression`: what sdc-imgapi accepts today (its
    /// `VALID_FILE_COMPRESSIONS`; the reference's table predates `xz`).
    pub enum Compression {
        Bzip2 = "bzip2",
        Gzip = "gzip",
        Xz = "xz",
        None = "none",
    }
}

/// A client's read timeout from the environment variable `var` (seconds,
/// fractions allowed), else `default`: tritonadm and zone-image's origin
/// downloads take theirs so. The error says what was expected.
pub fn read_timeout_from_env(
    var: &str,
    default: std::time::Duration,
) -> Result<std::time::Duration, String> {
    match std::env::var(var) {
        Err(std::env::VarError::NotPresent) => Ok(default),
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(secs) if secs > 0.0 && secs.is_finite() => {
                Ok(std::time::Duration::from_secs_f64(secs))
            }
            _ => Err(format!("expected a number of seconds above 0, got {v:?}")),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// `Content-MD5` of a file as IMGAPI sends it with GetImageFile: the
/// base64 of the MD5 digest. Hash as the bytes stream, then compare
/// [`ContentMd5::finish`] with the header.
#[derive(Clone, Default)]
pub struct ContentMd5(md5::Md5);

impl ContentMd5 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        md5::Digest::update(&mut self.0, bytes);
    }

    /// The header value for the bytes seen.
    pub fn finish(self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(md5::Digest::finalize(self.0))
    }
}

/// The `Content-MD5` response header.
pub const CONTENT_MD5: &str = "content-md5";

/// Whether `s` has the form of `files[].sha1`: 40 hex digits.
pub fn is_sha1_hex(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// One entry of `files`: IMGAPI supports exactly one file per image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageFile {
    /// SHA-1 hex digest of the file content.
    pub sha1: String,
    /// Size in bytes.
    pub size: u64,
    pub compression: Compression,
    /// ZFS guid of the image's `@final` snapshot, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_guid: Option<String>,
    /// Fields this contract does not name (`stor`, `digest`, ...), kept as is.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `requirements`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImageRequirements {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ram: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ram: Option<u64>,
    /// Platform version by SDC version, e.g. `{"7.0": "20141030T081701Z"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_platform: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_platform: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootrom: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An image manifest (v2), as stored and returned by IMGAPI and as written
/// to `.imgmanifest` files. Fields this contract does not name are kept in
/// `extra` and written back, so nothing a newer IMGAPI adds is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Image {
    /// Manifest format version; 2 today.
    #[serde(default = "manifest_v")]
    pub v: u32,
    pub uuid: Uuid,
    pub owner: Uuid,
    pub name: String,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub homepage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eula: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<bool>,
    #[serde(default)]
    pub state: ImageState,
    /// Details of a failed creation; only with `state == "failed"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub public: bool,
    /// When the image was activated; set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_at: Option<DateTime<Utc>>,
    #[serde(rename = "type")]
    pub image_type: ImageType,
    pub os: ImageOs,
    /// The origin image of an incremental image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Uuid>,
    #[serde(default)]
    pub files: Vec<ImageFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<ImageRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_passwords: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_directories: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_driver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<u64>,
    /// Channels the image is in (servers that use channels only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn manifest_v() -> u32 {
    2
}

/// Body of CreateImage: a manifest without the server-assigned fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateImageBody {
    /// Defaults to the `account` query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Uuid>,
    pub name: String,
    pub version: String,
    #[serde(rename = "type")]
    pub image_type: ImageType,
    pub os: ImageOs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Uuid>,
    /// Any other mutable manifest field (description, requirements, tags, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Response of AdminImportRemoteImage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ImportRemoteJob {
    pub image_uuid: Uuid,
    /// The workflow job doing the import. Servers that import synchronously
    /// (like ours) still return one, so clients wait the same way.
    pub job_uuid: Uuid,
}

/// What `POST /images/:uuid?action=...` returns: the image for every action
/// but `import-remote`, which answers with a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ImageActionResponse {
    Image(Box<Image>),
    Job(ImportRemoteJob),
}

/// A channel of a server that uses channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Channel {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GET /ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PingResponse {
    /// "pong".
    pub ping: String,
    pub version: String,
    /// Always true: tells IMGAPI from the old Datasets API.
    pub imgapi: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The authenticated user, when the request was signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

// ---------------------------------------------------------------------------
// Parameters

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ImagePath {
    pub uuid: Uuid,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PingQuery {
    /// Simulate an error response with this restify code, e.g. "InternalError".
    pub error: Option<String>,
    /// Message of the simulated error; "pong" by default.
    pub message: Option<String>,
}

/// `state` filter of ListImages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateFilter {
    Active,
    Unactivated,
    Disabled,
    All,
}

/// ListImages filters. `tag.<key>=<value>` filters (ANDed) are also
/// accepted; they have dynamic names, which a typed query cannot declare,
/// so servers read them from the raw query string.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ListImagesQuery {
    /// Only images visible to this account (dc mode).
    pub account: Option<Uuid>,
    /// Channel to list; the server's default when absent, `*` for all.
    pub channel: Option<String>,
    pub owner: Option<Uuid>,
    /// `active` when absent.
    pub state: Option<StateFilter>,
    /// Exact name, or `~substring`.
    pub name: Option<String>,
    /// Exact version, or `~substring`.
    pub version: Option<String>,
    pub public: Option<bool>,
    pub os: Option<ImageOs>,
    /// An image type, or `!type` to exclude one.
    #[serde(rename = "type")]
    pub image_type: Option<String>,
    /// At most this many images (default and maximum 1000).
    pub limit: Option<u32>,
    /// Only images published at or after this image (UUID) or date.
    pub marker: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ChannelQuery {
    pub account: Option<Uuid>,
    pub channel: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct GetImageFileQuery {
    pub account: Option<Uuid>,
    pub channel: Option<String>,
    /// Index into `files`; only 0 exists.
    pub index: Option<u32>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct DeleteImageQuery {
    pub account: Option<Uuid>,
    /// Remove the image from this channel (the default channel when absent);
    /// it is deleted once it is in no channel.
    pub channel: Option<String>,
    /// Delete even when the image is in several channels.
    pub force_all_channels: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct AddImageFileQuery {
    pub compression: Compression,
    /// When given, the upload is refused unless the content has this SHA-1.
    pub sha1: Option<String>,
    /// When given, the upload is refused unless the content has this size.
    pub size: Option<u64>,
    pub dataset_guid: Option<String>,
    pub account: Option<Uuid>,
    pub channel: Option<String>,
    /// `local` or `manta` (operators only); servers may ignore it.
    pub storage: Option<String>,
}

/// The `action` of `POST /images/:uuid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ImageAction {
    /// AdminImportImage: the body is the manifest; keeps uuid and published_at.
    Import,
    /// AdminImportRemoteImage: fetch manifest and file from `source`.
    ImportRemote,
    /// ActivateImage: no body.
    Activate,
    /// DisableImage: no body.
    Disable,
    /// EnableImage: no body.
    Enable,
    /// UpdateImage: the body holds the mutable fields to change.
    Update,
    /// ChannelAddImage: the body is `{"channel": "<name>"}`.
    ChannelAdd,
}

impl ImageAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ImageAction::Import => "import",
            ImageAction::ImportRemote => "import-remote",
            ImageAction::Activate => "activate",
            ImageAction::Disable => "disable",
            ImageAction::Enable => "enable",
            ImageAction::Update => "update",
            ImageAction::ChannelAdd => "channel-add",
        }
    }
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub struct ImageActionQuery {
    pub action: ImageAction,
    /// The channel to find the image in (or, for imports, to put it in).
    pub channel: Option<String>,
    pub account: Option<Uuid>,
    /// import-remote: the source IMGAPI URL; it may carry `?channel=`.
    pub source: Option<String>,
    pub skip_owner_check: Option<bool>,
}

/// Body of ChannelAddImage.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct ChannelAddBody {
    pub channel: String,
}

mod file_check;
pub use file_check::{FileCheck, FileMismatch};

// ---------------------------------------------------------------------------
// The API and its errors: only with the `api` feature, since they need
// Dropshot (and its TLS stack), which the manifest types alone do not.

#[cfg(feature = "api")]
mod api;
#[cfg(feature = "api")]
pub use api::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_keeps_unknown_fields_and_wire_names() {
        let text = r#"{
            "v": 2, "uuid": "01b2c898-945f-11e1-a523-af1afbe22822",
            "owner": "352971aa-31ba-496c-9ade-a379feaecd52",
            "name": "smartos", "version": "1.6.3", "state": "active",
            "disabled": false, "public": true,
            "published_at": "2012-05-02T15:14:45.805Z",
            "type": "zone-dataset", "os": "smartos",
            "files": [{"sha1": "97f20b32c2016782257176fb58a35e5044f05840",
                       "size": 46271847, "compression": "bzip2", "stor": "local"}],
            "requirements": {"min_platform": {"7.0": "20141030T081701Z"}, "future": 1},
            "urn": "sdc:sdc:smartos:1.6.3"
        }"#;
        let image: Image = serde_json::from_str(text).unwrap();
        assert_eq!(image.image_type, ImageType::ZoneDataset);
        assert_eq!(image.files[0].compression, Compression::Bzip2);
        let back = serde_json::to_value(&image).unwrap();
        let orig: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
    }

    #[test]
    fn as_str_is_the_wire_name() {
        use ImageType as T;
        for t in [
            T::ZoneDataset,
            T::LxDataset,
            T::Zvol,
            T::Docker,
            T::Lxd,
            T::OtherType,
        ] {
            assert_eq!(serde_json::to_value(&t).unwrap(), t.as_str());
        }
        use ImageOs as O;
        for o in [
            O::Smartos,
            O::Linux,
            O::Windows,
            O::Bsd,
            O::Illumos,
            O::OtherOs,
        ] {
            assert_eq!(serde_json::to_value(&o).unwrap(), o.as_str());
        }
        assert_eq!(serde_json::to_value(Compression::Xz).unwrap(), "xz");
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let text = r#"{"uuid": "01b2c898-945f-11e1-a523-af1afbe22822",
            "owner": "352971aa-31ba-496c-9ade-a379feaecd52", "state": "archived",
            "name": "x", "version": "1", "type": "wasm-blob", "os": "plan9",
            "files": [{"sha1": "97f20b32c2016782257176fb58a35e5044f05840",
                       "size": 1, "compression": "zstd"}]}"#;
        let image: Image = serde_json::from_str(text).unwrap();
        assert_eq!(image.os, ImageOs::Other("plan9".into()));
        assert_eq!(image.image_type, ImageType::Other("wasm-blob".into()));
        assert_eq!(image.state, ImageState::Other("archived".into()));
        assert_eq!(
            image.files[0].compression,
            Compression::Other("zstd".into())
        );
        let back = serde_json::to_value(&image).unwrap();
        for (k, v) in [
            ("os", "plan9"),
            ("type", "wasm-blob"),
            ("state", "archived"),
        ] {
            assert_eq!(back[k], v);
        }
        assert_eq!(back["files"][0]["compression"], "zstd");
    }

    #[test]
    fn content_md5_is_base64_of_the_digest() {
        let mut h = ContentMd5::new();
        h.update(b"hello ");
        h.update(b"world");
        // `printf 'hello world' | openssl md5 -binary | base64`
        assert_eq!(h.finish(), "XrY7u+Ae7tCTyyK7j1rNww==");
    }
}
