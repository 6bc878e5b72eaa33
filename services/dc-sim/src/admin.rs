//! The admin API (its own port, so nothing here can shadow a simulated
//! service's path): fault injection for tests.
//!
//! - `POST /faults` a [`Fault`]: the next `count` matching requests wait
//!   `delay_ms` and/or answer `status`.
//! - `POST /faults/provision` a [`ProvisionFault`]: the next `count`
//!   provision jobs fail with `message`.
//! - `GET /faults`: what is armed; `DELETE /faults`: disarm everything.

use std::sync::Arc;

use dropshot::{
    ApiDescription, HttpResponseDeleted, HttpResponseOk, RequestContext, TypedBody, endpoint,
};
use restify_error::RestError;

use crate::Sim;
use crate::faults::{Armed, Fault, ProvisionFault};

pub fn api() -> Result<ApiDescription<Arc<Sim>>, String> {
    let mut api = ApiDescription::new();
    api.register(add_fault).map_err(|e| e.to_string())?;
    api.register(add_provision_fault)
        .map_err(|e| e.to_string())?;
    api.register(list_faults).map_err(|e| e.to_string())?;
    api.register(clear_faults).map_err(|e| e.to_string())?;
    Ok(api)
}

#[endpoint { method = POST, path = "/faults" }]
async fn add_fault(
    rqctx: RequestContext<Arc<Sim>>,
    body: TypedBody<Fault>,
) -> Result<HttpResponseOk<Armed>, RestError> {
    let sim = rqctx.context();
    sim.faults
        .add(body.into_inner())
        .map_err(|e| RestError::invalid_argument(e.to_string()))?;
    Ok(HttpResponseOk(sim.faults.armed()))
}

#[endpoint { method = POST, path = "/faults/provision" }]
async fn add_provision_fault(
    rqctx: RequestContext<Arc<Sim>>,
    body: TypedBody<ProvisionFault>,
) -> Result<HttpResponseOk<Armed>, RestError> {
    let sim = rqctx.context();
    sim.faults
        .add_provision(body.into_inner())
        .map_err(|e| RestError::invalid_argument(e.to_string()))?;
    Ok(HttpResponseOk(sim.faults.armed()))
}

#[endpoint { method = GET, path = "/faults" }]
async fn list_faults(rqctx: RequestContext<Arc<Sim>>) -> Result<HttpResponseOk<Armed>, RestError> {
    Ok(HttpResponseOk(rqctx.context().faults.armed()))
}

#[endpoint { method = DELETE, path = "/faults" }]
async fn clear_faults(rqctx: RequestContext<Arc<Sim>>) -> Result<HttpResponseDeleted, RestError> {
    rqctx.context().faults.clear();
    Ok(HttpResponseDeleted())
}
