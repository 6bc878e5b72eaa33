//! `cargo xtask openapi generate|check`: the checked-in OpenAPI documents
//! under `openapi/` must match what the API traits generate. A tool of its
//! own because it links every API crate and Dropshot.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "OpenAPI documents of the API traits")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// OpenAPI documents generated from the API traits.
    #[command(subcommand)]
    Openapi(OpenapiCmd),
}

fn main() -> ExitCode {
    let Command::Openapi(cmd) = Cli::parse().command;
    xtask_launch::exit(run(cmd), |_| None)
}

#[derive(Subcommand)]
enum OpenapiCmd {
    /// Rewrite the checked-in documents from their API traits.
    Generate {
        /// Only these documents (file names under `openapi/`); all when none.
        files: Vec<String>,
    },
    /// Exit non-zero when a checked-in document has drifted from its trait.
    Check,
}

/// One API whose document is checked in.
struct ManagedApi {
    /// File name under `openapi/`.
    file: &'static str,
    render: fn() -> Result<String>,
}

fn apis() -> Vec<ManagedApi> {
    vec![
        ManagedApi {
            file: "triton-api.json",
            render: render_triton_api,
        },
        ManagedApi {
            file: "imgapi.json",
            render: render_imgapi,
        },
        ManagedApi {
            file: "imgapi-client.json",
            render: render_imgapi_client,
        },
        ManagedApi {
            file: "sapi.json",
            render: || {
                render_trait(
                    sapi_api::sapi_api_mod::stub_api_description(),
                    "SAPI",
                    sapi_api::API_VERSION,
                    "Triton Services API: the subset the toolchain uses",
                )
            },
        },
        ManagedApi {
            file: "vmapi.json",
            render: || {
                render_trait(
                    vmapi_api::vmapi_api_mod::stub_api_description(),
                    "VMAPI",
                    vmapi_api::API_VERSION,
                    "Triton VMs API: the subset the toolchain uses",
                )
            },
        },
        ManagedApi {
            file: "napi.json",
            render: || {
                render_trait(
                    napi_api::napi_api_mod::stub_api_description(),
                    "NAPI",
                    napi_api::API_VERSION,
                    "Triton Networking API: the subset the toolchain uses",
                )
            },
        },
        ManagedApi {
            file: "papi.json",
            render: || {
                render_trait(
                    papi_api::papi_api_mod::stub_api_description(),
                    "PAPI",
                    papi_api::API_VERSION,
                    "Triton Package API: the subset the toolchain uses",
                )
            },
        },
        ManagedApi {
            file: "cnapi.json",
            render: || {
                render_trait(
                    cnapi_api::cnapi_api_mod::stub_api_description(),
                    "CNAPI",
                    cnapi_api::API_VERSION,
                    "Triton Compute Node API: the subset the toolchain uses",
                )
            },
        },
    ]
}

/// The document of a trait whose checked-in document is exactly what
/// Dropshot generates.
fn render_trait<E: std::fmt::Display>(
    api: Result<dropshot::ApiDescription<dropshot::StubContext>, E>,
    title: &str,
    version: &str,
    description: &str,
) -> Result<String> {
    let api = api.map_err(|e| anyhow::anyhow!("{title} description: {e}"))?;
    let version: semver::Version = version.parse()?;
    let doc = api
        .openapi(title, version)
        .description(description)
        .json()?;
    finish(serde_json::to_vec_pretty(&doc)?)
}

fn imgapi_document() -> Result<serde_json::Value> {
    let api = imgapi_api::imgapi_api_mod::stub_api_description()
        .map_err(|e| anyhow::anyhow!("imgapi-api description: {e}"))?;
    let version: semver::Version = imgapi_api::API_VERSION.parse()?;
    Ok(api
        .openapi("IMGAPI", version)
        .description("Triton Image API: the subset the toolchain uses")
        .json()?)
}

fn render_imgapi() -> Result<String> {
    finish(serde_json::to_vec_pretty(&imgapi_document()?)?)
}

/// The document `clients/imgapi-client` is generated from: the trait's, with
/// the `POST /images/{uuid}` body declared as JSON. The trait takes that
/// body untyped so the server accepts the empty body restify clients send
/// for activate/enable/disable; Progenitor would then send it as
/// `application/octet-stream`, which sdc-imgapi's restify body parser does
/// not read as JSON, so a manifest sent to a real IMGAPI would be lost.
fn render_imgapi_client() -> Result<String> {
    let mut doc = imgapi_document()?;
    let body = doc
        .pointer_mut("/paths/~1images~1{uuid}/post/requestBody")
        .context("imgapi.json: POST /images/{uuid} has no requestBody")?;
    *body = serde_json::json!({
        "content": {
            "application/json": {
                "schema": {}
            }
        },
        "required": true
    });
    finish(serde_json::to_vec_pretty(&doc)?)
}

fn render_triton_api() -> Result<String> {
    let api = triton_api::triton_api_mod::stub_api_description()
        .map_err(|e| anyhow::anyhow!("triton-api description: {e}"))?;
    let version: semver::Version = triton_api::API_VERSION.parse()?;
    let mut out = Vec::new();
    api.openapi("Triton API", version)
        .description("The Triton DataCenter API service")
        .write(&mut out)?;
    finish(out)
}

/// Documents end with a newline so editors and `git diff` stay quiet.
pub(crate) fn finish(mut out: Vec<u8>) -> Result<String> {
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    Ok(String::from_utf8(out)?)
}

fn dir() -> PathBuf {
    xtask_launch::workspace_root().join("openapi")
}

fn run(cmd: OpenapiCmd) -> Result<()> {
    let dir = dir();
    if let OpenapiCmd::Generate { files } = &cmd
        && let Some(unknown) = files.iter().find(|f| !apis().iter().any(|a| a.file == *f))
    {
        bail!("openapi/{unknown} is not a managed document");
    }
    let mut drifted = Vec::new();
    for api in apis() {
        if let OpenapiCmd::Generate { files } = &cmd
            && !files.is_empty()
            && !files.iter().any(|f| f == api.file)
        {
            continue;
        }
        let path = dir.join(api.file);
        let fresh = (api.render)().with_context(|| format!("generating {}", api.file))?;
        let current = match std::fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        match cmd {
            OpenapiCmd::Generate { .. } => {
                if current.as_deref() == Some(fresh.as_str()) {
                    println!("unchanged: {}", path.display());
                    continue;
                }
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                let tmp = path.with_extension("json.tmp");
                std::fs::write(&tmp, &fresh)
                    .with_context(|| format!("writing {}", tmp.display()))?;
                std::fs::rename(&tmp, &path)
                    .with_context(|| format!("renaming {}", tmp.display()))?;
                println!("wrote: {}", path.display());
            }
            OpenapiCmd::Check => match current {
                Some(c) if c == fresh => println!("ok: {}", path.display()),
                Some(_) => {
                    drifted.push(format!("{} has drifted from its API trait", path.display()))
                }
                None => drifted.push(format!("{} is missing", path.display())),
            },
        }
    }
    if !drifted.is_empty() {
        bail!(
            "{}; run `cargo xtask openapi generate` and commit the result",
            drifted.join("; ")
        );
    }
    Ok(())
}
