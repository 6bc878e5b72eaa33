//! Progenitor client for NAPI, generated from `openapi/napi.json`.
//!
//! The object and error types are the trait crate's own (`replace`), so
//! unknown fields survive a round trip and errors print as `Code: message`.
//! To ask for several networks by name, pass
//! [`napi_api::names_filter`] as `name`.

pub use napi_api;

progenitor::generate_api!(
    spec = "../../openapi/napi.json",
    interface = Builder,
    replace = {
        RestError = napi_api::restify_error::RestError,
        PingResponse = napi_api::PingResponse,
        Network = napi_api::Network,
        NetworkFamily = napi_api::NetworkFamily,
        Nic = napi_api::Nic,
        NicState = napi_api::NicState,
        BelongsToType = napi_api::BelongsToType,
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use dropshot::{ApiDescription, HttpError, HttpResponseOk, Query, RequestContext};
    use napi_api::{ListNetworksQuery, Network, names_filter, parse_names_filter};
    use serde_json::json;

    fn network(name: &str, vlan_id: u32) -> Network {
        serde_json::from_value(json!({
            "uuid": uuid::Uuid::new_v4(), "name": name, "vlan_id": vlan_id,
            "subnet": "10.99.99.0/24", "provision_start_ip": "10.99.99.10",
            "provision_end_ip": "10.99.99.250", "family": "ipv4"
        }))
        .unwrap()
    }

    /// ListNetworks reading `name` the way NAPI does: one name or a JSON
    /// array of names.
    #[dropshot::endpoint { method = GET, path = "/networks" }]
    async fn list(
        _rqctx: RequestContext<()>,
        query: Query<ListNetworksQuery>,
    ) -> Result<HttpResponseOk<Vec<Network>>, HttpError> {
        let names = query.into_inner().name.map(|n| parse_names_filter(&n));
        let all = [
            network("admin", 0),
            network("external", 128),
            network("internal", 401),
        ];
        Ok(HttpResponseOk(
            all.into_iter()
                .filter(|n| names.as_ref().is_none_or(|names| names.contains(&n.name)))
                .collect(),
        ))
    }

    #[tokio::test]
    async fn several_names_travel_as_a_json_array() {
        let mut api = ApiDescription::new();
        api.register(list).unwrap();
        let server = napi_api::restify_error::start_loopback(api, ()).unwrap();
        let client = Client::new(&format!("http://{}", server.local_addr()));

        let two = client
            .list_networks()
            .name(names_filter(&["admin", "external"]))
            .send()
            .await
            .unwrap()
            .into_inner();
        let names: Vec<&str> = two.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["admin", "external"]);

        let one = client
            .list_networks()
            .name("internal")
            .send()
            .await
            .unwrap();
        assert_eq!(one.into_inner()[0].vlan_id, 401);

        server.close().await.unwrap();
    }
}
