//! `tritonadm self-update`, `completion` and `man`: the CLI side; the
//! logic is in the library's `self_update`.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use anyhow::Context as _;
use clap::{CommandFactory as _, ValueEnum};
use tritonadm::imgapi::{ConnectOptions, Imgapi};
use tritonadm::import::DEFAULT_SOURCE;
use tritonadm::self_update::{self, Installed, Layout, Which};
use uuid::Uuid;

use crate::Cli;

#[derive(clap::Args)]
pub struct SelfUpdateArgs {
    /// Install this image instead of the newest one.
    #[arg(conflicts_with = "latest")]
    image: Option<Uuid>,
    /// Install the newest tritonadm in the channel (the default).
    #[arg(long)]
    latest: bool,
    /// Channel; else the source URL's ?channel=, else the server's default.
    #[arg(long)]
    channel: Option<String>,
    /// Updates server (IMGAPI).
    #[arg(long, default_value = DEFAULT_SOURCE)]
    source: String,
    /// Say what would be done, change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    yes: bool,
    /// Reinstall the newest archived previous install.
    #[arg(long, conflicts_with_all = ["image", "latest", "channel"])]
    rollback: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn completion(shell: Shell) {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "tritonadm",
        &mut std::io::stdout(),
    );
}

pub fn man() -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .context("writing the man page")?;
    out.flush().context("writing the man page")
}

fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(tritonadm::Error::Input(
            "stdin is not a terminal to confirm on; pass -y to go ahead".into(),
        )
        .into());
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        anyhow::bail!("not confirmed; nothing changed")
    }
}

pub async fn run(cli: &Cli, a: &SelfUpdateArgs) -> anyhow::Result<()> {
    let layout = Layout::from_env();
    let _lock = self_update::lock(&layout)?;
    if a.rollback {
        if !a.dry_run && !a.yes {
            confirm("Roll tritonadm back to its previous install?")?;
        }
        self_update::rollback(&layout, a.dry_run)?;
        return Ok(());
    }
    let (url, url_channel) = tritonadm::target::split_source(&a.source)?;
    let api = Imgapi::connect(
        &url,
        &ConnectOptions {
            insecure: cli.insecure,
            signer: None,
        },
    )?;
    let channel =
        self_update::channel(&api, a.channel.as_deref().or(url_channel.as_deref())).await?;
    let which = a.image.map_or(Which::Latest, Which::Image);
    let image = self_update::find(&api, which, &channel).await?;
    let installed = Installed::read(&layout)?;
    println!(
        "installed: {}",
        installed.version.as_deref().unwrap_or("nothing")
    );
    println!(
        "{} in channel {channel} of {url}: {} ({})",
        if a.image.is_some() {
            "requested"
        } else {
            "newest"
        },
        image.version,
        image.uuid
    );
    if installed.uuid == Some(image.uuid) {
        println!("tritonadm is already up to date");
        return Ok(());
    }
    if a.dry_run {
        println!(
            "dry run: would download {} to {} and install it",
            image.uuid,
            layout.downloads().display()
        );
        return Ok(());
    }
    if !a.yes {
        confirm(&format!("Update tritonadm to {}?", image.version))?;
    }
    let reporter = progress::Reporter::new("tritonadm", cli.quiet);
    let file = self_update::download(&api, &image, &channel, &layout.downloads(), &reporter)
        .await
        .with_context(|| format!("downloading image {}", image.uuid))?;
    reporter.finish();
    println!("downloaded {} (size and sha1 match)", file.display());
    let source = format!("{url}/images/{}?channel={channel}", image.uuid);
    let result = self_update::run_installer(&layout, &file, &["--source", &source]);
    let _ = std::fs::remove_file(&file);
    result?;
    Ok(())
}
