//! What the `cargo xtask` tools share: which tool runs a command, where the
//! workspace is, how one tool hands a command to another, and exit statuses.
//!
//! The tools are separate binaries so that the common path stays small:
//! `xtask` (list, check and build images) links no HTTPS, S3 or server code
//! and compiles in a fraction of the time; `xtask-ship` (bits, publish,
//! origin downloads), `xtask-openapi` and `xtask-bench` are built the first
//! time one of their commands is run.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Exit status for bad input (definitions, flags, files), as opposed to 1
/// for failures of the machine or a remote system.
pub const EXIT_INPUT: u8 = 2;
/// As a shell reports a command stopped by SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

/// How a tool's command ends. A failure is printed as `error: ` and one
/// line with its causes (`{:#}`, as anyhow writes it), and the status is
/// the one `status_of` gives for the outermost cause it knows, else 1.
pub fn exit<E>(
    result: Result<(), E>,
    status_of: impl Fn(&(dyn std::error::Error + 'static)) -> Option<u8>,
) -> ExitCode
where
    E: std::fmt::Display + std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static>,
{
    let Err(e) = result else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {e:#}");
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&*e);
    while let Some(c) = cause {
        if let Some(status) = status_of(c) {
            return ExitCode::from(status);
        }
        cause = c.source();
    }
    ExitCode::from(1)
}

/// The package (and binary) that runs `args`, a command line after
/// `cargo xtask`.
pub fn tool_for<S: AsRef<OsStr>>(args: &[S]) -> &'static str {
    let word = |i: usize| args.get(i).and_then(|a| a.as_ref().to_str());
    match (word(0), word(1)) {
        (Some("bits"), _) | (Some("image"), Some("publish" | "fetch-origin")) => "xtask-ship",
        (Some("openapi"), _) => "xtask-openapi",
        (Some("bench"), _) => "xtask-bench",
        _ => "xtask",
    }
}

/// The workspace the tools are built from.
pub fn tool_workspace() -> &'static Path {
    // CARGO_MANIFEST_DIR is <workspace>/xtask/launch.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).unwrap_or(here)
}

/// The workspace whose images, bits and documents a command works on:
/// `XTASK_WORKSPACE` if set (tests point it at a scratch workspace), else
/// the tools' own.
pub fn workspace_root() -> PathBuf {
    match std::env::var_os("XTASK_WORKSPACE") {
        Some(dir) => dir.into(),
        None => tool_workspace().to_path_buf(),
    }
}

/// The cargo that started us (`CARGO`), else the one on `PATH`.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The tools' target dir: `CARGO_TARGET_DIR`, else `<workspace>/target`
/// (what the tools' own builds use).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tool_workspace().join("target"))
}

/// `cargo xtask`, run in the tools' workspace: how a tool hands a command
/// to the tool that owns it (the launcher builds that one if needed).
pub fn cargo_xtask() -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(tool_workspace()).arg("xtask");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_go_to_the_tool_that_owns_them() {
        for (args, tool) in [
            (&["image", "build", "triton-api"][..], "xtask"),
            (&["image", "list"], "xtask"),
            (&["image", "publish", "triton-api"], "xtask-ship"),
            (&["image", "fetch-origin", "x"], "xtask-ship"),
            (&["bits", "upload", "--all"], "xtask-ship"),
            (&["openapi", "check"], "xtask-openapi"),
            (&["bench", "all"], "xtask-bench"),
            (&["--help"], "xtask"),
            (&[], "xtask"),
        ] {
            assert_eq!(tool_for(args), tool, "{args:?}");
        }
    }

    #[test]
    fn the_tool_workspace_holds_the_launcher() {
        assert!(tool_workspace().join("xtask/launch/Cargo.toml").is_file());
    }
}
