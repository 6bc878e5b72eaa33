//! VMAPI: VMs and their jobs. `POST /vms` checks what sdc-vmapi checks
//! before queueing (409 `ValidationFailed`); what needs IMGAPI, PAPI and
//! NAPI (image active, package, networks) is the provision job's to find
//! out, so those failures land in the job's `chain_results`.

use std::sync::Arc;

use dropshot::{
    ApiDescription, HttpResponseAccepted, HttpResponseHeaders, HttpResponseOk, Path, Query,
    RequestContext, TypedBody,
};
use restify_error::RestError;
use serde_json::{Value, json};
use vmapi_api::{
    CreateVmBody, GetVmQuery, Job, JobPath, JobResponse, ListVmsHeaders, ListVmsQuery,
    PingResponse, Vm, VmAction, VmActionBody, VmActionQuery, VmPath, VmapiApi,
};

use crate::Sim;
use crate::jobs;
use crate::state::{Obj, State, find, is_uuid, now, str_of, to_obj, typed, uuid_of};

/// Brands sdc-vmapi accepts.
const BRANDS: &[&str] = &["bhyve", "joyent", "joyent-minimal", "kvm", "lx", "builder"];

/// VMAPI's 409 `ValidationFailed` with "Invalid VM parameters", naming
/// each field and what is wrong with it.
fn validation(errors: &[(String, &str, String)]) -> RestError {
    let detail: Vec<String> = errors
        .iter()
        .map(|(field, code, message)| format!("{field}: {code}: {message}"))
        .collect();
    // 409 in VMAPI (IMGAPI sends the same code with 422).
    RestError::new(
        dropshot::ErrorStatusCode::CONFLICT,
        "ValidationFailed",
        format!("Invalid VM parameters: {}", detail.join("; ")),
    )
}

/// The checks sdc-vmapi makes before it queues a provision.
fn validate_create(s: &State, p: &Obj) -> Result<(), RestError> {
    let mut errs: Vec<(String, &str, String)> = Vec::new();
    let uuid_field = |errs: &mut Vec<_>, key: &str, required: bool| match p.get(key) {
        None | Some(Value::Null) if required => errs.push((
            key.to_string(),
            "MissingParameter",
            "Is required".to_string(),
        )),
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if is_uuid(v) => {}
        Some(_) => errs.push((key.to_string(), "Invalid", "Invalid UUID".to_string())),
    };
    uuid_field(&mut errs, "owner_uuid", true);
    uuid_field(&mut errs, "billing_id", false);
    uuid_field(&mut errs, "uuid", false);
    uuid_field(&mut errs, "server_uuid", false);
    let brand = str_of(p, "brand");
    match (p.get("brand"), brand) {
        (None, _) => errs.push(("brand".into(), "MissingParameter", "Is required".into())),
        (_, Some(b)) if BRANDS.contains(&b) => {}
        _ => errs.push((
            "brand".into(),
            "Invalid",
            format!("Must be one of: {}", BRANDS.join(", ")),
        )),
    }
    let hvm = matches!(brand, Some("bhyve" | "kvm"));
    if !hvm {
        uuid_field(&mut errs, "image_uuid", true);
    }
    match p.get("networks") {
        None => errs.push(("networks".into(), "MissingParameter", "Is required".into())),
        Some(Value::Array(a)) if !a.is_empty() => {}
        Some(_) => errs.push((
            "networks".into(),
            "Invalid",
            "Must be a non-empty array of network UUIDs, names or objects".into(),
        )),
    }
    if p.get("billing_id").is_none()
        && p.get("ram").is_none()
        && p.get("max_physical_memory").is_none()
    {
        errs.push(("ram".into(), "MissingParameter", "Is required".into()));
    }
    if let Some(ram) = p.get("ram")
        && ram.as_u64().is_none_or(|r| r == 0)
    {
        errs.push(("ram".into(), "Invalid", "Must be a positive integer".into()));
    }
    if let Some(uuid) = str_of(p, "uuid")
        && find(&s.vms, uuid).is_some()
    {
        errs.push(("uuid".into(), "Duplicate", "Already exists".into()));
    }
    if let Some(server) = str_of(p, "server_uuid")
        && is_uuid(server)
        && find(&s.servers, server).is_none()
    {
        errs.push((
            "server_uuid".into(),
            "Invalid",
            format!("server {server} not found"),
        ));
    }
    if let (Some(alias), Some(owner)) = (str_of(p, "alias"), str_of(p, "owner_uuid"))
        && s.vms.iter().any(|vm| {
            str_of(vm, "alias") == Some(alias)
                && str_of(vm, "owner_uuid") == Some(owner)
                && is_active(vm)
        })
    {
        errs.push((
            "alias".into(),
            "Duplicate",
            format!("Already exists for this owner_uuid: {alias}"),
        ));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(validation(&errs))
    }
}

/// `state=active`: neither destroyed nor failed.
pub fn is_active(vm: &Obj) -> bool {
    !matches!(str_of(vm, "state"), Some("destroyed" | "failed"))
}

/// CreateVm: validate, record the VM as `provisioning`, queue its job.
/// Returns (vm_uuid, job_uuid).
pub async fn create_vm(sim: &Arc<Sim>, params: Obj) -> Result<(String, String), RestError> {
    let (vm_uuid, job_uuid) = sim
        .write(|s| {
            validate_create(s, &params)?;
            let vm_uuid = str_of(&params, "uuid")
                .map(str::to_string)
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let t = now();
            let mut vm = Obj::new();
            vm.insert("uuid".into(), json!(vm_uuid));
            // What the request says, then what VMAPI adds.
            for (k, v) in &params {
                if !matches!(k.as_str(), "networks" | "uuid") {
                    vm.insert(k.clone(), v.clone());
                }
            }
            for (k, v) in [
                ("alias", Value::Null),
                ("server_uuid", json!(s.headnode_uuid)),
                ("customer_metadata", json!({})),
                ("internal_metadata", json!({})),
                ("tags", json!({})),
            ] {
                vm.entry(k).or_insert(v);
            }
            for (k, v) in [
                ("state", json!("provisioning")),
                ("zone_state", json!("configured")),
                ("nics", json!([])),
                ("create_timestamp", json!(t)),
                ("last_modified", json!(t)),
                ("destroyed", Value::Null),
            ] {
                vm.insert(k.into(), v);
            }
            s.vms.push(vm);
            let job = jobs::queue(s, jobs::PROVISION, &vm_uuid, params.clone());
            Ok((vm_uuid, job))
        })
        .await?;
    jobs::spawn(sim, job_uuid.clone());
    Ok((vm_uuid, job_uuid))
}

/// `POST /vms/:uuid?action=add_nics|reprovision` (and SAPI's destroy):
/// queue the job on an existing VM.
pub async fn vm_job(
    sim: &Arc<Sim>,
    vm_uuid: &str,
    task: &'static str,
    params: Obj,
) -> Result<String, RestError> {
    let job = sim
        .write(|s| {
            let vm = find(&s.vms, vm_uuid).ok_or_else(|| vm_not_found(vm_uuid))?;
            if str_of(vm, "state") == Some("destroyed") {
                return Err(RestError::from_code(
                    "VmNotRunning",
                    format!("VM {vm_uuid} is destroyed"),
                ));
            }
            match task {
                jobs::ADD_NICS => match params.get("networks") {
                    Some(Value::Array(a)) if !a.is_empty() => {}
                    _ => {
                        return Err(validation(&[(
                            "networks".into(),
                            "MissingParameter",
                            "Is required".into(),
                        )]));
                    }
                },
                jobs::REPROVISION => match str_of(&params, "image_uuid") {
                    Some(i) if is_uuid(i) => {}
                    Some(_) => {
                        return Err(validation(&[(
                            "image_uuid".into(),
                            "Invalid",
                            "Invalid UUID".into(),
                        )]));
                    }
                    None => {
                        return Err(validation(&[(
                            "image_uuid".into(),
                            "MissingParameter",
                            "Is required".into(),
                        )]));
                    }
                },
                _ => {}
            }
            Ok(jobs::queue(s, task, vm_uuid, params.clone()))
        })
        .await?;
    jobs::spawn(sim, job.clone());
    Ok(job)
}

/// VMAPI checks a VM UUID in the path before looking it up.
fn check_vm_uuid(uuid: &str) -> Result<(), RestError> {
    if is_uuid(uuid) {
        Ok(())
    } else {
        Err(validation(&[(
            "uuid".into(),
            "Invalid",
            "Invalid UUID".into(),
        )]))
    }
}

pub fn vm_not_found(uuid: &str) -> RestError {
    RestError::new(
        dropshot::ErrorStatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("VM not found: {uuid}"),
    )
}

pub fn job_not_found(uuid: &str) -> RestError {
    RestError::new(
        dropshot::ErrorStatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("Job not found: {uuid}"),
    )
}

/// ListVms filters.
#[derive(Debug, Default)]
pub struct VmFilter {
    pub alias: Option<String>,
    pub owner_uuid: Option<String>,
    pub image_uuid: Option<String>,
    pub server_uuid: Option<String>,
    pub billing_id: Option<String>,
    pub brand: Option<String>,
    pub state: Option<String>,
    pub uuids: Option<Vec<String>>,
    pub tags: Vec<(String, String)>,
}

impl VmFilter {
    fn matches(&self, vm: &Obj) -> bool {
        let eq = |want: &Option<String>, key: &str| {
            want.as_deref().is_none_or(|w| str_of(vm, key) == Some(w))
        };
        eq(&self.alias, "alias")
            && eq(&self.owner_uuid, "owner_uuid")
            && eq(&self.image_uuid, "image_uuid")
            && eq(&self.server_uuid, "server_uuid")
            && eq(&self.billing_id, "billing_id")
            && eq(&self.brand, "brand")
            && match self.state.as_deref() {
                None => true,
                Some("active") => is_active(vm),
                Some(st) => str_of(vm, "state") == Some(st),
            }
            && self
                .uuids
                .as_ref()
                .is_none_or(|us| uuid_of(vm).is_some_and(|u| us.iter().any(|w| w == u)))
            && self.tags.iter().all(|(k, want)| {
                vm.get("tags")
                    .and_then(|t| t.get(k))
                    .is_some_and(|v| match v {
                        Value::String(s) => s == want,
                        // `tag.x=true` matches a boolean, `tag.n=5` a number.
                        other => serde_json::from_str::<Value>(want).is_ok_and(|w| w == *other),
                    })
            })
    }
}

/// ListVms paging: `sort` is `<field>[.asc|.desc]` (descending, by `uuid`,
/// by default); `marker` is a JSON object of the previous page's last sort
/// field and uuid; `offset` skips matches. Not both marker and offset.
#[derive(Debug, Default)]
pub struct Paging {
    pub sort: Option<String>,
    pub marker: Option<String>,
    pub offset: Option<u32>,
    pub limit: Option<u32>,
}

fn cmp_values(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (x, y) => x.map(Value::to_string).cmp(&y.map(Value::to_string)),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> RestError {
    validation(&[(field.to_string(), "Invalid", message.into())])
}

/// ListVms: (page, total matching).
pub fn list_vms(
    s: &State,
    filter: &VmFilter,
    paging: &Paging,
) -> Result<(Vec<Obj>, usize), RestError> {
    let limit = match paging.limit {
        None => 1000,
        Some(l) if (1..=1000).contains(&l) => l,
        Some(_) => return Err(invalid("limit", "Must be a number between 1 and 1000")),
    };
    if paging.marker.is_some() && paging.offset.is_some() {
        return Err(validation(&[(
            "offset".into(),
            "ConflictingParameters",
            "offset and marker cannot be used together".into(),
        )]));
    }
    let (field, desc) = match paging.sort.as_deref() {
        None => ("uuid".to_string(), true),
        Some(sort) => {
            let (f, dir) = sort.split_once('.').unwrap_or((sort, "desc"));
            let desc = match dir.to_ascii_lowercase().as_str() {
                "desc" => true,
                "asc" => false,
                _ => {
                    return Err(invalid(
                        "sort",
                        format!("{sort}: order must be asc or desc"),
                    ));
                }
            };
            (f.to_string(), desc)
        }
    };
    let key_cmp = |a: &Obj, b: &Obj| {
        let o = cmp_values(a.get(&field), b.get(&field))
            .then_with(|| cmp_values(a.get("uuid"), b.get("uuid")));
        if desc { o.reverse() } else { o }
    };
    let marker: Option<Obj> = match paging.marker.as_deref() {
        None => None,
        Some(m) => match serde_json::from_str::<Value>(m) {
            Ok(Value::Object(o)) if o.contains_key("uuid") => Some(o),
            _ => {
                return Err(invalid(
                    "marker",
                    "Must be a JSON object with the last VM's uuid (and sort field)",
                ));
            }
        },
    };
    let mut all: Vec<&Obj> = s.vms.iter().filter(|vm| filter.matches(vm)).collect();
    all.sort_by(|a, b| key_cmp(a, b));
    let total = all.len();
    let page = all
        .into_iter()
        .filter(|vm| {
            marker
                .as_ref()
                .is_none_or(|m| key_cmp(vm, m) == std::cmp::Ordering::Greater)
        })
        .skip(paging.offset.unwrap_or(0) as usize)
        .take(limit as usize)
        .cloned()
        .collect();
    Ok((page, total))
}

/// GET /jobs/:uuid/wait: the job once it is done.
pub async fn wait_job(sim: &Sim, uuid: &str) -> Result<Obj, RestError> {
    let mut changed = sim.jobs_changed.subscribe();
    loop {
        let job = sim
            .read(|s| find(&s.jobs, uuid).cloned())
            .await
            .ok_or_else(|| job_not_found(uuid))?;
        if jobs::is_done(&job) {
            return Ok(job);
        }
        changed
            .changed()
            .await
            .map_err(|_| RestError::internal("dc-sim is shutting down"))?;
    }
}

pub fn api() -> Result<ApiDescription<Arc<Sim>>, String> {
    vmapi_api::vmapi_api_mod::api_description::<VmapiSim>().map_err(|e| e.to_string())
}

/// A UUID-valued query parameter as the records spell it.
fn text<T: std::fmt::Display>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

fn job_response(
    vm_uuid: &str,
    job_uuid: &str,
) -> Result<HttpResponseAccepted<JobResponse>, RestError> {
    let mut o = Obj::new();
    o.insert("vm_uuid".into(), json!(vm_uuid));
    o.insert("job_uuid".into(), json!(job_uuid));
    Ok(HttpResponseAccepted(typed(&o)?))
}

pub enum VmapiSim {}

impl VmapiApi for VmapiSim {
    type Context = Arc<Sim>;

    async fn ping(
        rqctx: RequestContext<Arc<Sim>>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError> {
        rqctx.context().gate("vmapi", &rqctx).await?;
        let mut services = serde_json::Map::new();
        for backend in ["moray", "wfapi"] {
            services.insert(backend.into(), json!("online"));
        }
        Ok(HttpResponseOk(PingResponse {
            status: "OK".into(),
            healthy: true,
            pid: Some(std::process::id()),
            services: Some(services),
            ping_errors: Some(serde_json::Map::new()),
            extra: serde_json::Map::new(),
        }))
    }

    async fn list_vms(
        rqctx: RequestContext<Arc<Sim>>,
        query: Query<ListVmsQuery>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Vec<Vm>>, ListVmsHeaders>, RestError> {
        let sim = rqctx.context();
        sim.gate("vmapi", &rqctx).await?;
        let q = query.into_inner();
        let filter = VmFilter {
            alias: q.alias,
            owner_uuid: text(q.owner_uuid),
            image_uuid: text(q.image_uuid),
            server_uuid: text(q.server_uuid),
            billing_id: text(q.billing_id),
            brand: q.brand,
            state: q.state,
            uuids: q
                .uuids
                .map(|u| u.split(',').map(|s| s.trim().to_string()).collect()),
            tags: imgapi_server::tag_filters(rqctx.request.uri().query()),
        };
        let paging = Paging {
            sort: q.sort,
            marker: q.marker,
            offset: q.offset,
            limit: q.limit,
        };
        let (page, total) = sim.read(|s| list_vms(s, &filter, &paging)).await?;
        let vms = page.iter().map(typed).collect::<Result<Vec<Vm>, _>>()?;
        Ok(HttpResponseHeaders::new(
            HttpResponseOk(vms),
            ListVmsHeaders {
                resource_count: total as u64,
            },
        ))
    }

    async fn get_vm(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<VmPath>,
        query: Query<GetVmQuery>,
    ) -> Result<HttpResponseOk<Vm>, RestError> {
        let sim = rqctx.context();
        sim.gate("vmapi", &rqctx).await?;
        let uuid = path.into_inner().uuid;
        check_vm_uuid(&uuid)?;
        let owner = text(query.into_inner().owner_uuid);
        let vm = sim
            .read(|s| find(&s.vms, &uuid).cloned())
            .await
            .filter(|vm| {
                owner
                    .as_deref()
                    .is_none_or(|o| str_of(vm, "owner_uuid") == Some(o))
            })
            .ok_or_else(|| vm_not_found(&uuid))?;
        Ok(HttpResponseOk(typed(&vm)?))
    }

    async fn create_vm(
        rqctx: RequestContext<Arc<Sim>>,
        body: TypedBody<CreateVmBody>,
    ) -> Result<HttpResponseAccepted<JobResponse>, RestError> {
        let sim = rqctx.context();
        sim.gate("vmapi", &rqctx).await?;
        let params = to_obj(&body.into_inner())?;
        let (vm, job) = create_vm(sim, params).await?;
        job_response(&vm, &job)
    }

    async fn vm_action(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<VmPath>,
        query: Query<VmActionQuery>,
        body: TypedBody<VmActionBody>,
    ) -> Result<HttpResponseAccepted<JobResponse>, RestError> {
        let sim = rqctx.context();
        sim.gate("vmapi", &rqctx).await?;
        let uuid = path.into_inner().uuid;
        check_vm_uuid(&uuid)?;
        let q = query.into_inner();
        let owner = text(q.owner_uuid);
        if let Some(owner) = owner
            && sim
                .read(|s| {
                    find(&s.vms, &uuid).map(|vm| str_of(vm, "owner_uuid") != Some(owner.as_str()))
                })
                .await
                .unwrap_or(true)
        {
            return Err(vm_not_found(&uuid));
        }
        let task = match &q.action {
            None => return Err(RestError::missing_parameter("action is required")),
            Some(VmAction::AddNics) => jobs::ADD_NICS,
            Some(VmAction::Reprovision) => jobs::REPROVISION,
            Some(VmAction::Start) => jobs::START,
            Some(VmAction::Stop) => jobs::STOP,
            Some(VmAction::Reboot) => jobs::REBOOT,
            Some(other) => {
                return Err(RestError::invalid_argument(format!(
                    "action {}: dc-sim simulates add_nics, reprovision, start, stop and reboot",
                    other.as_str()
                )));
            }
        };
        let params = to_obj(&body.into_inner())?;
        let job = vm_job(sim, &uuid, task, params).await?;
        if q.sync == Some(true) {
            wait_job(sim, &job).await?;
        }
        job_response(&uuid, &job)
    }

    async fn get_job(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<JobPath>,
    ) -> Result<HttpResponseOk<Job>, RestError> {
        let sim = rqctx.context();
        sim.gate("vmapi", &rqctx).await?;
        let uuid = path.into_inner().job_uuid.to_string();
        let job = sim
            .read(|s| find(&s.jobs, &uuid).cloned())
            .await
            .ok_or_else(|| job_not_found(&uuid))?;
        Ok(HttpResponseOk(typed(&job)?))
    }

    async fn wait_job(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<JobPath>,
    ) -> Result<HttpResponseOk<Job>, RestError> {
        let sim = rqctx.context();
        sim.gate("vmapi", &rqctx).await?;
        let uuid = path.into_inner().job_uuid.to_string();
        Ok(HttpResponseOk(typed(&wait_job(sim, &uuid).await?)?))
    }
}
