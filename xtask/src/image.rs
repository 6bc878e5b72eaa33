//! `cargo xtask image ...`: clap glue over `zone_image`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Subcommand;
use progress::{Progress as _, Reporter};
use uuid::Uuid;
use zone_image::binaries::CargoOptions;
use zone_image::build::{BuildOptions, build, check};
use zone_image::definition;
use zone_image::origin::{FetchOrigin, Origins};
use zone_image::zfs_image::ZfsOptions;

use crate::forward;

#[derive(Subcommand)]
pub enum ImageCmd {
    /// List every image under images/ with its kind and description.
    List,
    /// Validate a definition and everything it references, building nothing.
    Check {
        /// Image name under images/.
        name: String,
    },
    /// Build an image: binaries, proto, package tarball, ZFS image + manifest
    /// (a tool: installer + manifest).
    Build(BuildArgs),
    /// Publish a built image to an updates server (IMGAPI; xtask-ship).
    #[command(disable_help_flag = true)]
    Publish(forward::Args),
    /// Download an origin image and its origins into the pool (xtask-ship;
    /// what `build` has done when an origin is not at hand).
    #[command(disable_help_flag = true)]
    FetchOrigin(forward::Args),
}

#[derive(clap::Args)]
pub struct BuildArgs {
    /// Image name under images/.
    pub name: String,
    /// Stop after the package tarball.
    #[arg(long)]
    pub no_zfs: bool,
    /// Output directory (eng's bits/); artifacts go to <DIR>/<name>/.
    #[arg(long, value_name = "DIR")]
    pub bits_dir: Option<PathBuf>,
    /// Pool or dataset holding origin images as <POOL>/<uuid>@final.
    /// Default: on SmartOS the zone's dataset, elsewhere $ZONE_IMAGE_ZPOOL;
    /// without one the build stops after the package tarball.
    #[arg(long, value_name = "POOL")]
    pub zpool: Option<String>,
    /// Directory with origin images (*.imgmanifest + image file).
    #[arg(long, value_name = "DIR")]
    pub origin_dir: Option<PathBuf>,
    /// IMGAPI to fetch missing origin images from (imgadm's "source", as
    /// for `image publish` and tritonadm); "" for none. Default:
    /// https://updates.tritondatacenter.com.
    #[arg(long, value_name = "URL", alias = "origin-source")]
    pub source: Option<String>,
    /// Channel of --source to look the origin images up in.
    #[arg(long, value_name = "C")]
    pub origin_channel: Option<String>,
    /// Do not install pkgsrc packages (the image becomes a dev image).
    #[arg(long)]
    pub skip_pkgsrc: bool,
    /// Cargo target triple, e.g. x86_64-unknown-illumos.
    #[arg(long)]
    pub target: Option<String>,
    /// Cargo profile for the binaries.
    #[arg(long, default_value = "release")]
    pub cargo_profile: String,
    /// Rebuild even if the inputs are unchanged.
    #[arg(long)]
    pub force: bool,
    /// Branch the stamp names. Default: the current git branch (eng's
    /// rule: the third field of `git symbolic-ref HEAD`).
    #[arg(long, env = "BRANCH", value_name = "B")]
    pub branch: Option<String>,
    /// No progress on stderr (warnings and results still print).
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(cmd: ImageCmd) -> Result<()> {
    let root = xtask_launch::workspace_root();
    match cmd {
        ImageCmd::List => {
            for name in definition::list_images(&root)? {
                let def = definition::load(&root, &name)?;
                println!(
                    "{:<24} {:<5} {}",
                    def.name,
                    def.kind.as_str(),
                    def.description
                );
            }
            Ok(())
        }
        ImageCmd::Check { name } => {
            let def = check(&root, &name)?;
            println!("ok: {} ({})", def.name, def.file.display());
            Ok(())
        }
        ImageCmd::Build(args) => run_build(root, args),
        // main() hands these to their tool before getting here.
        ImageCmd::Publish(_) | ImageCmd::FetchOrigin(_) => {
            anyhow::bail!("this command belongs to xtask-ship: run it as `cargo xtask image ...`")
        }
    }
}

fn run_build(root: PathBuf, args: BuildArgs) -> Result<()> {
    let opts = BuildOptions {
        bits_dir: args.bits_dir.unwrap_or_else(|| root.join("bits")),
        workspace: root,
        name: args.name.clone(),
        no_zfs: args.no_zfs,
        cargo: CargoOptions {
            target: args.target,
            profile: args.cargo_profile,
        },
        zfs: ZfsOptions {
            zpool: args.zpool,
            origin_dir: args.origin_dir,
            origin_source: args.source,
            channel: args.origin_channel,
            skip_pkgsrc: args.skip_pkgsrc,
            fetch: Some(Arc::new(ShipFetch { quiet: args.quiet })),
        },
        force: args.force,
        branch: args.branch,
    };
    let reporter = Reporter::new(&args.name, args.quiet);
    let result = build(&opts, &reporter);
    reporter.finish();
    let report = result.with_context(|| format!("image build {}", args.name))?;

    if let Some(reason) = &report.dev_reason {
        reporter.warn(&format!("dev image: {reason}"));
    }
    if report.cached {
        println!(
            "up to date: inputs unchanged since {}, nothing rebuilt",
            report.stamp
        );
    }
    println!(
        "package: {} ({} bytes, sha1 {})",
        report.tarball.display(),
        report.tarball_size,
        report.tarball_sha1
    );
    if let Some(t) = &report.tool {
        println!(
            "installer: {} ({} bytes, sha1 {})",
            t.installer.display(),
            t.size,
            t.sha1
        );
        println!(
            "manifest: {} (uuid {}, version {})",
            t.manifest_file.display(),
            t.uuid,
            t.version
        );
    }
    match (&report.zfs, &report.zfs_skipped) {
        (Some(z), _) => {
            println!(
                "image: {} ({} bytes, sha1 {})",
                z.image_file.display(),
                z.size,
                z.sha1
            );
            println!(
                "manifest: {} (uuid {}, version {})",
                z.manifest_file.display(),
                z.uuid,
                z.version
            );
        }
        (None, Some(why)) if report.tool.is_none() => println!("ZFS stage skipped: {why}"),
        (None, _) => {}
    }
    println!("stamp: {}", report.stamp);
    Ok(())
}

/// Origins to download go to `cargo xtask image fetch-origin` (xtask-ship,
/// built on first use), which has the HTTPS client this binary leaves out.
#[derive(Debug)]
struct ShipFetch {
    quiet: bool,
}

impl FetchOrigin for ShipFetch {
    fn fetch_origin(&self, uuid: Uuid, o: &Origins<'_>) -> zone_image::Result<()> {
        let mut cmd = xtask_launch::cargo_xtask();
        cmd.args([
            "image",
            "fetch-origin",
            &uuid.to_string(),
            "--zpool",
            o.pool,
        ]);
        if let Some(dir) = o.dir {
            cmd.arg("--origin-dir").arg(dir);
        }
        cmd.args(["--source", o.source.unwrap_or("")]);
        if let Some(c) = o.channel {
            cmd.args(["--origin-channel", c]);
        }
        if self.quiet {
            cmd.arg("--quiet");
        }
        o.progress.step(&format!(
            "origin {uuid}: handing the download to xtask-ship"
        ));
        let mut status = None;
        // Its progress and errors go straight to the terminal.
        o.progress.suspend(&mut || status = Some(cmd.status()));
        match status {
            Some(Ok(s)) if s.success() => Ok(()),
            Some(Ok(s)) => Err(zone_image::Error::Command(format!(
                "origin {uuid}: `cargo xtask image fetch-origin` failed ({s}; its error is above)"
            ))),
            Some(Err(e)) => Err(zone_image::Error::Io {
                context: "running cargo xtask image fetch-origin".into(),
                source: e,
            }),
            None => Err(zone_image::Error::Command(format!(
                "origin {uuid}: the download was never started"
            ))),
        }
    }
}
