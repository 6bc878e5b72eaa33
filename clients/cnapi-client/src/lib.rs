//! Progenitor client for CNAPI, generated from `openapi/cnapi.json`.
//!
//! The object and error types are the trait crate's own (`replace`), so
//! unknown server properties survive a round trip and errors print as
//! `Code: message`.

pub use cnapi_api;

progenitor::generate_api!(
    spec = "../../openapi/cnapi.json",
    interface = Builder,
    replace = {
        RestError = cnapi_api::restify_error::RestError,
        PingResponse = cnapi_api::PingResponse,
        Server = cnapi_api::Server,
        ServerStatus = cnapi_api::ServerStatus,
    },
);

#[cfg(test)]
mod tests {
    use super::*;
    use cnapi_api::{ListServersQuery, Server, ServerStatus};
    use dropshot::{ApiDescription, HttpResponseOk, Query, RequestContext};
    use serde_json::json;

    /// ServerList over a headnode and a compute node, honouring `headnode`.
    #[dropshot::endpoint { method = GET, path = "/servers" }]
    async fn list(
        _rqctx: RequestContext<()>,
        query: Query<ListServersQuery>,
    ) -> Result<HttpResponseOk<Vec<Server>>, cnapi_api::restify_error::RestError> {
        let want = query.into_inner().headnode;
        let servers: Vec<Server> = [(1u128, true), (2, false)]
            .into_iter()
            .map(|(i, headnode)| {
                serde_json::from_value(json!({
                    "uuid": uuid::Uuid::from_u128(i), "headnode": headnode,
                    "status": if headnode { "running" } else { "rebooting" },
                    "hostname": format!("cn{i}"), "unreserved_ram": 1024
                }))
                .unwrap()
            })
            .filter(|s: &Server| want.is_none_or(|w| w == s.headnode))
            .collect();
        Ok(HttpResponseOk(servers))
    }

    #[tokio::test]
    async fn the_headnode_filter_and_unknown_fields_come_through() {
        let mut api = ApiDescription::new();
        api.register(list).unwrap();
        let server = cnapi_api::restify_error::start_loopback(api, ()).unwrap();
        let client = Client::new(&format!("http://{}", server.local_addr()));

        let heads = client
            .list_servers()
            .headnode(true)
            .send()
            .await
            .unwrap()
            .into_inner();
        assert_eq!(heads.len(), 1);
        assert_eq!(heads[0].hostname.as_deref(), Some("cn1"));
        assert_eq!(heads[0].status, Some(ServerStatus::Running));
        assert_eq!(heads[0].extra["unreserved_ram"], 1024);

        let all = client.list_servers().send().await.unwrap().into_inner();
        assert_eq!(all[1].status, Some(ServerStatus::Other("rebooting".into())));

        server.close().await.unwrap();
    }
}
