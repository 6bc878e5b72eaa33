//! NAPI, PAPI and CNAPI on dc-sim, through their generated clients.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use common::{DcSim, rest_error};
use uuid::Uuid;

#[tokio::test]
async fn napi_lists_networks_by_name_and_nics_by_owner() {
    let sim = DcSim::start();
    let napi = sim.napi();
    napi.ping().send().await.unwrap();
    let all = napi.list_networks().send().await.unwrap();
    let names: Vec<_> = all.iter().map(|n| n.name.as_str()).collect();
    assert!(
        names.contains(&"admin") && names.contains(&"external"),
        "{names:?}"
    );

    // One name, or a JSON array of names.
    let admin = napi.list_networks().name("admin").send().await.unwrap();
    assert_eq!(admin.len(), 1);
    assert_eq!(admin[0].nic_tag.as_deref(), Some("admin"));
    let both = napi
        .list_networks()
        .name(napi_api::names_filter(&["admin", "external", "nope"]))
        .send()
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    assert!(
        napi.list_networks()
            .name("nope")
            .send()
            .await
            .unwrap()
            .is_empty()
    );

    let got = napi
        .get_network()
        .network_uuid(admin[0].uuid)
        .send()
        .await
        .unwrap();
    assert_eq!(got.into_inner(), admin[0]);
    let (status, code, _) = rest_error(
        napi.get_network()
            .network_uuid(Uuid::new_v4())
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (404, "ResourceNotFound"));

    // Every seeded core zone has its admin NIC, inside the range.
    let on_admin = napi
        .list_nics()
        .network_uuid(admin[0].uuid.to_string())
        .send()
        .await
        .unwrap();
    assert!(on_admin.len() >= 7, "{}", on_admin.len());
    let vms = sim.vmapi().list_vms().send().await.unwrap();
    for vm in vms.iter() {
        let nics = napi
            .list_nics()
            .belongs_to_uuid(vm.uuid.to_string())
            .send()
            .await
            .unwrap();
        let macs: Vec<_> = nics.iter().map(|n| n.mac.clone()).collect();
        let vm_macs: Vec<_> = vm.nics.iter().map(|n| n.mac.clone()).collect();
        assert_eq!(macs, vm_macs, "VM {}", vm.uuid);
    }
    let (status, code, _) = rest_error(napi.list_nics().limit(0).send().await.unwrap_err());
    assert_eq!((status, code.as_str()), (422, "InvalidParameters"));
}

#[tokio::test]
async fn papi_lists_packages_with_a_resource_count() {
    let sim = DcSim::start();
    let papi = sim.papi();
    papi.ping().send().await.unwrap();
    let one = papi.list_packages().name("sdc_1024").send().await.unwrap();
    assert_eq!(papi_client::resource_count(&one), Some(1));
    let pkg = one.into_inner().remove(0);
    assert_eq!(pkg.max_physical_memory, 1024);
    assert!(pkg.active);

    let sdc = papi.list_packages().name("sdc_*").send().await.unwrap();
    let count = papi_client::resource_count(&sdc).unwrap();
    assert!(count >= 2);
    assert_eq!(sdc.len() as u64, count);
    let page = papi
        .list_packages()
        .name("sdc_*")
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(
        papi_client::resource_count(&page),
        Some(count),
        "count covers all pages"
    );
    let inactive = papi.list_packages().active(false).send().await.unwrap();
    assert!(inactive.is_empty());

    let got = papi.get_package().uuid(pkg.uuid).send().await.unwrap();
    assert_eq!(got.into_inner(), pkg);
    let (status, code, _) = rest_error(
        papi.get_package()
            .uuid(Uuid::new_v4())
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (404, "ResourceNotFound"));
}

#[tokio::test]
async fn cnapi_has_one_headnode() {
    let sim = DcSim::start();
    let cnapi = sim.cnapi();
    cnapi.ping().send().await.unwrap();
    let hns = cnapi.list_servers().headnode(true).send().await.unwrap();
    assert_eq!(hns.len(), 1);
    let hn = &hns[0];
    assert_eq!(hn.uuid.to_string(), sim.config_value("server_uuid"));
    assert_eq!(hn.status, Some(cnapi_api::ServerStatus::Running));
    assert!(hn.sysinfo.is_none(), "sysinfo only with extras");
    assert!(
        cnapi
            .list_servers()
            .headnode(false)
            .send()
            .await
            .unwrap()
            .is_empty()
    );
    let with = cnapi.list_servers().extras("sysinfo").send().await.unwrap();
    assert!(with[0].sysinfo.is_some());

    let full = cnapi
        .get_server()
        .server_uuid(hn.uuid)
        .send()
        .await
        .unwrap();
    assert_eq!(
        full.datacenter.as_deref(),
        Some(sim.config_value("datacenter_name").as_str())
    );
    // The seeded core zones run on it.
    let vms = full.extra["vms"].as_object().unwrap();
    assert!(vms.len() >= 7, "{}", vms.len());
    let (status, code, _) = rest_error(
        cnapi
            .get_server()
            .server_uuid(Uuid::new_v4())
            .send()
            .await
            .unwrap_err(),
    );
    assert_eq!((status, code.as_str()), (404, "ResourceNotFound"));
}
