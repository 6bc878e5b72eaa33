//! The wire contract of VMAPI, for the subset the toolchain uses: listing
//! and reading VMs, creating them, the `add_nics` and `reprovision`
//! actions, and the workflow jobs those return.
//!
//! It follows the Node.js sdc-vmapi (`shared/reference/vmapi-api.md`):
//! writes answer 202 with `{vm_uuid, job_uuid}` and the work happens in the
//! job; `POST /vms/:uuid` multiplexes actions on `?action=`; ListVms sends
//! the number of matches in `x-joyent-resource-count`, returns at most
//! 1000 VMs a page (`limit`), and pages with `offset` (the Node client
//! pages until a short page) or `marker`; `state=active` means neither
//! `destroyed` nor `failed`. `tag.<key>=<value>` filters have dynamic
//! names, which a typed query cannot declare: servers read them from the
//! raw query string. Requests are read leniently, as restify reads them,
//! so that servers answer bad input with VMAPI's own errors (409
//! `ValidationFailed`, 404) rather than a parse error: required body fields
//! are optional, and UUIDs in bodies, paths and query filters are strings.
//! Responses are typed.

use dropshot::{
    HttpResponseAccepted, HttpResponseHeaders, HttpResponseOk, Path, Query, RequestContext,
    TypedBody,
};
use restify_error::RestError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use restify_error;

/// Version of this API contract, as published in the OpenAPI document.
pub const API_VERSION: &str = "9.0.0";

/// ListVms' response header with the number of VMs matching the filters
/// (all pages).
pub const RESOURCE_COUNT_HEADER: &str = "x-joyent-resource-count";

/// The default and largest ListVms `limit`.
pub const MAX_LIST_LIMIT: u32 = 1000;

// ---------------------------------------------------------------------------
// VMs

wire_enum::wire_enum! {
    /// A VM's `state`. (`active` is a ListVms filter, not a state: see
    /// [`VmState::is_active`].)
    pub enum VmState {
        Running = "running",
        Stopped = "stopped",
        Destroyed = "destroyed",
        Provisioning = "provisioning",
        Incomplete = "incomplete",
        Failed = "failed",
        Unknown = "unknown",
    }
}

impl VmState {
    /// Whether the ListVms filter `state=active` matches this state:
    /// anything but `destroyed` and `failed`.
    pub fn is_active(&self) -> bool {
        !matches!(self, VmState::Destroyed | VmState::Failed)
    }
}

/// One of a VM's NICs, as VMAPI lists them in `nics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VmNic {
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nic_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_uuid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_id: Option<u32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A VM object (GetVm, ListVms). VMAPI sends `null` for unset default
/// fields, so this does too; fields it does not name (disks, snapshots,
/// cpu_cap, ...) are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Vm {
    pub uuid: Uuid,
    pub owner_uuid: Uuid,
    pub state: VmState,
    #[serde(default)]
    pub alias: Option<String>,
    #[serde(default)]
    pub brand: Option<String>,
    #[serde(default)]
    pub image_uuid: Option<Uuid>,
    /// Unset until the provision has picked a server.
    #[serde(default)]
    pub server_uuid: Option<Uuid>,
    /// The PAPI package.
    #[serde(default)]
    pub billing_id: Option<Uuid>,
    /// MiB.
    #[serde(default)]
    pub ram: Option<u64>,
    /// GiB.
    #[serde(default)]
    pub quota: Option<u64>,
    #[serde(default)]
    pub zone_state: Option<String>,
    #[serde(default)]
    pub create_timestamp: Option<String>,
    #[serde(default)]
    pub nics: Vec<VmNic>,
    #[serde(default)]
    pub customer_metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub internal_metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub tags: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Vm {
    /// The primary NIC (the first one when none is flagged).
    pub fn primary_nic(&self) -> Option<&VmNic> {
        self.nics
            .iter()
            .find(|n| n.primary == Some(true))
            .or_else(|| self.nics.first())
    }
}

// ---------------------------------------------------------------------------
// Jobs

wire_enum::wire_enum! {
    /// A workflow job's `execution`.
    pub enum JobExecution {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Canceled = "canceled",
    }
}

impl JobExecution {
    /// Whether the job is done (what `GET /jobs/:uuid/wait` waits for).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            JobExecution::Succeeded | JobExecution::Failed | JobExecution::Canceled
        )
    }
}

/// The answer to every VMAPI write: the VM and the job doing the work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JobResponse {
    pub vm_uuid: Uuid,
    pub job_uuid: Uuid,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One task's outcome in a job's `chain_results`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChainResult {
    /// The task's name, when the workflow sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Usually a message string.
    #[serde(default)]
    pub result: Value,
    /// `""` when the task succeeded; otherwise a message or an
    /// `{name, message}` object.
    #[serde(default)]
    pub error: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChainResult {
    /// The task's error message, if it failed.
    pub fn error_message(&self) -> Option<String> {
        match &self.error {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => Some(match o.get("message") {
                Some(Value::String(m)) => m.clone(),
                _ => Value::Object(o.clone()).to_string(),
            }),
            other => Some(other.to_string()),
        }
    }
}

/// A workflow job (GetJob, WaitJob).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Job {
    pub uuid: Uuid,
    /// e.g. `provision-<vm uuid>`.
    pub name: String,
    pub execution: JobExecution,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Map<String, Value>>,
    #[serde(default)]
    pub chain_results: Vec<ChainResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Job {
    /// The first task error in `chain_results`: why a failed job failed.
    pub fn error_message(&self) -> Option<String> {
        self.chain_results
            .iter()
            .find_map(ChainResult::error_message)
    }
}

// ---------------------------------------------------------------------------
// Requests

/// A network in CreateVm's and AddNics' `networks`: a UUID (legacy) or
/// name string, or an object naming the network by `uuid`, `ipv4_uuid` or
/// `name`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum NetworkRef {
    Id(String),
    Spec(NetworkSpec),
}

/// The object form of a [`NetworkRef`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Legacy form of `ipv4_ips: [ip]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// Antispoof flags and anything newer.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Body of CreateVm. VMAPI requires `owner_uuid`, `networks`, `brand`,
/// `billing_id` or `ram`, and `image_uuid` (except for KVM/bhyve, where the
/// first disk names the image); it answers 409 `ValidationFailed` when one
/// is missing or invalid. Other VM attributes go in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateVmBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_id: Option<String>,
    /// MiB; a number (VMAPI also takes a numeric string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ram: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

wire_enum::wire_enum! {
    /// `action` of `POST /vms/:uuid`.
    pub enum VmAction {
        Start = "start",
        Stop = "stop",
        Reboot = "reboot",
        Reprovision = "reprovision",
        Update = "update",
        AddNics = "add_nics",
        UpdateNics = "update_nics",
        RemoveNics = "remove_nics",
        CreateSnapshot = "create_snapshot",
        DeleteSnapshot = "delete_snapshot",
        RollbackSnapshot = "rollback_snapshot",
    }
}

/// Body of `POST /vms/:uuid?action=...`, read per action: `networks` (or
/// `macs`) for `add_nics`, `image_uuid` for `reprovision`; other actions'
/// inputs go in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct VmActionBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<Vec<NetworkRef>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub macs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_uuid: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct VmActionQuery {
    /// Required: VMAPI answers 409 without it.
    pub action: Option<VmAction>,
    /// 404 unless the VM has this owner.
    pub owner_uuid: Option<String>,
    /// Answer once the job has finished.
    pub sync: Option<bool>,
}

/// A VM's UUID as the path names it: any text, for the server to judge.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct VmPath {
    pub uuid: String,
}

/// A job's UUID as the path names it: any text, for the server to judge.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct JobPath {
    pub job_uuid: String,
}

/// ListVms filters (ANDed) and paging. `tag.<key>=<value>` filters are read
/// from the raw query string.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct ListVmsQuery {
    pub alias: Option<String>,
    pub owner_uuid: Option<String>,
    pub image_uuid: Option<String>,
    pub server_uuid: Option<String>,
    pub billing_id: Option<String>,
    pub brand: Option<String>,
    /// A VM state, or `active`: neither destroyed nor failed.
    pub state: Option<String>,
    /// Comma-separated VM UUIDs.
    pub uuids: Option<String>,
    /// Comma-separated fields to return; `*` for all.
    pub fields: Option<String>,
    /// At most this many VMs (default and maximum 1000).
    pub limit: Option<u32>,
    /// Skip this many matches. Not with `marker`.
    pub offset: Option<u32>,
    /// A JSON object of the last VM's sort fields. Not with `offset`.
    pub marker: Option<String>,
    /// `<field>` or `<field>.asc|desc`; `uuid` descending by default.
    pub sort: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub struct GetVmQuery {
    /// 404 unless the VM has this owner.
    pub owner_uuid: Option<String>,
    pub fields: Option<String>,
    /// Load the VM from CNAPI rather than VMAPI's cache.
    pub sync: Option<bool>,
}

/// ListVms' response headers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListVmsHeaders {
    /// The number of VMs matching the filters, over all pages.
    #[serde(
        rename = "x-joyent-resource-count",
        serialize_with = "wire_enum::count_as_string::serialize",
        deserialize_with = "wire_enum::count_as_string::deserialize"
    )]
    pub resource_count: u64,
}

/// `GET /ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PingResponse {
    /// `OK` when everything VMAPI depends on answers.
    pub status: String,
    pub healthy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Per backend (wfapi, moray, ...): `online` or `offline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<Map<String, Value>>,
    #[serde(
        rename = "pingErrors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ping_errors: Option<Map<String, Value>>,
    /// `initialization`, `dataMigrations`, ...
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

// ---------------------------------------------------------------------------
// The API

#[dropshot::api_description]
pub trait VmapiApi {
    type Context: Send + Sync + 'static;

    /// Ping.
    #[endpoint { method = GET, path = "/ping" }]
    async fn ping(
        rqctx: RequestContext<Self::Context>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError>;

    /// ListVms: one page, with the total in `x-joyent-resource-count`.
    #[endpoint { method = GET, path = "/vms" }]
    async fn list_vms(
        rqctx: RequestContext<Self::Context>,
        query: Query<ListVmsQuery>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Vec<Vm>>, ListVmsHeaders>, RestError>;

    /// GetVm: 404 `ResourceNotFound` when absent (or not the owner's).
    #[endpoint { method = GET, path = "/vms/{uuid}" }]
    async fn get_vm(
        rqctx: RequestContext<Self::Context>,
        path: Path<VmPath>,
        query: Query<GetVmQuery>,
    ) -> Result<HttpResponseOk<Vm>, RestError>;

    /// CreateVm: 202 with the provision job.
    #[endpoint { method = POST, path = "/vms" }]
    async fn create_vm(
        rqctx: RequestContext<Self::Context>,
        body: TypedBody<CreateVmBody>,
    ) -> Result<HttpResponseAccepted<JobResponse>, RestError>;

    /// `POST /vms/:uuid?action=...` (AddNics, ReprovisionVm, StartVm, ...):
    /// 202 with the job.
    #[endpoint { method = POST, path = "/vms/{uuid}" }]
    async fn vm_action(
        rqctx: RequestContext<Self::Context>,
        path: Path<VmPath>,
        query: Query<VmActionQuery>,
        body: TypedBody<VmActionBody>,
    ) -> Result<HttpResponseAccepted<JobResponse>, RestError>;

    /// GetJob.
    #[endpoint { method = GET, path = "/jobs/{job_uuid}" }]
    async fn get_job(
        rqctx: RequestContext<Self::Context>,
        path: Path<JobPath>,
    ) -> Result<HttpResponseOk<Job>, RestError>;

    /// WaitJob: answers once the job has finished (succeeded, failed or
    /// canceled).
    #[endpoint { method = GET, path = "/jobs/{job_uuid}/wait" }]
    async fn wait_job(
        rqctx: RequestContext<Self::Context>,
        path: Path<JobPath>,
    ) -> Result<HttpResponseOk<Job>, RestError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The reference's KVM VM example (nulls included), a NIC with a
    /// field this contract does not name, and an unknown state.
    fn kvm_vm() -> Value {
        json!({
            "uuid": "03750e6a-fcf6-4755-85b5-22b8ddf0f1fb",
            "brand": "kvm",
            "image_uuid": "56108678-1183-11e1-83c3-ff3185a5b47f",
            "server_uuid": "564d47c4-b845-113b-664f-2a1d85d0020c",
            "billing_id": "00000000-0000-0000-0000-000000000000",
            "alias": null,
            "ram": 256,
            "max_physical_memory": 512,
            "quota": null,
            "cpu_cap": null,
            "create_timestamp": "2012-12-21T06:55:27.654Z",
            "destroyed": null,
            "zone_state": "running",
            "state": "running",
            "owner_uuid": "00000000-0000-0000-0000-000000000000",
            "nics": [{
                "interface": "net0",
                "mac": "90:b8:d0:88:45:a8",
                "vlan_id": 0,
                "nic_tag": "admin",
                "gateway": "10.99.99.7",
                "primary": true,
                "ip": "10.99.99.32",
                "netmask": "255.255.255.0",
                "model": "virtio"
            }],
            "customer_metadata": {},
            "internal_metadata": {},
            "tags": {},
            "vcpus": 1,
            "disks": [{"image_uuid": "56108678-1183-11e1-83c3-ff3185a5b47f", "size": 5120}]
        })
    }

    #[test]
    fn vm_round_trips_nulls_and_unknown_fields() {
        let wire = kvm_vm();
        let vm: Vm = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(vm.state, VmState::Running);
        assert_eq!(vm.alias, None);
        let nic = vm.primary_nic().unwrap();
        assert_eq!(nic.ip.as_deref(), Some("10.99.99.32"));
        assert_eq!(nic.extra["model"], "virtio");
        assert_eq!(vm.extra["vcpus"], 1);
        assert_eq!(serde_json::to_value(&vm).unwrap(), wire);
    }

    #[test]
    fn unknown_vm_state_is_kept_and_counts_as_active() {
        let mut wire = kvm_vm();
        wire["state"] = json!("migrating");
        let vm: Vm = serde_json::from_value(wire).unwrap();
        assert_eq!(vm.state, VmState::Other("migrating".into()));
        assert!(vm.state.is_active());
        assert!(!VmState::Destroyed.is_active());
        assert!(!VmState::Failed.is_active());
        assert!(VmState::Stopped.is_active());
    }

    #[test]
    fn job_from_the_reference_and_its_errors() {
        let wire = json!({
            "name": "provision-4e4ff04b-5cc4-437e-92da-2403a634e74f",
            "uuid": "6ad3a288-31cf-44e0-8d18-9b3f2a031067",
            "execution": "succeeded",
            "params": {"ram": "128", "task": {"id": "70129767", "progress": 100}},
            "exec_after": "2012-04-13T18:17:15.194Z",
            "created_at": "2012-04-13T18:17:15.198Z",
            "timeout": 180,
            "chain_results": [
                {"result": "All parameters OK!", "error": "",
                 "started_at": "2012-04-13T18:17:17.512Z",
                 "finished_at": "2012-04-13T18:17:18.619Z"}
            ]
        });
        let job: Job = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(job.execution, JobExecution::Succeeded);
        assert!(job.execution.is_finished());
        assert_eq!(job.error_message(), None);
        assert_eq!(job.chain_results[0].result, "All parameters OK!");

        let failed: Job = serde_json::from_value(json!({
            "name": "provision-x", "uuid": "6ad3a288-31cf-44e0-8d18-9b3f2a031067",
            "execution": "failed",
            "chain_results": [
                {"result": "OK", "error": ""},
                {"result": "", "error": {"name": "Error", "message": "image not active"}}
            ]
        }))
        .unwrap();
        assert_eq!(failed.error_message().as_deref(), Some("image not active"));

        let odd: Job = serde_json::from_value(json!({
            "name": "x", "uuid": "6ad3a288-31cf-44e0-8d18-9b3f2a031067",
            "execution": "paused", "chain_results": []
        }))
        .unwrap();
        assert_eq!(odd.execution, JobExecution::Other("paused".into()));
        assert!(!odd.execution.is_finished());
    }

    #[test]
    fn networks_in_every_documented_form() {
        let body: CreateVmBody = serde_json::from_value(json!({
            "owner_uuid": "930896af-bf8c-48d4-885c-6573a94b1853",
            "image_uuid": "28445220-6eac-11e1-9ce8-5f14ed22e782",
            "brand": "joyent",
            "networks": [
                "a4457fc9-c415-4ac9-8738-a03b1a8e7aee",
                {"ipv4_uuid": "72a9cd7d-2a0d-4f45-8fa5-f092a3654ce2", "ipv4_count": 1},
                {"uuid": "01b2c898-945f-11e1-a523-af1afbe22822", "ip": "10.99.99.11"},
                {"name": "external", "primary": true}
            ],
            "ram": 128,
            "quota": 10
        }))
        .unwrap();
        let nets = body.networks.as_ref().unwrap();
        assert!(matches!(&nets[0], NetworkRef::Id(s) if s.starts_with("a4457fc9")));
        let NetworkRef::Spec(spec) = &nets[1] else {
            panic!("{:?}", nets[1])
        };
        assert_eq!(spec.extra["ipv4_count"], 1);
        let NetworkRef::Spec(spec) = &nets[3] else {
            panic!("{:?}", nets[3])
        };
        assert_eq!(
            (spec.name.as_deref(), spec.primary),
            (Some("external"), Some(true))
        );
        assert_eq!(body.extra["quota"], 10);
    }

    #[test]
    fn actions_use_wire_names() {
        assert_eq!(serde_json::to_value(VmAction::AddNics).unwrap(), "add_nics");
        assert_eq!(VmAction::from("reprovision"), VmAction::Reprovision);
        let q = serde_json::to_value(ListVmsHeaders { resource_count: 3 }).unwrap();
        assert_eq!(q, json!({RESOURCE_COUNT_HEADER: "3"}));
    }
}
