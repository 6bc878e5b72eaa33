//! The datacenter commands' CLI side: `services`, `instances`, `avail`,
//! `dc-maint status`, `post-setup`. The logic is in the library's `views`
//! and `post_setup`.

use std::path::PathBuf;

use anyhow::Context as _;
use tritonadm::dc::{Dc, DcOptions};
use tritonadm::imgapi::{ConnectOptions, Imgapi};
use tritonadm::post_setup::{self, ImageChoice, PostSetupOptions, ServiceDefinition};
use tritonadm::target::Api;
use tritonadm::views;

use crate::Cli;

/// Where the DC's other APIs are (`--imgapi-url` is tritonadm's own).
#[derive(clap::Args)]
pub struct DcFlags {
    /// SAPI URL [default: from the headnode config].
    #[arg(long, global = true, env = "SAPI_URL")]
    sapi_url: Option<String>,
    /// VMAPI URL [default: from the headnode config].
    #[arg(long, global = true, env = "VMAPI_URL")]
    vmapi_url: Option<String>,
    /// NAPI URL [default: from the headnode config].
    #[arg(long, global = true, env = "NAPI_URL")]
    napi_url: Option<String>,
    /// PAPI URL [default: from the headnode config].
    #[arg(long, global = true, env = "PAPI_URL")]
    papi_url: Option<String>,
    /// CNAPI URL [default: from the headnode config].
    #[arg(long, global = true, env = "CNAPI_URL")]
    cnapi_url: Option<String>,
    /// Updates server [default: the sdc application's metadata.updates_url,
    /// else https://updates.tritondatacenter.com].
    #[arg(long, global = true, env = "UPDATES_URL")]
    updates_url: Option<String>,
}

#[derive(clap::Subcommand)]
pub enum DcMaintCmd {
    /// Whether the DC is in maintenance (cloudapi/docker read-only).
    Status {
        /// Print JSON instead of a line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum PostSetupCmd {
    /// Create the triton-api service and its instance, or upgrade it.
    TritonApi(TritonApiArgs),
    /// Give the imgapi, adminui and triton-api instances an external NIC.
    CommonExternalNics,
}

#[derive(clap::Args)]
pub struct TritonApiArgs {
    /// `latest` (newest on the updates server), `current` (newest in the
    /// DC's IMGAPI) or an image UUID.
    #[arg(long, default_value = "latest")]
    image: ImageChoice,
    /// Updates channel; else the sdc application's update_channel, else
    /// the updates server's default.
    #[arg(long)]
    channel: Option<String>,
    /// Server for the instance; else the headnode.
    #[arg(long)]
    server: Option<uuid::Uuid>,
    /// Service definition to use instead of the built-in
    /// manifests/triton-api.json.
    #[arg(long, hide = true)]
    definition: Option<PathBuf>,
    /// Show the plan, change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    yes: bool,
}

pub fn dc(cli: &Cli) -> Dc {
    let f = &cli.dc;
    let (mut flags, mut env) = (Vec::new(), Vec::new());
    for (api, id, value) in [
        (Api::Sapi, "sapi_url", &f.sapi_url),
        (Api::Vmapi, "vmapi_url", &f.vmapi_url),
        (Api::Napi, "napi_url", &f.napi_url),
        (Api::Papi, "papi_url", &f.papi_url),
        (Api::Cnapi, "cnapi_url", &f.cnapi_url),
        (Api::Imgapi, "imgapi_url", &cli.imgapi_url),
    ] {
        let (from_flag, from_env) = cli.given(id, value);
        flags.extend(from_flag.map(|u| (api, u)));
        env.extend(from_env.map(|u| (api, u)));
    }
    Dc::new(DcOptions {
        flags,
        env,
        headnode_config: cli.headnode_config.clone(),
        verbose: cli.verbose,
        imgapi_connect: ConnectOptions {
            insecure: cli.insecure,
            signer: None,
        },
    })
}

fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

pub async fn services(cli: &Cli, json: bool) -> anyhow::Result<()> {
    let rows = views::services(&dc(cli))
        .await
        .context("listing services")?;
    if json {
        return print_json(&rows);
    }
    print!("{}", views::services_table(&rows));
    Ok(())
}

pub async fn instances(cli: &Cli, service: Option<&str>, json: bool) -> anyhow::Result<()> {
    let rows = views::instances(&dc(cli), service)
        .await
        .context("listing instances")?;
    if json {
        return print_json(&rows);
    }
    print!("{}", views::instances_table(&rows));
    Ok(())
}

pub async fn avail(
    cli: &Cli,
    service: Option<&str>,
    channel: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let dc = dc(cli);
    let app = views::sdc_application(&dc).await?;
    let (flag, env) = cli.given("updates_url", &cli.dc.updates_url);
    let (url, from) =
        tritonadm::dc::updates_url(flag.as_deref(), env.as_deref(), app.metadata.as_ref());
    let channel = tritonadm::dc::update_channel(channel, app.metadata.as_ref());
    if cli.verbose {
        eprintln!("tritonadm: using updates server {url} (from {from})");
    }
    let updates = Imgapi::connect(
        &url,
        &ConnectOptions {
            insecure: cli.insecure,
            signer: None,
        },
    )?;
    let rows = views::avail(&dc, &updates, channel.as_deref(), service)
        .await
        .context("finding newer images")?;
    if json {
        return print_json(&rows);
    }
    print!("{}", views::avail_table(&rows));
    Ok(())
}

pub async fn dc_maint(cli: &Cli, cmd: &DcMaintCmd) -> anyhow::Result<()> {
    let DcMaintCmd::Status { json } = cmd;
    let status = views::maint_status(&dc(cli))
        .await
        .context("reading the DC maintenance status")?;
    if *json {
        return print_json(&status);
    }
    print!("{}", views::maint_text(&status));
    Ok(())
}

pub async fn post_setup(cli: &Cli, cmd: &PostSetupCmd) -> anyhow::Result<()> {
    let dc = dc(cli);
    match cmd {
        PostSetupCmd::TritonApi(a) => {
            let def = match &a.definition {
                Some(p) => ServiceDefinition::load(p)?,
                None => {
                    ServiceDefinition::parse("manifests/triton-api.json", post_setup::TRITON_API)?
                }
            };
            let opts = PostSetupOptions {
                image: a.image.clone(),
                channel: a.channel.clone(),
                server: a.server,
                updates_url: cli.given("updates_url", &cli.dc.updates_url),
                updates_connect: ConnectOptions {
                    insecure: cli.insecure,
                    signer: None,
                },
                dry_run: a.dry_run,
                yes: a.yes,
                verbose: cli.verbose,
            };
            post_setup::run(&dc, &def, &opts)
                .await
                .with_context(|| format!("post-setup {}", def.name))?;
        }
        PostSetupCmd::CommonExternalNics => {
            let added = post_setup::common_external_nics(&dc)
                .await
                .context("post-setup common-external-nics")?;
            println!("Added {added} external NIC(s). Done.");
        }
    }
    Ok(())
}
