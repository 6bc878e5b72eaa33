//! The wire contract of CNAPI (Compute Node API), for the subset the
//! toolchain uses: finding the headnode and reading a server.
//!
//! It follows the Node.js sdc-cnapi (`shared/reference/cnapi-api.md`):
//! ServerList returns a subset of each server's properties unless `extras`
//! asks for more, and pages with `offset` and `limit` (1-1000, default
//! 1000). Only the fields the tools read are typed; the rest (sysinfo,
//! vms, disk and memory figures, ...) are kept in `extra`.
//!
//! Requests are read leniently, as restify reads them: UUIDs in paths and
//! query filters are strings, for the server to judge. Responses are typed.

use dropshot::{HttpResponseOk, Path, Query, RequestContext};
use restify_error::RestError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use restify_error;

/// Version of this API contract, as published in the OpenAPI document.
pub const API_VERSION: &str = "1.0.0";

wire_enum::wire_enum! {
    /// A server's `status`: `running`, or `unknown` when CNAPI has not
    /// heard from it recently.
    pub enum ServerStatus {
        Running = "running",
        Unknown = "unknown",
    }
}

/// A server record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Server {
    pub uuid: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default)]
    pub headnode: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacenter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_platform: Option<String>,
    /// MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<u64>,
    /// The server's own report (`Admin IP`, `Network Interfaces`, ...): only
    /// with `extras=sysinfo` in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysinfo: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PingResponse {
    /// True when workflow, moray and amqp are all online.
    pub ready: bool,
    /// Per backend: `online` or `offline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// ServerList filters (ANDed) and paging.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ListServersQuery {
    /// Comma-separated server UUIDs.
    pub uuids: Option<String>,
    pub headnode: Option<bool>,
    pub setup: Option<bool>,
    pub reserved: Option<bool>,
    pub reservoir: Option<bool>,
    pub hostname: Option<String>,
    /// Comma-separated: agents, vms, memory, disk, sysinfo, capacity, all.
    pub extras: Option<String>,
    /// Comma-separated property names to return.
    pub fields: Option<String>,
    /// 1-1000; 1000 by default.
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

/// A server's UUID as the path names it: any text, for the server to
/// judge.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ServerPath {
    pub server_uuid: String,
}

#[dropshot::api_description]
pub trait CnapiApi {
    type Context: Send + Sync + 'static;

    /// Ping.
    #[endpoint { method = GET, path = "/ping" }]
    async fn ping(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError>;

    /// ServerList.
    #[endpoint { method = GET, path = "/servers" }]
    async fn list_servers(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListServersQuery>,
    ) -> Result<HttpResponseOk<Vec<Server>>, RestError>;

    /// ServerGet: every property; 404 `ResourceNotFound` when absent.
    #[endpoint { method = GET, path = "/servers/{server_uuid}" }]
    async fn get_server(
        rqctx: RequestContext<Self::Context>,
        path: Path<ServerPath>,
    ) -> Result<HttpResponseOk<Server>, RestError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_record_from_the_reference_round_trips() {
        let wire = json!({
            "sysinfo": {"UUID": "564d4374-d703-b97b-ca9f-7375f05f337c", "Admin IP": "10.99.99.7"},
            "ram": 4095,
            "current_platform": "20140421T214627Z",
            "headnode": true,
            "boot_platform": "20140421T214627Z",
            "datacenter": "coal",
            "overprovision_ratio": 1,
            "reservation_ratio": 0.15,
            "reservoir": false,
            "traits": {},
            "uuid": "564d4374-d703-b97b-ca9f-7375f05f337c",
            "hostname": "headnode",
            "reserved": false,
            "setup": true,
            "setting_up": false,
            "transitional_status": "",
            "status": "running",
            "unreserved_ram": -42863
        });
        let server: Server = serde_json::from_value(wire.clone()).unwrap();
        assert!(server.headnode);
        assert_eq!(server.status, Some(ServerStatus::Running));
        assert_eq!(server.sysinfo.as_ref().unwrap()["Admin IP"], "10.99.99.7");
        assert_eq!(server.extra["unreserved_ram"], -42863);
        assert_eq!(serde_json::to_value(&server).unwrap(), wire);
    }

    #[test]
    fn a_subset_record_with_an_unknown_status() {
        let server: Server = serde_json::from_value(json!({
            "uuid": "564d4374-d703-b97b-ca9f-7375f05f337c",
            "status": "rebooting"
        }))
        .unwrap();
        assert!(!server.headnode);
        assert_eq!(server.status, Some(ServerStatus::Other("rebooting".into())));
    }
}
