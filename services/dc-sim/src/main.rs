//! `dc-sim --dir DIR [--listen-ip IP] [--base-port N]`: a simulated Triton
//! headnode for developing and testing tools against.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "dc-sim",
    version,
    about = "A simulated Triton headnode: SAPI, VMAPI, NAPI, PAPI, CNAPI and IMGAPI"
)]
struct Cli {
    /// Where the state, the IMGAPI images and usbkey-config live (created
    /// and seeded like a fresh DC if empty).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    listen_ip: IpAddr,
    /// SAPI's port; VMAPI, NAPI, PAPI, CNAPI, IMGAPI and the admin API take
    /// the next six. 0: an ephemeral port each.
    #[arg(long, default_value_t = 0)]
    base_port: u16,
    /// How long each job stays queued, then running, in milliseconds.
    #[arg(long, default_value_t = 200)]
    job_delay_ms: u64,
    /// Log every request (info); warnings and errors only otherwise.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dc-sim: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[tokio::main]
async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut opts = dc_sim::Options::new(&cli.dir);
    opts.listen_ip = cli.listen_ip;
    opts.base_port = cli.base_port;
    opts.job_delay = Duration::from_millis(cli.job_delay_ms);
    opts.log_level = if cli.verbose {
        slog::Level::Info
    } else {
        slog::Level::Warning
    };
    let log = dc_sim::logger(opts.log_level);
    let sim = dc_sim::start(opts, log)
        .await
        .with_context(|| format!("starting with --dir {}", cli.dir.display()))?;
    // Scripts and tests read these lines: `<api> <url>`, then the config.
    for (name, url) in sim.urls.all() {
        println!("{name} {url}");
    }
    println!("usbkey-config {}", sim.config_path.display());
    // Every acknowledged change is already on disk: being killed is a
    // clean stop.
    sim.wait().await.map_err(|e| anyhow::anyhow!(e))
}
