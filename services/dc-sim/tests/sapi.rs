//! SAPI on dc-sim, through the generated `sapi-client` (and raw HTTP for
//! what that client never sends: no `accept-version`, broken bodies).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use common::{DcSim, raw, rest_error};
use reqwest::Method;
use sapi_api::{CreateInstanceBody, CreateServiceBody, ServiceType, UpdateAction, UpdateBody};
use serde_json::{Map, Value, json};

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(o) => o,
        other => panic!("not an object: {other}"),
    }
}

async fn sdc_app(sapi: &sapi_client::Client) -> sapi_api::Application {
    let apps = sapi.list_applications().name("sdc").send().await.unwrap();
    assert_eq!(apps.len(), 1);
    apps.into_inner().remove(0)
}

#[tokio::test]
async fn fresh_dc_is_seeded_and_config_names_every_api() {
    let sim = DcSim::start();
    for (svc, key) in [
        ("sapi", "sapi_domain"),
        ("vmapi", "vmapi_domain"),
        ("napi", "napi_domain"),
        ("papi", "papi_domain"),
        ("cnapi", "cnapi_domain"),
        ("imgapi", "imgapi_domain"),
    ] {
        assert_eq!(
            format!("http://{}", sim.config_value(key)),
            sim.url(svc),
            "{key}"
        );
    }
    let sapi = sim.sapi();
    let ping = sapi.ping().send().await.unwrap();
    assert!(ping.stor_available);

    let sdc = sdc_app(&sapi).await;
    assert_eq!(sdc.owner_uuid.to_string(), sim.config_value("admin_uuid"));
    let md = sdc.metadata.unwrap();
    assert_eq!(
        md["datacenter_name"],
        sim.config_value("datacenter_name").as_str()
    );
    assert_eq!(md["dns_domain"], sim.config_value("dns_domain").as_str());
    assert!(md.contains_key("update_channel"));
    let none = sapi.list_applications().name("manta").send().await.unwrap();
    assert!(none.is_empty());

    let services = sapi
        .list_services()
        .application_uuid(sdc.uuid)
        .send()
        .await
        .unwrap();
    for name in [
        "sapi", "vmapi", "napi", "papi", "cnapi", "imgapi", "adminui",
    ] {
        let svc = services.iter().find(|s| s.name == name).unwrap();
        assert_eq!(svc.service_type, Some(ServiceType::Vm));
        let insts = sapi
            .list_instances()
            .service_uuid(svc.uuid)
            .send()
            .await
            .unwrap();
        assert_eq!(insts.len(), 1, "{name}");
    }
}

#[tokio::test]
async fn services_are_created_listed_updated_and_deleted() {
    let sim = DcSim::start();
    let sapi = sim.sapi();
    let sdc = sdc_app(&sapi).await;

    let mut body = CreateServiceBody::new("triton-api", sdc.uuid);
    body.params = Some(obj(json!({"ram": 512, "networks": ["admin"]})));
    body.metadata = Some(obj(json!({"A": 1, "B": 2})));
    let svc = sapi.create_service().body(body).send().await.unwrap();
    assert_eq!(svc.status().as_u16(), 200);
    let svc = svc.into_inner();
    assert_eq!(svc.service_type, Some(ServiceType::Vm));

    let listed = sapi
        .list_services()
        .name("triton-api")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].uuid, svc.uuid);
    let got = sapi.get_service().uuid(svc.uuid).send().await.unwrap();
    assert_eq!(got.into_inner(), svc);

    // update merges, delete removes keys, replace swaps the whole set.
    let upd = |action: UpdateAction, metadata: Value| UpdateBody {
        action: Some(action),
        metadata: Some(obj(metadata)),
        ..Default::default()
    };
    let s = sapi
        .update_service()
        .uuid(svc.uuid)
        .body(upd(UpdateAction::Update, json!({"B": 3, "C": 4})))
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.metadata.clone().unwrap(),
        obj(json!({"A": 1, "B": 3, "C": 4}))
    );
    let s = sapi
        .update_service()
        .uuid(svc.uuid)
        .body(upd(UpdateAction::Delete, json!({"A": null})))
        .send()
        .await
        .unwrap();
    assert_eq!(s.metadata.clone().unwrap(), obj(json!({"B": 3, "C": 4})));
    let s = sapi
        .update_service()
        .uuid(svc.uuid)
        .body(upd(UpdateAction::Replace, json!({"Z": true})))
        .send()
        .await
        .unwrap();
    assert_eq!(s.metadata.clone().unwrap(), obj(json!({"Z": true})));
    assert_eq!(s.params.clone().unwrap()["ram"], 512, "params untouched");

    let del = sapi.delete_service().uuid(svc.uuid).send().await.unwrap();
    assert_eq!(del.status().as_u16(), 204);
    let (status, code, message) =
        rest_error(sapi.get_service().uuid(svc.uuid).send().await.unwrap_err());
    assert_eq!((status, code.as_str()), (404, "ResourceNotFound"));
    assert!(message.contains(&svc.uuid.to_string()), "{message}");
}

#[tokio::test]
async fn accept_version_2_shows_types_and_agents_1_hides_them() {
    let sim = DcSim::start();
    let sapi = sim.sapi();
    let sdc = sdc_app(&sapi).await;
    let mut body = CreateServiceBody::new("amon-agent", sdc.uuid);
    body.service_type = Some(ServiceType::Agent);
    let agent = sapi.create_service().body(body).send().await.unwrap();
    assert_eq!(agent.service_type, Some(ServiceType::Agent));
    let inst = sapi
        .create_instance()
        .body(CreateInstanceBody::new(agent.uuid))
        .send()
        .await
        .unwrap();
    assert_eq!(inst.service_type, Some(ServiceType::Agent));

    let url = sim.url("sapi");
    let services = format!("{url}/services");
    // No header: 1.0.0, no `type`, only vm services.
    let (s, v1) = raw(Method::GET, &services, &[], None).await;
    assert_eq!(s, 200);
    let v1 = v1.as_array().unwrap().clone();
    assert!(v1.iter().all(|s| s.get("type").is_none()), "{v1:?}");
    assert!(!v1.iter().any(|s| s["name"] == "amon-agent"));
    // `~2` (what the client sends) and `2.0.0`: everything, with types.
    for version in ["~2", "2.0.0"] {
        let (s, v2) = raw(Method::GET, &services, &[("accept-version", version)], None).await;
        assert_eq!(s, 200);
        let v2 = v2.as_array().unwrap().clone();
        assert_eq!(v2.len(), v1.len() + 1, "{version}");
        let a = v2.iter().find(|s| s["name"] == "amon-agent").unwrap();
        assert_eq!(a["type"], "agent");
    }
    let listed = sapi.list_services().send().await.unwrap();
    assert_eq!(listed.len(), v1.len() + 1);
    // 1.x lists no agent instances, and objects carry no type.
    let (_, insts) = raw(Method::GET, &format!("{url}/instances"), &[], None).await;
    assert!(
        !insts
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["uuid"] == inst.uuid.to_string())
    );
    let (s, one) = raw(
        Method::GET,
        &format!("{url}/instances/{}", inst.uuid),
        &[("accept-version", "~1")],
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(one.get("type").is_none(), "{one}");
    // A version SAPI does not serve.
    let (s, e) = raw(Method::GET, &services, &[("accept-version", "~3")], None).await;
    assert_eq!((s, e["code"].as_str()), (400, Some("InvalidVersion")));
}
