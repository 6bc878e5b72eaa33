//! Stage 2: the service binaries, built by cargo, and the check that a
//! SmartOS zone image really carries illumos binaries.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::definition::{ImageDef, Os};
use crate::error::{Error, IoContext, Result};

/// The illumos amd64 runtime linker every SmartOS binary names.
pub const ILLUMOS_INTERP: &str = "/usr/lib/amd64/ld.so.1";

#[derive(Debug, Clone, Default)]
pub struct CargoOptions {
    /// `--target`, passed through to cargo.
    pub target: Option<String>,
    /// Cargo profile; `release` for real images.
    pub profile: String,
}

/// Workspace package names, from `cargo metadata`.
pub fn workspace_packages(workspace: &Path) -> Result<Vec<String>> {
    #[derive(Deserialize)]
    struct Meta {
        packages: Vec<Pkg>,
    }
    #[derive(Deserialize)]
    struct Pkg {
        name: String,
    }
    let out = Command::new(cargo())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace)
        .output()
        .map_err(|e| Error::Command(format!("running cargo metadata: {e}")))?;
    if !out.status.success() {
        return Err(Error::Command(format!(
            "cargo metadata: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let meta: Meta = serde_json::from_slice(&out.stdout)
        .map_err(|e| Error::Command(format!("parsing cargo metadata: {e}")))?;
    Ok(meta.packages.into_iter().map(|p| p.name).collect())
}

/// Refuse cargo entries naming packages the workspace does not have.
pub fn check_packages(def: &ImageDef, known: &[String]) -> Result<()> {
    for c in &def.cargo {
        if !known.contains(&c.package) {
            return Err(Error::input(
                &def.file,
                format!("{}.package", c.key),
                format!("'{}' is not a package of this workspace", c.package),
            ));
        }
    }
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Build every binary the definition names; returns (package, bin) → path.
pub fn build(def: &ImageDef, opts: &CargoOptions) -> Result<HashMap<(String, String), PathBuf>> {
    let mut built = HashMap::new();
    if def.cargo.is_empty() {
        return Ok(built);
    }
    let mut cmd = Command::new(cargo());
    cmd.current_dir(&def.workspace)
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "--profile",
        ])
        .arg(&opts.profile);
    if let Some(t) = &opts.target {
        cmd.args(["--target", t]);
    }
    for c in &def.cargo {
        cmd.args(["-p", &c.package, "--bin", &c.bin]);
    }
    // cc-built -sys crates rerun their build scripts when this changes; the
    // tarball's mtime is ours to set, not the compiler's.
    cmd.env_remove("SOURCE_DATE_EPOCH");
    // Diagnostics go to our stderr as cargo renders them; stdout carries
    // the JSON messages naming each executable.
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Command(format!("running cargo build: {e}")))?;
    #[derive(Deserialize)]
    struct Msg {
        reason: String,
        target: Option<Target>,
        executable: Option<PathBuf>,
    }
    #[derive(Deserialize)]
    struct Target {
        name: String,
    }
    let wanted: HashMap<&str, &str> = def
        .cargo
        .iter()
        .map(|c| (c.bin.as_str(), c.package.as_str()))
        .collect();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.io_context(|| "reading cargo output".to_string())?;
            let Ok(msg) = serde_json::from_str::<Msg>(&line) else {
                continue;
            };
            if msg.reason != "compiler-artifact" {
                continue;
            }
            if let (Some(t), Some(exe)) = (msg.target, msg.executable)
                && let Some(pkg) = wanted.get(t.name.as_str())
            {
                built.insert((pkg.to_string(), t.name), exe);
            }
        }
    }
    let status = child
        .wait()
        .io_context(|| "waiting for cargo build".to_string())?;
    if !status.success() {
        return Err(Error::Command(format!("cargo build failed ({status})")));
    }
    Ok(built)
}

/// Why a binary would make this a dev image, if it would.
pub fn dev_reason(
    def: &ImageDef,
    binaries: &HashMap<(String, String), PathBuf>,
) -> Result<Option<String>> {
    // Zone images and tools alike: what runs on SmartOS must be illumos ELF.
    if def.os != Os::Smartos {
        return Ok(None);
    }
    let mut keys: Vec<_> = binaries.keys().collect();
    keys.sort();
    for key in keys {
        let path = &binaries[key];
        let interp = elf_interpreter(path)?;
        if interp.as_deref() != Some(ILLUMOS_INTERP) {
            return Ok(Some(format!(
                "{} is not an illumos binary (interpreter {}); build with --target x86_64-unknown-illumos for a real SmartOS image",
                key.1,
                interp.as_deref().unwrap_or("none")
            )));
        }
    }
    Ok(None)
}

/// PT_INTERP of an ELF file (`None` for a static binary).
pub fn elf_interpreter(path: &Path) -> Result<Option<String>> {
    let bytes = std::fs::read(path).io_context(|| format!("reading {}", path.display()))?;
    let elf = goblin::elf::Elf::parse(&bytes)
        .map_err(|e| Error::Command(format!("{} is not an ELF binary: {e}", path.display())))?;
    Ok(elf.interpreter.map(str::to_string))
}
