//! The wire contract of triton-api. The OpenAPI document in
//! `openapi/triton-api.json` is generated from this trait; `cargo xtask
//! openapi check` fails when the two drift apart.

use dropshot::{HttpError, HttpResponseOk, RequestContext};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of this API contract, as published in the OpenAPI document.
pub const API_VERSION: &str = "0.1.0";

/// Health report returned by `GET /ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PingResponse {
    /// "OK" when the service is able to serve requests.
    pub status: String,
    /// Whether the service considers itself healthy.
    pub healthy: bool,
    /// Version of the running server binary.
    pub version: String,
}

#[dropshot::api_description]
pub trait TritonApi {
    type Context: Send + Sync + 'static;

    /// Liveness and version check, used by SMF, load balancers and operators.
    #[endpoint { method = GET, path = "/ping" }]
    async fn ping(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<PingResponse>, HttpError>;
}
