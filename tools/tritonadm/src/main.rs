//! tritonadm: the Triton operator CLI.

mod dc_cmd;
mod self_update_cmd;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};
use imgapi_api::StateFilter;
use progress::Reporter;
use tritonadm::imgapi::{ConnectOptions, Imgapi};
use tritonadm::import::{DEFAULT_SOURCE, ImportOptions, Outcome, describe};
use uuid::Uuid;

#[derive(Parser)]
#[command(
    name = "tritonadm",
    about = "Triton DataCenter operator tool",
    version = tritonadm::version::version()
)]
struct Cli {
    /// IMGAPI URL [default: derived from the headnode config].
    #[arg(long, global = true, env = "IMGAPI_URL")]
    imgapi_url: Option<String>,
    /// Headnode config to derive the IMGAPI URL from.
    #[arg(long, global = true, env = "TRITONADM_HEADNODE_CONFIG", default_value = tritonadm::target::HEADNODE_CONFIG, hide_default_value = true)]
    headnode_config: PathBuf,
    /// Do not verify TLS certificates (self-signed test servers only).
    #[arg(long, global = true)]
    insecure: bool,
    /// Sign requests (HTTP Signature) with this key: a private key file, or
    /// the MD5 fingerprint of an ssh-agent key (default: the agent's only key)...
    #[arg(long, global = true, requires = "user", env = "TRITONADM_KEY")]
    key: Option<String>,
    /// ...as this user; requests are signed when it is set.
    #[arg(long, global = true, env = "TRITONADM_USER")]
    user: Option<String>,
    /// Say which IMGAPI is used and why.
    #[arg(short, long, global = true)]
    verbose: bool,
    /// No progress on stderr (results and errors still print).
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(flatten)]
    dc: dc_cmd::DcFlags,
    #[command(subcommand)]
    command: Command,
    /// Which of the URL options above came from their variable rather than
    /// the command line, so `-v` can say which.
    #[arg(skip)]
    from_env: BTreeSet<String>,
}

/// The options whose `-v` report names flag or variable.
const URL_ARGS: &[&str] = &[
    "imgapi_url",
    "sapi_url",
    "vmapi_url",
    "napi_url",
    "papi_url",
    "cnapi_url",
    "updates_url",
];

impl Cli {
    fn parse_with_sources() -> Cli {
        let matches = Cli::command().get_matches();
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.from_env = URL_ARGS
            .iter()
            .filter(|id| matches.value_source(id) == Some(ValueSource::EnvVariable))
            .map(|id| id.to_string())
            .collect();
        cli
    }

    /// `value` as (from the flag, from the variable).
    pub fn given(&self, id: &str, value: &Option<String>) -> (Option<String>, Option<String>) {
        if self.from_env.contains(id) {
            (None, value.clone())
        } else {
            (value.clone(), None)
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Images in the datacenter's IMGAPI.
    #[command(subcommand)]
    Image(ImageCmd),
    /// The DC's SAPI services: TYPE UUID NAME IMAGE INSTS.
    Services {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The DC's SAPI instances and their VMs.
    Instances {
        /// Only this service's instances.
        #[arg(long)]
        service: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Newer images on the updates server than each service runs.
    Avail {
        /// Only this service (default: every service).
        service: Option<String>,
        /// Updates channel [default: the sdc application's update_channel].
        #[arg(long)]
        channel: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// DC maintenance mode.
    #[command(subcommand)]
    DcMaint(dc_cmd::DcMaintCmd),
    /// Set a service up in the DC (or upgrade it).
    #[command(subcommand)]
    PostSetup(dc_cmd::PostSetupCmd),
    /// Update tritonadm from the updates server, or roll it back.
    SelfUpdate(self_update_cmd::SelfUpdateArgs),
    /// Print shell completions.
    Completion {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: self_update_cmd::Shell,
    },
    /// Print the man page (roff); the build ships it.
    #[command(hide = true)]
    Man,
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    Active,
    Unactivated,
    Disabled,
    All,
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Import an image from a manifest and its file (origins first).
    Import {
        /// The image manifest (`.imgmanifest`).
        #[arg(short = 'm', long)]
        manifest: PathBuf,
        /// The image file it describes (e.g. `.zfs.gz`).
        #[arg(short = 'f', long)]
        file: PathBuf,
        /// IMGAPI to fetch missing origin images from (may carry ?channel=).
        #[arg(long, default_value = DEFAULT_SOURCE)]
        source: String,
        /// Channel in the target IMGAPI.
        #[arg(long)]
        channel: Option<String>,
    },
    /// Import an image (and its missing origins) from another IMGAPI.
    ImportRemote {
        /// The image's UUID.
        uuid: Uuid,
        /// IMGAPI to import from (may carry ?channel=).
        #[arg(long)]
        source: String,
        /// Channel in the target IMGAPI.
        #[arg(long)]
        channel: Option<String>,
    },
    /// List images (all states unless --state is given).
    List {
        /// Only images of this name.
        #[arg(long)]
        name: Option<String>,
        /// Only images in this state.
        #[arg(long, value_enum, default_value = "all")]
        state: StateArg,
        /// Channel to list (servers with channels).
        #[arg(long)]
        channel: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one image.
    Get {
        /// The image's UUID.
        uuid: Uuid,
        /// Channel to look in (servers with channels).
        #[arg(long)]
        channel: Option<String>,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download an image's file, checked against its manifest's size and
    /// sha1 and the server's Content-MD5.
    GetFile {
        /// The image's UUID.
        uuid: Uuid,
        /// Where to write it; nothing is written unless every check passes.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Channel to look in (servers with channels).
        #[arg(long)]
        channel: Option<String>,
    },
    /// Delete an image (from the channel, on servers with channels).
    Delete {
        /// The image's UUID.
        uuid: Uuid,
        /// Channel to delete it from (servers with channels).
        #[arg(long)]
        channel: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse_with_sources();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tritonadm: error: {e:#}");
            let input = e.chain().any(|c| {
                c.downcast_ref::<tritonadm::Error>()
                    .is_some_and(|e| e.is_input())
            }) || e
                .chain()
                .any(|c| c.downcast_ref::<http_signature::Error>().is_some());
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}

fn connect(cli: &Cli) -> anyhow::Result<Imgapi> {
    let (flag, env) = cli.given("imgapi_url", &cli.imgapi_url);
    let (url, source) =
        tritonadm::target::resolve(flag.as_deref(), env.as_deref(), &cli.headnode_config)?;
    if cli.verbose {
        eprintln!("tritonadm: using IMGAPI {url} (from {source})");
    }
    let signer = match &cli.user {
        Some(user) => Some(Arc::new(http_signature::resolve(
            &http_signature::KeySpec::new(user, cli.key.as_deref(), "--key (or TRITONADM_KEY)"),
        )?)),
        None => None,
    };
    if cli.verbose
        && let Some(s) = &signer
    {
        eprintln!("tritonadm: signing requests as {}", s.key_id());
    }
    Ok(Imgapi::connect(
        &url,
        &ConnectOptions {
            insecure: cli.insecure,
            signer,
        },
    )?)
}

#[tokio::main]
async fn run(cli: Cli) -> anyhow::Result<()> {
    let cmd = match &cli.command {
        Command::Image(cmd) => cmd,
        Command::SelfUpdate(args) => return self_update_cmd::run(&cli, args).await,
        Command::Completion { shell } => {
            self_update_cmd::completion(*shell);
            return Ok(());
        }
        Command::Man => return self_update_cmd::man(),
        Command::Services { json } => return dc_cmd::services(&cli, *json).await,
        Command::Instances { service, json } => {
            return dc_cmd::instances(&cli, service.as_deref(), *json).await;
        }
        Command::Avail {
            service,
            channel,
            json,
        } => return dc_cmd::avail(&cli, service.as_deref(), channel.as_deref(), *json).await,
        Command::DcMaint(cmd) => return dc_cmd::dc_maint(&cli, cmd).await,
        Command::PostSetup(cmd) => return dc_cmd::post_setup(&cli, cmd).await,
    };
    let reporter = Reporter::new("tritonadm", cli.quiet);
    let import_opts = |source: &str, channel: &Option<String>| ImportOptions {
        source: source.to_string(),
        channel: channel.clone(),
        source_connect: ConnectOptions {
            insecure: cli.insecure,
            signer: None,
        },
        progress: Arc::new(reporter.clone()),
        ..Default::default()
    };
    match cmd {
        ImageCmd::Import {
            manifest,
            file,
            source,
            channel,
        } => {
            // Check the inputs before choosing or touching any server.
            let local = tritonadm::import::load_manifest(manifest)?;
            check_file_exists(file)?;
            let api = connect(&cli)?;
            let opts = import_opts(source, channel);
            let outcome = tritonadm::import::import_image(&api, &local.path, file, &opts)
                .await
                .with_context(|| format!("importing image {}", local.image.uuid))?;
            reporter.finish();
            report(&outcome, api.url());
        }
        ImageCmd::ImportRemote {
            uuid,
            source,
            channel,
        } => {
            let api = connect(&cli)?;
            let opts = import_opts(source, channel);
            let outcome = tritonadm::import::import_remote_image(&api, *uuid, &opts)
                .await
                .with_context(|| format!("importing image {uuid} from {source}"))?;
            reporter.finish();
            report(&outcome, api.url());
        }
        ImageCmd::List {
            name,
            state,
            channel,
            json,
        } => {
            let api = connect(&cli)?;
            let state = match state {
                StateArg::Active => StateFilter::Active,
                StateArg::Unactivated => StateFilter::Unactivated,
                StateArg::Disabled => StateFilter::Disabled,
                StateArg::All => StateFilter::All,
            };
            let images = api
                .list_images(name.as_deref(), state, channel.as_deref())
                .await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&images)?);
            } else {
                println!(
                    "{:<36}  {:<24}  {:<32}  {:<8}  {:<11}  PUBLISHED",
                    "UUID", "NAME", "VERSION", "OS", "STATE"
                );
                for i in images {
                    println!(
                        "{:<36}  {:<24}  {:<32}  {:<8}  {:<11}  {}",
                        i.uuid,
                        i.name,
                        i.version,
                        i.os.as_str(),
                        i.state.as_str(),
                        i.published_at
                            .map(|p| p.format("%Y-%m-%d").to_string())
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        ImageCmd::Get {
            uuid,
            channel,
            json,
        } => {
            let api = connect(&cli)?;
            let image = api
                .get_image(*uuid, channel.as_deref())
                .await?
                .with_context(|| format!("image {uuid} not found in {}", api.url()))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&image)?);
            } else {
                println!("uuid:         {}", image.uuid);
                println!("name:         {}", image.name);
                println!("version:      {}", image.version);
                println!("state:        {}", image.state.as_str());
                println!("type:         {}", image.image_type.as_str());
                println!("os:           {}", image.os.as_str());
                if let Some(o) = image.origin {
                    println!("origin:       {o}");
                }
                if let Some(p) = image.published_at {
                    println!("published_at: {}", p.to_rfc3339());
                }
                for f in &image.files {
                    println!(
                        "file:         {} bytes, {}, sha1 {}",
                        f.size,
                        f.compression.as_str(),
                        f.sha1
                    );
                }
            }
        }
        ImageCmd::GetFile {
            uuid,
            output,
            channel,
        } => {
            let api = connect(&cli)?;
            tritonadm::download::download_file(&api, *uuid, channel.as_deref(), output, &reporter)
                .await
                .with_context(|| format!("downloading the file of image {uuid}"))?;
            reporter.finish();
            println!("Saved the file of image {uuid} to {}", output.display());
        }
        ImageCmd::Delete { uuid, channel } => {
            let api = connect(&cli)?;
            api.delete(*uuid, channel.as_deref())
                .await
                .with_context(|| format!("deleting image {uuid}"))?;
            println!("Deleted image {uuid}");
        }
    }
    Ok(())
}

fn check_file_exists(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(tritonadm::Error::Input(format!(
            "{}: expected an image file, found a directory or special file",
            path.display()
        ))
        .into()),
        Err(e) => Err(tritonadm::Error::Input(format!("{}: {e}", path.display())).into()),
    }
}

/// The result line of an import, on stdout (steps went to stderr).
fn report(outcome: &Outcome, url: &str) {
    let i = outcome.image();
    match outcome {
        Outcome::AlreadyActive(_) => println!(
            "Image {} is already {} in {url}",
            describe(i),
            i.state.as_str()
        ),
        Outcome::Imported(_) | Outcome::Completed(_) => println!("Activated image {}", describe(i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_option_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if !matches!(id, "help" | "version") && a.get_help().is_none() {
                    missing.push(format!("{path}: {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "tritonadm", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
