//! Progenitor client for SAPI, generated from `openapi/sapi.json`.
//!
//! Every request carries `accept-version: ~2` (see [`sapi_api::ACCEPT_VERSION`]):
//! without it SAPI answers with its 1.x API, which drops `type` from
//! services and instances and lists only `type=vm` rows, so an agent
//! service would look absent.
//!
//! The object and error types are the trait crate's own (`replace`), so
//! unknown fields survive a round trip and errors print as `Code: message`.

progenitor::generate_api!(
    spec = "../../openapi/sapi.json",
    interface = Builder,
    pre_hook = crate::accept_version,
    replace = {
        RestError = sapi_api::restify_error::RestError,
        PingResponse = sapi_api::PingResponse,
        SapiMode = sapi_api::SapiMode,
        ServiceType = sapi_api::ServiceType,
        UpdateAction = sapi_api::UpdateAction,
        Application = sapi_api::Application,
        Service = sapi_api::Service,
        Instance = sapi_api::Instance,
        Config = sapi_api::Config,
        ConfigManifest = sapi_api::ConfigManifest,
        CreateServiceBody = sapi_api::CreateServiceBody,
        CreateInstanceBody = sapi_api::CreateInstanceBody,
        UpdateBody = sapi_api::UpdateBody,
        UpgradeInstanceBody = sapi_api::UpgradeInstanceBody,
    },
);

/// How long SAPI lets a synchronous CreateInstance run (it sets its own
/// connection timeout to an hour: provisioning waits for the image).
pub const CREATE_INSTANCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

/// A client whose requests may take [`CREATE_INSTANCE_TIMEOUT`], for a
/// synchronous CreateInstance; [`Client::new`] gives up after 15 s. It
/// still gives up connecting after 15 s.
pub fn client_for_provisioning(baseurl: &str) -> reqwest::Result<Client> {
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(CREATE_INSTANCE_TIMEOUT)
        .build()?;
    Ok(Client::new_with_client(baseurl, http))
}

/// Selects SAPI's 2.x API on every request.
fn accept_version(request: &mut reqwest::Request) {
    request.headers_mut().insert(
        sapi_api::ACCEPT_VERSION_HEADER,
        reqwest::header::HeaderValue::from_static(sapi_api::ACCEPT_VERSION),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropshot::{ApiDescription, HttpError, HttpResponseOk, RequestContext, TypedBody};
    use sapi_api::{CreateServiceBody, PingResponse, SapiMode, Service, ServiceType};
    use serde_json::{Map, Value, json};

    /// What a request carried, echoed back in the answer's extra fields.
    fn seen(rqctx: &RequestContext<()>) -> Map<String, Value> {
        let header = rqctx
            .request
            .headers()
            .get("accept-version")
            .map(|v| v.to_str().unwrap().to_string());
        let mut m = Map::new();
        m.insert("seen_accept_version".into(), json!(header));
        m.insert("seen_query".into(), json!(rqctx.request.uri().query()));
        m
    }

    #[dropshot::endpoint { method = GET, path = "/ping" }]
    async fn echo_ping(
        rqctx: RequestContext<()>,
    ) -> Result<HttpResponseOk<PingResponse>, HttpError> {
        Ok(HttpResponseOk(PingResponse {
            mode: SapiMode::Full,
            stor_type: "Test".into(),
            stor_available: true,
            extra: seen(&rqctx),
        }))
    }

    #[dropshot::endpoint { method = GET, path = "/services" }]
    async fn echo_list(
        rqctx: RequestContext<()>,
    ) -> Result<HttpResponseOk<Vec<Service>>, HttpError> {
        let svc = Service {
            uuid: uuid::Uuid::nil(),
            name: "echo".into(),
            application_uuid: uuid::Uuid::nil(),
            params: None,
            metadata: None,
            manifests: None,
            master: None,
            service_type: Some(ServiceType::Agent),
            extra: seen(&rqctx),
        };
        Ok(HttpResponseOk(vec![svc]))
    }

    #[dropshot::endpoint { method = POST, path = "/services" }]
    async fn echo_create(
        rqctx: RequestContext<()>,
        body: TypedBody<CreateServiceBody>,
    ) -> Result<HttpResponseOk<Service>, HttpError> {
        let body = body.into_inner();
        Ok(HttpResponseOk(Service {
            uuid: uuid::Uuid::nil(),
            name: body.name.unwrap_or_default(),
            application_uuid: body.application_uuid.unwrap_or_default().parse().unwrap(),
            params: None,
            metadata: None,
            manifests: None,
            master: None,
            service_type: body.service_type,
            extra: seen(&rqctx),
        }))
    }

    /// A real Dropshot server on loopback with a few SAPI routes that echo
    /// what each request carried.
    fn echo_server() -> (sapi_api::restify_error::RestServer<()>, Client) {
        let mut api = ApiDescription::new();
        api.register(echo_ping).unwrap();
        api.register(echo_list).unwrap();
        api.register(echo_create).unwrap();
        let server = sapi_api::restify_error::start_loopback(api, ()).unwrap();
        let client = client_for_provisioning(&format!("http://{}", server.local_addr())).unwrap();
        (server, client)
    }

    #[tokio::test]
    async fn every_request_selects_the_2x_api() {
        let (server, client) = echo_server();

        let ping = client.ping().send().await.unwrap().into_inner();
        assert_eq!(ping.extra["seen_accept_version"], "~2");

        let list = client
            .list_services()
            .name("echo")
            .type_(ServiceType::Agent)
            .send()
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list[0].extra["seen_accept_version"], "~2");
        let query = list[0].extra["seen_query"].as_str().unwrap();
        assert!(query.contains("type=agent"), "{query}");
        assert!(query.contains("name=echo"), "{query}");

        let created = client
            .create_service()
            .body(CreateServiceBody::new("x", uuid::Uuid::nil()))
            .send()
            .await
            .unwrap()
            .into_inner();
        assert_eq!(created.name, "x");
        assert_eq!(created.extra["seen_accept_version"], "~2");

        server.close().await.unwrap();
    }
}
