//! CNAPI: the headnode (and any other server a state file holds). As in
//! CNAPI, a listing leaves out `sysinfo` and `vms` unless `extras` asks
//! for them; `GET /servers/:uuid` has everything.

use std::sync::Arc;

use cnapi_api::{CnapiApi, ListServersQuery, PingResponse, Server, ServerPath};
use dropshot::{ApiDescription, HttpResponseOk, Path, Query, RequestContext};
use restify_error::RestError;
use serde_json::{Value, json};

use crate::Sim;
use crate::state::{Obj, State, find, str_of, typed, uuid_of};

pub fn api() -> Result<ApiDescription<Arc<Sim>>, String> {
    cnapi_api::cnapi_api_mod::api_description::<CnapiSim>().map_err(|e| e.to_string())
}

/// The server with its `vms`: what runs on it, as CNAPI summarises them.
fn with_vms(s: &State, server: &Obj) -> Obj {
    let uuid = uuid_of(server).unwrap_or_default();
    let vms: Obj = s
        .vms
        .iter()
        .filter(|vm| str_of(vm, "server_uuid") == Some(uuid))
        .filter(|vm| str_of(vm, "state") != Some("destroyed"))
        .map(|vm| {
            let mut summary = Obj::new();
            for key in [
                "uuid",
                "owner_uuid",
                "brand",
                "state",
                "zone_state",
                "max_physical_memory",
                "quota",
                "cpu_cap",
                "last_modified",
            ] {
                summary.insert(key.into(), vm.get(key).cloned().unwrap_or(Value::Null));
            }
            (
                uuid_of(vm).unwrap_or_default().to_string(),
                Value::Object(summary),
            )
        })
        .collect();
    let mut out = server.clone();
    out.insert("vms".into(), Value::Object(vms));
    out
}

fn flag(server: &Obj, key: &str) -> bool {
    server.get(key).and_then(Value::as_bool).unwrap_or(false)
}

pub enum CnapiSim {}

impl CnapiApi for CnapiSim {
    type Context = Arc<Sim>;

    async fn ping(
        rqctx: RequestContext<Arc<Sim>>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError> {
        rqctx.context().gate("cnapi", &rqctx).await?;
        let mut services = Obj::new();
        for backend in ["moray", "workflow"] {
            services.insert(backend.into(), json!("online"));
        }
        Ok(HttpResponseOk(PingResponse {
            ready: true,
            services: Some(services),
            extra: Obj::new(),
        }))
    }

    async fn list_servers(
        rqctx: RequestContext<Arc<Sim>>,
        query: Query<ListServersQuery>,
    ) -> Result<HttpResponseOk<Vec<Server>>, RestError> {
        let sim = rqctx.context();
        sim.gate("cnapi", &rqctx).await?;
        let q = query.into_inner();
        let extras: Vec<String> = q
            .extras
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|e| e.trim().to_string())
            .collect();
        let wants = |e: &str| extras.iter().any(|x| x == e || x == "all");
        let uuids: Option<Vec<String>> = q
            .uuids
            .as_ref()
            .map(|u| u.split(',').map(|s| s.trim().to_string()).collect());
        let servers = sim
            .read(|s| {
                s.servers
                    .iter()
                    .filter(|sv| {
                        uuids
                            .as_ref()
                            .is_none_or(|us| uuid_of(sv).is_some_and(|u| us.iter().any(|w| w == u)))
                    })
                    .filter(|sv| q.headnode.is_none_or(|h| flag(sv, "headnode") == h))
                    .filter(|sv| q.setup.is_none_or(|v| flag(sv, "setup") == v))
                    .filter(|sv| q.reserved.is_none_or(|v| flag(sv, "reserved") == v))
                    .filter(|sv| q.reservoir.is_none_or(|v| flag(sv, "reservoir") == v))
                    .filter(|sv| {
                        q.hostname
                            .as_deref()
                            .is_none_or(|h| str_of(sv, "hostname") == Some(h))
                    })
                    .map(|sv| {
                        let mut o = if wants("vms") {
                            with_vms(s, sv)
                        } else {
                            sv.clone()
                        };
                        if !wants("sysinfo") {
                            o.remove("sysinfo");
                        }
                        o
                    })
                    .skip(q.offset.unwrap_or(0) as usize)
                    .take(q.limit.map_or(usize::MAX, |l| l as usize))
                    .map(|o| typed(&o))
                    .collect::<Result<Vec<Server>, _>>()
            })
            .await?;
        Ok(HttpResponseOk(servers))
    }

    async fn get_server(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<ServerPath>,
    ) -> Result<HttpResponseOk<Server>, RestError> {
        let sim = rqctx.context();
        sim.gate("cnapi", &rqctx).await?;
        let uuid = path.into_inner().server_uuid.to_string();
        let server = sim
            .read(|s| find(&s.servers, &uuid).map(|sv| with_vms(s, sv)))
            .await
            .ok_or_else(|| RestError::not_found(format!("server {uuid}")))?;
        Ok(HttpResponseOk(typed(&server)?))
    }
}
