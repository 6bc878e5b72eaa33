//! Stage 6: the IMGAPI manifest (v2) of a built image, and the reading of
//! origin manifests it inherits from.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::definition::ImageDef;
use crate::error::{Error, IoContext, Result};

/// Core images are owned by the "admin" placeholder account.
pub const OWNER: &str = "00000000-0000-0000-0000-000000000000";

/// The SDC version key imgadm uses in `requirements.min_platform`.
const MIN_PLATFORM_SDC: &str = "7.0";

/// Fields imgadm passes from an origin manifest to an image made on it.
const INHERITED: &[&str] = &[
    "type",
    "os",
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
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Bzip2,
    Xz,
    None,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::None => "none",
        }
    }

    /// The image file suffix eng and imgadm use for this compression.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip => ".zfs.gz",
            Compression::Bzip2 => ".zfs.bz2",
            Compression::Xz => ".zfs.xz",
            Compression::None => ".zfs",
        }
    }

    pub const ALL: [Compression; 4] = [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::None,
    ];
}

/// `files[0]` of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    pub sha1: String,
    pub size: u64,
    pub compression: Compression,
}

/// An image manifest read from a file, a pool or an IMGAPI server.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub uuid: Uuid,
    pub name: String,
    pub version: String,
    pub origin: Option<Uuid>,
    /// Where it came from, for error messages (a path or a URL).
    pub source: PathBuf,
    /// The whole document, for inheritance.
    pub raw: Map<String, Value>,
}

impl Manifest {
    /// Parse and check the fields this pipeline relies on.
    pub fn parse(source: impl Into<PathBuf>, text: &str) -> Result<Manifest> {
        let source = source.into();
        let err = |key: &str, message: String| Error::input(&source, key, message);
        let value: Value = serde_json::from_str(text)
            .map_err(|e| err("(document)", format!("expected JSON: {e}")))?;
        let Value::Object(raw) = value else {
            return Err(err("(document)", "expected a JSON object".into()));
        };
        let string = |key: &str| -> Result<String> {
            match raw.get(key) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(other) => Err(err(
                    key,
                    format!("expected a non-empty string, got {other}"),
                )),
                None => Err(err(key, "missing".into())),
            }
        };
        let uuid_of = |key: &str, s: &str| {
            Uuid::parse_str(s).map_err(|_| err(key, format!("expected a UUID, got '{s}'")))
        };
        let uuid = uuid_of("uuid", &string("uuid")?)?;
        let name = string("name")?;
        let version = string("version")?;
        let origin = match raw.get("origin") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(uuid_of("origin", s)?),
            Some(other) => {
                return Err(err(
                    "origin",
                    format!("expected a UUID string, got {other}"),
                ));
            }
        };
        Ok(Manifest {
            uuid,
            name,
            version,
            origin,
            source,
            raw,
        })
    }

    /// `files[0]`, checked. A manifest that names no file can't be
    /// installed, so asking for it is an input error.
    pub fn file(&self) -> Result<ImageFile> {
        let err = |key: &str, message: String| Error::input(&self.source, key, message);
        let f = match self.raw.get("files") {
            Some(Value::Array(files)) if !files.is_empty() => &files[0],
            Some(Value::Array(_)) | None => {
                return Err(err(
                    "files",
                    "expected one image file entry, the manifest has none".into(),
                ));
            }
            Some(other) => return Err(err("files", format!("expected an array, got {other}"))),
        };
        let sha1 = match f.get("sha1") {
            Some(Value::String(s)) if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                s.to_ascii_lowercase()
            }
            other => {
                return Err(err(
                    "files[0].sha1",
                    format!("expected 40 hex digits, got {}", show(other)),
                ));
            }
        };
        let size = match f.get("size").and_then(Value::as_u64) {
            Some(n) => n,
            None => {
                return Err(err(
                    "files[0].size",
                    format!("expected a byte count, got {}", show(f.get("size"))),
                ));
            }
        };
        let compression = match f.get("compression") {
            Some(Value::String(c)) => Compression::ALL
                .into_iter()
                .find(|k| k.as_str() == c)
                .ok_or_else(|| {
                    err(
                        "files[0].compression",
                        format!("unsupported compression '{c}' (expected gzip, bzip2, xz or none)"),
                    )
                })?,
            other => {
                return Err(err(
                    "files[0].compression",
                    format!("expected gzip, bzip2, xz or none, got {}", show(other)),
                ));
            }
        };
        Ok(ImageFile {
            sha1,
            size,
            compression,
        })
    }

    /// `name@version`, as /etc/motd shows the origin.
    pub fn label(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "nothing".to_string(), Value::to_string)
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

/// Build the manifest: a fresh uuid, inherited fields unless the
/// definition sets them, and a stable key order.
pub fn build(m: &NewManifest<'_>) -> Value {
    let fields = &m.def.manifest;
    let origin = &m.origin.raw;

    // The definition's own value for each inheritable field, if any.
    let own: BTreeMap<&str, Option<Value>> = [
        (
            "requirements",
            fields.requirements.clone().map(Value::Object),
        ),
        ("users", fields.users.clone().map(Value::Array)),
        (
            "billing_tags",
            fields.billing_tags.as_ref().map(|v| json!(v)),
        ),
        ("traits", fields.traits.clone().map(Value::Object)),
        (
            "generate_passwords",
            fields.generate_passwords.map(Value::Bool),
        ),
        (
            "inherited_directories",
            fields.inherited_directories.as_ref().map(|v| json!(v)),
        ),
        ("nic_driver", fields.nic_driver.as_ref().map(|v| json!(v))),
        ("disk_driver", fields.disk_driver.as_ref().map(|v| json!(v))),
        ("cpu_type", fields.cpu_type.as_ref().map(|v| json!(v))),
        ("image_size", fields.image_size.map(|v| json!(v))),
    ]
    .into_iter()
    .collect();
    let pick = |key: &str| -> Option<Value> {
        match own.get(key) {
            Some(Some(v)) => Some(v.clone()),
            _ => origin.get(key).filter(|v| !v.is_null()).cloned(),
        }
    };

    let mut requirements = match pick("requirements") {
        Some(Value::Object(r)) => r,
        _ => Map::new(),
    };
    match &m.min_platform {
        Some(mp) => {
            requirements.insert("min_platform".into(), json!(mp));
        }
        None => {
            requirements.remove("min_platform");
        }
    }

    let mut tags = fields.tags.clone().unwrap_or_default();
    tags.insert("smartdc_service".into(), Value::Bool(true));
    if m.dev {
        tags.insert("dev_build".into(), Value::Bool(true));
    } else {
        tags.remove("dev_build");
    }

    let mut out = Map::new();
    out.insert("v".into(), json!(2));
    out.insert("uuid".into(), json!(Uuid::new_v4()));
    out.insert("owner".into(), json!(OWNER));
    out.insert("name".into(), json!(m.def.name));
    out.insert("version".into(), json!(m.version));
    out.insert("state".into(), json!("active"));
    out.insert("disabled".into(), json!(false));
    out.insert("public".into(), json!(true));
    out.insert(
        "published_at".into(),
        json!(
            m.published_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    );
    out.insert(
        "type".into(),
        pick("type").unwrap_or_else(|| json!("zone-dataset")),
    );
    out.insert(
        "os".into(),
        pick("os").unwrap_or_else(|| json!(m.def.os.as_str())),
    );
    out.insert(
        "files".into(),
        json!([{ "sha1": m.sha1, "size": m.size, "compression": "gzip" }]),
    );
    out.insert("description".into(), json!(m.def.description));
    if let Some(h) = &fields.homepage {
        out.insert("homepage".into(), json!(h));
    }
    if !requirements.is_empty() {
        out.insert("requirements".into(), Value::Object(requirements));
    }
    // type, os and requirements are placed above.
    for key in &INHERITED[3..] {
        if let Some(v) = pick(key) {
            out.insert((*key).into(), v);
        }
    }
    out.insert("tags".into(), Value::Object(tags));
    out.insert("origin".into(), json!(m.origin.uuid));
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

    fn origin(text: &str) -> Manifest {
        Manifest::parse("o.imgmanifest", text).unwrap()
    }

    const ORIGIN: &str = r#"{
        "v": 2, "uuid": "41bd4100-eb86-409a-85b0-e649aadf6f62", "name": "triton-origin",
        "version": "1.0", "type": "zone-dataset", "os": "smartos",
        "requirements": {"min_platform": {"7.0": "20100101T000000Z"}, "brand": "joyent-minimal"},
        "users": [{"name": "root"}], "billing_tags": ["x"], "secret": "not inherited",
        "files": [{"sha1": "97f20b32c2016782257176fb58a35e5044f05840", "size": 5, "compression": "gzip"}]
    }"#;

    #[test]
    fn file_errors_name_the_key() {
        let no_files = origin(
            r#"{"uuid":"41bd4100-eb86-409a-85b0-e649aadf6f62","name":"a","version":"1","files":[]}"#,
        );
        let e = no_files.file().unwrap_err().to_string();
        assert!(e.starts_with("o.imgmanifest: files: "), "{e}");
        let lz4 = origin(
            r#"{"uuid":"41bd4100-eb86-409a-85b0-e649aadf6f62","name":"a","version":"1",
            "files":[{"sha1":"97f20b32c2016782257176fb58a35e5044f05840","size":1,"compression":"lz4"}]}"#,
        );
        let e = lz4.file().unwrap_err().to_string();
        assert!(
            e.contains("files[0].compression: unsupported compression 'lz4'"),
            "{e}"
        );
        let f = origin(ORIGIN).file().unwrap();
        assert_eq!((f.size, f.compression), (5, Compression::Gzip));
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
