//! Stage 3: the proto tree, `root/` (the zone root) and `site/`, with an
//! explicit mode on every file. Planned from the definition, assembled
//! into a temp dir, validated, then renamed into place.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cancel;
use crate::definition::{FileKind, FileSource, ImageDef, Tree};
use crate::error::{Error, IoContext, Result};
use crate::validate;

/// Where one proto file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    File(PathBuf),
    Content(String),
    /// A cargo binary, resolved by the binaries stage.
    Binary {
        package: String,
        bin: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoEntry {
    pub tree: Tree,
    /// Relative to the tree.
    pub dest: PathBuf,
    pub source: EntrySource,
    pub mode: u32,
    pub kind: FileKind,
    /// The definition key this entry came from (`files[2]`, `cargo[0]`).
    pub key: String,
}

impl ProtoEntry {
    /// The file an error about this entry should name.
    pub fn error_file<'a>(&'a self, def: &'a ImageDef) -> &'a Path {
        match &self.source {
            EntrySource::File(p) => p,
            _ => &def.file,
        }
    }

    /// Path inside the proto dir: `root/opt/...` or `site/...`.
    pub fn proto_path(&self) -> PathBuf {
        Path::new(self.tree.dir_name()).join(&self.dest)
    }
}

/// Every file of the proto, sorted by tree and path.
#[derive(Debug, Clone)]
pub struct ProtoPlan {
    pub entries: Vec<ProtoEntry>,
}

fn infer_kind(tree: Tree, dest: &Path) -> FileKind {
    if tree != Tree::Root {
        return FileKind::Plain;
    }
    let s = dest.to_string_lossy();
    if s.contains("/sapi_manifests/") {
        FileKind::Sapi
    } else if s.starts_with("opt/custom/smf/") && s.ends_with(".xml") {
        FileKind::Smf
    } else if s.starts_with("opt/smartdc/boot/") {
        FileKind::Script
    } else {
        FileKind::Plain
    }
}

fn mode_of_source(meta: &fs::Metadata) -> u32 {
    if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    }
}

/// Expand the definition into the list of files the proto will hold.
pub fn plan(def: &ImageDef) -> Result<ProtoPlan> {
    let mut entries = Vec::new();
    for c in &def.cargo {
        entries.push(ProtoEntry {
            tree: Tree::Root,
            dest: c.dest.clone(),
            source: EntrySource::Binary {
                package: c.package.clone(),
                bin: c.bin.clone(),
            },
            mode: c.mode,
            kind: FileKind::Plain,
            key: c.key.clone(),
        });
    }
    for f in &def.files {
        match &f.source {
            FileSource::Content(text) => entries.push(ProtoEntry {
                tree: f.tree,
                dest: f.dest.clone(),
                source: EntrySource::Content(text.clone()),
                mode: f.mode.unwrap_or(0o644),
                kind: f.kind.unwrap_or_else(|| infer_kind(f.tree, &f.dest)),
                key: f.key.clone(),
            }),
            FileSource::Path(src) => {
                let src_key = format!("{}.src", f.key);
                let real = resolve_inside(src, &def.workspace, &def.file, &src_key)?;
                let meta =
                    fs::metadata(&real).io_context(|| format!("reading {}", src.display()))?;
                if meta.is_dir() {
                    expand_dir(def, f, &real, &mut entries)?;
                } else if meta.is_file() {
                    entries.push(ProtoEntry {
                        tree: f.tree,
                        dest: f.dest.clone(),
                        source: EntrySource::File(real.clone()),
                        mode: f.mode.unwrap_or_else(|| mode_of_source(&meta)),
                        kind: f.kind.unwrap_or_else(|| infer_kind(f.tree, &f.dest)),
                        key: f.key.clone(),
                    });
                } else {
                    return Err(Error::input(
                        src,
                        src_key,
                        "expected a regular file or a directory",
                    ));
                }
            }
        }
    }
    check_destinations(def, &entries)?;
    entries.sort_by(|a, b| (a.tree, &a.dest).cmp(&(b.tree, &b.dest)));
    Ok(ProtoPlan { entries })
}

/// Resolve symlinks and refuse any that lead outside `root`: a link in a
/// source tree must not smuggle host files into the image.
fn resolve_inside(path: &Path, root: &Path, def_file: &Path, key: &str) -> Result<PathBuf> {
    let root = root
        .canonicalize()
        .io_context(|| format!("resolving {}", root.display()))?;
    let real = path.canonicalize().map_err(|e| {
        Error::input(
            path,
            key,
            format!("cannot resolve (dangling symlink?): {e}"),
        )
    })?;
    if !real.starts_with(&root) {
        let file = if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            path.to_path_buf()
        } else {
            def_file.to_path_buf()
        };
        return Err(Error::input(
            file,
            key,
            format!(
                "symlink points outside {} (to {})",
                root.display(),
                real.display()
            ),
        ));
    }
    Ok(real)
}

fn expand_dir(
    def: &ImageDef,
    f: &crate::definition::FileSpec,
    dir: &Path,
    entries: &mut Vec<ProtoEntry>,
) -> Result<()> {
    let key = format!("{}.src", f.key);
    for item in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let item = item.map_err(|e| Error::Io {
            context: format!("walking {}", dir.display()),
            source: e.into(),
        })?;
        let path = item.path();
        let meta = if item.path_is_symlink() {
            // Links may point anywhere inside the source tree, no further.
            let real = resolve_inside(path, dir, &def.file, &key)?;
            fs::metadata(&real).io_context(|| format!("reading {}", path.display()))?
        } else {
            item.metadata().map_err(|e| Error::Io {
                context: format!("reading {}", path.display()),
                source: e.into(),
            })?
        };
        if meta.is_dir() {
            continue;
        }
        if !meta.is_file() {
            return Err(Error::input(path, &key, "expected regular files only"));
        }
        let rel = path.strip_prefix(dir).unwrap_or(path);
        let dest = f.dest.join(rel);
        entries.push(ProtoEntry {
            tree: f.tree,
            source: EntrySource::File(path.to_path_buf()),
            mode: f.mode.unwrap_or_else(|| mode_of_source(&meta)),
            kind: f.kind.unwrap_or_else(|| infer_kind(f.tree, &dest)),
            dest,
            key: f.key.clone(),
        });
    }
    Ok(())
}

fn check_destinations(def: &ImageDef, entries: &[ProtoEntry]) -> Result<()> {
    let mut seen: BTreeMap<(Tree, &Path), &str> = BTreeMap::new();
    for e in entries {
        if let Some(prev) = seen.insert((e.tree, &e.dest), &e.key) {
            return Err(Error::input(
                &def.file,
                format!("{}.dest", e.key),
                format!(
                    "/{} is also the destination of {prev}; expected each destination once",
                    e.dest.display()
                ),
            ));
        }
    }
    // A file may not also be needed as a directory.
    for e in entries {
        for anc in e.dest.ancestors().skip(1) {
            if let Some(other) = seen.get(&(e.tree, anc)) {
                return Err(Error::input(
                    &def.file,
                    format!("{}.dest", e.key),
                    format!(
                        "/{} lies below /{}, which {other} makes a file",
                        e.dest.display(),
                        anc.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Write the proto into `out` (which must not exist): via a temp sibling
/// renamed at the end, so `out` is either complete or absent. `binaries`
/// maps (package, bin) to a built file; `None` writes empty executable
/// placeholders (for `image check`, which builds nothing).
pub fn assemble(
    def: &ImageDef,
    plan: &ProtoPlan,
    binaries: Option<&HashMap<(String, String), PathBuf>>,
    out: &Path,
) -> Result<()> {
    let parent = out.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).io_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".proto-")
        .tempdir_in(parent)
        .io_context(|| format!("creating a temp dir in {}", parent.display()))?;
    for tree in [Tree::Root, Tree::Site] {
        make_dir(&tmp.path().join(tree.dir_name()))?;
    }
    for e in &plan.entries {
        cancel::check()?;
        let dest = tmp.path().join(e.proto_path());
        if let Some(dir) = dest.parent() {
            make_dirs(tmp.path(), dir)?;
        }
        match &e.source {
            EntrySource::File(src) => {
                fs::copy(src, &dest).io_context(|| format!("copying {}", src.display()))?;
            }
            EntrySource::Content(text) => {
                fs::write(&dest, text).io_context(|| format!("writing {}", dest.display()))?;
            }
            EntrySource::Binary { package, bin } => match binaries {
                Some(map) => {
                    let src = map.get(&(package.clone(), bin.clone())).ok_or_else(|| {
                        Error::input(
                            &def.file,
                            format!("{}.bin", e.key),
                            format!("cargo built no binary '{bin}' in package '{package}'"),
                        )
                    })?;
                    fs::copy(src, &dest).io_context(|| format!("copying {}", src.display()))?;
                }
                None => {
                    fs::write(&dest, b"").io_context(|| format!("writing {}", dest.display()))?;
                }
            },
        }
        fs::set_permissions(&dest, fs::Permissions::from_mode(e.mode))
            .io_context(|| format!("setting the mode of {}", dest.display()))?;
    }
    validate_proto(def, plan, tmp.path())?;
    if out.exists() {
        fs::remove_dir_all(out).io_context(|| format!("removing the old {}", out.display()))?;
    }
    let tmp = tmp.keep();
    fs::rename(&tmp, out)
        .io_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    Ok(())
}

fn make_dir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                context: format!("creating {}", dir.display()),
                source: e,
            });
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .io_context(|| format!("setting the mode of {}", dir.display()))
}

/// `create_dir_all` with every new directory at 0755, whatever the umask.
fn make_dirs(top: &Path, dir: &Path) -> Result<()> {
    if dir == top || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        make_dirs(top, parent)?;
    }
    make_dir(dir)
}

/// Validate the assembled proto: SMF manifests (DTD rules, every `exec`
/// present and executable), SAPI manifests and templates, scripts.
pub fn validate_proto(def: &ImageDef, plan: &ProtoPlan, proto: &Path) -> Result<()> {
    let root = proto.join(Tree::Root.dir_name());
    let mut sapi_dirs: BTreeMap<PathBuf, Vec<&ProtoEntry>> = BTreeMap::new();
    // Scripts first: a script without its run bit is better reported as
    // itself than as an SMF exec that is not executable.
    let mut order: Vec<&ProtoEntry> = plan.entries.iter().collect();
    order.sort_by_key(|e| e.kind != FileKind::Script);
    for e in order {
        let path = proto.join(e.proto_path());
        let file = e.error_file(def);
        match e.kind {
            FileKind::Smf => {
                let text = fs::read_to_string(&path).map_err(|err| {
                    Error::input(file, &e.key, format!("cannot read as text: {err}"))
                })?;
                let doc = validate::smf::check_dtd(&text).map_err(|m| {
                    Error::input(file, &e.key, format!("invalid SMF manifest: {m}"))
                })?;
                for (method, exec) in validate::smf::exec_programs(&doc) {
                    let Some(program) = validate::smf::exec_program(&exec) else {
                        continue;
                    };
                    let program = Path::new(program);
                    if !program.is_absolute() {
                        return Err(Error::input(
                            file,
                            format!("exec_method[{method}].exec"),
                            format!("'{}' is not an absolute path", program.display()),
                        ));
                    }
                    let in_proto = root.join(program.strip_prefix("/").unwrap_or(program));
                    match fs::metadata(&in_proto) {
                        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
                        Ok(_) => {
                            return Err(Error::input(
                                file,
                                format!("exec_method[{method}].exec"),
                                format!(
                                    "{} is in the proto but not an executable file",
                                    program.display()
                                ),
                            ));
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::NotFound
                                && validate::smf::provided_by_origin(program) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Err(Error::input(
                                file,
                                format!("exec_method[{method}].exec"),
                                format!("{} is not in the proto", program.display()),
                            ));
                        }
                        Err(source) => {
                            return Err(Error::Io {
                                context: format!("reading {}", in_proto.display()),
                                source,
                            });
                        }
                    }
                }
            }
            FileKind::Sapi => {
                let dir = e.dest.parent().unwrap_or(Path::new("")).to_path_buf();
                sapi_dirs.entry(dir).or_default().push(e);
            }
            FileKind::Script => {
                validate::script::check(&path, e.mode)
                    .map_err(|m| Error::input(file, &e.key, m))?;
            }
            FileKind::Plain => {}
        }
    }
    for (dir, files) in sapi_dirs {
        let by_name: HashMap<String, &ProtoEntry> = files
            .iter()
            .map(|e| {
                let name = e
                    .dest
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                (name, *e)
            })
            .collect();
        for required in ["manifest.json", "template"] {
            if !by_name.contains_key(required) {
                let key = files.first().map_or("files", |e| e.key.as_str());
                return Err(Error::input(
                    &def.file,
                    key,
                    format!("SAPI manifest dir /{} has no {required}", dir.display()),
                ));
            }
        }
        for (name, e) in by_name {
            let path = proto.join(e.proto_path());
            let file = e.error_file(def);
            let text = fs::read_to_string(&path)
                .map_err(|err| Error::input(file, &e.key, format!("cannot read as text: {err}")))?;
            match name.as_str() {
                "manifest.json" => validate::sapi::check_manifest(&text)
                    .map_err(|(field, m)| Error::input(file, field, m))?,
                "template" => {
                    validate::sapi::check_template(&text)
                        .map_err(|m| Error::input(file, "template", m))?;
                    // The variables are a contract with the service
                    // definition tritonadm registers in SAPI.
                    if let Some(sources) =
                        validate::sapi::VariableSources::load(&def.workspace, &def.name)
                            .map_err(|(f, field, m)| Error::input(&f, field, m))?
                    {
                        sources
                            .check(&text)
                            .map_err(|m| Error::input(file, "template", m))?;
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}
