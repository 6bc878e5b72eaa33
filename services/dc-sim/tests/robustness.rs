//! Restarts, fault injection and malformed requests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use common::{DcSim, raw, rest_error};
use reqwest::Method;
use sapi_api::{CreateInstanceBody, CreateServiceBody, ServiceType};
use serde_json::json;

#[tokio::test]
async fn state_survives_a_kill_and_restart() {
    let sim = DcSim::start();
    let sapi = sim.sapi();
    let sdc = sapi.list_applications().name("sdc").send().await.unwrap()[0].clone();
    let mut body = CreateServiceBody::new("survivor", sdc.uuid);
    body.service_type = Some(ServiceType::Agent);
    let svc = sapi.create_service().body(body).send().await.unwrap();
    let inst = sapi
        .create_instance()
        .body(CreateInstanceBody::new(svc.uuid))
        .send()
        .await
        .unwrap();
    let before = sapi.list_services().send().await.unwrap().into_inner();

    // SIGKILL: no chance to flush anything that was not already on disk.
    let dir = sim.dir.clone();
    let keep = sim.kill();
    let sim = DcSim::start_in(&dir);
    let sapi = sim.sapi();
    let after = sapi.list_services().send().await.unwrap().into_inner();
    assert_eq!(after, before, "restart keeps services and does not re-seed");
    let got = sapi.get_instance().uuid(inst.uuid).send().await.unwrap();
    assert_eq!(got.service_uuid, svc.uuid);
    // The headnode config names the new ports.
    assert_eq!(
        format!("http://{}", sim.config_value("sapi_domain")),
        sim.url("sapi")
    );
    drop(sim);
    drop(keep);
}

#[tokio::test]
async fn a_job_cut_short_by_a_restart_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    // An hour per step: the job cannot finish before the kill.
    let sim = DcSim::start_with_delay(dir.path(), 3_600_000);
    let vmapi = sim.vmapi();
    let owner: uuid::Uuid = sim.config_value("admin_uuid").parse().unwrap();
    let created = vmapi
        .create_vm()
        .body(vmapi_api::CreateVmBody {
            owner_uuid: Some(owner.to_string()),
            image_uuid: Some(common::add_image(&sim, true).await.to_string()),
            brand: Some("joyent-minimal".into()),
            ram: Some(serde_json::json!(128)),
            networks: Some(vec![vmapi_api::NetworkRef::Id("admin".into())]),
            ..Default::default()
        })
        .send()
        .await
        .unwrap()
        .into_inner();
    let job = vmapi
        .get_job()
        .job_uuid(created.job_uuid)
        .send()
        .await
        .unwrap();
    assert_eq!(job.execution, vmapi_api::JobExecution::Queued);
    let vm = vmapi.get_vm().uuid(created.vm_uuid).send().await.unwrap();
    assert_eq!(vm.state, vmapi_api::VmState::Provisioning);
    sim.kill();

    let sim = DcSim::start_in(dir.path());
    let vmapi = sim.vmapi();
    let job = vmapi
        .wait_job()
        .job_uuid(created.job_uuid)
        .send()
        .await
        .unwrap();
    assert_eq!(job.execution, vmapi_api::JobExecution::Succeeded);
    let vm = vmapi.get_vm().uuid(created.vm_uuid).send().await.unwrap();
    assert_eq!(vm.state, vmapi_api::VmState::Running);
    assert_eq!(vm.nics.len(), 1);
}

#[tokio::test]
async fn faults_fail_or_delay_the_next_matching_requests() {
    let sim = DcSim::start();
    let sapi = sim.sapi();
    sim.fault(json!({
        "service": "sapi", "method": "GET", "path": "/services", "count": 2,
        "status": 503, "message": "moray is down"
    }))
    .await;
    for _ in 0..2 {
        let (status, code, message) = rest_error(sapi.list_services().send().await.unwrap_err());
        assert_eq!(
            (status, code.as_str(), message.as_str()),
            (503, "ServiceUnavailableError", "moray is down")
        );
    }
    // Other paths were never affected, and the rule is used up.
    sapi.ping().send().await.unwrap();
    sapi.list_services().send().await.unwrap();

    // A delay-only rule lets the request through once it has waited.
    sim.fault(json!({"method": "GET", "path": "/applications", "delay_ms": 50}))
        .await;
    sapi.list_applications().send().await.unwrap();
    let (s, armed) = raw(
        Method::GET,
        &format!("{}/faults", sim.url("admin")),
        &[],
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(armed["requests"], json!([]), "the delay rule was consumed");

    // A fault on VMAPI's path reaches SAPI's call to VMAPI: the instance
    // is not created.
    let sdc = sapi.list_applications().name("sdc").send().await.unwrap()[0].clone();
    let mut body = CreateServiceBody::new("faulty", sdc.uuid);
    body.params = Some(
        json!({"networks": ["admin"], "ram": 128})
            .as_object()
            .unwrap()
            .clone(),
    );
    let svc = sapi.create_service().body(body).send().await.unwrap();
    sim.fault(json!({"service": "vmapi", "method": "POST", "path": "/vms", "status": 500}))
        .await;
    let (status, code, _) = rest_error(
        sapi.create_instance()
            .body(CreateInstanceBody::new(svc.uuid))
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (500, "InternalError"));
    let insts = sapi
        .list_instances()
        .service_uuid(svc.uuid)
        .send()
        .await
        .unwrap();
    assert!(insts.is_empty());

    // Bad rules are refused with the field named.
    let (s, e) = raw(
        Method::POST,
        &format!("{}/faults", sim.url("admin")),
        &[],
        Some(r#"{"method": "GET", "path": "/x", "status": 200}"#),
    )
    .await;
    assert_eq!(s, 409);
    assert!(e["message"].as_str().unwrap().starts_with("status:"), "{e}");
}

/// Each malformed request gets the status and restify code the real
/// service answers with (an alias taken by a live VM of the same owner,
/// a brand VMAPI does not know, ...), and leaves the stored state byte for byte as it
/// was.
#[tokio::test]
async fn malformed_requests_get_4xx_and_store_nothing() {
    let sim = DcSim::start();
    let sapi = sim.sapi();
    let sdc = sapi.list_applications().name("sdc").send().await.unwrap()[0].clone();
    let svc = sapi.list_services().name("imgapi").send().await.unwrap()[0].clone();
    let state = sim.dir.join("state.json");
    let before = std::fs::read(&state).unwrap();
    let missing = uuid::Uuid::new_v4();
    let s = sim.url("sapi");
    let v = sim.url("vmapi");
    let v2 = [("accept-version", "~2")];
    let sapi_svc = sapi.list_services().name("sapi").send().await.unwrap()[0].clone();
    let sapi_vm = sapi
        .list_instances()
        .service_uuid(sapi_svc.uuid)
        .send()
        .await
        .unwrap()[0]
        .uuid;

    let cases: Vec<(Method, String, Option<String>, u16, &str)> = vec![
        (
            Method::POST,
            format!("{s}/services"),
            Some("{}".into()),
            409,
            "MissingParameter",
        ),
        (
            Method::POST,
            format!("{s}/services"),
            Some(json!({"name": "x"}).to_string()),
            409,
            "MissingParameter",
        ),
        (
            Method::POST,
            format!("{s}/services"),
            Some(json!({"name": "x", "application_uuid": missing}).to_string()),
            404,
            "ResourceNotFound",
        ),
        (
            Method::POST,
            format!("{s}/services"),
            Some(json!({"name": "x", "application_uuid": "not-a-uuid"}).to_string()),
            404,
            "ResourceNotFound",
        ),
        (
            Method::POST,
            format!("{s}/services"),
            Some(json!({"name": "x", "application_uuid": sdc.uuid, "uuid": "bogus"}).to_string()),
            409,
            "InvalidArgument",
        ),
        (
            Method::POST,
            format!("{s}/instances"),
            Some(json!({"service_uuid": "not-a-uuid"}).to_string()),
            404,
            "ResourceNotFound",
        ),
        (
            Method::PUT,
            format!("{s}/instances/{sapi_vm}/upgrade"),
            Some(json!({"image_uuid": "latest"}).to_string()),
            409,
            "InvalidArgument",
        ),
        (
            Method::POST,
            format!("{s}/services"),
            Some(
                json!({"name": "x", "application_uuid": sdc.uuid,
                       "manifests": {"cfg": missing}})
                .to_string(),
            ),
            404,
            "ResourceNotFound",
        ),
        (
            Method::POST,
            format!("{s}/services"),
            Some("{\"name\": ".into()),
            400,
            "BadRequestError",
        ),
        (
            Method::POST,
            format!("{s}/instances"),
            Some("{}".into()),
            409,
            "MissingParameter",
        ),
        (
            Method::POST,
            format!("{s}/instances"),
            Some(json!({"service_uuid": missing}).to_string()),
            404,
            "ResourceNotFound",
        ),
        (
            Method::POST,
            format!("{s}/instances"),
            Some(json!({"service_uuid": svc.uuid, "exists": true}).to_string()),
            409,
            "MissingParameter",
        ),
        (
            Method::POST,
            format!("{s}/instances"),
            Some(json!({"service_uuid": svc.uuid, "exists": true, "uuid": missing}).to_string()),
            409,
            "InvalidArgument",
        ),
        (
            Method::PUT,
            format!("{s}/services/{}", svc.uuid),
            Some(json!({"action": "bogus", "metadata": {"a": 1}}).to_string()),
            409,
            "InvalidArgument",
        ),
        (
            Method::PUT,
            format!("{s}/services/{missing}"),
            Some(json!({"metadata": {"a": 1}}).to_string()),
            404,
            "ResourceNotFound",
        ),
        (
            Method::GET,
            format!("{s}/services/not-a-uuid"),
            None,
            404,
            "ResourceNotFound",
        ),
        (
            Method::DELETE,
            format!("{s}/services/{missing}"),
            None,
            404,
            "ResourceNotFound",
        ),
        (
            Method::DELETE,
            format!("{s}/instances/{missing}"),
            None,
            404,
            "ResourceNotFound",
        ),
        (
            Method::PUT,
            format!("{s}/instances/{missing}/upgrade"),
            Some("{}".into()),
            409,
            "MissingParameter",
        ),
        (
            Method::PUT,
            format!("{s}/instances/{missing}/upgrade"),
            Some(json!({"image_uuid": missing}).to_string()),
            404,
            "ResourceNotFound",
        ),
        (
            Method::GET,
            format!("{s}/configs/{missing}"),
            None,
            404,
            "ResourceNotFound",
        ),
        (
            Method::GET,
            format!("{s}/no/such/route"),
            None,
            404,
            "ResourceNotFound",
        ),
        (
            Method::POST,
            format!("{s}/ping"),
            Some("{}".into()),
            405,
            "MethodNotAllowedError",
        ),
        (
            Method::POST,
            format!("{v}/vms"),
            Some("{}".into()),
            409,
            "ValidationFailed",
        ),
        (
            Method::POST,
            format!("{v}/vms"),
            Some(
                json!({"owner_uuid": sdc.owner_uuid, "brand": "joyent", "ram": 128,
                       "networks": ["admin"], "image_uuid": missing, "alias": "sapi0"})
                .to_string(),
            ),
            409,
            "ValidationFailed",
        ),
        (
            Method::POST,
            format!("{v}/vms"),
            Some(
                json!({"owner_uuid": sdc.owner_uuid, "brand": "windows", "ram": 128,
                       "networks": [], "image_uuid": missing})
                .to_string(),
            ),
            409,
            "ValidationFailed",
        ),
        (
            Method::GET,
            format!("{v}/vms?limit=0"),
            None,
            409,
            "ValidationFailed",
        ),
        (
            Method::GET,
            format!("{v}/vms/{missing}"),
            None,
            404,
            "ResourceNotFound",
        ),
        (
            Method::GET,
            format!("{v}/jobs/{missing}"),
            None,
            404,
            "ResourceNotFound",
        ),
        (
            Method::GET,
            format!("{v}/vms/not-a-uuid"),
            None,
            409,
            "ValidationFailed",
        ),
        (
            Method::POST,
            format!("{v}/vms/{missing}?action=add_nics"),
            Some(json!({"networks": ["admin"]}).to_string()),
            404,
            "ResourceNotFound",
        ),
        (
            Method::POST,
            format!("{v}/vms/{sapi_vm}"),
            Some("{}".into()),
            409,
            "MissingParameter",
        ),
        (
            Method::POST,
            format!("{v}/vms/{sapi_vm}?action=add_nics"),
            Some("{}".into()),
            409,
            "ValidationFailed",
        ),
    ];
    assert!(cases.len() >= 10);
    for (method, url, body, want_status, want_code) in cases {
        let (status, err) = raw(method.clone(), &url, &v2, body.as_deref()).await;
        assert_eq!(
            (status, err["code"].as_str()),
            (want_status, Some(want_code)),
            "{method} {url} {body:?}: {err}"
        );
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {url}: {err}"
        );
    }
    assert!(
        std::fs::read(&state).unwrap() == before,
        "a refused request changed the stored state"
    );
}
