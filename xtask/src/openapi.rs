//! `cargo xtask openapi generate|check`: the checked-in OpenAPI documents
//! under `openapi/` must match what the API traits generate.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum OpenapiCmd {
    /// Rewrite every checked-in document from its API trait.
    Generate,
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
    ]
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
    crate::workspace_root().join("openapi")
}

pub fn run(cmd: OpenapiCmd) -> Result<()> {
    let dir = dir();
    let mut drifted = Vec::new();
    for api in apis() {
        let path = dir.join(api.file);
        let fresh = (api.render)().with_context(|| format!("generating {}", api.file))?;
        let current = match std::fs::read_to_string(&path) {
            Ok(s) => Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        match cmd {
            OpenapiCmd::Generate => {
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
