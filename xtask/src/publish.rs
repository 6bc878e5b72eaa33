//! `cargo xtask image publish <name>`: the built manifest + file from
//! `bits/<name>/` to an updates server (IMGAPI), into the channel its branch
//! maps to, with HTTP Signature auth. The import itself is tritonadm's
//! library code: the same checks, origin handling and streaming upload.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use http_signature::KeySpec;
use tritonadm::imgapi::{ConnectOptions, Imgapi};
use tritonadm::import::{DEFAULT_SOURCE, ImportOptions, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// Image name under images/ (and bits/).
    pub name: String,
    /// Updates server (IMGAPI) URL.
    #[arg(long, env = "UPDATES_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Channel; by default from the stamp's branch (release-* -> staging,
    /// master/main -> dev, else experimental).
    #[arg(long)]
    pub channel: Option<String>,
    /// Publish a dev image (host binaries) or a build of a dirty tree.
    #[arg(long)]
    pub allow_dev: bool,
    /// Bits directory (default: bits/ in the workspace).
    #[arg(long)]
    pub bits_dir: Option<PathBuf>,
    /// IMGAPI to fetch missing origin images from.
    #[arg(long, default_value = DEFAULT_SOURCE)]
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
}

/// What is about to be published, read and checked from `bits/<name>/`.
#[derive(Debug)]
pub struct Publishable {
    pub stamp: String,
    pub branch: String,
    pub dirty: bool,
    pub manifest: PathBuf,
    pub file: PathBuf,
    pub dev_build: bool,
}

fn input(file: &Path, key: &str, message: impl Into<String>) -> anyhow::Error {
    zone_image::Error::input(file, key, message).into()
}

/// `<branch>-<YYYYmmddTHHMMSSZ>-g<sha>[-dirty]` -> (branch, dirty).
fn parse_stamp(stamp: &str) -> Option<(String, bool)> {
    let (rest, dirty) = match stamp.strip_suffix("-dirty") {
        Some(r) => (r, true),
        None => (stamp, false),
    };
    let mut parts = rest.rsplitn(3, '-');
    let sha = parts.next()?;
    let ts = parts.next()?;
    let branch = parts.next()?;
    let ok = sha.starts_with('g')
        && ts.len() == 16
        && ts.ends_with('Z')
        && ts.as_bytes().get(8) == Some(&b'T')
        && !branch.is_empty();
    ok.then(|| (branch.to_string(), dirty))
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
    let (branch, dirty) = parse_stamp(&stamp).ok_or_else(|| {
        input(
            &stamp_file,
            "stamp",
            format!("{stamp:?} is not <branch>-<YYYYmmddTHHMMSSZ>-g<sha>[-dirty]"),
        )
    })?;
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
    let dev_build = local
        .image
        .tags
        .as_ref()
        .and_then(|t| t.get("dev_build"))
        .is_some_and(|v| v == &serde_json::Value::Bool(true));
    Ok(Publishable {
        stamp,
        branch,
        dirty,
        manifest,
        file,
        dev_build,
    })
}

pub fn run(args: Args) -> Result<()> {
    let bits = args
        .bits_dir
        .clone()
        .unwrap_or_else(|| crate::workspace_root().join("bits"));
    let p = locate(&bits, &args.name)?;
    if p.dev_build && !args.allow_dev {
        return Err(input(
            &p.manifest,
            "tags.dev_build",
            "this is a dev image (host binaries); pass --allow-dev to publish it anyway",
        ));
    }
    if p.dirty && !args.allow_dev {
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
        .unwrap_or_else(|| zone_image::stamp::channel_for_branch(&p.branch).to_string());
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
    let opts = ImportOptions {
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
    if let Outcome::Imported(i) | Outcome::Completed(i) = &outcome {
        println!("published {} {} as {}", i.name, i.version, i.uuid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_parse() {
        assert_eq!(
            parse_stamp("master-20261126T040638Z-g1a2b3c4"),
            Some(("master".into(), false))
        );
        assert_eq!(
            parse_stamp("release-20261126-20261126T040638Z-gabc-dirty"),
            Some(("release-20261126".into(), true))
        );
        assert_eq!(parse_stamp("nonsense"), None);
    }
}
