//! `cargo xtask` starts here. The alias builds only this small crate, so
//! the user sees something within a second; it then builds the tool that
//! owns the command ([`xtask_launch::tool_for`]) with cargo's own progress
//! on stderr and execs it with the arguments as given.
//!
//! Two reasons this is not one binary:
//! - Building a tool compiles its part of the pipeline (minutes on a small
//!   machine); behind `cargo run --quiet` that looked like a hang.
//! - `SOURCE_DATE_EPOCH` is an input of every cc-built `-sys` crate's build
//!   script. The inner cargo runs without it, so setting it to stamp a
//!   tarball never rebuilds the tree; xtask still receives it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Variables our pipeline reads at run time that must not reach the
/// compiler's build scripts.
const RUNTIME_ONLY: &[&str] = &["SOURCE_DATE_EPOCH"];

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("cargo xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let workspace = xtask_launch::tool_workspace();
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let tool = xtask_launch::tool_for(&args);
    let exe = build(workspace, &xtask_launch::cargo(), tool)?;
    let mut cmd = Command::new(&exe);
    cmd.args(args);
    exec(cmd, &exe)
}

/// Build `tool` and return its executable, named by cargo's own messages
/// (so `CARGO_TARGET_DIR` and `build.target-dir` are honoured).
fn build(workspace: &Path, cargo: &std::ffi::OsStr, tool: &str) -> Result<PathBuf, String> {
    if !xtask_launch::target_dir().join("debug").join(tool).exists() {
        let what = if tool == "xtask" {
            "the image pipeline (about 100 crates; two minutes on 2 cores)"
        } else {
            "it (a few hundred crates, HTTPS and S3 included; up to 15 minutes on 2 cores)"
        };
        eprintln!("cargo xtask: first run of {tool}: compiling {what}; cargo's progress follows");
    }
    let mut cmd = build_command(workspace, cargo, tool);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("running {}: {e}", Path::new(cargo).display()))?;
    let mut exe = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| format!("reading cargo's output: {e}"))?;
            if let Some(path) = executable_of(tool, &line) {
                exe = Some(path);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo build: {e}"))?;
    if !status.success() {
        return Err(format!("building {tool} failed ({status})"));
    }
    exe.ok_or_else(|| format!("cargo built {tool} but named no executable for it"))
}

/// `cargo build` of `tool`, without the variables only the tools read.
fn build_command(workspace: &Path, cargo: &std::ffi::OsStr, tool: &str) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--package", tool, "--bin", tool])
        .arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for var in RUNTIME_ONLY {
        cmd.env_remove(var);
    }
    cmd
}

/// The executable path in a `compiler-artifact` message for `tool`'s binary.
fn executable_of(tool: &str, line: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg["reason"] != "compiler-artifact" || msg["target"]["name"] != tool {
        return None;
    }
    msg["executable"].as_str().map(PathBuf::from)
}

#[cfg(unix)]
fn exec(mut cmd: Command, exe: &Path) -> Result<ExitCode, String> {
    use std::os::unix::process::CommandExt as _;
    // Only returns on failure; on success xtask owns the terminal and its
    // signals, and its exit status is ours.
    let e = cmd.exec();
    Err(format!("running {}: {e}", exe.display()))
}

#[cfg(not(unix))]
fn exec(mut cmd: Command, exe: &Path) -> Result<ExitCode, String> {
    let status = cmd
        .status()
        .map_err(|e| format!("running {}: {e}", exe.display()))?;
    Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_cargo_does_not_see_source_date_epoch() {
        let cmd = build_command(Path::new("/w"), "cargo".as_ref(), "xtask");
        let removed: Vec<_> = cmd.get_envs().filter(|(_, v)| v.is_none()).collect();
        assert_eq!(removed, vec![("SOURCE_DATE_EPOCH".as_ref(), None)]);
    }

    #[test]
    fn finds_only_the_tools_binary() {
        let ours = r#"{"reason":"compiler-artifact","target":{"name":"xtask","kind":["bin"]},"executable":"/t/debug/xtask","fresh":true}"#;
        let lib = r#"{"reason":"compiler-artifact","target":{"name":"zone_image","kind":["lib"]},"executable":null,"fresh":true}"#;
        let done = r#"{"reason":"build-finished","success":true}"#;
        assert_eq!(
            executable_of("xtask", ours),
            Some(PathBuf::from("/t/debug/xtask"))
        );
        assert_eq!(executable_of("xtask-ship", ours), None);
        assert_eq!(executable_of("xtask", lib), None);
        assert_eq!(executable_of("xtask", done), None);
        assert_eq!(executable_of("xtask", "not json"), None);
    }
}
