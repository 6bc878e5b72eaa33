//! Progenitor client for VMAPI, generated from `openapi/vmapi.json`, and the
//! helpers VMAPI's wire calls for: paging through ListVms and waiting for a
//! job the way the Node client does, and the resource count header.
//!
//! The object and error types are the trait crate's own (`replace`), so
//! unknown fields survive a round trip and errors print as `Code: message`.

use vmapi_api::restify_error::RestError;
use vmapi_api::{Job, Vm};

pub use vmapi_api;

progenitor::generate_api!(
    spec = "../../openapi/vmapi.json",
    interface = Builder,
    replace = {
        RestError = vmapi_api::restify_error::RestError,
        PingResponse = vmapi_api::PingResponse,
        Vm = vmapi_api::Vm,
        VmNic = vmapi_api::VmNic,
        VmState = vmapi_api::VmState,
        Job = vmapi_api::Job,
        JobExecution = vmapi_api::JobExecution,
        JobResponse = vmapi_api::JobResponse,
        ChainResult = vmapi_api::ChainResult,
        CreateVmBody = vmapi_api::CreateVmBody,
        VmActionBody = vmapi_api::VmActionBody,
        VmAction = vmapi_api::VmAction,
        NetworkRef = vmapi_api::NetworkRef,
        NetworkSpec = vmapi_api::NetworkSpec,
    },
);

/// The `x-joyent-resource-count` of a ListVms answer: how many VMs match
/// over all pages. `None` when absent or not a number.
pub fn resource_count<T>(response: &ResponseValue<T>) -> Option<u64> {
    wire_enum::count_header(response.headers(), vmapi_api::RESOURCE_COUNT_HEADER)
}

/// Every VM a ListVms request matches, fetched `page_size` at a time
/// (at most [`vmapi_api::MAX_LIST_LIMIT`]) with `offset`, until a short
/// page: what the Node client's `listVms` does. `request` carries the
/// filters; its `limit` and `offset` are overridden.
pub async fn list_all_vms(
    request: builder::ListVms<'_>,
    page_size: u32,
) -> Result<Vec<Vm>, Error<RestError>> {
    let page_size = page_size.clamp(1, vmapi_api::MAX_LIST_LIMIT);
    let mut all = Vec::new();
    loop {
        let offset = u32::try_from(all.len())
            .map_err(|_| Error::InvalidRequest(format!("more than {} VMs", u32::MAX)))?;
        let page = request
            .clone()
            .limit(page_size)
            .offset(offset)
            .send()
            .await?
            .into_inner();
        let short = page.len() < page_size as usize;
        all.extend(page);
        if short {
            return Ok(all);
        }
    }
}

/// Poll GetJob every `interval` until the job has finished, as the Node
/// client does (rather than holding one WaitJob request open for as long
/// as a provision takes), and return it if it succeeded. Fails with the
/// job's own chain_results error when it did not, and gives up after
/// `max_wait`. An error from VMAPI ends the wait at once.
pub async fn wait_for_job(
    client: &Client,
    job_uuid: uuid::Uuid,
    interval: std::time::Duration,
    max_wait: std::time::Duration,
) -> Result<Job, JobError> {
    let started = std::time::Instant::now();
    loop {
        let job = client
            .get_job()
            .job_uuid(job_uuid)
            .send()
            .await
            .map_err(|source| JobError::Api { job_uuid, source })?
            .into_inner();
        match job.execution {
            vmapi_api::JobExecution::Succeeded => return Ok(job),
            ref e if e.is_finished() => {
                return Err(JobError::Failed {
                    message: job
                        .error_message()
                        .unwrap_or_else(|| format!("job ended {e}")),
                    job: Box::new(job),
                });
            }
            _ if started.elapsed() >= max_wait => {
                return Err(JobError::TimedOut {
                    waited: started.elapsed(),
                    job: Box::new(job),
                });
            }
            _ => tokio::time::sleep(interval).await,
        }
    }
}

/// Why [`wait_for_job`] did not return a succeeded job.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// VMAPI did not answer GetJob with a job.
    #[error("reading job {job_uuid} from VMAPI: {source}")]
    Api {
        job_uuid: uuid::Uuid,
        source: Error<RestError>,
    },
    /// The job finished without succeeding; `message` is its first
    /// chain_results error.
    #[error("job {} ({}) {}: {message}", job.uuid, job.name, job.execution)]
    Failed { job: Box<Job>, message: String },
    /// The job was still unfinished after the wait allowed.
    #[error("job {} ({}) still {} after {waited:?}", job.uuid, job.name, job.execution)]
    TimedOut {
        job: Box<Job>,
        waited: std::time::Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use dropshot::{
        ApiDescription, HttpError, HttpResponseHeaders, HttpResponseOk, Path, Query, RequestContext,
    };
    use std::sync::Mutex;
    use vmapi_api::{ChainResult, JobExecution, JobPath, ListVmsHeaders, ListVmsQuery, VmState};

    /// The VMs the test server holds, and the (offset, limit) of each
    /// ListVms it answered.
    struct Fleet {
        vms: Vec<Vm>,
        pages: Mutex<Vec<(u32, u32)>>,
        polls: Mutex<u32>,
    }

    fn vm(i: u128, state: VmState) -> Vm {
        serde_json::from_value(serde_json::json!({
            "uuid": uuid::Uuid::from_u128(i),
            "owner_uuid": uuid::Uuid::nil(),
            "state": state,
        }))
        .unwrap()
    }

    /// ListVms as VMAPI pages it: `offset`, `limit` (default 1000) and the
    /// total in the count header; `state=active` honoured.
    #[dropshot::endpoint { method = GET, path = "/vms" }]
    async fn list(
        rqctx: RequestContext<Fleet>,
        query: Query<ListVmsQuery>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Vec<Vm>>, ListVmsHeaders>, HttpError> {
        let q = query.into_inner();
        let fleet = rqctx.context();
        let matching: Vec<&Vm> = fleet
            .vms
            .iter()
            .filter(|v| q.state.as_deref() != Some("active") || v.state.is_active())
            .collect();
        let offset = q.offset.unwrap_or(0);
        let limit = q.limit.unwrap_or(1000);
        fleet.pages.lock().unwrap().push((offset, limit));
        let page = matching
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|v| (*v).clone())
            .collect();
        Ok(HttpResponseHeaders::new(
            HttpResponseOk(page),
            ListVmsHeaders {
                resource_count: matching.len() as u64,
            },
        ))
    }

    /// GetJob: job 1 fails, job 2 succeeds on the third poll, job 3
    /// never finishes; each poll is counted.
    #[dropshot::endpoint { method = GET, path = "/jobs/{job_uuid}" }]
    async fn get_job(
        rqctx: RequestContext<Fleet>,
        path: Path<JobPath>,
    ) -> Result<HttpResponseOk<Job>, RestError> {
        let uuid: uuid::Uuid = path
            .into_inner()
            .job_uuid
            .parse()
            .map_err(|_| RestError::invalid_argument("job_uuid is not a UUID"))?;
        let polls = {
            let mut polls = rqctx.context().polls.lock().unwrap();
            *polls += 1;
            *polls
        };
        let (execution, error) = match uuid.as_u128() {
            1 => (
                JobExecution::Failed,
                serde_json::json!({"name": "Error", "message": "image is not active"}),
            ),
            2 if polls >= 3 => (JobExecution::Succeeded, "".into()),
            2 => (JobExecution::Running, "".into()),
            3 => (JobExecution::Queued, "".into()),
            _ => return Err(RestError::not_found(format!("job {uuid}"))),
        };
        Ok(HttpResponseOk(Job {
            uuid,
            name: format!("provision-{uuid}"),
            execution,
            params: None,
            chain_results: vec![ChainResult {
                result: "checked".into(),
                error,
                ..Default::default()
            }],
            exec_after: None,
            created_at: None,
            timeout: None,
            extra: Default::default(),
        }))
    }

    fn serve(vms: Vec<Vm>) -> (vmapi_api::restify_error::RestServer<Fleet>, Client) {
        let mut api = ApiDescription::new();
        api.register(list).unwrap();
        api.register(get_job).unwrap();
        let fleet = Fleet {
            vms,
            pages: Mutex::new(Vec::new()),
            polls: Mutex::new(0),
        };
        let server = vmapi_api::restify_error::start_loopback(api, fleet).unwrap();
        let client = Client::new(&format!("http://{}", server.local_addr()));
        (server, client)
    }

    #[tokio::test]
    async fn list_all_pages_with_offset_until_a_short_page() {
        let mut vms: Vec<Vm> = (1..=7).map(|i| vm(i, VmState::Running)).collect();
        vms.push(vm(8, VmState::Destroyed));
        vms.push(vm(9, VmState::Other("migrating".into())));
        let (server, client) = serve(vms);

        let first = client
            .list_vms()
            .state("active")
            .limit(3)
            .send()
            .await
            .unwrap();
        assert_eq!(resource_count(&first), Some(8));
        assert_eq!(first.into_inner().len(), 3);

        let all = list_all_vms(client.list_vms().state("active"), 3)
            .await
            .unwrap();
        let ids: Vec<u128> = all.iter().map(|v| v.uuid.as_u128()).collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6, 7, 9]);
        assert_eq!(all[7].state, VmState::Other("migrating".into()));
        // 8 active VMs in pages of 3: 3 + 3 + 2 (short, so the last).
        let pages = server.app_private().pages.lock().unwrap().clone();
        assert_eq!(pages[1..], [(0, 3), (3, 3), (6, 3)]);

        server.close().await.unwrap();
    }

    #[tokio::test]
    async fn an_exact_multiple_ends_on_an_empty_page() {
        let (server, client) = serve((1..=4).map(|i| vm(i, VmState::Stopped)).collect());
        let all = list_all_vms(client.list_vms(), 2).await.unwrap();
        assert_eq!(all.len(), 4);
        let pages = server.app_private().pages.lock().unwrap().clone();
        assert_eq!(pages, [(0, 2), (2, 2), (4, 2)]);
        server.close().await.unwrap();
    }

    #[tokio::test]
    async fn wait_for_job_polls_until_finished() {
        let (server, client) = serve(Vec::new());
        let tick = std::time::Duration::from_millis(1);
        let long = std::time::Duration::from_secs(600);

        let ok = wait_for_job(&client, uuid::Uuid::from_u128(2), tick, long)
            .await
            .unwrap();
        assert_eq!(ok.execution, JobExecution::Succeeded);
        assert_eq!(*server.app_private().polls.lock().unwrap(), 3);

        let err = wait_for_job(&client, uuid::Uuid::from_u128(1), tick, long)
            .await
            .unwrap_err();
        let JobError::Failed { message, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(message, "image is not active");
        assert!(
            err.to_string().contains("failed: image is not active"),
            "{err}"
        );

        let err = wait_for_job(&client, uuid::Uuid::from_u128(3), tick, tick)
            .await
            .unwrap_err();
        assert!(matches!(err, JobError::TimedOut { .. }), "{err}");
        assert!(err.to_string().contains("still queued"), "{err}");

        let err = wait_for_job(&client, uuid::Uuid::from_u128(4), tick, long)
            .await
            .unwrap_err();
        let JobError::Api {
            source: Error::ErrorResponse(body),
            ..
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(body.status().as_u16(), 404);
        assert_eq!(body.code, "ResourceNotFound");
        server.close().await.unwrap();
    }
}
