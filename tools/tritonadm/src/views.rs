//! The operator's views of the DC: `services`, `instances`, `avail` and
//! `dc-maint status`. Each gathers with as few calls as it can (one VMAPI
//! listing for every VM), fails on any API failure rather than showing
//! blanks, and returns rows for a table or `--json`.

use std::collections::BTreeMap;

use imgapi_api::{Image, StateFilter};
use sapi_api::{Application, Instance, Service};
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;
use vmapi_api::Vm;

use crate::dc::{self, Dc};
use crate::imgapi::Imgapi;
use crate::target::Api;
use crate::{Error, Result};

/// The `sdc` application: every core service hangs off it.
pub async fn sdc_application(dc: &Dc) -> Result<Application> {
    let url = dc.url(Api::Sapi)?;
    let sapi = dc.sapi()?;
    let apps = dc::read(Api::Sapi, "ListApplications name=sdc", &url, || {
        sapi.list_applications().name("sdc").send()
    })
    .await?;
    let mut apps = apps.into_iter();
    match (apps.next(), apps.next()) {
        (Some(app), None) => Ok(app),
        (None, _) => Err(Error::Other(format!(
            "SAPI at {url} has no `sdc` application: is this a set-up Triton headnode?"
        ))),
        (Some(_), Some(_)) => Err(Error::Other(format!(
            "SAPI at {url} has more than one `sdc` application; refusing to guess"
        ))),
    }
}

pub async fn list_services(dc: &Dc, name: Option<&str>) -> Result<Vec<Service>> {
    let url = dc.url(Api::Sapi)?;
    let sapi = dc.sapi()?;
    dc::read(Api::Sapi, "ListServices", &url, || {
        let mut req = sapi.list_services();
        if let Some(n) = name {
            req = req.name(n);
        }
        req.send()
    })
    .await
}

pub async fn list_instances(dc: &Dc, service: Option<Uuid>) -> Result<Vec<Instance>> {
    let url = dc.url(Api::Sapi)?;
    let sapi = dc.sapi()?;
    dc::read(Api::Sapi, "ListInstances", &url, || {
        let mut req = sapi.list_instances();
        if let Some(s) = service {
            req = req.service_uuid(s);
        }
        req.send()
    })
    .await
}

/// Every VM VMAPI has (paged, one listing), by UUID.
pub async fn all_vms(dc: &Dc) -> Result<BTreeMap<Uuid, Vm>> {
    let url = dc.url(Api::Vmapi)?;
    let vmapi = dc.vmapi()?;
    let vms = dc::read(Api::Vmapi, "ListVms", &url, || async {
        vmapi_client::list_all_vms(vmapi.list_vms(), vmapi_api::MAX_LIST_LIMIT)
            .await
            .map(|v| {
                progenitor_client::ResponseValue::new(
                    v,
                    reqwest::StatusCode::OK,
                    reqwest::header::HeaderMap::new(),
                )
            })
    })
    .await?;
    Ok(vms.into_iter().map(|v| (v.uuid, v)).collect())
}

/// Every image in the DC's IMGAPI (all states), by UUID.
pub async fn dc_images(api: &Imgapi) -> Result<BTreeMap<Uuid, Image>> {
    let images = api
        .list_images(None, StateFilter::All, None)
        .await
        .map_err(dc::naming("IMGAPI"))?;
    Ok(images.into_iter().map(|i| (i.uuid, i)).collect())
}

pub fn image_of(params: Option<&Map<String, Value>>) -> Option<Uuid> {
    params?.get("image_uuid")?.as_str()?.parse().ok()
}

fn str_field<'a>(m: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    m?.get(key)?.as_str()
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceRow {
    #[serde(rename = "type")]
    pub service_type: String,
    pub uuid: Uuid,
    pub name: String,
    pub image: Option<Uuid>,
    pub insts: usize,
}

/// `tritonadm services`.
pub async fn services(dc: &Dc) -> Result<Vec<ServiceRow>> {
    let services = list_services(dc, None).await?;
    let instances = list_instances(dc, None).await?;
    let mut rows: Vec<ServiceRow> = services
        .iter()
        .map(|s| ServiceRow {
            service_type: s
                .service_type
                .as_ref()
                .map(|t| t.as_str().to_string())
                .unwrap_or_else(|| "vm".into()),
            uuid: s.uuid,
            name: s.name.clone(),
            image: image_of(s.params.as_ref()),
            insts: instances
                .iter()
                .filter(|i| i.service_uuid == s.uuid)
                .count(),
        })
        .collect();
    rows.sort_by(|a, b| (&a.service_type, &a.name).cmp(&(&b.service_type, &b.name)));
    Ok(rows)
}

pub fn services_table(rows: &[ServiceRow]) -> String {
    let mut out = format!(
        "{:<6}  {:<36}  {:<16}  {:<36}  INSTS\n",
        "TYPE", "UUID", "NAME", "IMAGE"
    );
    for r in rows {
        out += &format!(
            "{:<6}  {:<36}  {:<16}  {:<36}  {}\n",
            r.service_type,
            r.uuid,
            r.name,
            r.image.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            r.insts
        );
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceRow {
    pub instance: Uuid,
    pub service: String,
    pub alias: Option<String>,
    /// The VM's state; `missing` when VMAPI does not know the VM.
    pub state: String,
    pub image: Option<Uuid>,
    /// The image's version; `None` when IMGAPI does not have it.
    pub version: Option<String>,
    pub server: Option<Uuid>,
}

/// `tritonadm instances [--service S]`: SAPI's instances joined with one
/// VMAPI listing and one IMGAPI listing.
pub async fn instances(dc: &Dc, service: Option<&str>) -> Result<Vec<InstanceRow>> {
    let services = list_services(dc, service).await?;
    let only = match service {
        Some(name) => {
            let s = services.first().ok_or_else(|| {
                Error::Input(format!("--service: no service named {name:?} in SAPI"))
            })?;
            Some(s.uuid)
        }
        None => None,
    };
    let insts = list_instances(dc, only).await?;
    let vms = all_vms(dc).await?;
    let images = dc_images(&dc.imgapi()?).await?;
    let names: BTreeMap<Uuid, &str> = services.iter().map(|s| (s.uuid, s.name.as_str())).collect();
    let mut rows: Vec<InstanceRow> = insts
        .iter()
        .map(|i| {
            let vm = vms.get(&i.uuid);
            let agent = i
                .service_type
                .as_ref()
                .is_some_and(|t| *t == sapi_api::ServiceType::Agent);
            let image = vm
                .and_then(|v| v.image_uuid)
                .or_else(|| image_of(i.params.as_ref()));
            InstanceRow {
                instance: i.uuid,
                service: names
                    .get(&i.service_uuid)
                    .copied()
                    .unwrap_or("?")
                    .to_string(),
                alias: vm
                    .and_then(|v| v.alias.clone())
                    .or_else(|| str_field(i.params.as_ref(), "alias").map(str::to_string)),
                state: match vm {
                    Some(v) => v.state.as_str().to_string(),
                    None if agent => "-".into(),
                    None => "missing".into(),
                },
                image,
                version: image
                    .and_then(|u| images.get(&u))
                    .map(|i| i.version.clone()),
                server: vm.and_then(|v| v.server_uuid),
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.service, &a.alias).cmp(&(&b.service, &b.alias)));
    Ok(rows)
}

pub fn instances_table(rows: &[InstanceRow]) -> String {
    let mut out = format!(
        "{:<36}  {:<16}  {:<18}  {:<12}  {:<36}  VERSION\n",
        "INSTANCE", "SERVICE", "ALIAS", "STATE", "IMAGE"
    );
    for r in rows {
        out += &format!(
            "{:<36}  {:<16}  {:<18}  {:<12}  {:<36}  {}\n",
            r.instance,
            r.service,
            r.alias.as_deref().unwrap_or("-"),
            r.state,
            r.image.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            r.version.as_deref().unwrap_or("-"),
        );
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct AvailRow {
    pub service: String,
    /// What the service runs now.
    pub current_image: Option<Uuid>,
    pub current_version: Option<String>,
    /// The current image is not in the DC's IMGAPI.
    pub current_missing: bool,
    pub image: Uuid,
    pub version: String,
    pub published_at: Option<String>,
}

/// `tritonadm avail [SERVICE]`: images on the updates server (in
/// `channel`) newer than what each service runs. A service whose image is
/// not in the DC's IMGAPI is compared by name (the service's) and marked.
pub async fn avail(
    dc: &Dc,
    updates: &Imgapi,
    channel: Option<&str>,
    service: Option<&str>,
) -> Result<Vec<AvailRow>> {
    let services = list_services(dc, service).await?;
    if let (Some(name), true) = (service, services.is_empty()) {
        return Err(Error::Input(format!("no service named {name:?} in SAPI")));
    }
    let local = dc.imgapi()?;
    let mut rows = Vec::new();
    for s in services {
        let Some(current) = image_of(s.params.as_ref()) else {
            continue;
        };
        let have = local
            .get_image(current, None)
            .await
            .map_err(dc::naming("IMGAPI"))?;
        let name = have
            .as_ref()
            .map(|i| i.name.clone())
            .unwrap_or(s.name.clone());
        let mut candidates = updates
            .list_images(Some(&name), StateFilter::Active, channel)
            .await
            .map_err(dc::naming("updates server"))?;
        candidates.retain(|c| c.uuid != current);
        candidates.sort_by_key(|a| a.published_at);
        let newer: Vec<Image> = match &have {
            Some(h) => candidates
                .into_iter()
                .filter(|c| c.published_at > h.published_at)
                .collect(),
            // Nothing to compare dates with: offer the newest.
            None => candidates.pop().into_iter().collect(),
        };
        for n in newer {
            rows.push(AvailRow {
                service: s.name.clone(),
                current_image: Some(current),
                current_version: have.as_ref().map(|h| h.version.clone()),
                current_missing: have.is_none(),
                image: n.uuid,
                version: n.version.clone(),
                published_at: n.published_at.map(|p| p.to_rfc3339()),
            });
        }
    }
    rows.sort_by(|a, b| (&a.service, &a.published_at).cmp(&(&b.service, &b.published_at)));
    Ok(rows)
}

pub fn avail_table(rows: &[AvailRow]) -> String {
    let mut out = format!(
        "{:<16}  {:<36}  {:<40}  {:<36}  VERSION\n",
        "SERVICE", "CURRENT", "CURRENT VERSION", "IMAGE"
    );
    for r in rows {
        let current_version = if r.current_missing {
            "(missing from IMGAPI)".to_string()
        } else {
            r.current_version.clone().unwrap_or_else(|| "-".into())
        };
        out += &format!(
            "{:<16}  {:<36}  {:<40}  {:<36}  {}\n",
            r.service,
            r.current_image
                .map(|i| i.to_string())
                .unwrap_or_else(|| "-".into()),
            current_version,
            r.image,
            r.version
        );
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct ReadOnly {
    pub service: String,
    pub key: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct MaintStatus {
    /// True when any of the watched services is read-only.
    pub maint: bool,
    pub message: Option<String>,
    pub eta: Option<String>,
    pub services: Vec<ReadOnly>,
}

/// The services whose `<NAME>_READONLY` metadata puts the DC in
/// maintenance, as sdcadm's dc-maint does.
const MAINT_SERVICES: &[(&str, &str)] = &[
    ("cloudapi", "CLOUDAPI_READONLY"),
    ("docker", "DOCKER_READONLY"),
];

/// `tritonadm dc-maint status`.
pub async fn maint_status(dc: &Dc) -> Result<MaintStatus> {
    let app = sdc_application(dc).await?;
    let mut services = Vec::new();
    for (name, key) in MAINT_SERVICES {
        for s in list_services(dc, Some(name)).await? {
            let readonly = s
                .metadata
                .as_ref()
                .and_then(|m| m.get(*key))
                .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
            services.push(ReadOnly {
                service: s.name.clone(),
                key: key.to_string(),
                readonly,
            });
        }
    }
    let md = app.metadata.as_ref();
    Ok(MaintStatus {
        maint: services.iter().any(|s| s.readonly),
        message: str_field(md, "DC_MAINT_MESSAGE").map(str::to_string),
        eta: str_field(md, "DC_MAINT_ETA").map(str::to_string),
        services,
    })
}

pub fn maint_text(m: &MaintStatus) -> String {
    let mut out = format!("DC maintenance: {}\n", if m.maint { "on" } else { "off" });
    if let Some(msg) = &m.message {
        out += &format!("DC maintenance message: {msg}\n");
    }
    if let Some(eta) = &m.eta {
        out += &format!("DC maintenance ETA: {eta}\n");
    }
    for s in &m.services {
        out += &format!(
            "{}: {} ({})\n",
            s.service,
            if s.readonly {
                "read-only"
            } else {
                "read-write"
            },
            s.key
        );
    }
    if m.services.is_empty() {
        out += "(no cloudapi or docker service in SAPI)\n";
    }
    out
}
