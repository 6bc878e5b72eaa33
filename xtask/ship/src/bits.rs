//! `cargo xtask bits ...`: clap glue over `bits_store`.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::{Context, Result};
use bits_store::{Ctx, Dest, FetchOptions, S3Env, UploadOptions};
use clap::Subcommand;
use progress::Reporter;

#[derive(Subcommand)]
pub enum BitsCmd {
    /// Upload bits/<name>/ to bits storage in the eng layout.
    Upload(UploadArgs),
    /// Fetch a component's latest (or a given) stamp and verify its md5s.
    Fetch(FetchArgs),
}

#[derive(clap::Args)]
pub struct StoreArgs {
    /// Bits storage: a path, file:///path, or s3://bucket/prefix (endpoint,
    /// region and credentials from AWS_* variables). Default:
    /// <workspace>/target/bits-store.
    #[arg(long, value_name = "DEST")]
    pub dest: Option<String>,
    /// Path under DEST above <name> (eng's /public/builds).
    #[arg(long, value_name = "P", default_value = "")]
    pub prefix: String,
    /// Transfers (files, 16 MiB parts) in flight at once, at least 1; also
    /// bounds memory (N x 16 MiB).
    #[arg(long, value_name = "N", default_value = "4")]
    pub jobs: NonZeroUsize,
    /// No progress on stderr (results and errors still print).
    #[arg(short, long)]
    pub quiet: bool,
}

impl StoreArgs {
    /// Transfers in flight and progress, as the flags say.
    fn ctx(&self) -> bits_store::Result<std::sync::Arc<Ctx>> {
        Ctx::new(
            self.jobs,
            std::sync::Arc::new(Reporter::new("bits", self.quiet)),
        )
    }
}

#[derive(clap::Args)]
pub struct UploadArgs {
    /// Components (subdirectories of the bits dir).
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Every component in the bits dir that has a latest-build-stamp.
    #[arg(long)]
    pub all: bool,
    /// Bits dir. Default: <workspace>/bits.
    #[arg(long, value_name = "DIR")]
    pub bits_dir: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Branch for the <branch>-latest pointer. Default: the stamp's (the
    /// branch its build was made on).
    #[arg(long, env = "BRANCH", value_name = "B")]
    pub branch: Option<String>,
    /// Upload a stamp marked -dirty anyway.
    #[arg(long)]
    pub allow_dirty: bool,
    /// Upload a dev build (stamp marked -dev: host binaries in a SmartOS
    /// image) anyway.
    #[arg(long)]
    pub allow_dev: bool,
}

#[derive(clap::Args)]
pub struct FetchArgs {
    /// Component name.
    pub name: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Follow <B>-latest. Default: the current git branch (eng's rule:
    /// the third field of `git symbolic-ref HEAD`).
    #[arg(long, env = "BRANCH", value_name = "B", conflicts_with = "stamp")]
    pub branch: Option<String>,
    /// Fetch this stamp instead of following a pointer.
    #[arg(long, value_name = "S")]
    pub stamp: Option<String>,
    /// Files land in <DIR>/<name>/.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn dest(arg: &Option<String>) -> Result<Dest> {
    match arg {
        Some(d) => Ok(Dest::parse(d)?),
        None => Ok(Dest::Local(
            xtask_launch::workspace_root()
                .join("target")
                .join("bits-store"),
        )),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run(cmd: BitsCmd) -> Result<()> {
    match cmd {
        BitsCmd::Upload(a) => {
            let bits_dir = a
                .bits_dir
                .unwrap_or_else(|| xtask_launch::workspace_root().join("bits"));
            let names = if a.all {
                bits_store::list_components(&bits_dir)?
            } else {
                a.names
            };
            let ctx = a.store.ctx()?;
            let opts = UploadOptions {
                bits_dir,
                names,
                dest: dest(&a.store.dest)?,
                prefix: a.store.prefix,
                branch: a.branch.filter(|b| !b.is_empty()),
                allow_dirty: a.allow_dirty,
                allow_dev: a.allow_dev,
                s3_env: S3Env::process(),
            };
            let report = runtime()?.block_on(bits_store::upload(&opts, ctx))?;
            for (name, stamp, at) in &report.stamps {
                println!("{name} {stamp}: {at}");
            }
            println!(
                "uploaded {} file(s), {} already there; list in {}",
                report.stored,
                report.skipped,
                report.artifacts.display()
            );
            Ok(())
        }
        BitsCmd::Fetch(a) => {
            let ctx = a.store.ctx()?;
            let opts = FetchOptions {
                dest: dest(&a.store.dest)?,
                prefix: a.store.prefix,
                name: a.name,
                branch: a.branch.filter(|b| !b.is_empty()),
                stamp: a.stamp,
                out: a.out,
                s3_env: S3Env::process(),
            };
            let report = runtime()?.block_on(bits_store::fetch(&opts, ctx))?;
            println!(
                "fetched {} {}: {} file(s) verified",
                opts.name,
                report.stamp,
                report.files.len()
            );
            Ok(())
        }
    }
}
