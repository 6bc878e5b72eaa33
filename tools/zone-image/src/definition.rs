//! Stage 1: the image definition, `images/<name>/image.toml`.
//!
//! Parsing is strict: unknown keys are errors, and every error names the
//! file, the key and what was expected.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use uuid::Uuid;

use crate::error::{Error, IoContext, Result};
use crate::util::one_line;

pub const DEFINITION_FILE: &str = "image.toml";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A zone image: package tarball plus ZFS image on an origin.
    Zone,
    /// A tool: package tarball only (e.g. tritonadm for the headnode).
    Tool,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Zone => "zone",
            Kind::Tool => "tool",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    Smartos,
    Linux,
    Other,
}

impl Os {
    pub fn as_str(self) -> &'static str {
        match self {
            Os::Smartos => "smartos",
            Os::Linux => "linux",
            Os::Other => "other",
        }
    }
}

/// Which top-level tree of the proto an entry lands in: the zone root
/// (`root/`) or the `site/` tree that survives reprovisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Tree {
    #[default]
    Root,
    Site,
}

impl Tree {
    pub fn dir_name(self) -> &'static str {
        match self {
            Tree::Root => "root",
            Tree::Site => "site",
        }
    }
}

/// What a file is, which decides how it is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// SMF service manifest (validated against the service_bundle DTD).
    Smf,
    /// SAPI manifest directory content (`manifest.json`, `template`).
    Sapi,
    /// Boot or method script: shebang, run bit, `bash -n`.
    Script,
    /// Anything else.
    Plain,
}

/// Where a `[[files]]` source path is resolved from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceBase {
    /// `images/<name>/`
    #[default]
    Image,
    /// The workspace root, for shared files such as `smf/`.
    Workspace,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCargo {
    package: String,
    bin: Option<String>,
    dest: String,
    mode: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    src: Option<String>,
    content: Option<String>,
    #[serde(default)]
    from: SourceBase,
    dest: String,
    #[serde(default)]
    tree: Tree,
    mode: Option<String>,
    kind: Option<FileKind>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPkgsrc {
    #[serde(default)]
    packages: Vec<String>,
}

/// Manifest fields an image may set; they win over what the origin's
/// manifest would pass down.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ManifestFields {
    pub tags: Option<serde_json::Map<String, serde_json::Value>>,
    pub requirements: Option<imgapi_api::ImageRequirements>,
    pub users: Option<Vec<serde_json::Value>>,
    pub billing_tags: Option<Vec<String>>,
    pub traits: Option<serde_json::Map<String, serde_json::Value>>,
    pub generate_passwords: Option<bool>,
    pub inherited_directories: Option<Vec<String>>,
    pub nic_driver: Option<String>,
    pub disk_driver: Option<String>,
    pub cpu_type: Option<String>,
    pub image_size: Option<u64>,
    pub homepage: Option<String>,
    /// `requirements.min_platform` fallback for hosts that are not illumos.
    pub min_platform: Option<BTreeMap<String, String>>,
}

/// `[tool]`: how a tool is installed on a headnode.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTool {
    prefix: String,
    bin: String,
    link: String,
    #[serde(default)]
    generate: Vec<RawGenerate>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGenerate {
    args: Vec<String>,
    dest: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDef {
    name: String,
    description: String,
    kind: Kind,
    origin: Option<String>,
    origin_name: Option<String>,
    os: Os,
    #[serde(default)]
    cargo: Vec<RawCargo>,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    pkgsrc: RawPkgsrc,
    #[serde(default)]
    manifest: ManifestFields,
    tool: Option<RawTool>,
}

/// A binary built by cargo and placed in the zone root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CargoBinary {
    pub package: String,
    pub bin: String,
    /// Relative to the zone root (no leading `/`).
    pub dest: PathBuf,
    pub mode: u32,
    /// `cargo[i]`, for error messages.
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// A file or a directory tree on disk.
    Path(PathBuf),
    /// Literal content.
    Content(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub source: FileSource,
    pub tree: Tree,
    /// Relative to the tree (no leading `/`).
    pub dest: PathBuf,
    /// Explicit mode for files; `None` takes it from the source's run bit.
    pub mode: Option<u32>,
    pub kind: Option<FileKind>,
    /// `files[i]`, for error messages.
    pub key: String,
}

/// A file made at build time by running the tool's own binary (built for
/// the build host) with `args`; its stdout becomes the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub args: Vec<String>,
    /// Relative to the tool's prefix.
    pub dest: PathBuf,
    /// `tool.generate[i]`, for error messages.
    pub key: String,
}

/// Where a tool lives on a headnode. Paths are relative to `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolSpec {
    /// The install directory, e.g. `opt/triton/tritonadm`; the payload is
    /// this tree.
    pub prefix: PathBuf,
    /// The executable, relative to `prefix`.
    pub bin: PathBuf,
    /// The symlink operators run, e.g. `opt/smartdc/bin/tritonadm`.
    pub link: PathBuf,
    pub generate: Vec<Generated>,
}

impl ToolSpec {
    /// The link's target, relative to the link's directory, so the link
    /// stays right under any install root.
    pub fn link_target(&self) -> PathBuf {
        let from: Vec<_> = self
            .link
            .parent()
            .map(|p| p.components().collect())
            .unwrap_or_default();
        let to_path = self.prefix.join(&self.bin);
        let to: Vec<_> = to_path.components().collect();
        let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
        let mut out = PathBuf::new();
        for _ in common..from.len() {
            out.push("..");
        }
        for c in &to[common..] {
            out.push(c);
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct ImageDef {
    pub name: String,
    pub description: String,
    pub kind: Kind,
    pub origin: Option<Uuid>,
    pub origin_name: Option<String>,
    pub os: Os,
    pub cargo: Vec<CargoBinary>,
    pub files: Vec<FileSpec>,
    pub pkgsrc: Vec<String>,
    pub manifest: ManifestFields,
    /// `[tool]`: present exactly for `kind = "tool"`.
    pub tool: Option<ToolSpec>,
    /// `images/<name>/`
    pub dir: PathBuf,
    /// `images/<name>/image.toml`
    pub file: PathBuf,
    pub workspace: PathBuf,
}

/// Names of every image under `<workspace>/images/`, sorted.
pub fn list_images(workspace: &Path) -> Result<Vec<String>> {
    let dir = workspace.join("images");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).io_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.io_context(|| format!("reading {}", dir.display()))?;
        if entry.path().join(DEFINITION_FILE).is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Load `images/<name>/image.toml` from the workspace.
pub fn load(workspace: &Path, name: &str) -> Result<ImageDef> {
    let dir = workspace.join("images").join(name);
    let file = dir.join(DEFINITION_FILE);
    if !file.is_file() {
        return Err(Error::input(
            &file,
            "name",
            format!("no image named '{name}' (expected a definition at this path)"),
        ));
    }
    let text =
        std::fs::read_to_string(&file).io_context(|| format!("reading {}", file.display()))?;
    parse(workspace, &dir, &file, &text)
}

/// Parse and validate a definition. `dir` is the image folder that relative
/// sources resolve against.
pub fn parse(workspace: &Path, dir: &Path, file: &Path, text: &str) -> Result<ImageDef> {
    let raw = deserialize(file, text)?;
    let err = |key: &str, message: String| Error::input(file, key, message);

    let dir_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    if !valid_name(&raw.name) {
        return Err(err(
            "name",
            format!(
                "expected lowercase letters, digits and '-', got '{}'",
                raw.name
            ),
        ));
    }
    if dir_name.as_deref() != Some(raw.name.as_str()) {
        return Err(err(
            "name",
            format!(
                "'{}' does not match the image folder '{}'",
                raw.name,
                dir_name.unwrap_or_default()
            ),
        ));
    }
    if raw.description.trim().is_empty() {
        return Err(err("description", "expected a non-empty string".into()));
    }

    let origin = match (&raw.origin, raw.kind) {
        (Some(o), _) => Some(
            Uuid::parse_str(o)
                .map_err(|_| err("origin", format!("expected an image UUID, got '{o}'")))?,
        ),
        (None, Kind::Zone) => {
            return Err(err(
                "origin",
                "a zone image needs an origin image UUID".into(),
            ));
        }
        (None, Kind::Tool) => None,
    };

    let mut cargo = Vec::new();
    for (i, c) in raw.cargo.iter().enumerate() {
        let key = format!("cargo[{i}]");
        if c.package.trim().is_empty() {
            return Err(err(
                &format!("{key}.package"),
                "expected a package name".into(),
            ));
        }
        let dest = zone_path(&c.dest).map_err(|m| err(&format!("{key}.dest"), m))?;
        let mode = match &c.mode {
            Some(m) => parse_mode(m).map_err(|m| err(&format!("{key}.mode"), m))?,
            None => 0o755,
        };
        if mode & 0o111 == 0 {
            return Err(err(
                &format!("{key}.mode"),
                format!("a binary needs its run bit, got {mode:04o}"),
            ));
        }
        cargo.push(CargoBinary {
            package: c.package.clone(),
            bin: c.bin.clone().unwrap_or_else(|| c.package.clone()),
            dest,
            mode,
            key,
        });
    }

    let mut files = Vec::new();
    for (i, f) in raw.files.iter().enumerate() {
        let key = format!("files[{i}]");
        let source = match (&f.src, &f.content) {
            (Some(src), None) => {
                let base = match f.from {
                    SourceBase::Image => dir,
                    SourceBase::Workspace => workspace,
                };
                let rel = relative_source(src).map_err(|m| err(&format!("{key}.src"), m))?;
                let path = base.join(rel);
                if std::fs::symlink_metadata(&path).is_err() {
                    return Err(err(
                        &format!("{key}.src"),
                        format!("no such file or directory: {}", path.display()),
                    ));
                }
                FileSource::Path(path)
            }
            (None, Some(content)) => FileSource::Content(content.clone()),
            (Some(_), Some(_)) => {
                return Err(err(
                    &key,
                    "expected one of 'src' or 'content', not both".into(),
                ));
            }
            (None, None) => {
                return Err(err(&key, "expected 'src' or 'content'".into()));
            }
        };
        let dest = zone_path(&f.dest).map_err(|m| err(&format!("{key}.dest"), m))?;
        let mode = match &f.mode {
            Some(m) => Some(parse_mode(m).map_err(|m| err(&format!("{key}.mode"), m))?),
            None => None,
        };
        files.push(FileSpec {
            source,
            tree: f.tree,
            dest,
            mode,
            kind: f.kind,
            key,
        });
    }

    for (i, p) in raw.pkgsrc.packages.iter().enumerate() {
        if p.trim().is_empty() || p.contains(char::is_whitespace) {
            return Err(err(
                &format!("pkgsrc.packages[{i}]"),
                format!("expected a pkgsrc package name, got '{p}'"),
            ));
        }
    }
    if let Some(mp) = &raw.manifest.min_platform {
        for (k, v) in mp {
            if !is_platform_stamp(v) {
                return Err(err(
                    &format!("manifest.min_platform.{k}"),
                    format!("expected a platform stamp like 20240101T000000Z, got '{v}'"),
                ));
            }
        }
    }

    let tool = tool_spec(&raw, &cargo, &files).map_err(|(key, m)| err(&key, m))?;

    Ok(ImageDef {
        name: raw.name,
        description: raw.description,
        kind: raw.kind,
        origin,
        origin_name: raw.origin_name,
        os: raw.os,
        cargo,
        files,
        pkgsrc: raw.pkgsrc.packages,
        manifest: raw.manifest,
        tool,
        dir: dir.to_path_buf(),
        file: file.to_path_buf(),
        workspace: workspace.to_path_buf(),
    })
}

/// Check `[tool]` against the kind and the entries: a tool's payload is
/// its prefix tree, so everything must land under the prefix, and the
/// binary it names must be one cargo builds.
fn tool_spec(
    raw: &RawDef,
    cargo: &[CargoBinary],
    files: &[FileSpec],
) -> Result<Option<ToolSpec>, (String, String)> {
    let t = match (&raw.tool, raw.kind) {
        (None, Kind::Zone) => return Ok(None),
        (Some(_), Kind::Zone) => {
            return Err((
                "tool".into(),
                "only a kind = \"tool\" image has a [tool] table".into(),
            ));
        }
        (None, Kind::Tool) => {
            return Err((
                "tool".into(),
                "a tool needs a [tool] table with prefix, bin and link".into(),
            ));
        }
        (Some(t), Kind::Tool) => t,
    };
    let prefix = zone_path(&t.prefix).map_err(|m| ("tool.prefix".to_string(), m))?;
    let link = zone_path(&t.link).map_err(|m| ("tool.link".to_string(), m))?;
    let below = |key: &str, p: &str| -> Result<PathBuf, (String, String)> {
        let rel = relative_source(p).map_err(|_| {
            (
                key.to_string(),
                format!("expected a path relative to tool.prefix, got '{p}'"),
            )
        })?;
        if rel.as_os_str().is_empty() {
            return Err((key.to_string(), "expected a file path, got nothing".into()));
        }
        Ok(rel)
    };
    let bin = below("tool.bin", &t.bin)?;
    if link.starts_with(&prefix) {
        return Err((
            "tool.link".into(),
            format!("'{}' must be outside tool.prefix", t.link),
        ));
    }
    if !cargo.iter().any(|c| c.dest == prefix.join(&bin)) {
        return Err((
            "tool.bin".into(),
            format!(
                "no [[cargo]] entry installs /{}",
                prefix.join(&bin).display()
            ),
        ));
    }
    for c in cargo {
        if !c.dest.starts_with(&prefix) {
            return Err((
                format!("{}.dest", c.key),
                format!("a tool installs under tool.prefix '{}'", t.prefix),
            ));
        }
    }
    for f in files {
        if f.tree != Tree::Root || !f.dest.starts_with(&prefix) {
            return Err((
                format!("{}.dest", f.key),
                format!("a tool installs under tool.prefix '{}'", t.prefix),
            ));
        }
    }
    let mut generate = Vec::new();
    for (i, g) in t.generate.iter().enumerate() {
        let key = format!("tool.generate[{i}]");
        if g.args.is_empty() {
            return Err((
                format!("{key}.args"),
                "expected the arguments to run the tool with".into(),
            ));
        }
        generate.push(Generated {
            args: g.args.clone(),
            dest: below(&format!("{key}.dest"), &g.dest)?,
            key,
        });
    }
    Ok(Some(ToolSpec {
        prefix,
        bin,
        link,
        generate,
    }))
}

fn deserialize(file: &Path, text: &str) -> Result<RawDef> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| Error::input(file, location(text, e.span()), one_line(e.message())))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = one_line(inner.message());
        // serde reports unknown and missing keys in the message, with the
        // path pointing at the enclosing table.
        let key = match backticked(&message) {
            Some(k)
                if message.starts_with("unknown field") || message.starts_with("missing field") =>
            {
                if path == "." {
                    k
                } else {
                    format!("{path}.{k}")
                }
            }
            _ if path == "." => location(text, inner.span()),
            _ => path,
        };
        Error::input(file, key, message)
    })
}

fn location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}")
        }
        None => "(document)".into(),
    }
}

fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

fn is_platform_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

/// Parse an octal mode string such as "0755".
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o7777 && !digits.is_empty() => Ok(m),
        _ => Err(format!(
            "expected an octal mode such as \"0755\", got \"{s}\""
        )),
    }
}

/// An absolute path inside the zone, normalised to a relative one. Anything
/// that could climb out of the zone root is refused.
fn zone_path(dest: &str) -> Result<PathBuf, String> {
    if !dest.starts_with('/') {
        return Err(format!(
            "expected an absolute path inside the zone, got '{dest}'"
        ));
    }
    let mut out = PathBuf::new();
    for c in Path::new(dest).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(format!("'{dest}' climbs out of the zone root with '..'"));
            }
            Component::Prefix(_) => return Err(format!("'{dest}' is not a zone path")),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(format!(
            "'{dest}' names the zone root itself, expected a path below it"
        ));
    }
    Ok(out)
}

/// A source path relative to its base; `..` and absolute paths would let a
/// definition pull in files from outside the repository.
fn relative_source(src: &str) -> Result<PathBuf, String> {
    let p = Path::new(src);
    if p.is_absolute() {
        return Err(format!(
            "expected a path relative to the image folder, got '{src}'"
        ));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "'{src}' climbs out with '..'; use from = \"workspace\" for shared files"
        ));
    }
    Ok(p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert!(parse_mode("0789").is_err());
        assert!(parse_mode("").is_err());
    }

    #[test]
    fn zone_paths() {
        assert_eq!(zone_path("/opt/x").unwrap(), PathBuf::from("opt/x"));
        assert!(zone_path("opt/x").is_err());
        assert!(zone_path("/opt/../../etc").is_err());
        assert!(zone_path("/").is_err());
    }

    #[test]
    fn tool_tables_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("images/t");
        std::fs::create_dir_all(&img).unwrap();
        let file = img.join("image.toml");
        let parse_with = |rest: &str| {
            parse(
                dir.path(),
                &img,
                &file,
                &format!("name = \"t\"\ndescription = \"d\"\nos = \"smartos\"\n{rest}"),
            )
        };
        let cargo = "[[cargo]]\npackage = \"t\"\ndest = \"/opt/t/bin/t\"\n";
        let table = "[tool]\nprefix = \"/opt/t\"\nbin = \"bin/t\"\nlink = \"/opt/smartdc/bin/t\"\n";
        let ok = parse_with(&format!("kind = \"tool\"\n{cargo}{table}")).unwrap();
        let t = ok.tool.unwrap();
        assert_eq!(t.link_target(), PathBuf::from("../../t/bin/t"));

        let cases = [
            (
                format!("kind = \"tool\"\n{cargo}"),
                "tool: a tool needs a [tool] table",
            ),
            (
                format!(
                    "kind = \"zone\"\norigin = \"41bd4100-eb86-409a-85b0-e649aadf6f62\"\n{cargo}{table}"
                ),
                "tool: only a kind = \"tool\" image has a [tool] table",
            ),
            (
                format!(
                    "kind = \"tool\"\n{cargo}{}",
                    table.replace("bin/t\"", "bin/u\"")
                ),
                "tool.bin: no [[cargo]] entry installs /opt/t/bin/u",
            ),
            (
                format!(
                    "kind = \"tool\"\n{cargo}{table}[[files]]\ncontent = \"\"\ndest = \"/etc/x\"\n"
                ),
                "files[0].dest: a tool installs under tool.prefix '/opt/t'",
            ),
            (
                format!(
                    "kind = \"tool\"\n{cargo}{table}generate = [{{ args = [], dest = \"x\" }}]\n"
                ),
                "tool.generate[0].args: expected the arguments",
            ),
        ];
        for (text, want) in cases {
            let e = parse_with(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn link_targets_are_relative() {
        let t = ToolSpec {
            prefix: "opt/triton/tritonadm".into(),
            bin: "bin/tritonadm".into(),
            link: "opt/smartdc/bin/tritonadm".into(),
            generate: vec![],
        };
        assert_eq!(
            t.link_target(),
            PathBuf::from("../../triton/tritonadm/bin/tritonadm")
        );
    }

    #[test]
    fn stamps() {
        assert!(is_platform_stamp("20240101T000000Z"));
        assert!(!is_platform_stamp("2024-01-01"));
    }
}
