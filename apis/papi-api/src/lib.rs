//! The wire contract of PAPI (Package API), for the subset the toolchain
//! uses: listing and reading packages.
//!
//! It follows the Node.js sdc-papi (`shared/reference/papi-api.md`):
//! ListPackages filters are LDAP equality filters (a value may be a JSON
//! array of alternatives, or hold `*` wildcards), it pages with `offset`
//! and `limit`, and it sends the number of matches in `x-resource-count`
//! (not VMAPI's `x-joyent-resource-count`).
//!
//! Requests are read leniently, as restify reads them: UUIDs in paths and
//! query filters are strings, for the server to judge. Responses are typed.

use dropshot::{HttpResponseHeaders, HttpResponseOk, Path, Query, RequestContext};
use restify_error::RestError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use restify_error;

/// Version of this API contract, as published in the OpenAPI document.
pub const API_VERSION: &str = "7.2.0";

/// ListPackages' response header with the number of matching packages.
pub const RESOURCE_COUNT_HEADER: &str = "x-resource-count";

/// A package: the documented required attributes typed, the rest kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Package {
    pub uuid: Uuid,
    pub name: String,
    /// Semver.
    pub version: String,
    /// Whether it can be used for provisioning.
    pub active: bool,
    /// MiB.
    pub max_physical_memory: u64,
    /// MiB.
    pub max_swap: u64,
    pub max_lwps: u64,
    /// Disk, MiB (a multiple of 1024).
    pub quota: u64,
    pub zfs_io_priority: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cap: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u64>,
    /// CPU shares (`cpu_shares` in VMAPI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fss: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<Uuid>>,
    /// Unset: any owner may use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uuids: Option<Vec<Uuid>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u32>,
    /// `min_platform`, `traits`, `billing_tag`, ... and any attribute an
    /// operator added.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PingResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// `up`, or `down` with `backend_error`.
    pub backend: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// ListPackages filters (ANDed) and paging. Each value is an exact value,
/// a `*` wildcard pattern, or a JSON array of alternatives.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ListPackagesQuery {
    pub name: Option<String>,
    pub version: Option<String>,
    pub active: Option<bool>,
    pub owner_uuids: Option<String>,
    /// A raw LDAP filter; all other filters are then ignored.
    pub filter: Option<String>,
    pub offset: Option<u32>,
    pub limit: Option<u32>,
    /// Attribute to sort by.
    pub sort: Option<String>,
    /// `ASC` or `DESC`.
    pub order: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct GetPackageQuery {
    /// 404 unless the package is universal or has one of these owners.
    pub owner_uuids: Option<String>,
}

/// A package's UUID as the path names it: any text, for the server to
/// judge.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PackagePath {
    pub uuid: String,
}

/// ListPackages' response headers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListPackagesHeaders {
    /// The number of packages matching the filters, over all pages.
    #[serde(
        rename = "x-resource-count",
        serialize_with = "wire_enum::count_as_string::serialize",
        deserialize_with = "wire_enum::count_as_string::deserialize"
    )]
    pub resource_count: u64,
}

#[dropshot::api_description]
pub trait PapiApi {
    type Context: Send + Sync + 'static;

    /// Ping.
    #[endpoint { method = GET, path = "/ping" }]
    async fn ping(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError>;

    /// ListPackages: an array (empty when none match), the total in
    /// `x-resource-count`.
    #[endpoint { method = GET, path = "/packages" }]
    async fn list_packages(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListPackagesQuery>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Vec<Package>>, ListPackagesHeaders>, RestError>;

    /// GetPackage: 404 `ResourceNotFound` when absent.
    #[endpoint { method = GET, path = "/packages/{uuid}" }]
    async fn get_package(
        rqctx: RequestContext<Self::Context>,
        path: Path<PackagePath>,
        query: Query<GetPackageQuery>,
    ) -> Result<HttpResponseOk<Package>, RestError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn package_from_the_reference_round_trips() {
        let wire = json!({
            "active": true,
            "cpu_cap": 25,
            "cpu_shares": 25,
            "description": "Micro 0.25 GB RAM 0.125 CPUs 16 GB Disk",
            "group": "Standard",
            "max_lwps": 4000,
            "max_physical_memory": 256,
            "max_swap": 512,
            "name": "g3-standard-0.25-smartos",
            "networks": ["1e7bb0e1-25a9-43b6-bb19-f79ae9540b39",
                         "193d6804-256c-4e89-a4cd-46f045959993"],
            "quota": 16384,
            "uuid": "7fc87f43-2def-4e6f-9f8c-980b0385b36e",
            "v": 1,
            "version": "1.0.0",
            "zfs_io_priority": 100,
            "min_platform": {"7.0": "20130917T001310Z"}
        });
        let pkg: Package = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(pkg.max_physical_memory, 256);
        assert_eq!(pkg.extra["cpu_shares"], 25);
        assert_eq!(pkg.networks.as_ref().unwrap().len(), 2);
        assert_eq!(serde_json::to_value(&pkg).unwrap(), wire);
    }

    #[test]
    fn a_package_missing_a_required_attribute_is_refused() {
        let err = serde_json::from_value::<Package>(json!({
            "uuid": "7fc87f43-2def-4e6f-9f8c-980b0385b36e",
            "name": "x", "version": "1.0.0", "active": true
        }))
        .unwrap_err();
        assert!(err.to_string().contains("max_physical_memory"), "{err}");
    }

    #[test]
    fn count_header_name() {
        let h = serde_json::to_value(ListPackagesHeaders { resource_count: 2 }).unwrap();
        assert_eq!(h, json!({RESOURCE_COUNT_HEADER: "2"}));
    }
}
