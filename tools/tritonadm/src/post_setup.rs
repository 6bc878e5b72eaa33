//! `tritonadm post-setup triton-api` and `post-setup common-external-nics`.
//!
//! post-setup is gather → plan → show → confirm → execute. Gathering only
//! reads; the plan lists each change; executing stops at the first failure
//! with one line naming the API, the call and the cause. A rerun gathers
//! again, so whatever an earlier run finished is not done twice.

use std::io::IsTerminal as _;
use std::path::Path;
use std::time::Duration;

use imgapi_api::{Image, StateFilter};
use sapi_api::{Application, CreateInstanceBody, CreateServiceBody, Instance, Service, UpdateBody};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;
use vmapi_api::{NetworkRef, NetworkSpec, VmAction, VmActionBody, VmState};

use crate::dc::{self, Dc};
use crate::imgapi::{ConnectOptions, Imgapi};
use crate::import::{ImportOptions, import_remote_image};
use crate::target::Api;
use crate::views;
use crate::{Error, Result};

/// A SAPI service definition (`manifests/<name>.json`): what post-setup
/// creates, as data.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDefinition {
    pub name: String,
    /// The image's `name` in IMGAPI.
    pub image_name: String,
    /// The PAPI package whose UUID is the service's `billing_id`.
    pub package: String,
    pub instance_alias: String,
    /// Keys the `sdc` application's metadata must have: the image's
    /// templates and `metadata` below use them.
    pub application_metadata: Vec<String>,
    pub params: Map<String, Value>,
    /// Values may name application keys as `{{key}}`.
    pub metadata: Map<String, Value>,
}

/// The triton-api service definition this tritonadm was built with.
pub const TRITON_API: &str = include_str!("../../../manifests/triton-api.json");

impl ServiceDefinition {
    pub fn parse(what: &str, text: &str) -> Result<ServiceDefinition> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de)
            .map_err(|e| Error::Input(format!("{what}: {}: {}", e.path(), e.inner())))
    }

    pub fn load(path: &Path) -> Result<ServiceDefinition> {
        let text = std::fs::read_to_string(path).map_err(|err| Error::Io {
            path: path.to_path_buf(),
            err,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The declared application keys the `sdc` application lacks.
    pub fn missing_application_keys(&self, app: &Application) -> Vec<String> {
        self.application_metadata
            .iter()
            .filter(|k| {
                app.metadata
                    .as_ref()
                    .and_then(|m| m.get(k.as_str()))
                    .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
            })
            .cloned()
            .collect()
    }

    /// The service's metadata with each `{{key}}` replaced by the
    /// application's value.
    pub fn render_metadata(&self, app: &Application) -> Result<Map<String, Value>> {
        let app_md = app.metadata.clone().unwrap_or_default();
        let mut out = Map::new();
        for (k, v) in &self.metadata {
            let v = match v {
                Value::String(s) => {
                    let mut s = s.clone();
                    for key in &self.application_metadata {
                        if let Some(val) = app_md.get(key).and_then(Value::as_str) {
                            s = s.replace(&format!("{{{{{key}}}}}"), val);
                        }
                    }
                    if s.contains("{{") {
                        return Err(Error::Input(format!(
                            "service definition {}: metadata.{k}: {s:?} names a key that \
                             is not in application_metadata",
                            self.name
                        )));
                    }
                    Value::String(s)
                }
                other => other.clone(),
            };
            out.insert(k.clone(), v);
        }
        Ok(out)
    }
}

/// Which image to set the service up with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageChoice {
    /// The newest on the updates server, in the channel.
    Latest,
    /// The newest already in the DC's IMGAPI (no updates server needed).
    Current,
    Uuid(Uuid),
}

impl std::str::FromStr for ImageChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "latest" => Ok(ImageChoice::Latest),
            "current" => Ok(ImageChoice::Current),
            u => u
                .parse()
                .map(ImageChoice::Uuid)
                .map_err(|_| format!("expected latest, current or an image UUID, got {u:?}")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PostSetupOptions {
    pub image: ImageChoice,
    pub channel: Option<String>,
    pub server: Option<Uuid>,
    /// The updates server as given by `--updates-url` and by `UPDATES_URL`.
    pub updates_url: (Option<String>, Option<String>),
    /// TLS options for the updates server.
    pub updates_connect: ConnectOptions,
    pub dry_run: bool,
    pub yes: bool,
    pub verbose: bool,
}

/// What the DC has, as gathered.
struct Gathered {
    app: Application,
    billing_id: Uuid,
    server: Uuid,
    service: Option<Service>,
    instances: Vec<(Instance, Option<vmapi_api::Vm>)>,
    image: Image,
    /// Where the image comes from when the DC lacks it or has it
    /// unactivated: (source URL with channel, channel).
    import_from: Option<String>,
    /// The image is in the DC's IMGAPI but not active.
    local_unactivated: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Import { image: Uuid, version: String },
    CreateService,
    UpdateServiceImage { from: Option<Uuid> },
    CreateInstance,
    Upgrade { instance: Uuid, from: Option<Uuid> },
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    AlreadySetUp,
    DryRun,
    Done,
}

fn hint(e: Error, hint: &str) -> Error {
    match e {
        Error::Api { message, status } => Error::Api {
            message: format!("{message} ({hint})"),
            status,
        },
        other => Error::Other(format!("{other} ({hint})")),
    }
}

/// An updates server failure, named; when the server did not answer at
/// all, with the offline way out.
fn updates_error(e: Error) -> Error {
    match dc::naming("updates server")(e) {
        e @ Error::Api { status: None, .. } => hint(
            e,
            "updates server unreachable: use --image current to install what is in the \
             DC's IMGAPI",
        ),
        e => e,
    }
}

/// The newest image by `published_at`.
fn newest(mut images: Vec<Image>) -> Option<Image> {
    images.sort_by_key(|a| a.published_at);
    images.pop()
}

fn updates_source(url: &str, channel: Option<&str>) -> String {
    match channel {
        Some(c) => format!("{url}?channel={c}"),
        None => url.to_string(),
    }
}

async fn gather(dc: &Dc, def: &ServiceDefinition, opts: &PostSetupOptions) -> Result<Gathered> {
    let app = views::sdc_application(dc).await?;
    let missing = def.missing_application_keys(&app);
    if !missing.is_empty() {
        return Err(Error::Other(format!(
            "the sdc application's metadata lacks {} that {} needs: {}; nothing was changed \
             (set them with sapiadm update <sdc app uuid> metadata.<key>=<value>)",
            if missing.len() == 1 { "a key" } else { "keys" },
            def.name,
            missing.join(", ")
        )));
    }

    let papi_url = dc.url(Api::Papi)?;
    let papi = dc.papi()?;
    let packages = dc::read(Api::Papi, "ListPackages", &papi_url, || {
        papi.list_packages().name(&def.package).send()
    })
    .await?;
    let active: Vec<_> = packages.iter().filter(|p| p.active).collect();
    let billing_id = match active.as_slice() {
        [p] => p.uuid,
        [] => {
            return Err(Error::Other(format!(
                "PAPI at {papi_url} has no active package {}: core services need it",
                def.package
            )));
        }
        _ => {
            return Err(Error::Other(format!(
                "PAPI at {papi_url} has {} active packages named {}; expected exactly one",
                active.len(),
                def.package
            )));
        }
    };

    let server = match opts.server {
        Some(s) => s,
        None => headnode(dc).await?,
    };

    let sapi_url = dc.url(Api::Sapi)?;
    let sapi = dc.sapi()?;
    let services = dc::read(Api::Sapi, "ListServices", &sapi_url, || {
        sapi.list_services()
            .name(&def.name)
            .application_uuid(app.uuid)
            .send()
    })
    .await?;
    if services.len() > 1 {
        return Err(Error::Other(format!(
            "SAPI at {sapi_url} has {} services named {}; expected at most one",
            services.len(),
            def.name
        )));
    }
    let service = services.into_iter().next();
    let mut instances = Vec::new();
    if let Some(s) = &service {
        let vmapi_url = dc.url(Api::Vmapi)?;
        let vmapi = dc.vmapi()?;
        for inst in views::list_instances(dc, Some(s.uuid)).await? {
            let vm = dc::read_optional(Api::Vmapi, "GetVm", &vmapi_url, || {
                vmapi.get_vm().uuid(inst.uuid.to_string()).send()
            })
            .await?;
            instances.push((inst, vm));
        }
    }

    let (image, import_from, local_unactivated) = choose_image(dc, def, opts, &app).await?;
    Ok(Gathered {
        app,
        billing_id,
        server,
        service,
        instances,
        image,
        import_from,
        local_unactivated,
    })
}

/// `server_uuid` from the headnode config, else CNAPI's one headnode.
async fn headnode(dc: &Dc) -> Result<Uuid> {
    if let Some(cfg) = dc.config()?
        && let Some(s) = cfg.get("server_uuid")
    {
        return s.parse().map_err(|_| {
            Error::Input(format!(
                "{}: server_uuid: {s:?} is not a UUID",
                cfg.path.display()
            ))
        });
    }
    let url = dc.url(Api::Cnapi)?;
    let cnapi = dc.cnapi()?;
    let servers = dc::read(Api::Cnapi, "ListServers headnode=true", &url, || {
        cnapi.list_servers().headnode(true).send()
    })
    .await?;
    match servers.as_slice() {
        [s] => Ok(s.uuid),
        _ => Err(Error::Other(format!(
            "CNAPI at {url} lists {} headnodes; pass --server UUID",
            servers.len()
        ))),
    }
}

async fn choose_image(
    dc: &Dc,
    def: &ServiceDefinition,
    opts: &PostSetupOptions,
    app: &Application,
) -> Result<(Image, Option<String>, bool)> {
    let local = dc.imgapi()?;
    let updates = || -> Result<(Imgapi, String, Option<String>)> {
        let (flag, env) = &opts.updates_url;
        let (url, from) = dc::updates_url(flag.as_deref(), env.as_deref(), app.metadata.as_ref());
        let channel = dc::update_channel(opts.channel.as_deref(), app.metadata.as_ref());
        if opts.verbose {
            eprintln!(
                "tritonadm: using updates server {url} (from {from}), channel {}",
                channel.as_deref().unwrap_or("(the server's default)")
            );
        }
        Ok((Imgapi::connect(&url, &opts.updates_connect)?, url, channel))
    };
    let chosen = match &opts.image {
        ImageChoice::Current => {
            let have = local
                .list_images(Some(&def.image_name), StateFilter::Active, None)
                .await
                .map_err(dc::naming("IMGAPI"))?;
            let image = newest(have).ok_or_else(|| {
                Error::Other(format!(
                    "no active {} image in the DC's IMGAPI at {}: use --image latest to \
                     import one from the updates server",
                    def.image_name,
                    local.url()
                ))
            })?;
            return Ok((image, None, false));
        }
        ImageChoice::Latest => {
            let (up, url, channel) = updates()?;
            let all = up
                .list_images(
                    Some(&def.image_name),
                    StateFilter::Active,
                    channel.as_deref(),
                )
                .await
                .map_err(updates_error)?;
            let image = newest(all).ok_or_else(|| {
                Error::Other(format!(
                    "no active {} image on the updates server {url} (channel {})",
                    def.image_name,
                    channel.as_deref().unwrap_or("default")
                ))
            })?;
            (image, updates_source(&url, channel.as_deref()))
        }
        ImageChoice::Uuid(u) => {
            if let Some(i) = local
                .get_image(*u, None)
                .await
                .map_err(dc::naming("IMGAPI"))?
                && i.state.is_activated()
            {
                return Ok((i, None, false));
            }
            let (up, url, channel) = updates()?;
            let image = up
                .get_image(*u, channel.as_deref())
                .await
                .map_err(updates_error)?
                .ok_or_else(|| {
                    Error::Other(format!(
                        "image {u} is neither in the DC's IMGAPI nor on the updates server {url}"
                    ))
                })?;
            (image, updates_source(&url, channel.as_deref()))
        }
    };
    let (image, source) = chosen;
    if image.name != def.image_name {
        return Err(Error::Input(format!(
            "--image: image {} is named {:?}, not {:?}",
            image.uuid, image.name, def.image_name
        )));
    }
    match local
        .get_image(image.uuid, None)
        .await
        .map_err(dc::naming("IMGAPI"))?
    {
        Some(i) if i.state.is_activated() => Ok((i, None, false)),
        Some(_) => Ok((image, Some(source), true)),
        None => Ok((image, Some(source), false)),
    }
}

fn plan(def: &ServiceDefinition, g: &Gathered) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    if g.import_from.is_some() {
        steps.push(Step::Import {
            image: g.image.uuid,
            version: g.image.version.clone(),
        });
    }
    let Some(service) = &g.service else {
        steps.push(Step::CreateService);
        steps.push(Step::CreateInstance);
        return Ok(steps);
    };
    let svc_image = views::image_of(service.params.as_ref());
    if svc_image != Some(g.image.uuid) {
        steps.push(Step::UpdateServiceImage { from: svc_image });
    }
    if g.instances.is_empty() {
        steps.push(Step::CreateInstance);
    }
    for (inst, vm) in &g.instances {
        let Some(vm) = vm else {
            return Err(Error::Other(format!(
                "{} instance {} has no VM in VMAPI; delete the instance in SAPI \
                 (sdc-sapi /instances/{} -X DELETE) and rerun",
                def.name, inst.uuid, inst.uuid
            )));
        };
        if vm.image_uuid != Some(g.image.uuid) {
            steps.push(Step::Upgrade {
                instance: inst.uuid,
                from: vm.image_uuid,
            });
        }
    }
    Ok(steps)
}

fn describe(def: &ServiceDefinition, g: &Gathered, step: &Step) -> String {
    let img = format!("{} ({} {})", g.image.uuid, g.image.name, g.image.version);
    match step {
        Step::Import { .. } if g.local_unactivated => {
            format!("complete the import of image {img} left unactivated by an earlier run")
        }
        Step::Import { .. } => format!(
            "import image {img} and its origins from {}",
            g.import_from.as_deref().unwrap_or("?")
        ),
        Step::CreateService => format!(
            "create SAPI service {} (image {}, package {} = {})",
            def.name, g.image.uuid, def.package, g.billing_id
        ),
        Step::UpdateServiceImage { from } => format!(
            "set service {}'s image_uuid to {} (was {})",
            def.name,
            g.image.uuid,
            from.map(|f| f.to_string())
                .unwrap_or_else(|| "unset".into())
        ),
        Step::CreateInstance => format!(
            "create instance {} on server {} and wait until its VM is running",
            def.instance_alias, g.server
        ),
        Step::Upgrade { instance, from } => format!(
            "upgrade instance {instance} from image {} to {img}",
            from.map(|f| f.to_string()).unwrap_or_else(|| "?".into())
        ),
    }
}

/// Ask on the terminal; without one, refuse unless `-y`.
fn confirm() -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Input(
            "not asking without a terminal: pass -y to go ahead, or -n to only see the plan".into(),
        ));
    }
    eprint!("Continue? [y/N] ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| Error::Other(format!("reading the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// `tritonadm post-setup <service>`.
pub async fn run(dc: &Dc, def: &ServiceDefinition, opts: &PostSetupOptions) -> Result<Outcome> {
    let g = gather(dc, def, opts).await?;
    let steps = plan(def, &g)?;
    if steps.is_empty() {
        println!(
            "{} is already set up (image {} {})",
            def.name, g.image.uuid, g.image.version
        );
        return Ok(Outcome::AlreadySetUp);
    }
    println!("This will:");
    for s in &steps {
        println!("  - {}", describe(def, &g, s));
    }
    if opts.dry_run {
        println!("Dry run: nothing changed.");
        return Ok(Outcome::DryRun);
    }
    if !opts.yes && !confirm()? {
        println!("Aborted: nothing changed.");
        return Ok(Outcome::DryRun);
    }
    let mut service = g.service.clone();
    for step in &steps {
        println!("{}", describe(def, &g, step));
        match step {
            Step::Import { .. } => import(dc, &g).await?,
            Step::CreateService => service = Some(create_service(dc, def, &g).await?),
            Step::UpdateServiceImage { .. } => {
                let s = service
                    .as_ref()
                    .ok_or_else(|| Error::Other("internal: no service to update".into()))?;
                update_service_image(dc, s, g.image.uuid).await?;
            }
            Step::CreateInstance => {
                let s = service.as_ref().ok_or_else(|| {
                    Error::Other("internal: no service to create an instance of".into())
                })?;
                let inst = create_instance(dc, def, &g, s.uuid).await?;
                let vm = wait_running(dc, inst.uuid, g.image.uuid).await?;
                println!(
                    "Instance {} ({}) is running image {}",
                    inst.uuid,
                    vm.alias.as_deref().unwrap_or(&def.instance_alias),
                    g.image.uuid
                );
            }
            Step::Upgrade { instance, .. } => {
                upgrade(dc, *instance, g.image.uuid).await?;
                wait_running(dc, *instance, g.image.uuid).await?;
                println!("Instance {instance} runs image {}", g.image.uuid);
            }
        }
    }
    println!("Done.");
    Ok(Outcome::Done)
}

async fn import(dc: &Dc, g: &Gathered) -> Result<()> {
    import_steps(dc, g).await.map_err(dc::naming("IMGAPI"))
}

async fn import_steps(dc: &Dc, g: &Gathered) -> Result<()> {
    let local = dc.imgapi()?;
    let source = g.import_from.clone().unwrap_or_default();
    if g.local_unactivated {
        // An earlier import stopped before activating: if its file is
        // there, activating finishes it; else start over cleanly.
        match local.get_image(g.image.uuid, None).await? {
            Some(i) if !i.files.is_empty() => {
                local.activate(g.image.uuid, None).await?;
                return Ok(());
            }
            Some(_) => local.delete(g.image.uuid, None).await?,
            None => {}
        }
    }
    let opts = ImportOptions {
        source,
        channel: None,
        ..Default::default()
    };
    import_remote_image(&local, g.image.uuid, &opts).await?;
    Ok(())
}

async fn create_service(dc: &Dc, def: &ServiceDefinition, g: &Gathered) -> Result<Service> {
    let mut params = def.params.clone();
    params.insert("image_uuid".into(), json!(g.image.uuid));
    params.insert("billing_id".into(), json!(g.billing_id));
    let body = CreateServiceBody {
        params: Some(params),
        metadata: Some(def.render_metadata(&g.app)?),
        service_type: Some(sapi_api::ServiceType::Vm),
        ..CreateServiceBody::new(&def.name, g.app.uuid)
    };
    let url = dc.url(Api::Sapi)?;
    let sapi = dc.sapi()?;
    dc::write(
        Api::Sapi,
        "CreateService",
        &url,
        sapi.create_service().body(body).send(),
    )
    .await
}

async fn update_service_image(dc: &Dc, service: &Service, image: Uuid) -> Result<()> {
    let mut params = Map::new();
    params.insert("image_uuid".into(), json!(image));
    let body = UpdateBody {
        action: Some(sapi_api::UpdateAction::Update),
        params: Some(params),
        ..Default::default()
    };
    let url = dc.url(Api::Sapi)?;
    let sapi = dc.sapi()?;
    dc::write(
        Api::Sapi,
        "UpdateService",
        &url,
        sapi.update_service().uuid(service.uuid).body(body).send(),
    )
    .await?;
    Ok(())
}

async fn create_instance(
    dc: &Dc,
    def: &ServiceDefinition,
    g: &Gathered,
    service: Uuid,
) -> Result<Instance> {
    let mut params = Map::new();
    params.insert("alias".into(), json!(def.instance_alias));
    params.insert("server_uuid".into(), json!(g.server));
    let body = CreateInstanceBody {
        params: Some(params),
        ..CreateInstanceBody::new(service)
    };
    let url = dc.url(Api::Sapi)?;
    let sapi = dc.sapi_provisioning()?;
    dc::write(
        Api::Sapi,
        "CreateInstance",
        &url,
        sapi.create_instance().body(body).send(),
    )
    .await
}

async fn upgrade(dc: &Dc, instance: Uuid, image: Uuid) -> Result<()> {
    let url = dc.url(Api::Sapi)?;
    let sapi = dc.sapi_provisioning()?;
    let body = sapi_api::UpgradeInstanceBody {
        image_uuid: Some(image.to_string()),
    };
    dc::write(
        Api::Sapi,
        "UpgradeInstance",
        &url,
        sapi.upgrade_instance().uuid(instance).body(body).send(),
    )
    .await?;
    Ok(())
}

/// How long a VM may take to report `running` after its job succeeded.
const RUNNING_WAIT: Duration = Duration::from_secs(120);

/// Poll VMAPI until the VM runs `image`; a failed VM ends the wait.
async fn wait_running(dc: &Dc, vm: Uuid, image: Uuid) -> Result<vmapi_api::Vm> {
    let url = dc.url(Api::Vmapi)?;
    let vmapi = dc.vmapi()?;
    let start = std::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let got = dc::read_optional(Api::Vmapi, "GetVm", &url, || {
            vmapi.get_vm().uuid(vm.to_string()).send()
        })
        .await?;
        match got {
            Some(v) if v.state == VmState::Running && v.image_uuid == Some(image) => return Ok(v),
            Some(v) if matches!(v.state, VmState::Failed | VmState::Destroyed) => {
                return Err(Error::Other(format!(
                    "VM {vm} is {} in VMAPI at {url}",
                    v.state.as_str()
                )));
            }
            _ if start.elapsed() > RUNNING_WAIT => {
                return Err(Error::Other(format!(
                    "VM {vm} is not running image {image} after {} s (VMAPI at {url})",
                    RUNNING_WAIT.as_secs()
                )));
            }
            _ => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// The services `common-external-nics` gives an external NIC.
pub const EXTERNAL_NIC_SERVICES: &[&str] = &["imgapi", "adminui", "triton-api"];
const EXTERNAL: &str = "external";

/// How long an add_nics job may take.
const JOB_WAIT: Duration = Duration::from_secs(600);

/// `tritonadm post-setup common-external-nics`: returns how many NICs it
/// added.
pub async fn common_external_nics(dc: &Dc) -> Result<usize> {
    let sapi_url = dc.url(Api::Sapi)?;
    let vmapi_url = dc.url(Api::Vmapi)?;
    let sapi = dc.sapi()?;
    let vmapi = dc.vmapi()?;
    let vms = views::all_vms(dc).await?;
    let mut added = 0;
    for name in EXTERNAL_NIC_SERVICES {
        let services = views::list_services(dc, Some(name)).await?;
        let Some(service) = services.first() else {
            println!("{name}: no such service, skipped");
            continue;
        };
        for inst in views::list_instances(dc, Some(service.uuid)).await? {
            let vm = vms.get(&inst.uuid).ok_or_else(|| {
                Error::Other(format!(
                    "{name} instance {} has no VM in VMAPI at {vmapi_url}",
                    inst.uuid
                ))
            })?;
            if vm
                .nics
                .iter()
                .any(|n| n.nic_tag.as_deref() == Some(EXTERNAL))
            {
                println!("{name}: {} already has an external NIC", inst.uuid);
                continue;
            }
            let body = VmActionBody {
                networks: Some(vec![NetworkRef::Spec(NetworkSpec {
                    name: Some(EXTERNAL.into()),
                    primary: Some(true),
                    ..Default::default()
                })]),
                ..Default::default()
            };
            let job = dc::write(
                Api::Vmapi,
                "AddNics",
                &vmapi_url,
                vmapi
                    .vm_action()
                    .uuid(inst.uuid.to_string())
                    .action(VmAction::AddNics)
                    .body(body)
                    .send(),
            )
            .await?;
            vmapi_client::wait_for_job(&vmapi, job.job_uuid, Duration::from_millis(200), JOB_WAIT)
                .await
                .map_err(|e| Error::Other(format!("VMAPI add_nics on {}: {e}", inst.uuid)))?;
            println!("{name}: added an external NIC to {}", inst.uuid);
            added += 1;
        }
        let mut networks = service
            .params
            .as_ref()
            .and_then(|p| p.get("networks"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let has = networks.iter().any(|n| {
            n.as_str() == Some(EXTERNAL) || n.get("name").and_then(Value::as_str) == Some(EXTERNAL)
        });
        if !has {
            networks.push(json!({"name": EXTERNAL, "primary": true}));
            let mut params = Map::new();
            params.insert("networks".into(), Value::Array(networks));
            let body = UpdateBody {
                action: Some(sapi_api::UpdateAction::Update),
                params: Some(params),
                ..Default::default()
            };
            dc::write(
                Api::Sapi,
                "UpdateService",
                &sapi_url,
                sapi.update_service().uuid(service.uuid).body(body).send(),
            )
            .await?;
            println!("{name}: added the external network to the service's params.networks");
        }
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_definition_parses_and_renders() {
        let def = ServiceDefinition::parse("triton-api.json", TRITON_API).unwrap();
        assert_eq!(def.name, "triton-api");
        let app: Application = serde_json::from_value(json!({
            "uuid": Uuid::nil(), "name": "sdc", "owner_uuid": Uuid::nil(),
            "metadata": {"datacenter_name": "dc1", "dns_domain": "example.com"}
        }))
        .unwrap();
        assert!(def.missing_application_keys(&app).is_empty());
        let md = def.render_metadata(&app).unwrap();
        assert_eq!(md["SERVICE_DOMAIN"], "triton-api.dc1.example.com");
        let bare: Application = serde_json::from_value(json!({
            "uuid": Uuid::nil(), "name": "sdc", "owner_uuid": Uuid::nil(),
            "metadata": {"datacenter_name": "dc1"}
        }))
        .unwrap();
        assert_eq!(def.missing_application_keys(&bare), vec!["dns_domain"]);
    }

    #[test]
    fn a_bad_definition_names_the_field() {
        let e = ServiceDefinition::parse("x.json", r#"{"name": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.json: name: "), "{e}");
    }

    #[test]
    fn image_choice() {
        assert_eq!("latest".parse::<ImageChoice>(), Ok(ImageChoice::Latest));
        assert_eq!("current".parse::<ImageChoice>(), Ok(ImageChoice::Current));
        assert!("newest".parse::<ImageChoice>().is_err());
    }
}
