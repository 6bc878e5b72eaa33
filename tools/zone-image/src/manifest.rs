//! Stage 6: the IMGAPI manifest (v2) of a built image, and the reading of
//! origin manifests it inherits from. Both are IMGAPI's own manifest type,
//! [`imgapi_api::Image`].

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Deref;
use std::path::{Path, PathBuf};

use chrono::SubsecRound as _;
pub use imgapi_api::{Compression, Image, ImageFile, ImageRequirements, ImageState};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::definition::ImageDef;
use crate::error::{Error, IoContext, Result};

/// Core images are owned by the "admin" placeholder account.
pub const OWNER: Uuid = Uuid::nil();

/// The SDC version key imgadm uses in `requirements.min_platform`.
const MIN_PLATFORM_SDC: &str = "7.0";

/// The image file suffix eng and imgadm use for each compression.
const SUFFIXES: [(Compression, &str); 4] = [
    (Compression::Gzip, ".zfs.gz"),
    (Compression::Bzip2, ".zfs.bz2"),
    (Compression::Xz, ".zfs.xz"),
    (Compression::None, ".zfs"),
];

/// Top-level key order of the manifests this pipeline writes (eng's);
/// keys not listed follow in the API type's order.
const KEY_ORDER: &[&str] = &[
    "v",
    "uuid",
    "owner",
    "name",
    "version",
    "state",
    "disabled",
    "public",
    "published_at",
    "type",
    "os",
    "files",
    "description",
    "homepage",
    "requirements",
    "users",
    "billing_tags",
    "traits",
    "generate_passwords",
    "inherited_directories",
    "nic_driver",
    "disk_driver",
    "cpu_type",
    "image_size",
    "tags",
    "origin",
];

/// The file suffix for `c`; `None` for a compression this pipeline can't
/// unpack.
pub fn suffix(c: &Compression) -> Option<&'static str> {
    SUFFIXES.iter().find(|(k, _)| k == c).map(|(_, s)| *s)
}

/// Every compression this pipeline unpacks, with its file suffix.
pub fn suffixes() -> impl Iterator<Item = (&'static Compression, &'static str)> {
    SUFFIXES.iter().map(|(c, s)| (c, *s))
}

/// An image manifest read from a file, a pool or an IMGAPI server, with
/// where it came from. Derefs to the manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub image: Image,
    /// Where it came from, for error messages (a path or a URL).
    pub source: PathBuf,
}

impl Deref for Manifest {
    type Target = Image;

    fn deref(&self) -> &Image {
        &self.image
    }
}

impl Manifest {
    /// Parse JSON text; an error names the key that is wrong.
    pub fn parse(source: impl Into<PathBuf>, text: &str) -> Result<Manifest> {
        let source = source.into();
        let mut de = serde_json::Deserializer::from_str(text);
        let image = serde_path_to_error::deserialize(&mut de).map_err(|e| invalid(&source, e))?;
        de.end()
            .map_err(|e| Error::input(&source, "(document)", format!("expected JSON: {e}")))?;
        Manifest::new(source, image)
    }

    /// [`Manifest::parse`] for a document already read as JSON.
    pub fn from_value(source: impl Into<PathBuf>, value: Value) -> Result<Manifest> {
        let source = source.into();
        let image = serde_path_to_error::deserialize(value).map_err(|e| invalid(&source, e))?;
        Manifest::new(source, image)
    }

    /// Check the fields this pipeline relies on beyond their types.
    pub fn new(source: impl Into<PathBuf>, image: Image) -> Result<Manifest> {
        let source = source.into();
        for (key, value) in [("name", &image.name), ("version", &image.version)] {
            if value.is_empty() {
                return Err(Error::input(
                    &source,
                    key,
                    "expected a non-empty string, got \"\"",
                ));
            }
        }
        Ok(Manifest { image, source })
    }

    /// `files[0]`, checked, its sha1 in lower case. A manifest that names
    /// no file can't be installed, so asking for it is an input error.
    pub fn file(&self) -> Result<ImageFile> {
        let err = |key: &str, message: String| Error::input(&self.source, key, message);
        let Some(f) = self.files.first() else {
            return Err(err(
                "files",
                "expected one image file entry, the manifest has none".into(),
            ));
        };
        if !imgapi_api::is_sha1_hex(&f.sha1) {
            return Err(err(
                "files[0].sha1",
                format!("expected 40 hex digits, got {:?}", f.sha1),
            ));
        }
        if suffix(&f.compression).is_none() {
            return Err(err(
                "files[0].compression",
                format!(
                    "unsupported compression '{}' (expected gzip, bzip2, xz or none)",
                    f.compression
                ),
            ));
        }
        Ok(ImageFile {
            sha1: f.sha1.to_ascii_lowercase(),
            ..f.clone()
        })
    }

    /// `name@version`, as /etc/motd shows the origin.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

fn invalid(source: &Path, e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let key = match e.path().to_string() {
        // "." is the top level, "?" before any key was read.
        p if p == "." || p == "?" => "(document)".to_string(),
        p => p,
    };
    let inner = e.into_inner();
    let message = if inner.is_syntax() || inner.is_eof() {
        format!("expected JSON: {inner}")
    } else {
        inner.to_string()
    };
    Error::input(source, key, message)
}

/// What the new image's manifest is made from.
pub struct NewManifest<'a> {
    pub def: &'a ImageDef,
    /// The stamp, already with `-dev` for dev images.
    pub version: &'a str,
    pub dev: bool,
    pub origin: &'a Manifest,
    pub sha1: &'a str,
    pub size: u64,
    pub published_at: chrono::DateTime<chrono::Utc>,
    /// `requirements.min_platform`; `None` leaves it out.
    pub min_platform: Option<BTreeMap<String, String>>,
}

/// The new image's manifest: a fresh uuid, and what imgadm passes down
/// from the origin unless the definition sets it.
pub fn new_image(m: &NewManifest<'_>) -> Image {
    let own = &m.def.manifest;
    let origin = &m.origin.image;
    let mut requirements = own
        .requirements
        .clone()
        .or_else(|| origin.requirements.clone())
        .unwrap_or_default();
    requirements.min_platform = m.min_platform.as_ref().map(|mp| {
        mp.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    });
    let mut tags = own.tags.clone().unwrap_or_default();
    tags.insert("smartdc_service".into(), Value::Bool(true));
    if m.dev {
        tags.insert("dev_build".into(), Value::Bool(true));
    } else {
        tags.remove("dev_build");
    }
    Image {
        v: 2,
        uuid: Uuid::new_v4(),
        owner: OWNER,
        name: m.def.name.clone(),
        version: m.version.to_string(),
        description: Some(m.def.description.clone()),
        homepage: own.homepage.clone(),
        eula: None,
        icon: None,
        state: ImageState::Active,
        error: None,
        disabled: false,
        public: true,
        // IMGAPI's timestamps have milliseconds (JavaScript's Date).
        published_at: Some(m.published_at.trunc_subsecs(3)),
        image_type: origin.image_type.clone(),
        os: origin.os.clone(),
        origin: Some(origin.uuid),
        files: vec![ImageFile {
            sha1: m.sha1.to_string(),
            size: m.size,
            compression: Compression::Gzip,
            dataset_guid: None,
            extra: Map::new(),
        }],
        acl: None,
        requirements: (requirements != ImageRequirements::default()).then_some(requirements),
        users: own.users.clone().or_else(|| origin.users.clone()),
        billing_tags: own
            .billing_tags
            .clone()
            .or_else(|| origin.billing_tags.clone()),
        traits: own.traits.clone().or_else(|| origin.traits.clone()),
        tags: Some(tags),
        generate_passwords: own.generate_passwords.or(origin.generate_passwords),
        inherited_directories: own
            .inherited_directories
            .clone()
            .or_else(|| origin.inherited_directories.clone()),
        nic_driver: own.nic_driver.clone().or_else(|| origin.nic_driver.clone()),
        disk_driver: own
            .disk_driver
            .clone()
            .or_else(|| origin.disk_driver.clone()),
        cpu_type: own.cpu_type.clone().or_else(|| origin.cpu_type.clone()),
        image_size: own.image_size.or(origin.image_size),
        channels: None,
        extra: Map::new(),
    }
}

/// [`new_image`] as the document [`write_json_atomic`] writes.
pub fn build(m: &NewManifest<'_>) -> Value {
    document(&new_image(m))
}

/// A manifest as eng writes it: [`KEY_ORDER`], and `published_at` always
/// with milliseconds (JavaScript's `toISOString`, which chrono leaves out
/// at whole seconds).
pub fn document(image: &Image) -> Value {
    let mut fields = match serde_json::to_value(image) {
        Ok(Value::Object(fields)) => fields,
        // An Image is a struct with string-keyed maps only.
        _ => unreachable!("an Image serializes to a JSON object"),
    };
    if let Some(t) = image.published_at {
        fields.insert(
            "published_at".into(),
            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
    }
    let mut out = Map::new();
    for key in KEY_ORDER {
        if let Some(v) = fields.remove(*key) {
            out.insert((*key).to_string(), v);
        }
    }
    out.extend(fields);
    Value::Object(out)
}

/// `requirements.min_platform`: this platform on illumos (as imgadm
/// create does), else the definition's, else none (with a warning).
pub fn min_platform(def: &ImageDef) -> (Option<BTreeMap<String, String>>, Option<String>) {
    if cfg!(target_os = "illumos")
        && let Some(stamp) = illumos_platform()
    {
        return (
            Some(BTreeMap::from([(MIN_PLATFORM_SDC.to_string(), stamp)])),
            None,
        );
    }
    match &def.manifest.min_platform {
        Some(mp) if !mp.is_empty() => (Some(mp.clone()), None),
        _ => (
            None,
            Some(format!(
                "{}: manifest.min_platform is not set and this host is not illumos; \
                 the manifest has no requirements.min_platform",
                def.file.display()
            )),
        ),
    }
}

/// The platform stamp from `uname -v` ("joyent_20240101T000000Z").
fn illumos_platform() -> Option<String> {
    let out = std::process::Command::new("uname")
        .arg("-v")
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stamp = v.rsplit('_').next()?.to_string();
    (stamp.len() == 16 && stamp.ends_with('Z')).then_some(stamp)
}

/// Write JSON to `path` through a temp file in the same directory, so a
/// reader never sees half a manifest.
pub fn write_json_atomic(path: &Path, value: &Value) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".manifest-")
        .tempfile_in(dir)
        .io_context(|| format!("creating a temp file in {}", dir.display()))?;
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Command(format!("serializing {}: {e}", path.display())))?;
    text.push('\n');
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .io_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .io_context(|| format!("renaming into {}", path.display()))?;
    // tempfile creates 0600; a manifest is for everyone to read.
    set_mode(path, 0o644)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .io_context(|| format!("chmod {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn origin(text: &str) -> Manifest {
        Manifest::parse("o.imgmanifest", text).unwrap()
    }

    const ORIGIN: &str = r#"{
        "v": 2, "uuid": "41bd4100-eb86-409a-85b0-e649aadf6f62", "name": "triton-origin",
        "owner": "00000000-0000-0000-0000-000000000000",
        "version": "1.0", "type": "zone-dataset", "os": "smartos",
        "requirements": {"min_platform": {"7.0": "20100101T000000Z"}, "brand": "joyent-minimal"},
        "users": [{"name": "root"}], "billing_tags": ["x"], "secret": "not inherited",
        "files": [{"sha1": "97F20B32C2016782257176FB58A35E5044F05840", "size": 5, "compression": "gzip"}]
    }"#;

    /// [`ORIGIN`] with `key` set to `value` (`null` removes it).
    fn origin_with(key: &str, value: Value) -> String {
        let mut v: Value = serde_json::from_str(ORIGIN).unwrap();
        match value {
            Value::Null => v.as_object_mut().unwrap().remove(key),
            value => v.as_object_mut().unwrap().insert(key.into(), value),
        };
        v.to_string()
    }

    #[test]
    fn file_errors_name_the_key() {
        let no_files = origin(&origin_with("files", json!([])));
        let e = no_files.file().unwrap_err().to_string();
        assert!(e.starts_with("o.imgmanifest: files: "), "{e}");
        let lz4 = origin(&origin_with(
            "files",
            json!([{"sha1": "97f20b32c2016782257176fb58a35e5044f05840", "size": 1, "compression": "lz4"}]),
        ));
        let e = lz4.file().unwrap_err().to_string();
        assert!(
            e.contains("files[0].compression: unsupported compression 'lz4'"),
            "{e}"
        );
        let f = origin(ORIGIN).file().unwrap();
        assert_eq!((f.size, f.compression), (5, Compression::Gzip));
        assert_eq!(f.sha1, "97f20b32c2016782257176fb58a35e5044f05840");
    }

    #[test]
    fn parse_errors_name_the_key() {
        let cases = [
            (
                origin_with("files", json!([{"size": 1}])),
                "files[0]: missing field `sha1`",
            ),
            (
                origin_with("os", Value::Null),
                "(document): missing field `os`",
            ),
            (origin_with("uuid", json!("nope")), "uuid: "),
            (
                origin_with("name", json!("")),
                "name: expected a non-empty string",
            ),
            (origin_with("size", json!(1)), ""),
            ("{".into(), "(document): expected JSON"),
            (format!("{ORIGIN} x"), "(document): expected JSON"),
        ];
        for (text, want) in cases {
            let r = Manifest::parse("o.imgmanifest", &text);
            if want.is_empty() {
                assert!(r.is_ok(), "unknown fields are kept: {r:?}");
                continue;
            }
            let e = r.unwrap_err();
            assert!(e.is_input(), "{e}");
            let e = e.to_string();
            assert!(e.starts_with(&format!("o.imgmanifest: {want}")), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn origin_manifests_round_trip() {
        let m = origin(ORIGIN);
        let back = serde_json::to_value(&m.image).unwrap();
        assert_eq!(back["secret"], "not inherited");
        assert_eq!(back["requirements"]["brand"], "joyent-minimal");
        let again = Manifest::from_value("x", back).unwrap();
        assert_eq!(again.image, m.image);
    }

    #[test]
    fn inherits_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("images/x");
        std::fs::create_dir_all(&img).unwrap();
        let file = img.join("image.toml");
        let def = crate::definition::parse(
            dir.path(),
            &img,
            &file,
            r#"name = "x"
description = "d"
kind = "zone"
origin = "41bd4100-eb86-409a-85b0-e649aadf6f62"
os = "smartos"
[manifest]
users = [{ name = "admin" }]
tags = { a = "b" }
"#,
        )
        .unwrap();
        let o = origin(ORIGIN);
        let v = build(&NewManifest {
            def: &def,
            version: "master-20260101T000000Z-gabc1234-dev",
            dev: true,
            origin: &o,
            sha1: "97f20b32c2016782257176fb58a35e5044f05840",
            size: 42,
            published_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            min_platform: None,
        });
        assert_eq!(v["users"], json!([{"name": "admin"}]));
        assert_eq!(v["billing_tags"], json!(["x"]));
        assert_eq!(v["requirements"], json!({"brand": "joyent-minimal"}));
        assert_eq!(
            v["tags"],
            json!({"a": "b", "smartdc_service": true, "dev_build": true})
        );
        assert_eq!(v["origin"], json!("41bd4100-eb86-409a-85b0-e649aadf6f62"));
        assert_eq!(v["published_at"], json!("1970-01-01T00:00:00.000Z"));
        assert!(v.get("secret").is_none());
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        assert_eq!(&keys[..5], ["v", "uuid", "owner", "name", "version"]);
    }
}
