//! The wire contract of SAPI (Services API), for the subset the toolchain
//! uses: ping and mode, applications (read), services, instances and the
//! configs config-agent reads.
//!
//! It follows the Node.js sdc-sapi (`shared/reference/sapi-api.md`), odd
//! parts included: creation answers 200 with the object, deletion 204;
//! `PUT /services/:uuid` takes an `action` (`update` merges, `replace`,
//! `delete` removes keys). Requests are read leniently, as restify reads
//! them, so that servers answer bad input with SAPI's own errors (409
//! `MissingParameter`, 404 for a UUID that names nothing) rather than a
//! parse error: required body fields are optional, and UUIDs in bodies,
//! paths and query filters are strings. Responses are typed.
//!
//! Versioning is by `accept-version` header: SAPI serves 1.0.0 and 2.0.0,
//! and a request without the header is treated as `~1`, which drops
//! `type` from objects and lists only `type=vm` rows. Servers read
//! the header with [`requested_version`]; clients send [`ACCEPT_VERSION`].

use dropshot::{
    HttpResponseDeleted, HttpResponseHeaders, HttpResponseOk, Path, Query, RequestContext,
    TypedBody,
};
use restify_error::RestError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use restify_error;

/// Version of this API contract, as published in the OpenAPI document.
pub const API_VERSION: &str = "2.0.0";

/// The request header SAPI selects its API version by.
pub const ACCEPT_VERSION_HEADER: &str = "accept-version";

/// What clients of this contract send in `accept-version`: the 2.x API,
/// the only one that returns `type` and lists non-`vm` services.
pub const ACCEPT_VERSION: &str = "~2";

// ---------------------------------------------------------------------------
// Versioning

/// The SAPI API version a request selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SapiVersion {
    /// 1.0.0: no `type` on objects; lists hold only `type=vm` rows.
    V1,
    /// 2.0.0: `type` on services and instances, filterable.
    V2,
}

/// The version a request's `accept-version` header selects, as sdc-sapi's
/// restify server does: no header means `~1`; a semver range picks the
/// highest served version (2.0.0, then 1.0.0) it admits; a range admitting
/// neither is 400 `InvalidVersion`.
pub fn requested_version(headers: &http::HeaderMap) -> Result<SapiVersion, RestError> {
    let Some(raw) = headers.get(ACCEPT_VERSION_HEADER) else {
        return Ok(SapiVersion::V1);
    };
    let text = raw
        .to_str()
        .map_err(|_| RestError::from_code("InvalidVersion", "accept-version is not ASCII"))?
        .trim();
    let unsupported = || {
        RestError::from_code(
            "InvalidVersion",
            format!("accept-version {text} is not supported (served: 1.0.0, 2.0.0)"),
        )
    };
    // JS semver's `*` and `x` are any version; the semver crate spells it `*`.
    let req = if text.is_empty() || text == "x" {
        semver::VersionReq::STAR
    } else {
        semver::VersionReq::parse(text).map_err(|_| unsupported())?
    };
    if req.matches(&semver::Version::new(2, 0, 0)) {
        Ok(SapiVersion::V2)
    } else if req.matches(&semver::Version::new(1, 0, 0)) {
        Ok(SapiVersion::V1)
    } else {
        Err(unsupported())
    }
}

// ---------------------------------------------------------------------------
// Objects

wire_enum::wire_enum! {
    /// `type` of a service and its instances (2.0.0 only): `vm` services
    /// provision zones, `agent` services are agents in the global zone.
    pub enum ServiceType {
        Vm = "vm",
        Agent = "agent",
    }
}

wire_enum::wire_enum! {
    /// SAPI's mode: `proto` keeps objects in local files and provisions
    /// nothing; `full` is normal operation.
    pub enum SapiMode {
        Proto = "proto",
        Full = "full",
    }
}

wire_enum::wire_enum! {
    /// `action` of an update: `update` merges the given keys (the default),
    /// `replace` replaces each given attribute set whole, `delete` removes
    /// the given keys. Other values are 409 `InvalidArgument`.
    pub enum UpdateAction {
        Update = "update",
        Replace = "replace",
        Delete = "delete",
    }
}

/// `GET /ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PingResponse {
    pub mode: SapiMode,
    /// The storage backend's class name, e.g. `MorayStore`.
    #[serde(rename = "storType")]
    pub stor_type: String,
    /// False (with status 500) when the backend does not answer.
    #[serde(rename = "storAvailable")]
    pub stor_available: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An application: the root of the params/metadata/manifests inheritance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Application {
    pub uuid: Uuid,
    pub name: String,
    pub owner_uuid: Uuid,
    /// Zone parameters inherited by every instance (ram, image_uuid, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    /// Metadata config-agent renders templates with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_schema: Option<Value>,
    /// Configuration manifests by name: name -> manifest UUID.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire_enum::object_or_empty_array"
    )]
    pub manifests: Option<Map<String, Value>>,
    /// Stored in the master DC's SAPI (multi-DC mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<bool>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A service of an application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Service {
    pub uuid: Uuid,
    pub name: String,
    pub application_uuid: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire_enum::object_or_empty_array"
    )]
    pub manifests: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<bool>,
    /// Only with `accept-version` 2.x.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An instance of a service: for `vm` services, a zone whose UUID is the
/// instance's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Instance {
    pub uuid: Uuid,
    pub service_uuid: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "wire_enum::object_or_empty_array"
    )]
    pub manifests: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<bool>,
    /// The VMAPI provision job: only in the answer to an asynchronous
    /// create (`?async=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_uuid: Option<Uuid>,
    /// Only with `accept-version` 2.x; the service's type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A configuration manifest as `GET /configs/:uuid` returns it: where
/// config-agent writes the rendered template and what it runs after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigManifest {
    pub uuid: Uuid,
    pub name: String,
    pub path: String,
    /// A mustache (hogan.js) template; older manifests hold a JSON object.
    pub template: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_cmd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `GET /configs/:uuid`: an instance's manifests and its metadata merged
/// application -> service -> instance (last wins), plus the deprecated
/// `SERVER_UUID`, `ZONE_UUID` and `INSTANCE_UUID` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Config {
    pub manifests: Vec<ConfigManifest>,
    pub metadata: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The `Etag` of `GET /configs/:uuid`: config-agent sends it back in
/// `If-None-Match`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConfigHeaders {
    #[serde(rename = "etag", default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

// ---------------------------------------------------------------------------
// Request bodies and parameters

/// Body of `POST /services`. `name` and `application_uuid` are required:
/// SAPI answers 409 `MissingParameter` without them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateServiceBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_uuid: Option<String>,
    /// Server-assigned when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Map<String, Value>>,
    /// `vm` when absent; values other than `vm` and `agent` are refused.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<bool>,
}

impl CreateServiceBody {
    /// A body with the two required fields set.
    pub fn new(name: impl Into<String>, application_uuid: Uuid) -> Self {
        CreateServiceBody {
            name: Some(name.into()),
            application_uuid: Some(application_uuid.to_string()),
            ..Default::default()
        }
    }
}

/// Body of `PUT /services/:uuid` (and of instance and application updates).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateBody {
    /// `update` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<UpdateAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Map<String, Value>>,
}

/// Body of `POST /instances`. `service_uuid` is required: SAPI answers 409
/// `MissingParameter` without it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateInstanceBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_uuid: Option<String>,
    /// The instance's (and its zone's) UUID; server-assigned when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// Zone parameters that win over the service's and application's
    /// (alias, server_uuid, networks, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Map<String, Value>>,
    /// AdoptInstance: record an existing zone (`uuid` then required)
    /// instead of provisioning one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<bool>,
}

impl CreateInstanceBody {
    /// A body with the required field set.
    pub fn new(service_uuid: Uuid) -> Self {
        CreateInstanceBody {
            service_uuid: Some(service_uuid.to_string()),
            ..Default::default()
        }
    }
}

/// Body of `PUT /instances/:uuid/upgrade`. Required: 409
/// `MissingParameter` without it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpgradeInstanceBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uuid: Option<String>,
}

/// An object's UUID as the path names it: any text (SAPI answers 404 for
/// one that names nothing, UUID or not).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UuidPath {
    pub uuid: String,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ListApplicationsQuery {
    pub name: Option<String>,
    pub owner_uuid: Option<String>,
    /// Also list the master DC's (multi-DC mode).
    pub include_master: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ListServicesQuery {
    pub name: Option<String>,
    pub application_uuid: Option<String>,
    /// 2.x only; 1.x lists `vm` services whatever this says.
    #[serde(rename = "type")]
    pub service_type: Option<ServiceType>,
    pub include_master: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ListInstancesQuery {
    /// Implies the service's type: `type` is then ignored.
    pub service_uuid: Option<String>,
    /// 2.x only; 1.x lists `vm` instances.
    #[serde(rename = "type")]
    pub service_type: Option<ServiceType>,
    pub include_master: Option<bool>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct CreateInstanceQuery {
    /// Answer at once, with the VMAPI provision job in `job_uuid`, instead
    /// of after the zone is provisioned.
    #[serde(rename = "async")]
    pub async_: Option<bool>,
}

// ---------------------------------------------------------------------------
// The API

#[dropshot::api_description]
pub trait SapiApi {
    type Context: Send + Sync + 'static;

    /// Ping: mode and whether storage answers (500 when it does not).
    #[endpoint { method = GET, path = "/ping" }]
    async fn ping(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError>;

    /// GetMode: the mode as a JSON string.
    #[endpoint { method = GET, path = "/mode" }]
    async fn get_mode(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<SapiMode>, RestError>;

    /// ListApplications: an array, empty when none match.
    #[endpoint { method = GET, path = "/applications" }]
    async fn list_applications(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListApplicationsQuery>,
    ) -> Result<HttpResponseOk<Vec<Application>>, RestError>;

    /// GetApplication: 404 `ResourceNotFound` when absent.
    #[endpoint { method = GET, path = "/applications/{uuid}" }]
    async fn get_application(
        rqctx: RequestContext<Self::Context>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseOk<Application>, RestError>;

    /// ListServices: an array, empty when none match.
    #[endpoint { method = GET, path = "/services" }]
    async fn list_services(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListServicesQuery>,
    ) -> Result<HttpResponseOk<Vec<Service>>, RestError>;

    /// CreateService: 200 with the service; 404 when the application does
    /// not exist.
    #[endpoint { method = POST, path = "/services" }]
    async fn create_service(
        rqctx: RequestContext<Self::Context>,
        body: TypedBody<CreateServiceBody>,
    ) -> Result<HttpResponseOk<Service>, RestError>;

    /// GetService.
    #[endpoint { method = GET, path = "/services/{uuid}" }]
    async fn get_service(
        rqctx: RequestContext<Self::Context>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseOk<Service>, RestError>;

    /// UpdateService: apply `action` to params, metadata and manifests.
    #[endpoint { method = PUT, path = "/services/{uuid}" }]
    async fn update_service(
        rqctx: RequestContext<Self::Context>,
        path: Path<UuidPath>,
        body: TypedBody<UpdateBody>,
    ) -> Result<HttpResponseOk<Service>, RestError>;

    /// DeleteService: 204; 404 when absent.
    #[endpoint { method = DELETE, path = "/services/{uuid}" }]
    async fn delete_service(
        rqctx: RequestContext<Self::Context>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseDeleted, RestError>;

    /// ListInstances: an array, empty when none match.
    #[endpoint { method = GET, path = "/instances" }]
    async fn list_instances(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListInstancesQuery>,
    ) -> Result<HttpResponseOk<Vec<Instance>>, RestError>;

    /// CreateInstance: provisions the zone through VMAPI and, unless
    /// `?async=true`, answers (200) only once the provision job is done. A
    /// failed provision is 500 `ProvisionFailedError` and leaves no
    /// instance.
    #[endpoint { method = POST, path = "/instances" }]
    async fn create_instance(
        rqctx: RequestContext<Self::Context>,
        query: Query<CreateInstanceQuery>,
        body: TypedBody<CreateInstanceBody>,
    ) -> Result<HttpResponseOk<Instance>, RestError>;

    /// GetInstance.
    #[endpoint { method = GET, path = "/instances/{uuid}" }]
    async fn get_instance(
        rqctx: RequestContext<Self::Context>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseOk<Instance>, RestError>;

    /// DeleteInstance: destroys the zone too; 204.
    #[endpoint { method = DELETE, path = "/instances/{uuid}" }]
    async fn delete_instance(
        rqctx: RequestContext<Self::Context>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseDeleted, RestError>;

    /// UpgradeInstance: reprovision the zone on `image_uuid` (VMAPI
    /// `action=reprovision`).
    #[endpoint { method = PUT, path = "/instances/{uuid}/upgrade" }]
    async fn upgrade_instance(
        rqctx: RequestContext<Self::Context>,
        path: Path<UuidPath>,
        body: TypedBody<UpgradeInstanceBody>,
    ) -> Result<HttpResponseOk<Instance>, RestError>;

    /// GetConfig: what config-agent renders for the instance `uuid`.
    #[endpoint { method = GET, path = "/configs/{uuid}" }]
    async fn get_config(
        rqctx: RequestContext<Self::Context>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Config>, ConfigHeaders>, RestError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(v: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(v) = v {
            h.insert(ACCEPT_VERSION_HEADER, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn accept_version_selects_like_restify() {
        for (header, want) in [
            (None, SapiVersion::V1),
            (Some("~1"), SapiVersion::V1),
            (Some("1.0.0"), SapiVersion::V1),
            (Some("~2"), SapiVersion::V2),
            (Some(ACCEPT_VERSION), SapiVersion::V2),
            (Some("2.0.0"), SapiVersion::V2),
            (Some("*"), SapiVersion::V2),
            (Some(">=1"), SapiVersion::V2),
        ] {
            assert_eq!(
                requested_version(&headers(header)).unwrap(),
                want,
                "{header:?}"
            );
        }
        for bad in ["~3", "0.1", "banana"] {
            let e = requested_version(&headers(Some(bad))).unwrap_err();
            assert_eq!(
                (e.code.as_str(), e.status().as_u16()),
                ("InvalidVersion", 400)
            );
        }
    }

    #[test]
    fn service_round_trips_with_unknown_fields_and_types() {
        // The reference's ListServices example, plus a 2.x `type` and a
        // field this contract does not name.
        let wire = json!({
            "uuid": "09a5da9f-db2a-42d8-99ac-1263cc5751b2",
            "name": "storage",
            "application_uuid": "df065006-2d4c-422d-92f0-091b9f9e443a",
            "params": {"image_uuid": "cbd1b029-54ab-4864-b792-9c6fe615dcd6"},
            "metadata": {"NGINX_WORKERS": 8},
            "manifests": {
                "mako": "b9cb33dd-6610-44c9-9c7d-9e4ce8dd8af3",
                "minnow": "ed29bb94-34bd-410a-97cc-a750bce147cd"
            },
            "type": "vm",
            "future_field": {"x": 1}
        });
        let svc: Service = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(svc.service_type, Some(ServiceType::Vm));
        assert_eq!(svc.extra["future_field"], json!({"x": 1}));
        assert_eq!(serde_json::to_value(&svc).unwrap(), wire);

        let mut odd = wire.clone();
        odd["type"] = json!("zone-agent");
        let svc: Service = serde_json::from_value(odd.clone()).unwrap();
        assert_eq!(
            svc.service_type,
            Some(ServiceType::Other("zone-agent".into()))
        );
        assert_eq!(serde_json::to_value(&svc).unwrap(), odd);
    }

    #[test]
    fn v1_instance_without_type_and_with_array_manifests() {
        // The reference's GetInstance example: 1.x, `manifests: []`.
        let inst: Instance = serde_json::from_value(json!({
            "uuid": "b63c3b56-6bd1-11e2-af0a-836066bbb42e",
            "service_uuid": "5081a5d6-6bd0-11e2-bafb-a735b6c6ccb6",
            "params": {"ram": 4096},
            "metadata": {"MORAY": "1.moray.manta.joyent.us"},
            "manifests": []
        }))
        .unwrap();
        assert_eq!(inst.service_type, None);
        assert_eq!(inst.manifests, Some(Map::new()));
        assert_eq!(inst.params.unwrap()["ram"], 4096);
    }

    #[test]
    fn application_and_config_parse() {
        let app: Application = serde_json::from_value(json!({
            "uuid": "14160e92-5533-11e2-86a2-9f78cf99260d",
            "name": "sdc",
            "owner_uuid": "1959d690-5533-11e2-8bee-1b98757172d1",
            "params": {"ram": 1024, "quota": 100},
            "metadata": {"NAMESERVERS": ["10.99.99.20", "10.99.99.21"], "REGION": "sf"},
            "manifests": {"dns_client": "e0ebe2ac-8a30-49e2-b1a6-4cc9d763f3e1"}
        }))
        .unwrap();
        assert_eq!(app.name, "sdc");
        assert!(app.extra.is_empty());

        let cfg: Config = serde_json::from_value(json!({
            "manifests": [{
                "uuid": "3f92e01b-3880-41d4-a024-fcdbb88d1771",
                "name": "registrar",
                "path": "/opt/smartdc/registrar/etc/config.json",
                "template": "{\n  \"registration\": {\n    \"domain\": \"{{SERVICE_DOMAIN}}\"",
                "version": "1.0.0",
                "master": false
            }],
            "metadata": {"datacenter_name": "coal", "ZONE_UUID": "x"}
        }))
        .unwrap();
        assert_eq!(cfg.manifests[0].name, "registrar");
        assert_eq!(cfg.manifests[0].extra["master"], false);
        assert_eq!(cfg.metadata["datacenter_name"], "coal");
    }

    #[test]
    fn ping_and_mode_use_wire_names() {
        let ping: PingResponse = serde_json::from_value(
            json!({"mode": "full", "storType": "MorayStore", "storAvailable": true}),
        )
        .unwrap();
        assert_eq!(ping.mode, SapiMode::Full);
        assert_eq!(ping.stor_type, "MorayStore");
        assert_eq!(
            serde_json::to_value(SapiMode::Proto).unwrap(),
            json!("proto")
        );
    }

    #[test]
    fn bodies_omit_what_is_unset() {
        let body = CreateServiceBody::new("triton-api", Uuid::nil());
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"name": "triton-api", "application_uuid": Uuid::nil().to_string()})
        );
        // Required fields missing, or a bad UUID, is the server's to
        // answer (409, 404), not a parse error.
        let empty: CreateInstanceBody = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty, CreateInstanceBody::default());
        let bad: CreateInstanceBody =
            serde_json::from_value(json!({"service_uuid": "not-a-uuid"})).unwrap();
        assert_eq!(bad.service_uuid.as_deref(), Some("not-a-uuid"));
        let upd: UpdateBody = serde_json::from_value(json!({"action": "REPLACE"})).unwrap();
        assert_eq!(upd.action, Some(UpdateAction::Other("REPLACE".into())));
    }
}
