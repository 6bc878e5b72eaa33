//! Commands owned by another tool, run as `cargo xtask ...` so the launcher
//! builds that tool first: what this binary does with them when run by
//! itself (the launcher sends them to their tool directly), and how
//! `image build` has origins downloaded.

use std::ffi::OsString;
use std::process::ExitCode;

/// Whatever follows the command; the owning tool parses it.
#[derive(clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<OsString>,
}

/// This process's command line, run by the tool that owns it; its exit
/// status is ours.
pub fn run() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match xtask_launch::cargo_xtask().args(&args).status() {
        Ok(status) => match status.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::from(xtask_launch::EXIT_INTERRUPTED),
        },
        Err(e) => {
            let tool = xtask_launch::tool_for(&args);
            eprintln!("error: running cargo xtask for {tool}: {e}");
            ExitCode::from(1)
        }
    }
}
