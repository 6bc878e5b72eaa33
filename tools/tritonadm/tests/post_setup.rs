//! `tritonadm post-setup triton-api` and the views, end to end: the real
//! binary against `dc-sim`, with an `imgapi-server` as the updates server
//! holding `triton-api` images that `cargo xtask image build` really
//! produced on zfs-fuse, and their origin chain.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;
mod dc;

use dc::*;
use serde_json::Value;

const TRITON_API: &str = "triton-api";

fn json(o: &std::process::Output) -> Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

/// The error is one line, and the command exited non-zero without
/// claiming success.
fn assert_one_line_failure(o: &std::process::Output) -> String {
    let err = stderr(o);
    assert!(!o.status.success(), "expected a failure: {}", stdout(o));
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(!stdout(o).contains("Done."), "{}", stdout(o));
    err
}

/// What the DC holds for triton-api: (services, instances, active VMs).
async fn counts(dc: &Dc) -> (usize, usize, usize) {
    let services = dc.services_named(TRITON_API).await;
    let mut insts = 0;
    for s in &services {
        insts += dc.instances_of(s.uuid).await.len();
    }
    let vms = dc
        .vms_aliased("triton-api0")
        .await
        .into_iter()
        .filter(|v| v.state.is_active())
        .count();
    (services.len(), insts, vms)
}

async fn the_vm(dc: &Dc) -> vmapi_api::Vm {
    let mut vms: Vec<_> = dc
        .vms_aliased("triton-api0")
        .await
        .into_iter()
        .filter(|v| v.state.is_active())
        .collect();
    assert_eq!(vms.len(), 1, "{vms:?}");
    vms.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_up_reruns_and_upgrades() {
    let built = built();
    let dc = Dc::start().await;
    let updates = Updates::start();
    updates.publish_with_origins(built, &built.first).await;
    let up = ["--updates-url", updates.url.as_str()];

    // -n shows the plan and changes nothing.
    let out = dc
        .tritonadm(&[&up[..], &["post-setup", "triton-api", "-n"]].concat())
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("import image"), "{}", stdout(&out));
    assert_eq!(counts(&dc).await, (0, 0, 0));

    let out = dc
        .tritonadm(&[&up[..], &["-v", "post-setup", "triton-api", "-y"]].concat())
        .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).trim_end().ends_with("Done."),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("using SAPI http://127.0.0.1:")
            && stderr(&out).contains("(from headnode config"),
        "{}",
        stderr(&out)
    );

    // The image and its whole origin chain are active in the DC's IMGAPI.
    let local = dc.imgapi();
    for u in [
        built.chain.base.uuid.parse().unwrap(),
        built.chain.origin.uuid.parse().unwrap(),
        built.first.uuid,
    ] {
        let i = local.get_image(u, None).await.unwrap().expect("imported");
        assert!(i.state.is_activated(), "{u}: {:?}", i.state);
    }
    let svc = &dc.services_named(TRITON_API).await[0];
    let params = svc.params.clone().unwrap();
    assert_eq!(params["image_uuid"], built.first.uuid.to_string());
    assert_eq!(params["networks"], serde_json::json!([{"name": "admin"}]));
    assert_eq!(params["delegate_dataset"], true);
    assert_eq!(params["tags"]["smartdc_role"], TRITON_API);
    let md = svc.metadata.clone().unwrap();
    assert_eq!(md["SERVICE_DOMAIN"], "triton-api.sim-1.sim.example.com");
    assert_eq!(counts(&dc).await, (1, 1, 1));
    let vm = the_vm(&dc).await;
    assert_eq!(vm.state, vmapi_api::VmState::Running);
    assert_eq!(vm.image_uuid, Some(built.first.uuid));

    // The views show it.
    let out = dc.tritonadm(&["services"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(table.starts_with("TYPE"), "{table}");
    let row = table
        .lines()
        .find(|l| l.contains(" triton-api "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains(&built.first.uuid.to_string()), "{row}");
    assert!(row.trim_end().ends_with(" 1"), "{row}");
    let out = dc
        .tritonadm(&["instances", "--service", "triton-api", "--json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json(&out);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["alias"], "triton-api0");
    assert_eq!(rows[0]["state"], "running");
    assert_eq!(rows[0]["version"], built.first.version.as_str());
    let out = dc.tritonadm(&["instances"]).await;
    let table = stdout(&out);
    assert!(
        table
            .lines()
            .any(|l| l.contains("triton-api0") && l.contains("running")),
        "{table}"
    );

    // A second run finds everything in place and changes nothing.
    let before = serde_json::to_value(dc.services_named(TRITON_API).await).unwrap();
    let out = dc
        .tritonadm(&[&up[..], &["post-setup", "triton-api", "-y"]].concat())
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("triton-api is already set up"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("Done."), "{}", stdout(&out));
    assert_eq!(
        serde_json::to_value(dc.services_named(TRITON_API).await).unwrap(),
        before
    );
    assert_eq!(counts(&dc).await, (1, 1, 1));

    // A newer build is published: avail shows it, latest upgrades to it.
    updates
        .publish(&built.second.manifest, &built.second.file)
        .await;
    let out = dc
        .tritonadm(&[&up[..], &["avail", "triton-api", "--json"]].concat())
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json(&out);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["image"], built.second.uuid.to_string());
    assert_eq!(rows[0]["current_image"], built.first.uuid.to_string());
    // The other core services' images are not in the sim's IMGAPI: shown
    // as such, and the listing still works.
    let out = dc.tritonadm(&[&up[..], &["avail"]].concat()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&built.second.uuid.to_string()));

    let out = dc
        .tritonadm(
            &[
                &up[..],
                &["post-setup", "triton-api", "--image", "latest", "-y"],
            ]
            .concat(),
        )
        .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("upgrade instance"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).trim_end().ends_with("Done."));
    let vm = the_vm(&dc).await;
    assert_eq!(vm.image_uuid, Some(built.second.uuid));
    assert_eq!(vm.state, vmapi_api::VmState::Running);
    assert_eq!(counts(&dc).await, (1, 1, 1));
    let svc = &dc.services_named(TRITON_API).await[0];
    assert_eq!(
        svc.params.as_ref().unwrap()["image_uuid"],
        built.second.uuid.to_string()
    );
    let out = dc
        .tritonadm(&[&up[..], &["avail", "triton-api", "--json"]].concat())
        .await;
    assert_eq!(json(&out), serde_json::json!([]));

    // common-external-nics gives triton-api0 exactly one external NIC.
    for _ in 0..2 {
        let out = dc.tritonadm(&["post-setup", "common-external-nics"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(external_nics(&the_vm(&dc).await), 1);
        assert_eq!(
            external_networks(&dc.services_named(TRITON_API).await[0]),
            1
        );
    }

    updates.stop().await;
    dc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_works_offline_and_latest_offline_fails_with_a_hint() {
    let built = built();
    let dc = Dc::start().await;
    let updates = Updates::start();
    updates.publish_with_origins(built, &built.first).await;
    // The image reached the DC earlier (an import, with its origins).
    let source = format!("{}?channel=dev", updates.url);
    let out = dc
        .tritonadm(&[
            "image",
            "import-remote",
            &built.first.uuid.to_string(),
            "--source",
            &source,
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let url = updates.url.clone();
    updates.stop().await;

    let out = dc
        .tritonadm(&["--updates-url", &url, "post-setup", "triton-api", "-y"])
        .await;
    let err = assert_one_line_failure(&out);
    assert!(
        err.contains("updates server unreachable: use --image current"),
        "{err}"
    );
    assert_eq!(counts(&dc).await, (0, 0, 0));

    let out = dc
        .tritonadm(&[
            "--updates-url",
            &url,
            "post-setup",
            "triton-api",
            "--image",
            "current",
            "-y",
        ])
        .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert_eq!(counts(&dc).await, (1, 1, 1));
    assert_eq!(the_vm(&dc).await.image_uuid, Some(built.first.uuid));
    dc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_fail_in_one_line_and_a_rerun_completes() {
    let built = built();
    let dc = Dc::start().await;
    let updates = Updates::start();
    updates.publish_with_origins(built, &built.first).await;

    // IMGAPI: the DC's IMGAPI loses its download from the updates server
    // midway through the image (a reset connection), and answers
    // AdminImportRemoteImage with 503 RemoteSourceError.
    let upstream: std::net::SocketAddr = updates.url.trim_start_matches("http://").parse().unwrap();
    let proxy = fault_proxy::FaultProxy::start(upstream).unwrap();
    let small: u64 = [&built.chain.base.file, &built.chain.origin.file]
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let image_size = std::fs::metadata(&built.first.file).unwrap().len();
    let cut = small + 256 * 1024;
    assert!(image_size > 2 * 256 * 1024, "image of {image_size} bytes");
    proxy.arm(
        fault_proxy::Direction::Down,
        cut,
        fault_proxy::Action::Reset,
    );
    let via_proxy = [
        "--updates-url",
        &proxy.url(),
        "post-setup",
        "triton-api",
        "-y",
    ];
    let out = dc.tritonadm(&via_proxy).await;
    let err = assert_one_line_failure(&out);
    assert!(
        err.contains("IMGAPI") && err.contains("AdminImportRemoteImage") && err.contains("503"),
        "{err}"
    );
    assert_eq!(proxy.fired(), 1);
    assert_eq!(counts(&dc).await, (0, 0, 0));

    // SAPI: CreateInstance answers 500 once.
    dc.fault(serde_json::json!({
        "service": "sapi", "method": "POST", "path": "/instances", "status": 500,
        "message": "injected"
    }));
    let out = dc.tritonadm(&via_proxy).await;
    let err = assert_one_line_failure(&out);
    assert!(
        err.contains("SAPI CreateInstance") && err.contains("500") && err.contains("injected"),
        "{err}"
    );
    assert_eq!(counts(&dc).await, (1, 0, 0));

    // VMAPI: the provision job fails; its message is reported, not its JSON.
    dc.fail_next_provision("no capacity on the headnode");
    let out = dc.tritonadm(&via_proxy).await;
    let err = assert_one_line_failure(&out);
    assert!(err.contains("no capacity on the headnode"), "{err}");
    assert!(!err.contains("chain_results"), "{err}");
    assert_eq!(counts(&dc).await, (1, 0, 0));

    // With the faults spent, a rerun completes, without duplicates.
    let out = dc.tritonadm(&via_proxy).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).trim_end().ends_with("Done."));
    assert_eq!(counts(&dc).await, (1, 1, 1));
    assert_eq!(the_vm(&dc).await.image_uuid, Some(built.first.uuid));

    drop(proxy);
    updates.stop().await;
    dc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_application_key_refuses_before_anything_is_created() {
    let dc = Dc::start().await;
    // An sdc application without dns_domain (edited in the sim's state).
    dc.sim
        .sim
        .write(|s| {
            for app in s.applications.iter_mut() {
                if let Some(Value::Object(md)) = app.get_mut("metadata") {
                    md.remove("dns_domain");
                }
            }
            Ok(())
        })
        .await
        .unwrap();
    let out = dc
        .tritonadm(&[
            "--updates-url",
            "http://127.0.0.1:9",
            "post-setup",
            "triton-api",
            "-y",
        ])
        .await;
    let err = assert_one_line_failure(&out);
    assert!(
        err.contains("lacks a key that triton-api needs: dns_domain"),
        "{err}"
    );
    assert_eq!(counts(&dc).await, (0, 0, 0));
    let images = dc
        .imgapi()
        .list_images(None, imgapi_api::StateFilter::All, None)
        .await
        .unwrap();
    assert!(images.is_empty(), "{images:?}");
    dc.close().await;
}

fn external_nics(vm: &vmapi_api::Vm) -> usize {
    vm.nics
        .iter()
        .filter(|n| n.nic_tag.as_deref() == Some("external"))
        .count()
}

fn external_networks(svc: &sapi_api::Service) -> usize {
    svc.params.as_ref().unwrap()["networks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["name"] == "external" || *n == "external")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn common_external_nics_adds_one_each_and_is_idempotent() {
    let dc = Dc::start().await;
    // The seed's adminui has its external NIC; imgapi loses its own.
    dc.sim
        .sim
        .write(|s| {
            for vm in s.vms.iter_mut() {
                if vm.get("alias") == Some(&Value::from("imgapi0"))
                    && let Some(Value::Array(nics)) = vm.get_mut("nics")
                {
                    nics.retain(|n| n["nic_tag"] != "external");
                }
            }
            for svc in s.services.iter_mut() {
                if svc.get("name") == Some(&Value::from("imgapi"))
                    && let Some(Value::Array(nets)) =
                        svc.get_mut("params").and_then(|p| p.get_mut("networks"))
                {
                    nets.retain(|n| n["name"] != "external" && *n != "external");
                }
            }
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(external_nics(&dc.vms_aliased("imgapi0").await[0]), 0);

    let out = dc.tritonadm(&["post-setup", "common-external-nics"]).await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Added 1 external NIC(s)"),
        "{}",
        stdout(&out)
    );
    for alias in ["imgapi0", "adminui0"] {
        let vms = dc.vms_aliased(alias).await;
        assert_eq!(vms.len(), 1);
        assert_eq!(external_nics(&vms[0]), 1, "{alias}: {:?}", vms[0].nics);
    }
    for name in ["imgapi", "adminui"] {
        assert_eq!(external_networks(&dc.services_named(name).await[0]), 1);
    }

    let out = dc.tritonadm(&["post-setup", "common-external-nics"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Added 0 external NIC(s)"),
        "{}",
        stdout(&out)
    );
    for alias in ["imgapi0", "adminui0"] {
        assert_eq!(external_nics(&dc.vms_aliased(alias).await[0]), 1);
    }
    assert_eq!(external_networks(&dc.services_named("imgapi").await[0]), 1);
    dc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_fail_on_api_errors_and_show_missing_vms() {
    let dc = Dc::start().await;
    // One VMAPI listing for all VMs, and a failure of it is an error.
    dc.fault(serde_json::json!({
        "service": "vmapi", "method": "GET", "path": "/vms", "status": 500, "count": 1
    }));
    let out = dc.tritonadm(&["instances"]).await;
    let err = assert_one_line_failure(&out);
    assert!(
        err.contains("VMAPI ListVms") && err.contains("500"),
        "{err}"
    );

    // A VM VMAPI does not know shows as missing.
    dc.sim
        .sim
        .write(|s| {
            s.vms
                .retain(|v| v.get("alias") != Some(&Value::from("adminui0")));
            Ok(())
        })
        .await
        .unwrap();
    let out = dc.tritonadm(&["instances", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json(&out);
    let adminui = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "adminui")
        .unwrap();
    assert_eq!(adminui["state"], "missing");
    let napi = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "napi")
        .unwrap();
    assert_eq!(napi["state"], "running");

    // A brief outage (503 twice) is retried with backoff; a lasting one
    // is reported after a bounded number of tries.
    dc.fault(serde_json::json!({
        "service": "sapi", "method": "GET", "path": "/services", "status": 503, "count": 2
    }));
    let out = dc.tritonadm(&["services", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out).as_array().unwrap().len(), 7);
    dc.fault(serde_json::json!({
        "service": "sapi", "method": "GET", "path": "/services", "status": 503, "count": 100
    }));
    let out = dc.tritonadm(&["services"]).await;
    let err = assert_one_line_failure(&out);
    assert!(
        err.contains("SAPI ListServices") && err.contains("503"),
        "{err}"
    );
    dc.sim.sim.faults.clear();

    // dc-maint status: off until cloudapi is read-only.
    let out = dc.tritonadm(&["dc-maint", "status", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["maint"], false);
    let sdc = dc
        .sapi()
        .list_applications()
        .name("sdc")
        .send()
        .await
        .unwrap()
        .into_inner()
        .remove(0);
    let mut md = serde_json::Map::new();
    md.insert("CLOUDAPI_READONLY".into(), true.into());
    dc.sapi()
        .create_service()
        .body(sapi_api::CreateServiceBody {
            metadata: Some(md),
            ..sapi_api::CreateServiceBody::new("cloudapi", sdc.uuid)
        })
        .send()
        .await
        .unwrap();
    let out = dc.tritonadm(&["dc-maint", "status"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("DC maintenance: on\n"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("cloudapi: read-only"),
        "{}",
        stdout(&out)
    );

    // avail: adminui's image is not in the sim's IMGAPI; a build of it on
    // the updates server is still offered, marked, and nothing breaks.
    let updates = Updates::start();
    let tmp = tempfile::tempdir().unwrap();
    let img = common::make_image(tmp.path(), "adminui", None);
    updates.publish(&img.manifest, &img.file).await;
    let out = dc
        .tritonadm(&["--updates-url", &updates.url, "avail", "--json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json(&out);
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["service"], "adminui");
    assert_eq!(rows[0]["image"], img.uuid.to_string());
    assert_eq!(rows[0]["current_missing"], true);
    let out = dc
        .tritonadm(&["--updates-url", &updates.url, "avail"])
        .await;
    assert!(
        stdout(&out).contains("(missing from IMGAPI)"),
        "{}",
        stdout(&out)
    );
    updates.stop().await;
    dc.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_left_unactivated_is_completed_by_a_rerun() {
    let built = built();
    let dc = Dc::start().await;
    let updates = Updates::start();
    updates.publish_with_origins(built, &built.first).await;
    // An earlier run got the origins in and the image's manifest, not its
    // file: the image sits unactivated in the DC's IMGAPI.
    let source = format!("{}?channel=dev", updates.url);
    let out = dc
        .tritonadm(&[
            "image",
            "import-remote",
            dc::zfs_fixture::TRITON_ORIGIN,
            "--source",
            &source,
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&built.first.manifest).unwrap()).unwrap();
    let local = dc.imgapi();
    let left = local
        .import_manifest(built.first.uuid, None, &manifest)
        .await
        .unwrap();
    assert!(!left.state.is_activated(), "{:?}", left.state);

    let out = dc
        .tritonadm(&[
            "--updates-url",
            &updates.url,
            "post-setup",
            "triton-api",
            "-y",
        ])
        .await;
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("left unactivated"),
        "{}",
        stdout(&out)
    );
    let i = local
        .get_image(built.first.uuid, None)
        .await
        .unwrap()
        .unwrap();
    assert!(i.state.is_activated(), "{:?}", i.state);
    assert_eq!(counts(&dc).await, (1, 1, 1));
    updates.stop().await;
    dc.close().await;
}
