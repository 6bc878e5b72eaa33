//! The wire contract of NAPI (Networking API), for the subset the
//! toolchain uses: networks (by name or UUID) and the NICs of a zone.
//!
//! It follows the Node.js sdc-napi (`shared/reference/napi-api.md`): list
//! filters are ANDed; `name` (and `nic_tag`) may be a single value or a JSON
//! array of values (ORed), and NIC filters may hold comma-separated values,
//! which is why they are strings here. Lists page with `offset` and
//! `limit`.
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
    /// A network's address `family`.
    pub enum NetworkFamily {
        Ipv4 = "ipv4",
        Ipv6 = "ipv6",
    }
}

wire_enum::wire_enum! {
    /// What a NIC belongs to (`belongs_to_type`).
    pub enum BelongsToType {
        Zone = "zone",
        Server = "server",
        /// NAPI's own `other` (not a value this contract does not know).
        OtherType = "other",
    }
}

wire_enum::wire_enum! {
    /// A NIC's `state`.
    pub enum NicState {
        Provisioning = "provisioning",
        Stopped = "stopped",
        Running = "running",
    }
}

/// A logical network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Network {
    pub uuid: Uuid,
    pub name: String,
    /// 0 when untagged.
    pub vlan_id: u32,
    /// CIDR, e.g. `10.99.99.0/24`.
    pub subnet: String,
    /// Provisioning range, inclusive.
    pub provision_start_ip: String,
    pub provision_end_ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<NetworkFamily>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default)]
    pub resolvers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Map<String, Value>>,
    /// When set, only these owners (and the admin user) may provision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uuids: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fabric: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A NIC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Nic {
    /// With colons, e.g. `90:b8:d0:57:53:70`.
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub belongs_to_uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub belongs_to_type: Option<BelongsToType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<NicState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolvers: Option<Vec<String>>,
    /// The compute node the NIC is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cn_uuid: Option<Uuid>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PingResponse {
    /// `OK` once initialized.
    pub status: String,
    pub healthy: bool,
    /// Enabled features (`fabrics_enabled`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// ListNetworks filters (ANDed) and paging.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ListNetworksQuery {
    /// A name, or a JSON array of names (any matches): see
    /// [`names_filter`].
    pub name: Option<String>,
    /// A NIC tag, or a JSON array of them.
    pub nic_tag: Option<String>,
    pub family: Option<NetworkFamily>,
    pub fabric: Option<bool>,
    pub vlan_id: Option<u32>,
    /// Networks with this owner in `owner_uuids`.
    pub owner_uuid: Option<String>,
    /// Networks this owner may provision on (theirs and unowned ones).
    pub provisionable_by: Option<String>,
    pub offset: Option<u32>,
    pub limit: Option<u32>,
}

/// ListNics filters (ANDed); each may be comma-separated values (ORed).
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ListNicsQuery {
    pub belongs_to_uuid: Option<String>,
    pub belongs_to_type: Option<String>,
    pub owner_uuid: Option<String>,
    pub network_uuid: Option<String>,
    pub nic_tag: Option<String>,
    pub state: Option<String>,
    pub offset: Option<u32>,
    pub limit: Option<u32>,
}

/// A network's UUID as the path names it: any text, for the server to
/// judge.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NetworkPath {
    pub network_uuid: String,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct GetNetworkQuery {
    /// 404 unless this owner may provision on the network.
    pub provisionable_by: Option<String>,
}

/// The `name` filter for several names: a JSON array, as NAPI reads it.
pub fn names_filter<S: AsRef<str>>(names: &[S]) -> String {
    Value::Array(
        names
            .iter()
            .map(|n| Value::String(n.as_ref().to_string()))
            .collect(),
    )
    .to_string()
}

/// The names a `name` filter asks for: a JSON array of strings, or one
/// name (what servers of this contract read it as).
pub fn parse_names_filter(filter: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(filter) {
        Ok(names) if filter.trim_start().starts_with('[') => names,
        _ => vec![filter.to_string()],
    }
}

#[dropshot::api_description]
pub trait NapiApi {
    type Context: Send + Sync + 'static;

    /// Ping.
    #[endpoint { method = GET, path = "/ping" }]
    async fn ping(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError>;

    /// ListNetworks: an array, empty when none match.
    #[endpoint { method = GET, path = "/networks" }]
    async fn list_networks(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListNetworksQuery>,
    ) -> Result<HttpResponseOk<Vec<Network>>, RestError>;

    /// GetNetwork: 404 `ResourceNotFound` when absent.
    #[endpoint { method = GET, path = "/networks/{network_uuid}" }]
    async fn get_network(
        rqctx: RequestContext<Self::Context>,
        path: Path<NetworkPath>,
        query: Query<GetNetworkQuery>,
    ) -> Result<HttpResponseOk<Network>, RestError>;

    /// ListNics: an array, empty when none match.
    #[endpoint { method = GET, path = "/nics" }]
    async fn list_nics(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListNicsQuery>,
    ) -> Result<HttpResponseOk<Vec<Nic>>, RestError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn network_from_the_reference_round_trips() {
        let wire = json!({
            "uuid": "dcb499bd-1caf-4ff6-8d70-4e6d5c02dff3",
            "name": "internal",
            "vlan_id": 401,
            "family": "ipv4",
            "subnet": "10.0.2.0/24",
            "netmask": "255.255.255.0",
            "provision_start_ip": "10.0.2.5",
            "provision_end_ip": "10.0.2.250",
            "nic_tag": "internal",
            "resolvers": [],
            "gateway": "10.0.2.1",
            "internet_nat": true
        });
        let net: Network = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(net.family, Some(NetworkFamily::Ipv4));
        assert_eq!(net.extra["internet_nat"], true);
        assert_eq!(serde_json::to_value(&net).unwrap(), wire);
    }

    #[test]
    fn nic_from_the_reference_round_trips_and_keeps_odd_values() {
        let wire = json!({
            "ip": "10.88.88.198",
            "netmask": "255.255.255.0",
            "vlan_id": 0,
            "nic_tag": "external",
            "mac": "90:b8:d0:57:53:70",
            "primary": false,
            "owner_uuid": "aaaaaaaf-bf8c-48d4-885c-6573a94b1853",
            "belongs_to_uuid": "27391a96-bbbb-bbbb-bbbb-85f948d9c509",
            "belongs_to_type": "zone",
            "gateway": "10.88.88.2",
            "state": "running",
            "resolvers": ["8.8.4.4", "8.8.8.8"],
            "created_timestamp": "2017-04-01T01:02:03.456Z"
        });
        let nic: Nic = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(nic.belongs_to_type, Some(BelongsToType::Zone));
        assert_eq!(nic.state, Some(NicState::Running));
        assert_eq!(serde_json::to_value(&nic).unwrap(), wire);

        let mut odd = wire.clone();
        odd["state"] = json!("migrating");
        odd["belongs_to_type"] = json!("appliance");
        let nic: Nic = serde_json::from_value(odd.clone()).unwrap();
        assert_eq!(nic.state, Some(NicState::Other("migrating".into())));
        assert_eq!(serde_json::to_value(&nic).unwrap(), odd);
    }

    #[test]
    fn names_filter_is_a_json_array_and_reads_back() {
        let f = names_filter(&["admin", "external"]);
        assert_eq!(f, r#"["admin","external"]"#);
        assert_eq!(parse_names_filter(&f), vec!["admin", "external"]);
        assert_eq!(parse_names_filter("admin"), vec!["admin"]);
        // A name that merely looks odd is still one name.
        assert_eq!(parse_names_filter("[oops"), vec!["[oops"]);
    }
}
