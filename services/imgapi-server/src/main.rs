//! `imgapi-server --dir DIR --listen ADDR [--auth-keys FILE]`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use dropshot::ConfigLoggingLevel;

#[derive(Parser)]
#[command(name = "imgapi-server", about = "A file-backed IMGAPI server", version)]
struct Cli {
    /// Directory holding manifests and image files (created if missing).
    #[arg(long)]
    dir: PathBuf,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks one).
    #[arg(long)]
    listen: SocketAddr,
    /// authorized_keys-style file of ssh-rsa keys allowed to write; without
    /// it writes are not authenticated (a DC-internal IMGAPI).
    #[arg(long)]
    auth_keys: Option<PathBuf>,
    /// PEM certificate chain and key: serve HTTPS instead of HTTP.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Log requests at info level (warnings and errors only otherwise).
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("imgapi-server: error: {e:#}");
            let input = e
                .chain()
                .any(|c| c.downcast_ref::<http_signature::Error>().is_some());
            ExitCode::from(if input { 2 } else { 1 })
        }
    }
}

#[tokio::main]
async fn run(cli: Cli) -> anyhow::Result<()> {
    let auth = cli
        .auth_keys
        .as_deref()
        .map(http_signature::KeyRing::load)
        .transpose()?;
    let mut opts = imgapi_server::Options::new(&cli.dir, cli.listen);
    opts.auth = auth;
    if cli.verbose {
        opts.log_level = ConfigLoggingLevel::Info;
    }
    if let (Some(cert_file), Some(key_file)) = (cli.tls_cert, cli.tls_key) {
        opts.tls = Some(dropshot::ConfigTls::AsFile {
            cert_file,
            key_file,
        });
    }
    let server = imgapi_server::start(opts).with_context(|| {
        format!(
            "starting on {} with --dir {}",
            cli.listen,
            cli.dir.display()
        )
    })?;
    // Tests and scripts read the bound address (port 0) from this line.
    println!("imgapi-server listening on {}", server.local_addr());
    // Every acknowledged write is already on disk, so being killed is a
    // clean stop.
    server.await.map_err(|e| anyhow::anyhow!(e))
}
