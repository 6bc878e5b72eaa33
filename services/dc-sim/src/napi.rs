//! NAPI: networks and NICs. Provision jobs take NICs from here, with the
//! lowest free IP of the network's provision range.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dropshot::{ApiDescription, ErrorStatusCode, HttpResponseOk, Path, Query, RequestContext};
use napi_api::{
    GetNetworkQuery, ListNetworksQuery, ListNicsQuery, NapiApi, Network, NetworkPath, Nic,
    PingResponse,
};
use restify_error::RestError;

use serde_json::{Value, json};

use crate::Sim;
use crate::state::{Obj, State, find, is_uuid, now, str_of, typed, uuid_of};

/// Find the network a VMAPI `networks` entry names: a UUID or a name, bare
/// or as `{uuid}`, `{ipv4_uuid}` or `{name}`.
pub fn resolve_network<'a>(s: &'a State, spec: &Value) -> Result<&'a Obj, String> {
    let by = |key: &str| spec.get(key).and_then(Value::as_str);
    let (what, value) = match spec {
        Value::String(v) if is_uuid(v) => ("uuid", v.as_str()),
        Value::String(v) => ("name", v.as_str()),
        Value::Object(_) => match (by("uuid").or(by("ipv4_uuid")), by("name")) {
            (Some(u), _) => ("uuid", u),
            (None, Some(n)) => ("name", n),
            (None, None) => {
                return Err(format!(
                    "network {spec}: expected a uuid, ipv4_uuid or name"
                ));
            }
        },
        other => {
            return Err(format!(
                "network {other}: expected a UUID, a name or an object"
            ));
        }
    };
    s.networks
        .iter()
        .find(|n| str_of(n, what) == Some(value))
        .ok_or_else(|| format!("network {what}={value} not found in NAPI"))
}

fn ip_of(net: &Obj, key: &str) -> Result<Ipv4Addr, String> {
    str_of(net, key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            format!(
                "network {}: {key} is not an IPv4 address",
                uuid_of(net).unwrap_or("?")
            )
        })
}

/// A NIC on `net` for `belongs_to`, with the lowest free address of the
/// provision range and an unused MAC; recorded in `s.nics`.
pub fn provision_nic(
    s: &mut State,
    net_uuid: &str,
    belongs_to: &str,
    owner: &str,
    primary: bool,
) -> Result<Obj, String> {
    let net = find(&s.networks, net_uuid)
        .ok_or_else(|| format!("network {net_uuid} not found in NAPI"))?
        .clone();
    let (start, end) = (
        u32::from(ip_of(&net, "provision_start_ip")?),
        u32::from(ip_of(&net, "provision_end_ip")?),
    );
    let used: Vec<u32> = s
        .nics
        .iter()
        .filter(|n| str_of(n, "network_uuid") == Some(net_uuid))
        .filter_map(|n| str_of(n, "ip")?.parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .collect();
    let ip = (start..=end)
        .find(|ip| !used.contains(ip))
        .map(Ipv4Addr::from)
        .ok_or_else(|| {
            format!(
                "network {} ({net_uuid}): no free IP left in its provision range",
                str_of(&net, "name").unwrap_or("?")
            )
        })?;
    let mac = loop {
        let b = uuid::Uuid::new_v4().into_bytes();
        let mac = format!("90:b8:d0:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2]);
        if !s
            .nics
            .iter()
            .any(|n| str_of(n, "mac") == Some(mac.as_str()))
        {
            break mac;
        }
    };
    let t = now();
    let mut nic = Obj::new();
    for (key, value) in [
        ("mac", json!(mac)),
        ("ip", json!(ip.to_string())),
        ("primary", json!(primary)),
        ("owner_uuid", json!(owner)),
        ("belongs_to_uuid", json!(belongs_to)),
        ("belongs_to_type", json!("zone")),
        ("network_uuid", json!(net_uuid)),
        ("state", json!("running")),
        ("cn_uuid", json!(s.headnode_uuid)),
        ("created_timestamp", json!(t)),
        ("modified_timestamp", json!(t)),
    ] {
        nic.insert(key.into(), value);
    }
    for key in [
        "netmask",
        "vlan_id",
        "nic_tag",
        "gateway",
        "resolvers",
        "mtu",
    ] {
        if let Some(v) = net.get(key) {
            nic.insert(key.into(), v.clone());
        }
    }
    s.nics.push(nic.clone());
    Ok(nic)
}

/// A NIC as VMAPI lists it in the VM's `nics`.
pub fn vm_view(nic: &Obj, index: usize) -> Obj {
    let mut out = Obj::new();
    out.insert("interface".into(), json!(format!("net{index}")));
    for key in [
        "mac",
        "ip",
        "netmask",
        "vlan_id",
        "nic_tag",
        "primary",
        "network_uuid",
        "gateway",
        "resolvers",
        "mtu",
    ] {
        if let Some(v) = nic.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    out
}

/// Release a destroyed zone's NICs (and so their IPs).
pub fn free_nics(s: &mut State, belongs_to: &str) {
    s.nics
        .retain(|n| str_of(n, "belongs_to_uuid") != Some(belongs_to));
}

pub fn api() -> Result<ApiDescription<Arc<Sim>>, String> {
    napi_api::napi_api_mod::api_description::<NapiSim>().map_err(|e| e.to_string())
}

/// NAPI's 422 `InvalidParameters`.
fn invalid(field: &str, message: &str) -> RestError {
    RestError::new(
        ErrorStatusCode::UNPROCESSABLE_ENTITY,
        "InvalidParameters",
        format!("Invalid parameters: {field}: {message}"),
    )
}

/// A page of `items` (NAPI: `limit` 1..=1000, default 1000).
fn page<T>(items: Vec<T>, offset: Option<u32>, limit: Option<u32>) -> Result<Vec<T>, RestError> {
    let limit = match limit {
        None => 1000,
        Some(l) if (1..=1000).contains(&l) => l,
        Some(_) => return Err(invalid("limit", "must be an integer between 1 and 1000")),
    };
    Ok(items
        .into_iter()
        .skip(offset.unwrap_or(0) as usize)
        .take(limit as usize)
        .collect())
}

/// Whether a field matches one of the comma-separated values.
fn any_of(o: &Obj, key: &str, values: &Option<String>) -> bool {
    values.as_deref().is_none_or(|vs| {
        let have = o.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        vs.split(',').any(|v| have.as_deref() == Some(v.trim()))
    })
}

fn owned_by(net: &Obj, owner: &str) -> bool {
    net.get("owner_uuids")
        .and_then(Value::as_array)
        .is_some_and(|os| os.iter().any(|o| o.as_str() == Some(owner)))
}

/// Networks without owners are anyone's to provision on.
fn provisionable_by(net: &Obj, owner: &str) -> bool {
    net.get("owner_uuids")
        .and_then(Value::as_array)
        .is_none_or(|os| os.is_empty())
        || owned_by(net, owner)
}

pub enum NapiSim {}

impl NapiApi for NapiSim {
    type Context = Arc<Sim>;

    async fn ping(
        rqctx: RequestContext<Arc<Sim>>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError> {
        rqctx.context().gate("napi", &rqctx).await?;
        let mut services = Obj::new();
        services.insert("moray".into(), json!("online"));
        let mut config = Obj::new();
        config.insert("fabrics_enabled".into(), json!(false));
        Ok(HttpResponseOk(PingResponse {
            status: "OK".into(),
            healthy: true,
            config: Some(config),
            services: Some(services),
            extra: Obj::new(),
        }))
    }

    async fn list_networks(
        rqctx: RequestContext<Arc<Sim>>,
        query: Query<ListNetworksQuery>,
    ) -> Result<HttpResponseOk<Vec<Network>>, RestError> {
        let sim = rqctx.context();
        sim.gate("napi", &rqctx).await?;
        let q = query.into_inner();
        let names = q.name.as_deref().map(napi_api::parse_names_filter);
        let tags = q.nic_tag.as_deref().map(napi_api::parse_names_filter);
        let in_list = |list: &Option<Vec<String>>, v: Option<&str>| {
            list.as_ref()
                .is_none_or(|l| v.is_some_and(|v| l.iter().any(|x| x == v)))
        };
        let (owner, prov) = (
            q.owner_uuid.map(|u| u.to_string()),
            q.provisionable_by.map(|u| u.to_string()),
        );
        let nets = sim
            .read(|s| {
                s.networks
                    .iter()
                    .filter(|n| in_list(&names, str_of(n, "name")))
                    .filter(|n| in_list(&tags, str_of(n, "nic_tag")))
                    .filter(|n| {
                        q.family
                            .as_ref()
                            .is_none_or(|f| str_of(n, "family").unwrap_or("ipv4") == f.as_str())
                    })
                    .filter(|n| {
                        q.fabric.is_none_or(|f| {
                            n.get("fabric").and_then(Value::as_bool).unwrap_or(false) == f
                        })
                    })
                    .filter(|n| {
                        q.vlan_id.is_none_or(|v| {
                            n.get("vlan_id").and_then(Value::as_u64) == Some(u64::from(v))
                        })
                    })
                    .filter(|n| owner.as_deref().is_none_or(|o| owned_by(n, o)))
                    .filter(|n| prov.as_deref().is_none_or(|o| provisionable_by(n, o)))
                    .map(typed)
                    .collect::<Result<Vec<Network>, _>>()
            })
            .await?;
        Ok(HttpResponseOk(page(nets, q.offset, q.limit)?))
    }

    async fn get_network(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<NetworkPath>,
        query: Query<GetNetworkQuery>,
    ) -> Result<HttpResponseOk<Network>, RestError> {
        let sim = rqctx.context();
        sim.gate("napi", &rqctx).await?;
        let uuid = path.into_inner().network_uuid.to_string();
        let prov = query.into_inner().provisionable_by.map(|u| u.to_string());
        let net = sim
            .read(|s| find(&s.networks, &uuid).cloned())
            .await
            .filter(|n| prov.as_deref().is_none_or(|o| provisionable_by(n, o)))
            .ok_or_else(|| RestError::not_found(format!("network {uuid}")))?;
        Ok(HttpResponseOk(typed(&net)?))
    }

    async fn list_nics(
        rqctx: RequestContext<Arc<Sim>>,
        query: Query<ListNicsQuery>,
    ) -> Result<HttpResponseOk<Vec<Nic>>, RestError> {
        let sim = rqctx.context();
        sim.gate("napi", &rqctx).await?;
        let q = query.into_inner();
        let nics = sim
            .read(|s| {
                s.nics
                    .iter()
                    .filter(|n| any_of(n, "belongs_to_uuid", &q.belongs_to_uuid))
                    .filter(|n| any_of(n, "belongs_to_type", &q.belongs_to_type))
                    .filter(|n| any_of(n, "owner_uuid", &q.owner_uuid))
                    .filter(|n| any_of(n, "network_uuid", &q.network_uuid))
                    .filter(|n| any_of(n, "nic_tag", &q.nic_tag))
                    .filter(|n| any_of(n, "state", &q.state))
                    .map(typed)
                    .collect::<Result<Vec<Nic>, _>>()
            })
            .await?;
        Ok(HttpResponseOk(page(nics, q.offset, q.limit)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nics_take_the_lowest_free_ip_and_names_resolve() {
        let mut s = crate::seed::seed().unwrap();
        let admin = resolve_network(&s, &json!({"name": "admin"}))
            .unwrap()
            .clone();
        let uuid = uuid_of(&admin).unwrap().to_string();
        assert_eq!(
            uuid_of(resolve_network(&s, &json!(uuid)).unwrap()),
            Some(uuid.as_str())
        );
        assert_eq!(
            uuid_of(resolve_network(&s, &json!("admin")).unwrap()),
            Some(uuid.as_str())
        );
        let e = resolve_network(&s, &json!({"name": "nope"})).unwrap_err();
        assert_eq!(e, "network name=nope not found in NAPI");

        let start = str_of(&admin, "provision_start_ip").unwrap().to_string();
        let a = provision_nic(&mut s, &uuid, "z1", "o", true).unwrap();
        let b = provision_nic(&mut s, &uuid, "z2", "o", true).unwrap();
        assert_eq!(str_of(&a, "ip"), Some(start.as_str()));
        assert_ne!(str_of(&a, "ip"), str_of(&b, "ip"));
        assert_ne!(str_of(&a, "mac"), str_of(&b, "mac"));
        assert_eq!(str_of(&a, "nic_tag"), Some("admin"));
        free_nics(&mut s, "z1");
        let c = provision_nic(&mut s, &uuid, "z3", "o", true).unwrap();
        assert_eq!(str_of(&c, "ip"), Some(start.as_str()));
    }
}
