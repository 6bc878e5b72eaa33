//! VMAPI's workflow jobs: each is `queued`, then `running`, then
//! `succeeded` or `failed`, `job_delay` apart, and leaves `chain_results`
//! as the real workflow API does (one entry per task; a failed task's
//! `error` holds `{name, message}`, which SAPI reports).
//!
//! Jobs are part of the stored state: one that was queued or running when
//! dc-sim stopped runs again at the next start.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::Sim;
use crate::napi;
use crate::state::{Obj, State, find, find_mut, now, obj_of, str_of, uuid_of};

pub const PROVISION: &str = "provision";
pub const ADD_NICS: &str = "add_nics";
pub const REPROVISION: &str = "reprovision";
pub const DESTROY: &str = "destroy";
pub const START: &str = "start";
pub const STOP: &str = "stop";
pub const REBOOT: &str = "reboot";

/// Record a queued job on `vm_uuid`; the caller spawns it with [`spawn`]
/// once the state holding it is saved.
pub fn queue(s: &mut State, task: &str, vm_uuid: &str, params: Obj) -> String {
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut job = Obj::new();
    for (k, v) in [
        ("uuid", json!(uuid)),
        ("name", json!(format!("{task}-{}", crate::VERSION))),
        ("task", json!(task)),
        ("vm_uuid", json!(vm_uuid)),
        ("execution", json!("queued")),
        ("params", Value::Object(params)),
        ("chain_results", json!([])),
        ("created_at", json!(now())),
    ] {
        job.insert(k.into(), v);
    }
    s.jobs.push(job);
    uuid
}

pub fn spawn(sim: &Arc<Sim>, job_uuid: String) {
    let sim = sim.clone();
    tokio::spawn(async move {
        if let Err(e) = run(&sim, &job_uuid).await {
            slog::error!(sim.log, "job could not be recorded"; "job_uuid" => &job_uuid, "error" => %e);
        }
    });
}

/// Run again the jobs a previous dc-sim left unfinished.
pub async fn resume(sim: &Arc<Sim>) {
    let pending: Vec<String> = sim
        .read(|s| {
            s.jobs
                .iter()
                .filter(|j| matches!(str_of(j, "execution"), Some("queued" | "running")))
                .filter_map(|j| uuid_of(j).map(str::to_string))
                .collect()
        })
        .await;
    for uuid in pending {
        spawn(sim, uuid);
    }
}

pub fn is_done(job: &Obj) -> bool {
    !matches!(str_of(job, "execution"), Some("queued" | "running"))
}

/// One `chain_results` entry.
fn step(name: &str, started: &str, outcome: &Result<String, String>) -> Value {
    match outcome {
        Ok(result) => json!({
            "name": name, "result": result, "error": "",
            "started_at": started, "finished_at": now(),
        }),
        Err(message) => json!({
            "name": name, "result": "",
            "error": {"name": "Error", "message": message},
            "started_at": started, "finished_at": now(),
        }),
    }
}

async fn set_execution(sim: &Sim, job_uuid: &str, execution: &str) -> Result<(), String> {
    sim.write(|s| {
        if let Some(job) = find_mut(&mut s.jobs, job_uuid) {
            job.insert("execution".into(), json!(execution));
            if execution == "running" {
                job.insert("started".into(), json!(now()));
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?;
    sim.jobs_changed();
    Ok(())
}

async fn run(sim: &Arc<Sim>, job_uuid: &str) -> Result<(), String> {
    tokio::time::sleep(sim.job_delay()).await;
    set_execution(sim, job_uuid, "running").await?;
    tokio::time::sleep(sim.job_delay()).await;

    let Some(job) = sim.read(|s| find(&s.jobs, job_uuid).cloned()).await else {
        return Err(format!("job {job_uuid} vanished"));
    };
    let task = str_of(&job, "task").unwrap_or_default().to_string();
    let vm_uuid = str_of(&job, "vm_uuid").unwrap_or_default().to_string();
    let params = obj_of(&job, "params");
    let mut chain = Vec::new();

    // Checks that need IMGAPI run outside the state lock.
    let started = now();
    let image_check = match (task.as_str(), str_of(&params, "image_uuid")) {
        (PROVISION | REPROVISION, Some(image)) => Some(check_image(sim, image).await),
        _ => None,
    };
    let injected = (task == PROVISION)
        .then(|| sim.faults.take_provision_failure())
        .flatten();

    let outcome = sim
        .write(|s| {
            let result = apply(s, &task, &vm_uuid, &params, image_check, injected, &started);
            let (steps, ok) = match result {
                Ok(steps) => (steps, true),
                Err(steps) => (steps, false),
            };
            chain.extend(steps);
            if !ok && task == PROVISION {
                // Real VMAPI leaves a VM whose provision failed as `failed`.
                if let Some(vm) = find_mut(&mut s.vms, &vm_uuid) {
                    vm.insert("state".into(), json!("failed"));
                    vm.insert("zone_state".into(), json!("configured"));
                    vm.insert("last_modified".into(), json!(now()));
                }
            }
            if let Some(j) = find_mut(&mut s.jobs, job_uuid) {
                j.insert("chain_results".into(), json!(chain));
                j.insert(
                    "execution".into(),
                    json!(if ok { "succeeded" } else { "failed" }),
                );
                j.insert("finished_at".into(), json!(now()));
            }
            Ok(ok)
        })
        .await
        .map_err(|e| e.to_string())?;
    sim.jobs_changed();
    slog::info!(sim.log, "job done";
        "job_uuid" => job_uuid, "task" => &task, "vm_uuid" => &vm_uuid, "succeeded" => outcome);
    Ok(())
}

/// Is the image active in the DC's IMGAPI? `Err` says why not (absent,
/// another state, or IMGAPI itself failing: never taken as absent).
async fn check_image(sim: &Sim, image: &str) -> Result<String, String> {
    let base = sim.urls().map_err(|e| e.to_string())?.imgapi.clone();
    let client = imgapi_client::Client::new_with_client(
        &base,
        sim.http().clone(),
        imgapi_client::Auth::default(),
    );
    let uuid: uuid::Uuid = image
        .parse()
        .map_err(|_| format!("image_uuid {image:?} is not a UUID"))?;
    match client.get_image().uuid(uuid).send().await {
        Ok(img) if img.state == imgapi_api::ImageState::Active && !img.disabled => {
            Ok(format!("image {image} is active"))
        }
        Ok(img) => Err(format!(
            "image {image} is not active in the DC's IMGAPI (state: {}{})",
            img.state.as_str(),
            if img.disabled { ", disabled" } else { "" }
        )),
        Err(imgapi_client::Error::ErrorResponse(r)) if r.status().as_u16() == 404 => Err(format!(
            "image {image} does not exist in the DC's IMGAPI ({base})"
        )),
        Err(e) => Err(format!("IMGAPI {base}: getting image {image}: {e}")),
    }
}

/// The task's effect on the state, as its chain results: `Err` when a
/// task failed (the steps up to and including it).
fn apply(
    s: &mut State,
    task: &str,
    vm_uuid: &str,
    params: &Obj,
    image_check: Option<Result<String, String>>,
    injected: Option<String>,
    started: &str,
) -> Result<Vec<Value>, Vec<Value>> {
    let mut steps = Vec::new();
    macro_rules! check {
        ($name:expr, $outcome:expr) => {{
            let outcome: Result<String, String> = $outcome;
            steps.push(step($name, started, &outcome));
            if outcome.is_err() {
                return Err(steps);
            }
        }};
    }
    if let Some(message) = injected {
        check!("common.validate_params", Err(message));
    }
    if let Some(outcome) = image_check {
        check!("imgapi.get_image", outcome);
    }
    match task {
        PROVISION => {
            check!("papi.get_package", package(s, vm_uuid, params));
            let specs = params
                .get("networks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            check!("napi.provision_nics", add_nics(s, vm_uuid, &specs));
            check!(
                "cnapi.provision_vm",
                set_vm(s, vm_uuid, |vm| {
                    vm.insert("state".into(), json!("running"));
                    vm.insert("zone_state".into(), json!("running"));
                })
            );
        }
        ADD_NICS => {
            let specs = params
                .get("networks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            check!("napi.provision_nics", add_nics(s, vm_uuid, &specs));
        }
        REPROVISION => {
            let image = params.get("image_uuid").cloned().unwrap_or(Value::Null);
            check!(
                "cnapi.reprovision_vm",
                set_vm(s, vm_uuid, |vm| {
                    vm.insert("image_uuid".into(), image);
                    vm.insert("state".into(), json!("running"));
                })
            );
        }
        DESTROY => {
            napi::free_nics(s, vm_uuid);
            check!(
                "cnapi.destroy_vm",
                set_vm(s, vm_uuid, |vm| {
                    let t = now();
                    vm.insert("state".into(), json!("destroyed"));
                    vm.insert("zone_state".into(), json!("destroyed"));
                    vm.insert("destroyed".into(), json!(t));
                    vm.insert("nics".into(), json!([]));
                })
            );
        }
        START | REBOOT | STOP => {
            let state = if task == STOP { "stopped" } else { "running" };
            check!(
                &format!("cnapi.{task}_vm"),
                set_vm(s, vm_uuid, |vm| {
                    vm.insert("state".into(), json!(state));
                    vm.insert(
                        "zone_state".into(),
                        json!(if task == STOP { "installed" } else { "running" }),
                    );
                })
            );
        }
        other => check!("workflow", Err(format!("unknown job task {other:?}"))),
    }
    Ok(steps)
}

fn set_vm(s: &mut State, vm_uuid: &str, f: impl FnOnce(&mut Obj)) -> Result<String, String> {
    let vm = find_mut(&mut s.vms, vm_uuid).ok_or_else(|| format!("VM {vm_uuid} not found"))?;
    f(vm);
    vm.insert("last_modified".into(), json!(now()));
    Ok(format!("VM {vm_uuid} updated"))
}

/// The package (`billing_id`) must exist in PAPI; its sizes fill in what
/// the request left out.
fn package(s: &mut State, vm_uuid: &str, params: &Obj) -> Result<String, String> {
    let Some(billing_id) = str_of(params, "billing_id") else {
        return Ok("no package: sizes from the request".into());
    };
    let pkg = find(&s.packages, billing_id)
        .ok_or_else(|| format!("package {billing_id} (billing_id) does not exist in PAPI"))?
        .clone();
    if pkg.get("active") == Some(&json!(false)) {
        return Err(format!("package {billing_id} is not active"));
    }
    set_vm(s, vm_uuid, |vm| {
        for (vm_key, pkg_key) in [
            ("ram", "max_physical_memory"),
            ("max_physical_memory", "max_physical_memory"),
            ("max_swap", "max_swap"),
            ("max_lwps", "max_lwps"),
            ("cpu_cap", "cpu_cap"),
            ("zfs_io_priority", "zfs_io_priority"),
            ("vcpus", "vcpus"),
            ("cpu_shares", "fss"),
        ] {
            if !params.contains_key(vm_key)
                && let Some(v) = pkg.get(pkg_key)
            {
                vm.insert(vm_key.into(), v.clone());
            }
        }
        // PAPI's quota is MiB, a VM's GiB.
        if !params.contains_key("quota")
            && let Some(q) = pkg.get("quota").and_then(Value::as_u64)
        {
            vm.insert("quota".into(), json!(q / 1024));
        }
    })?;
    Ok(format!(
        "package {} ({billing_id})",
        str_of(&pkg, "name").unwrap_or("?")
    ))
}

/// Resolve every network spec first, then take one NIC on each: a job
/// that cannot resolve them all takes none.
fn add_nics(s: &mut State, vm_uuid: &str, specs: &[Value]) -> Result<String, String> {
    if specs.is_empty() {
        return Err("no networks given".into());
    }
    let mut nets = Vec::new();
    for spec in specs {
        let net = napi::resolve_network(s, spec)?;
        let primary = spec.get("primary").and_then(Value::as_bool);
        nets.push((uuid_of(net).unwrap_or_default().to_string(), primary));
    }
    let (owner, existing) = {
        let vm = find(&s.vms, vm_uuid).ok_or_else(|| format!("VM {vm_uuid} not found"))?;
        let existing = vm
            .get("nics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        (
            str_of(vm, "owner_uuid").unwrap_or_default().to_string(),
            existing,
        )
    };
    // The first NIC is primary unless a spec asks for another one.
    let asked = nets.iter().any(|(_, p)| *p == Some(true));
    let first = existing.is_empty();
    let mut views = existing;
    let mut ips = Vec::new();
    for (i, (net, p)) in nets.iter().enumerate() {
        let primary = if asked {
            *p == Some(true)
        } else {
            first && i == 0
        };
        let nic = napi::provision_nic(s, net, vm_uuid, &owner, primary)?;
        ips.push(str_of(&nic, "ip").unwrap_or_default().to_string());
        let index = views.len();
        views.push(Value::Object(napi::vm_view(&nic, index)));
    }
    set_vm(s, vm_uuid, |vm| {
        vm.insert("nics".into(), Value::Array(views));
    })?;
    Ok(format!("NICs provisioned: {}", ips.join(", ")))
}
