//! `cargo xtask image publish <name>`: the built manifest + file from
//! `bits/<name>/` to an updates server (IMGAPI), into the channel its branch
//! maps to, with HTTP Signature auth. The import itself is tritonadm's
//! library code: the same checks, origin handling and streaming upload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use buildstamp::Stamp;
use http_signature::KeySpec;
use tritonadm::imgapi::{ConnectOptions, Imgapi};
use tritonadm::import::{DEFAULT_SOURCE, ImportOptions, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// Image name under images/ (and bits/).
    pub name: String,
    /// Updates server (IMGAPI) URL.
    #[arg(
        long,
        env = "UPDATES_IMGADM_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Channel to publish to; by default from the stamp's branch
    /// (release-YYYYMMDD -> staging, master/main -> dev, else
    /// experimental).
    #[arg(long, value_name = "C", env = "UPDATES_IMGADM_CHANNEL")]
    pub channel: Option<String>,
    /// Publish a dev image (host binaries) or a build of a dirty tree.
    #[arg(long)]
    pub allow_dev: bool,
    /// Bits directory (default: bits/ in the workspace).
    #[arg(long)]
    pub bits_dir: Option<PathBuf>,
    /// IMGAPI to fetch missing origin images from (imgadm's "source").
    #[arg(long, value_name = "URL", default_value = DEFAULT_SOURCE)]
    pub source: String,
    /// Key to sign requests with: a private key file (RSA, ECDSA P-256/P-384,
    /// Ed25519; a passphrase-protected one is used through ssh-agent), or
    /// the MD5 fingerprint of a key in ssh-agent. Default: the agent's only
    /// key.
    #[arg(long, env = "UPDATES_IMGADM_IDENTITY", requires = "user")]
    pub key: Option<String>,
    /// User the key belongs to; requests are signed when it is set.
    #[arg(long, env = "UPDATES_IMGADM_USER")]
    pub user: Option<String>,
    /// Do not verify TLS certificates.
    #[arg(long)]
    pub insecure: bool,
    /// No progress on stderr (results and errors still print).
    #[arg(short, long)]
    pub quiet: bool,
}

/// What is about to be published, read and checked from `bits/<name>/`.
#[derive(Debug)]
pub struct Publishable {
    pub stamp: Stamp,
    pub manifest: PathBuf,
    pub file: PathBuf,
    pub dev_build: bool,
}

fn input(file: &Path, key: &str, message: impl Into<String>) -> anyhow::Error {
    zone_image::Error::input(file, key, message).into()
}

pub fn locate(bits: &Path, name: &str) -> Result<Publishable> {
    let dir = bits.join(name);
    let stamp_file = dir.join("latest-build-stamp");
    let stamp = match std::fs::read_to_string(&stamp_file) {
        Ok(s) => s.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(input(
                &stamp_file,
                "latest-build-stamp",
                format!("missing; run `cargo xtask image build {name}` first"),
            ));
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", stamp_file.display())),
    };
    let parsed = Stamp::parse(&stamp).map_err(|e| input(&stamp_file, "stamp", e.to_string()))?;
    // A tool ships its installer (zone_image::tool), a zone image its ZFS
    // stream.
    let tool_manifest = dir.join(zone_image::tool::manifest_name(name, &stamp));
    let (manifest, file) = if tool_manifest.is_file() {
        let installer = dir.join(zone_image::tool::installer_name(name, &stamp));
        (tool_manifest, installer)
    } else {
        (
            dir.join(format!("{name}-zfs-{stamp}.imgmanifest")),
            dir.join(format!("{name}-zfs-{stamp}.zfs.gz")),
        )
    };
    for p in [&manifest, &file] {
        if !p.is_file() {
            return Err(input(p, "file", "missing (named by latest-build-stamp)"));
        }
    }
    let local = tritonadm::import::load_manifest(&manifest).map_err(|e| {
        // tritonadm's message already starts with the path.
        let msg = e.to_string();
        let prefix = format!("{}: ", manifest.display());
        let msg = msg.strip_prefix(&prefix).unwrap_or(&msg).to_string();
        input(&manifest, "manifest", msg)
    })?;
    // The stamp says dev; the tag also catches manifests from before
    // stamps did.
    let dev_build = parsed.dev
        || local
            .image
            .tags
            .as_ref()
            .and_then(|t| t.get("dev_build"))
            .is_some_and(|v| v == &serde_json::Value::Bool(true));
    Ok(Publishable {
        stamp: parsed,
        manifest,
        file,
        dev_build,
    })
}

pub fn run(args: Args) -> Result<()> {
    let bits = args
        .bits_dir
        .clone()
        .unwrap_or_else(|| xtask_launch::workspace_root().join("bits"));
    let p = locate(&bits, &args.name)?;
    if p.dev_build && !args.allow_dev {
        let (file, key) = if p.stamp.dev {
            (bits.join(&args.name).join("latest-build-stamp"), "stamp")
        } else {
            (p.manifest.clone(), "tags.dev_build")
        };
        return Err(input(
            &file,
            key,
            format!(
                "{} is a dev image (host binaries); pass --allow-dev to publish it anyway",
                p.stamp
            ),
        ));
    }
    if p.stamp.dirty && !args.allow_dev {
        return Err(input(
            &bits.join(&args.name).join("latest-build-stamp"),
            "stamp",
            format!(
                "{} was built from a dirty tree; commit, rebuild, or pass --allow-dev",
                p.stamp
            ),
        ));
    }
    let channel = args
        .channel
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| p.stamp.channel().to_string());
    let signer = match &args.user {
        Some(user) => {
            let spec = KeySpec::new(
                user,
                args.key.as_deref(),
                "UPDATES_IMGADM_IDENTITY (or --key)",
            );
            let s = http_signature::resolve(&spec)?;
            let via = if s.uses_agent() { " via ssh-agent" } else { "" };
            println!("signing as {} ({}{via})", s.key_id(), s.algorithm());
            Some(Arc::new(s))
        }
        None => None,
    };
    let api = Imgapi::connect(
        &args.url,
        &ConnectOptions {
            insecure: args.insecure,
            signer,
        },
    )?;
    println!(
        "publishing {} ({}) to {} channel {channel}",
        args.name, p.stamp, args.url
    );
    let reporter = progress::Reporter::new("publish", args.quiet);
    let opts = ImportOptions {
        progress: std::sync::Arc::new(reporter.clone()),
        source: args.source.clone(),
        channel: Some(channel),
        source_connect: ConnectOptions {
            insecure: args.insecure,
            signer: None,
        },
        ..Default::default()
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime
        .block_on(tritonadm::import::import_image(
            &api,
            &p.manifest,
            &p.file,
            &opts,
        ))
        .with_context(|| format!("publishing {}", p.manifest.display()))?;
    match &outcome {
        Outcome::Imported(i) | Outcome::Completed(i) => {
            println!("published {} {} as {}", i.name, i.version, i.uuid)
        }
        Outcome::AlreadyActive(i) => println!(
            "{} {} ({}) is already active in {}",
            i.name, i.version, i.uuid, args.url
        ),
    }
    Ok(())
}
