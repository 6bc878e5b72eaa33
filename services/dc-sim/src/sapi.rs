//! SAPI, following sdc-sapi's model: params, metadata and manifests are
//! merged application -> service -> instance; `POST /instances` builds the
//! zone's VMAPI parameters from that merge (owner from the application,
//! brand `joyent-minimal`, customer_metadata filtered as SAPI filters it,
//! networks normalised), provisions through VMAPI and, unless
//! `?async=true`, waits for the job: a failed job is 500
//! `ProvisionFailedError` and the instance record is removed again.
//! `accept-version` below 2 hides `type` and lists only `vm` rows.

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;

use dropshot::{
    ApiDescription, HttpResponseDeleted, HttpResponseHeaders, HttpResponseOk, Path, Query,
    RequestContext, TypedBody,
};
use restify_error::RestError;
use sapi_api::{
    Application, Config, ConfigHeaders, CreateInstanceBody, CreateInstanceQuery, CreateServiceBody,
    Instance, ListApplicationsQuery, ListInstancesQuery, ListServicesQuery, PingResponse, SapiApi,
    SapiMode, SapiVersion, Service, ServiceType, UpdateAction, UpdateBody, UpgradeInstanceBody,
    UuidPath,
};
use serde_json::{Map, Value, json};

use crate::state::{Obj, State, find, find_mut, is_uuid, obj_of, str_of, to_obj, typed, uuid_of};
use crate::{Sim, jobs, vmapi};

pub fn api() -> Result<ApiDescription<Arc<Sim>>, String> {
    sapi_api::sapi_api_mod::api_description::<SapiSim>().map_err(|e| e.to_string())
}

const ATTRS: [&str; 3] = ["params", "metadata", "manifests"];

/// Keys SAPI passes from metadata to the zone's customer_metadata, besides
/// those listed in `metadata.pass_vmapi_metadata_keys`.
const PASSED_METADATA: [&str; 6] = [
    "SAPI_URL",
    "sapi_url",
    "SAPI-URL",
    "sapi-url",
    "user-script",
    "assets-ip",
];

fn not_found(kind: &str, uuid: &str) -> RestError {
    RestError::new(
        dropshot::ErrorStatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("no such {kind}: {uuid}"),
    )
}

/// The UUID a create asks for, or a fresh one. sdc-sapi would store any
/// string; a non-UUID is refused here because no client could read it back.
fn given_uuid(asked: Option<&str>) -> Result<String, RestError> {
    match asked {
        None => Ok(uuid::Uuid::new_v4().to_string()),
        Some(u) if is_uuid(u) => Ok(u.to_string()),
        Some(u) => Err(RestError::invalid_argument(format!(
            "uuid: {u:?} is not a UUID"
        ))),
    }
}

fn missing(keys: &[&str]) -> RestError {
    RestError::missing_parameter(format!("missing required keys: {}", keys.join(", ")))
}

/// An object as the requested version shows it.
fn shown<T: serde::de::DeserializeOwned>(o: &Obj, v: SapiVersion) -> Result<T, RestError> {
    let mut o = o.clone();
    if v < SapiVersion::V2 {
        o.remove("type");
    }
    typed(&o)
}

/// Version 1 lists only `vm` rows unless the request names a type.
fn type_filter(v: SapiVersion, asked: Option<&ServiceType>) -> Option<String> {
    match (asked, v) {
        (Some(t), _) => Some(t.as_str().to_string()),
        (None, SapiVersion::V1) => Some("vm".to_string()),
        (None, SapiVersion::V2) => None,
    }
}

fn version(rqctx: &RequestContext<Arc<Sim>>) -> Result<SapiVersion, RestError> {
    sapi_api::requested_version(rqctx.request.headers())
}

/// Every manifest a create or update names must exist.
fn check_manifests(s: &State, manifests: Option<&Map<String, Value>>) -> Result<(), RestError> {
    for v in manifests.into_iter().flat_map(|m| m.values()) {
        let uuid = v.as_str().unwrap_or_default();
        if find(&s.manifests, uuid).is_none() {
            return Err(not_found("manifest", &v.to_string()));
        }
    }
    Ok(())
}

/// sdc-sapi's `applyChange`: `update` merges keys, `replace` swaps whole
/// attribute sets, `delete` removes the given keys.
fn apply_change(obj: &mut Obj, body: &UpdateBody) -> Result<(), RestError> {
    let action = match &body.action {
        None => UpdateAction::Update,
        Some(UpdateAction::Other(s)) => UpdateAction::from(s.to_ascii_lowercase().as_str()),
        Some(a) => a.clone(),
    };
    if let UpdateAction::Other(a) = &action {
        return Err(RestError::invalid_argument(format!(
            "action {a:?}: expected update, replace or delete"
        )));
    }
    for (key, change) in [
        ("params", &body.params),
        ("metadata", &body.metadata),
        ("manifests", &body.manifests),
    ] {
        let Some(change) = change else { continue };
        let mut current = obj_of(obj, key);
        match action {
            UpdateAction::Replace => current = change.clone(),
            UpdateAction::Delete => change.keys().for_each(|k| {
                current.remove(k);
            }),
            _ => current.extend(change.clone()),
        }
        obj.insert(key.into(), Value::Object(current));
    }
    Ok(())
}

/// application -> service -> instance, later keys winning.
fn assemble(app: &Obj, svc: &Obj, inst: &Obj, key: &str) -> Obj {
    let mut out = obj_of(app, key);
    out.extend(obj_of(svc, key));
    out.extend(obj_of(inst, key));
    out
}

fn parents<'a>(s: &'a State, inst: &Obj) -> Result<(&'a Obj, &'a Obj), RestError> {
    let svc_uuid = str_of(inst, "service_uuid").unwrap_or_default();
    let svc = find(&s.services, svc_uuid).ok_or_else(|| not_found("service", svc_uuid))?;
    let app_uuid = str_of(svc, "application_uuid").unwrap_or_default();
    let app = find(&s.applications, app_uuid).ok_or_else(|| not_found("application", app_uuid))?;
    Ok((app, svc))
}

/// The VMAPI CreateVm parameters of an instance (sdc-sapi's
/// `generateZoneParams`).
fn zone_params(s: &State, inst: &Obj) -> Result<Obj, RestError> {
    let (app, svc) = parents(s, inst)?;
    let mut params = assemble(app, svc, inst, "params");
    let mut metadata = assemble(app, svc, inst, "metadata");
    let uuid = uuid_of(inst).unwrap_or_default();
    params.insert(
        "owner_uuid".into(),
        app.get("owner_uuid").cloned().unwrap_or(Value::Null),
    );
    params.insert("uuid".into(), json!(uuid));
    params.insert("brand".into(), json!("joyent-minimal"));
    metadata.insert(
        "SERVER_UUID".into(),
        params.get("server_uuid").cloned().unwrap_or(Value::Null),
    );
    metadata.insert("ZONE_UUID".into(), json!(uuid));
    let mut passed: Vec<String> = PASSED_METADATA.iter().map(|k| k.to_string()).collect();
    if let Some(Value::Array(extra)) = metadata.get("pass_vmapi_metadata_keys") {
        passed.extend(extra.iter().filter_map(|k| k.as_str().map(str::to_string)));
    }
    let customer: Obj = passed
        .iter()
        .filter_map(|k| {
            metadata
                .get(k)
                .filter(|v| !v.is_null() && **v != json!("") && **v != json!(false))
                .map(|v| (k.clone(), v.clone()))
        })
        .collect();
    params.insert("customer_metadata".into(), Value::Object(customer));
    if let Some(Value::Array(nets)) = params.get("networks") {
        let nets: Vec<Value> = nets
            .iter()
            .map(|n| match n {
                Value::String(s) if is_uuid(s) => json!({"uuid": s}),
                Value::String(s) => json!({"name": s}),
                other => other.clone(),
            })
            .collect();
        params.insert("networks".into(), Value::Array(nets));
    }
    Ok(params)
}

/// The message SAPI reports for a failed job: the last chain result's
/// error message.
fn job_failure(job: &Obj) -> String {
    let last = job
        .get("chain_results")
        .and_then(Value::as_array)
        .and_then(|c| c.last());
    match last.and_then(|r| r.get("error")) {
        Some(Value::Object(e)) => e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("job failed")
            .to_string(),
        Some(Value::String(e)) if !e.is_empty() => e.clone(),
        _ => format!(
            "job {} ({}) failed",
            str_of(job, "name").unwrap_or("?"),
            uuid_of(job).unwrap_or("?")
        ),
    }
}

/// What VMAPI would answer SAPI, fault injection included: SAPI reaches
/// VMAPI over the network in a real DC, so a fault armed on VMAPI's path
/// hits SAPI's call as well.
async fn vmapi_gate(sim: &Sim, method: &str, path: &str) -> Result<(), RestError> {
    sim.faults.check("vmapi", method, path).await
}

/// Provision the instance's zone; `Some(job)` unless the zone exists.
async fn provision(sim: &Arc<Sim>, params: Obj) -> Result<Option<String>, RestError> {
    let uuid = str_of(&params, "uuid").unwrap_or_default().to_string();
    vmapi_gate(sim, "GET", &format!("/vms/{uuid}")).await?;
    if sim.read(|s| find(&s.vms, &uuid).is_some()).await {
        slog::info!(sim.log, "zone already exists"; "uuid" => &uuid);
        return Ok(None);
    }
    vmapi_gate(sim, "POST", "/vms").await?;
    let (_, job) = vmapi::create_vm(sim, params).await?;
    Ok(Some(job))
}

async fn wait_ok(sim: &Sim, job: &str, fail: &str) -> Result<(), RestError> {
    vmapi_gate(sim, "GET", &format!("/jobs/{job}/wait")).await?;
    let done = vmapi::wait_job(sim, job).await?;
    if str_of(&done, "execution") == Some("succeeded") {
        Ok(())
    } else {
        Err(RestError::from_code(fail, job_failure(&done)))
    }
}

pub enum SapiSim {}

impl SapiApi for SapiSim {
    type Context = Arc<Sim>;

    async fn ping(
        rqctx: RequestContext<Arc<Sim>>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError> {
        rqctx.context().gate("sapi", &rqctx).await?;
        Ok(HttpResponseOk(PingResponse {
            mode: SapiMode::Full,
            stor_type: "LocalStore".into(),
            stor_available: true,
            extra: Map::new(),
        }))
    }

    async fn get_mode(
        rqctx: RequestContext<Arc<Sim>>,
    ) -> Result<HttpResponseOk<SapiMode>, RestError> {
        rqctx.context().gate("sapi", &rqctx).await?;
        Ok(HttpResponseOk(SapiMode::Full))
    }

    async fn list_applications(
        rqctx: RequestContext<Arc<Sim>>,
        query: Query<ListApplicationsQuery>,
    ) -> Result<HttpResponseOk<Vec<Application>>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let q = query.into_inner();
        let owner = q.owner_uuid.map(|u| u.to_string());
        let apps = sim
            .read(|s| {
                s.applications
                    .iter()
                    .filter(|a| {
                        q.name
                            .as_deref()
                            .is_none_or(|n| str_of(a, "name") == Some(n))
                    })
                    .filter(|a| {
                        owner
                            .as_deref()
                            .is_none_or(|o| str_of(a, "owner_uuid") == Some(o))
                    })
                    .map(typed)
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(HttpResponseOk(apps))
    }

    async fn get_application(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseOk<Application>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let uuid = path.into_inner().uuid.to_string();
        let app = sim
            .read(|s| find(&s.applications, &uuid).map(typed))
            .await
            .ok_or_else(|| not_found("application", &uuid))??;
        Ok(HttpResponseOk(app))
    }

    async fn list_services(
        rqctx: RequestContext<Arc<Sim>>,
        query: Query<ListServicesQuery>,
    ) -> Result<HttpResponseOk<Vec<Service>>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let v = version(&rqctx)?;
        let q = query.into_inner();
        let ty = type_filter(v, q.service_type.as_ref());
        let app = q.application_uuid.map(|u| u.to_string());
        let out = sim
            .read(|s| {
                s.services
                    .iter()
                    .filter(|o| {
                        q.name
                            .as_deref()
                            .is_none_or(|n| str_of(o, "name") == Some(n))
                    })
                    .filter(|o| {
                        app.as_deref()
                            .is_none_or(|a| str_of(o, "application_uuid") == Some(a))
                    })
                    .filter(|o| ty.as_deref().is_none_or(|t| str_of(o, "type") == Some(t)))
                    .map(|o| shown(o, v))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(HttpResponseOk(out))
    }

    async fn create_service(
        rqctx: RequestContext<Arc<Sim>>,
        body: TypedBody<CreateServiceBody>,
    ) -> Result<HttpResponseOk<Service>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let v = version(&rqctx)?;
        let b = body.into_inner();
        let absent: Vec<&str> = [
            ("name", b.name.is_none()),
            ("application_uuid", b.application_uuid.is_none()),
        ]
        .into_iter()
        .filter_map(|(k, gone)| gone.then_some(k))
        .collect();
        if !absent.is_empty() {
            return Err(missing(&absent));
        }
        let ty = b.service_type.clone().unwrap_or(ServiceType::Vm);
        if let ServiceType::Other(t) = &ty {
            // sdc-sapi raises a plain Error here: restify makes it a 500.
            return Err(RestError::internal(format!("service type is invalid: {t}")));
        }
        let uuid = given_uuid(b.uuid.as_deref())?;
        let mut record = to_obj(&b)?;
        record.insert("uuid".into(), json!(uuid));
        record.insert("type".into(), json!(ty.as_str()));
        let svc = sim
            .write(|s| {
                check_manifests(s, b.manifests.as_ref())?;
                let app = record
                    .get("application_uuid")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if find(&s.applications, app).is_none() {
                    return Err(not_found("application", app));
                }
                let uuid = uuid_of(&record).unwrap_or_default().to_string();
                s.services.retain(|o| uuid_of(o) != Some(uuid.as_str()));
                s.services.push(record.clone());
                Ok(record)
            })
            .await?;
        slog::info!(sim.log, "created service"; "uuid" => uuid_of(&svc));
        Ok(HttpResponseOk(shown(&svc, v)?))
    }

    async fn get_service(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseOk<Service>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let v = version(&rqctx)?;
        let uuid = path.into_inner().uuid.to_string();
        let svc = sim
            .read(|s| find(&s.services, &uuid).map(|o| shown(o, v)))
            .await
            .ok_or_else(|| not_found("service", &uuid))??;
        Ok(HttpResponseOk(svc))
    }

    async fn update_service(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<UuidPath>,
        body: TypedBody<UpdateBody>,
    ) -> Result<HttpResponseOk<Service>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let v = version(&rqctx)?;
        let uuid = path.into_inner().uuid.to_string();
        let b = body.into_inner();
        let svc = sim
            .write(|s| {
                check_manifests(s, b.manifests.as_ref())?;
                let svc =
                    find_mut(&mut s.services, &uuid).ok_or_else(|| not_found("service", &uuid))?;
                apply_change(svc, &b)?;
                Ok(svc.clone())
            })
            .await?;
        Ok(HttpResponseOk(shown(&svc, v)?))
    }

    async fn delete_service(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseDeleted, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let uuid = path.into_inner().uuid.to_string();
        sim.write(|s| {
            let before = s.services.len();
            s.services.retain(|o| uuid_of(o) != Some(uuid.as_str()));
            if s.services.len() == before {
                return Err(not_found("service", &uuid));
            }
            Ok(())
        })
        .await?;
        Ok(HttpResponseDeleted())
    }

    async fn list_instances(
        rqctx: RequestContext<Arc<Sim>>,
        query: Query<ListInstancesQuery>,
    ) -> Result<HttpResponseOk<Vec<Instance>>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let v = version(&rqctx)?;
        let q = query.into_inner();
        // A service_uuid implies the service's type.
        let (svc, ty) = match q.service_uuid {
            Some(u) => (Some(u.to_string()), None),
            None => (None, type_filter(v, q.service_type.as_ref())),
        };
        let out = sim
            .read(|s| {
                s.instances
                    .iter()
                    .filter(|o| {
                        svc.as_deref()
                            .is_none_or(|u| str_of(o, "service_uuid") == Some(u))
                    })
                    .filter(|o| ty.as_deref().is_none_or(|t| str_of(o, "type") == Some(t)))
                    .map(|o| shown(o, v))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(HttpResponseOk(out))
    }

    async fn create_instance(
        rqctx: RequestContext<Arc<Sim>>,
        query: Query<CreateInstanceQuery>,
        body: TypedBody<CreateInstanceBody>,
    ) -> Result<HttpResponseOk<Instance>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let v = version(&rqctx)?;
        let is_async = query.into_inner().async_.unwrap_or(false);
        let b = body.into_inner();
        let Some(service_uuid) = b.service_uuid else {
            return Err(missing(&["service_uuid"]));
        };
        let exists = b.exists.unwrap_or(false);
        if exists && b.uuid.is_none() {
            return Err(missing(&["uuid"]));
        }
        let uuid = given_uuid(b.uuid.as_deref())?;
        let mut record = Obj::new();
        record.insert("uuid".into(), json!(uuid));
        record.insert("service_uuid".into(), json!(service_uuid));
        for (key, value) in ATTRS.iter().zip([&b.params, &b.metadata, &b.manifests]) {
            if let Some(v) = value {
                record.insert(key.to_string(), Value::Object(v.clone()));
            }
        }
        if let Some(m) = b.master {
            record.insert("master".into(), json!(m));
        }
        if exists {
            vmapi_gate(sim, "GET", &format!("/vms/{uuid}")).await?;
            if !sim.read(|s| find(&s.vms, &uuid).is_some()).await {
                return Err(RestError::invalid_argument(format!("no such zone: {uuid}")));
            }
        }

        // The record is stored first, as sdc-sapi does, and removed again
        // if the zone cannot be provisioned.
        let (inst, params) = sim
            .write(|s| {
                check_manifests(s, b.manifests.as_ref())?;
                let svc_uuid = service_uuid.to_string();
                let svc =
                    find(&s.services, &svc_uuid).ok_or_else(|| not_found("service", &svc_uuid))?;
                let ty = str_of(svc, "type").unwrap_or("vm").to_string();
                record.insert("type".into(), json!(ty));
                s.instances.retain(|o| uuid_of(o) != Some(uuid.as_str()));
                s.instances.push(record.clone());
                let params = (ty != "agent" && !exists)
                    .then(|| zone_params(s, &record))
                    .transpose()?;
                Ok((record.clone(), params))
            })
            .await?;
        slog::info!(sim.log, "creating instance"; "uuid" => &uuid, "service_uuid" => %service_uuid);

        let outcome = async {
            let Some(params) = params else {
                return Ok(None);
            };
            let Some(job) = provision(sim, params).await? else {
                return Ok(None);
            };
            if !is_async {
                wait_ok(sim, &job, "ProvisionFailedError").await?;
            }
            Ok::<_, RestError>(Some(job))
        }
        .await;
        match outcome {
            Ok(job) => {
                let mut shown_inst = inst;
                if let (true, Some(job)) = (is_async, job) {
                    shown_inst.insert("job_uuid".into(), json!(job));
                }
                Ok(HttpResponseOk(shown(&shown_inst, v)?))
            }
            Err(e) => {
                sim.write(|s| {
                    s.instances.retain(|o| uuid_of(o) != Some(uuid.as_str()));
                    Ok(())
                })
                .await?;
                slog::warn!(sim.log, "instance not created"; "uuid" => &uuid, "error" => %e);
                Err(e)
            }
        }
    }

    async fn get_instance(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseOk<Instance>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let v = version(&rqctx)?;
        let uuid = path.into_inner().uuid.to_string();
        let inst = sim
            .read(|s| find(&s.instances, &uuid).map(|o| shown(o, v)))
            .await
            .ok_or_else(|| not_found("instance", &uuid))??;
        Ok(HttpResponseOk(inst))
    }

    async fn delete_instance(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseDeleted, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let uuid = path.into_inner().uuid.to_string();
        let (inst, vm_live) = sim
            .read(|s| {
                let inst = find(&s.instances, &uuid).cloned();
                let live =
                    find(&s.vms, &uuid).is_some_and(|vm| str_of(vm, "state") != Some("destroyed"));
                (inst, live)
            })
            .await;
        let inst = inst.ok_or_else(|| not_found("instance", &uuid))?;
        if str_of(&inst, "type") != Some("agent") && vm_live {
            vmapi_gate(sim, "DELETE", &format!("/vms/{uuid}")).await?;
            let job = vmapi::vm_job(sim, &uuid, jobs::DESTROY, Obj::new()).await?;
            wait_ok(sim, &job, "DestroyFailedError").await?;
        }
        sim.write(|s| {
            s.instances.retain(|o| uuid_of(o) != Some(uuid.as_str()));
            Ok(())
        })
        .await?;
        Ok(HttpResponseDeleted())
    }

    async fn upgrade_instance(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<UuidPath>,
        body: TypedBody<UpgradeInstanceBody>,
    ) -> Result<HttpResponseOk<Instance>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let v = version(&rqctx)?;
        let uuid = path.into_inner().uuid.to_string();
        let Some(image) = body.into_inner().image_uuid else {
            return Err(RestError::missing_parameter("missing image_uuid"));
        };
        if !is_uuid(&image) {
            return Err(RestError::invalid_argument(format!(
                "image_uuid: {image:?} is not a UUID"
            )));
        }
        if sim.read(|s| find(&s.instances, &uuid).is_none()).await {
            return Err(not_found("instance", &uuid));
        }
        vmapi_gate(sim, "POST", &format!("/vms/{uuid}")).await?;
        let mut params = Obj::new();
        params.insert("image_uuid".into(), json!(image));
        let job = vmapi::vm_job(sim, &uuid, jobs::REPROVISION, params).await?;
        wait_ok(sim, &job, "ReprovisionFailedError").await?;
        let inst = sim
            .write(|s| {
                let inst = find_mut(&mut s.instances, &uuid)
                    .ok_or_else(|| not_found("instance", &uuid))?;
                let mut p = obj_of(inst, "params");
                p.insert("image_uuid".into(), json!(image));
                inst.insert("params".into(), Value::Object(p));
                Ok(inst.clone())
            })
            .await?;
        Ok(HttpResponseOk(shown(&inst, v)?))
    }

    async fn get_config(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<UuidPath>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Config>, ConfigHeaders>, RestError> {
        let sim = rqctx.context();
        sim.gate("sapi", &rqctx).await?;
        let uuid = path.into_inner().uuid.to_string();
        let config = sim
            .read(|s| {
                let inst = find(&s.instances, &uuid).ok_or_else(|| not_found("instance", &uuid))?;
                let (app, svc) = parents(s, inst)?;
                let params = assemble(app, svc, inst, "params");
                let mut metadata = assemble(app, svc, inst, "metadata");
                let server = params
                    .get("server_uuid")
                    .cloned()
                    .unwrap_or_else(|| json!(s.headnode_uuid));
                metadata.insert("SERVER_UUID".into(), server);
                metadata.insert("ZONE_UUID".into(), json!(uuid));
                metadata.insert("INSTANCE_UUID".into(), json!(uuid));
                // The authoritative user-script comes from the metadata API.
                metadata.remove("user-script");
                let manifests = assemble(app, svc, inst, "manifests")
                    .values()
                    .map(|m| {
                        let id = m.as_str().unwrap_or_default();
                        find(&s.manifests, id)
                            .ok_or_else(|| not_found("manifest", id))
                            .and_then(typed)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, RestError>(Config {
                    manifests,
                    metadata,
                    extra: Map::new(),
                })
            })
            .await?;
        // Stable for equal content, so config-agent's If-None-Match works.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&config)
            .map_err(|e| RestError::internal(e.to_string()))?
            .hash(&mut h);
        Ok(HttpResponseHeaders::new(
            HttpResponseOk(config),
            ConfigHeaders {
                etag: Some(format!("\"{:016x}\"", h.finish())),
            },
        ))
    }
}
