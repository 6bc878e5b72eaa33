//! Provisioning: SAPI instances through VMAPI jobs, NICs from NAPI, the
//! failures a real DC reports, and VMAPI used directly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use common::{DcSim, add_image, rest_error};
use sapi_api::{CreateInstanceBody, CreateServiceBody};
use serde_json::{Map, Value, json};
use std::time::Duration;

use uuid::Uuid;
use vmapi_api::{CreateVmBody, JobExecution, NetworkRef, VmAction, VmActionBody, VmState};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    }
}

async fn package(sim: &DcSim, name: &str) -> papi_api::Package {
    let found = sim.papi().list_packages().name(name).send().await.unwrap();
    assert_eq!(found.len(), 1, "{name}");
    found.into_inner().remove(0)
}

async fn network(sim: &DcSim, name: &str) -> napi_api::Network {
    let found = sim.napi().list_networks().name(name).send().await.unwrap();
    assert_eq!(found.len(), 1, "{name}");
    found.into_inner().remove(0)
}

async fn nics_of(sim: &DcSim, zone: Uuid) -> Vec<napi_api::Nic> {
    sim.napi()
        .list_nics()
        .belongs_to_uuid(zone.to_string())
        .send()
        .await
        .unwrap()
        .into_inner()
}

/// Poll the job to its end (the cap only keeps a broken run from hanging).
async fn wait(
    vmapi: &vmapi_client::Client,
    job: Uuid,
) -> Result<vmapi_api::Job, vmapi_client::JobError> {
    let (every, cap) = (Duration::from_millis(20), Duration::from_secs(120));
    vmapi_client::wait_for_job(vmapi, job, every, cap).await
}

fn ip_in_range(ip: &str, net: &napi_api::Network) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let lo: std::net::Ipv4Addr = net.provision_start_ip.parse().unwrap();
    let hi: std::net::Ipv4Addr = net.provision_end_ip.parse().unwrap();
    lo <= ip && ip <= hi
}

/// A `triton-api` service under `sdc` with these zone params.
async fn service(sim: &DcSim, name: &str, params: Value) -> sapi_api::Service {
    let sapi = sim.sapi();
    let sdc = sapi.list_applications().name("sdc").send().await.unwrap()[0].clone();
    let mut body = CreateServiceBody::new(name, sdc.uuid);
    body.params = Some(obj(params));
    body.metadata = Some(obj(json!({
        "sapi-url": "http://sapi.sim",
        "SECRET": "kept in SAPI",
        "EXTRA": "passed on",
        "pass_vmapi_metadata_keys": ["EXTRA"],
    })));
    sapi.create_service()
        .body(body)
        .send()
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn synchronous_create_waits_for_a_running_vm_with_nics() {
    let sim = DcSim::start();
    let (sapi, vmapi) = (sim.sapi(), sim.vmapi());
    let image = add_image(&sim, true).await;
    let pkg = package(&sim, "sdc_1024").await;
    let admin = network(&sim, "admin").await;
    let svc = service(
        &sim,
        "triton-api",
        json!({"image_uuid": image, "billing_id": pkg.uuid, "networks": ["admin"]}),
    )
    .await;

    let mut body = CreateInstanceBody::new(svc.uuid);
    body.params = Some(obj(json!({"alias": "triton-api0"})));
    let inst = sapi.create_instance().body(body).send().await.unwrap();
    assert_eq!(inst.status().as_u16(), 200);
    let inst = inst.into_inner();
    assert_eq!(inst.job_uuid, None, "a synchronous create has no job_uuid");

    // The VM is running by the time SAPI answers.
    let vm = vmapi
        .get_vm()
        .uuid(inst.uuid)
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(vm.state, VmState::Running);
    assert_eq!(vm.brand.as_deref(), Some("joyent-minimal"));
    assert_eq!(vm.owner_uuid.to_string(), sim.config_value("admin_uuid"));
    assert_eq!(vm.image_uuid, Some(image));
    assert_eq!(vm.alias.as_deref(), Some("triton-api0"));
    assert_eq!(vm.ram, Some(pkg.max_physical_memory));
    let cm = vm.customer_metadata.clone().unwrap();
    assert_eq!(cm.get("sapi-url"), Some(&json!("http://sapi.sim")));
    assert_eq!(cm.get("EXTRA"), Some(&json!("passed on")));
    assert!(!cm.contains_key("SECRET"), "SAPI passes only allowed keys");

    assert_eq!(vm.nics.len(), 1);
    let nic = &vm.nics[0];
    assert_eq!(nic.primary, Some(true));
    assert_eq!(nic.nic_tag.as_deref(), Some("admin"));
    assert_eq!(nic.network_uuid, Some(admin.uuid));
    assert!(ip_in_range(nic.ip.as_deref().unwrap(), &admin), "{nic:?}");

    // NAPI has the same NIC.
    let nics = nics_of(&sim, inst.uuid).await;
    assert_eq!(nics.len(), 1);
    assert_eq!(nics[0].ip, nic.ip);
    assert_eq!(nics[0].mac, nic.mac);
    assert_eq!(nics[0].network_uuid, Some(admin.uuid));

    // Listing by alias, with the resource count header.
    let listed = vmapi.list_vms().alias("triton-api0").send().await.unwrap();
    assert_eq!(vmapi_client::resource_count(&listed), Some(1));
    assert_eq!(listed[0].uuid, inst.uuid);

    // config-agent's view: metadata merged app -> service -> instance.
    let cfg = sapi.get_config().uuid(inst.uuid).send().await.unwrap();
    assert!(cfg.headers().contains_key("etag"));
    let md = &cfg.metadata;
    assert_eq!(md["SECRET"], "kept in SAPI");
    assert_eq!(
        md["datacenter_name"],
        sim.config_value("datacenter_name").as_str()
    );
    assert_eq!(md["ZONE_UUID"], inst.uuid.to_string().as_str());

    // UpgradeInstance reprovisions the zone on another image.
    let newer = add_image(&sim, true).await;
    let up = sapi
        .upgrade_instance()
        .uuid(inst.uuid.to_string())
        .body(sapi_api::UpgradeInstanceBody {
            image_uuid: Some(newer.to_string()),
        })
        .send()
        .await
        .unwrap();
    assert_eq!(up.params.clone().unwrap()["image_uuid"], newer.to_string());
    let vm = vmapi
        .get_vm()
        .uuid(inst.uuid.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(vm.image_uuid, Some(newer));
    assert_eq!(vm.state, VmState::Running);

    // Deleting the instance destroys the zone and frees its IP.
    sapi.delete_instance().uuid(inst.uuid).send().await.unwrap();
    let vm = vmapi.get_vm().uuid(inst.uuid).send().await.unwrap();
    assert_eq!(vm.state, VmState::Destroyed);
    assert!(nics_of(&sim, inst.uuid).await.is_empty());
}

#[tokio::test]
async fn async_create_answers_with_the_job() {
    let sim = DcSim::start();
    let (sapi, vmapi) = (sim.sapi(), sim.vmapi());
    let image = add_image(&sim, true).await;
    let svc = service(
        &sim,
        "async-svc",
        json!({"image_uuid": image, "ram": 256, "networks": [{"name": "external"}]}),
    )
    .await;
    let inst = sapi
        .create_instance()
        .async_(true)
        .body(CreateInstanceBody::new(svc.uuid))
        .send()
        .await
        .unwrap()
        .into_inner();
    let job_uuid = inst.job_uuid.expect("an async create names its job");
    // The instance is recorded at once.
    sapi.get_instance().uuid(inst.uuid).send().await.unwrap();

    let job = wait(&vmapi, job_uuid).await.unwrap();
    assert_eq!(job.execution, JobExecution::Succeeded);
    assert!(!job.chain_results.is_empty());
    let again = vmapi.get_job().job_uuid(job_uuid).send().await.unwrap();
    assert_eq!(again.execution, JobExecution::Succeeded);
    let vm = vmapi.get_vm().uuid(inst.uuid).send().await.unwrap();
    assert_eq!(vm.state, VmState::Running);
    assert_eq!(vm.nics[0].nic_tag.as_deref(), Some("external"));
}

#[tokio::test]
async fn failed_provisions_are_provision_failed_errors_and_leave_no_instance() {
    let sim = DcSim::start();
    let (sapi, vmapi) = (sim.sapi(), sim.vmapi());
    let active = add_image(&sim, true).await;
    let inactive = add_image(&sim, false).await;
    let absent = Uuid::new_v4();
    let pkg = package(&sim, "sdc_1024").await;

    let cases = [
        (
            json!({"image_uuid": absent, "billing_id": pkg.uuid, "networks": ["admin"]}),
            format!("image {absent} does not exist"),
        ),
        (
            json!({"image_uuid": inactive, "billing_id": pkg.uuid, "networks": ["admin"]}),
            format!("image {inactive} is not active"),
        ),
        (
            json!({"image_uuid": active, "billing_id": absent, "networks": ["admin"]}),
            format!("package {absent} (billing_id) does not exist in PAPI"),
        ),
        (
            json!({"image_uuid": active, "ram": 128, "networks": ["no-such-net"]}),
            "network name=no-such-net not found".to_string(),
        ),
    ];
    for (i, (params, want)) in cases.into_iter().enumerate() {
        let svc = service(&sim, &format!("doomed{i}"), params).await;
        let e = sapi
            .create_instance()
            .body(CreateInstanceBody::new(svc.uuid))
            .send()
            .await
            .unwrap_err();
        let (status, code, message) = rest_error(e);
        assert_eq!((status, code.as_str()), (500, "ProvisionFailedError"));
        assert!(message.contains(&want), "{message:?} should say {want:?}");
        let insts = sapi
            .list_instances()
            .service_uuid(svc.uuid)
            .send()
            .await
            .unwrap();
        assert!(insts.is_empty(), "instance kept after a failed provision");
    }
    // The VMs stay, failed, as VMAPI keeps them; `active` leaves them out.
    let failed = vmapi.list_vms().state("failed").send().await.unwrap();
    assert_eq!(failed.len(), 4);
    let active_vms = vmapi.list_vms().state("active").send().await.unwrap();
    assert!(active_vms.iter().all(|vm| vm.state.is_active()));
    assert!(
        !active_vms
            .iter()
            .any(|vm| failed.iter().any(|f| f.uuid == vm.uuid))
    );

    // An injected failure, with everything else in order.
    let svc = service(
        &sim,
        "unlucky",
        json!({"image_uuid": active, "billing_id": pkg.uuid, "networks": ["admin"]}),
    )
    .await;
    sim.fail_next_provision("no capacity on any server").await;
    let (status, code, message) = rest_error(
        sapi.create_instance()
            .body(CreateInstanceBody::new(svc.uuid))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (status, code.as_str(), message.as_str()),
        (500, "ProvisionFailedError", "no capacity on any server")
    );
    // The fault was used up: the next one works.
    sapi.create_instance()
        .body(CreateInstanceBody::new(svc.uuid))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn vmapi_creates_pages_and_runs_actions() {
    let sim = DcSim::start();
    let vmapi = sim.vmapi();
    let image = add_image(&sim, true).await;
    let owner: Uuid = sim.config_value("admin_uuid").parse().unwrap();

    let seeded = vmapi.list_vms().send().await.unwrap();
    let total = vmapi_client::resource_count(&seeded).unwrap();
    assert_eq!(total as usize, seeded.len());

    let body = CreateVmBody {
        owner_uuid: Some(owner.to_string()),
        image_uuid: Some(image.to_string()),
        brand: Some("joyent-minimal".into()),
        ram: Some(json!(256)),
        alias: Some("direct0".into()),
        networks: Some(vec![NetworkRef::Id("admin".into())]),
        ..Default::default()
    };
    let created = vmapi.create_vm().body(body).send().await.unwrap();
    assert_eq!(created.status().as_u16(), 202);
    let created = created.into_inner();
    let job = wait(&vmapi, created.job_uuid).await.unwrap();
    assert_eq!(job.execution, JobExecution::Succeeded);

    // add_nics: a second NIC, not primary.
    let add = vmapi
        .vm_action()
        .uuid(created.vm_uuid)
        .action(VmAction::AddNics)
        .body(VmActionBody {
            networks: Some(vec![NetworkRef::Id("external".into())]),
            ..Default::default()
        })
        .send()
        .await
        .unwrap();
    assert_eq!(add.status().as_u16(), 202);
    wait(&vmapi, add.job_uuid).await.unwrap();
    let vm = vmapi.get_vm().uuid(created.vm_uuid).send().await.unwrap();
    let tags: Vec<_> = vm.nics.iter().map(|n| n.nic_tag.clone().unwrap()).collect();
    assert_eq!(tags, ["admin", "external"]);
    assert_eq!(vm.nics[1].primary, Some(false));

    // reprovision onto another image.
    let newer = add_image(&sim, true).await;
    let re = vmapi
        .vm_action()
        .uuid(created.vm_uuid)
        .action(VmAction::Reprovision)
        .body(VmActionBody {
            image_uuid: Some(newer.to_string()),
            ..Default::default()
        })
        .send()
        .await
        .unwrap();
    wait(&vmapi, re.job_uuid).await.unwrap();
    let vm = vmapi.get_vm().uuid(created.vm_uuid).send().await.unwrap();
    assert_eq!(vm.image_uuid, Some(newer));

    // tag.<key>=<value> filters (read from the raw query string).
    let (s, by_tag) = common::raw(
        reqwest::Method::GET,
        &format!(
            "{}/vms?tag.smartdc_role=sapi&state=active",
            sim.url("vmapi")
        ),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(by_tag.as_array().unwrap().len(), 1, "{by_tag}");
    assert_eq!(by_tag[0]["alias"], "sapi0");

    // Paging with offset until a short page sees every VM once.
    let all = vmapi_client::list_all_vms(vmapi.list_vms(), 3)
        .await
        .unwrap();
    assert_eq!(all.len() as u64, total + 1);
    let mut uuids: Vec<_> = all.iter().map(|v| v.uuid).collect();
    uuids.dedup();
    assert_eq!(uuids.len(), all.len());
    let page = vmapi.list_vms().limit(2).send().await.unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(vmapi_client::resource_count(&page), Some(total + 1));

    // Errors: unknown VM, unknown job, limit out of range, a bad body.
    let missing = Uuid::new_v4();
    let (status, code, _) = rest_error(vmapi.get_vm().uuid(missing).send().await.unwrap_err());
    assert_eq!((status, code.as_str()), (404, "ResourceNotFound"));
    let (status, code, _) = rest_error(vmapi.get_job().job_uuid(missing).send().await.unwrap_err());
    assert_eq!((status, code.as_str()), (404, "ResourceNotFound"));
    let (status, code, _) = rest_error(vmapi.list_vms().limit(5000).send().await.unwrap_err());
    assert_eq!((status, code.as_str()), (409, "ValidationFailed"));
    let (status, code, message) = rest_error(
        vmapi
            .create_vm()
            .body(CreateVmBody::default())
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (409, "ValidationFailed"));
    for field in ["owner_uuid", "brand", "image_uuid", "networks", "ram"] {
        assert!(message.contains(field), "{message}");
    }
}
