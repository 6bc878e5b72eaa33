//! Progenitor client for PAPI, generated from `openapi/papi.json`.
//!
//! The object and error types are the trait crate's own (`replace`), so
//! unknown package attributes survive a round trip and errors print as
//! `Code: message`.

pub use papi_api;

progenitor::generate_api!(
    spec = "../../openapi/papi.json",
    interface = Builder,
    replace = {
        RestError = papi_api::restify_error::RestError,
        PingResponse = papi_api::PingResponse,
        Package = papi_api::Package,
    },
);

/// The `x-resource-count` of a ListPackages answer: how many packages
/// match over all pages. `None` when absent or not a number.
pub fn resource_count<T>(response: &ResponseValue<T>) -> Option<u64> {
    wire_enum::count_header(response.headers(), papi_api::RESOURCE_COUNT_HEADER)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropshot::{
        ApiDescription, HttpError, HttpResponseHeaders, HttpResponseOk, Query, RequestContext,
    };
    use papi_api::{ListPackagesHeaders, ListPackagesQuery, Package};
    use serde_json::json;

    fn package(name: &str) -> Package {
        serde_json::from_value(json!({
            "uuid": uuid::Uuid::new_v4(), "name": name, "version": "1.0.0",
            "active": true, "max_physical_memory": 1024, "max_swap": 2048,
            "max_lwps": 4000, "quota": 25600, "zfs_io_priority": 100,
            "billing_tag": "sdc"
        }))
        .unwrap()
    }

    /// ListPackages over two packages, filtered by exact `name`, with
    /// PAPI's count header.
    #[dropshot::endpoint { method = GET, path = "/packages" }]
    async fn list(
        _rqctx: RequestContext<()>,
        query: Query<ListPackagesQuery>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Vec<Package>>, ListPackagesHeaders>, HttpError>
    {
        let q = query.into_inner();
        let all = [package("sdc_1024"), package("sdc_2048")];
        let matching: Vec<Package> = all
            .into_iter()
            .filter(|p| q.name.as_deref().is_none_or(|n| n == p.name))
            .collect();
        let count = matching.len() as u64;
        Ok(HttpResponseHeaders::new(
            HttpResponseOk(matching),
            ListPackagesHeaders {
                resource_count: count,
            },
        ))
    }

    #[tokio::test]
    async fn resource_count_and_unknown_attributes_come_through() {
        let mut api = ApiDescription::new();
        api.register(list).unwrap();
        let server = papi_api::restify_error::start_loopback(api, ()).unwrap();
        let client = Client::new(&format!("http://{}", server.local_addr()));

        let all = client.list_packages().send().await.unwrap();
        assert_eq!(resource_count(&all), Some(2));
        let one = client
            .list_packages()
            .name("sdc_1024")
            .send()
            .await
            .unwrap();
        assert_eq!(resource_count(&one), Some(1));
        let pkgs = one.into_inner();
        assert_eq!(pkgs[0].name, "sdc_1024");
        assert_eq!(pkgs[0].extra["billing_tag"], "sdc");

        server.close().await.unwrap();
    }
}
