//! PAPI: packages, read-only (the seed's `sdc_*` packages and whatever a
//! state file holds). Filters are exact values, `*` wildcards or JSON
//! arrays of alternatives, as PAPI reads them.

use std::sync::Arc;

use dropshot::{ApiDescription, HttpResponseHeaders, HttpResponseOk, Path, Query, RequestContext};
use papi_api::{
    GetPackageQuery, ListPackagesHeaders, ListPackagesQuery, Package, PackagePath, PapiApi,
    PingResponse,
};
use restify_error::RestError;
use serde_json::Value;

use crate::Sim;
use crate::state::{Obj, find, typed};

pub fn api() -> Result<ApiDescription<Arc<Sim>>, String> {
    papi_api::papi_api_mod::api_description::<PapiSim>().map_err(|e| e.to_string())
}

/// `pattern` as PAPI matches it: `*` stands for any run of characters.
fn glob(pattern: &str, value: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == value;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !value.starts_with(first) || value.len() < first.len() + last.len() || !value.ends_with(last)
    {
        return false;
    }
    let mut rest = &value[first.len()..value.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Does the package's `key` match the filter (a value, a glob, or a JSON
/// array of them)?
fn matches(p: &Obj, key: &str, filter: &Option<String>) -> bool {
    let Some(filter) = filter.as_deref() else {
        return true;
    };
    let alternatives = match serde_json::from_str::<Vec<String>>(filter) {
        Ok(list) if filter.trim_start().starts_with('[') => list,
        _ => vec![filter.to_string()],
    };
    let values: Vec<String> = match p.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(other) => vec![other.to_string()],
        None => vec![],
    };
    alternatives
        .iter()
        .any(|alt| values.iter().any(|v| glob(alt, v)))
}

pub enum PapiSim {}

impl PapiApi for PapiSim {
    type Context = Arc<Sim>;

    async fn ping(
        rqctx: RequestContext<Arc<Sim>>,
    ) -> Result<HttpResponseOk<PingResponse>, RestError> {
        rqctx.context().gate("papi", &rqctx).await?;
        Ok(HttpResponseOk(PingResponse {
            pid: Some(std::process::id()),
            backend: "up".into(),
            extra: Obj::new(),
        }))
    }

    async fn list_packages(
        rqctx: RequestContext<Arc<Sim>>,
        query: Query<ListPackagesQuery>,
    ) -> Result<HttpResponseHeaders<HttpResponseOk<Vec<Package>>, ListPackagesHeaders>, RestError>
    {
        let sim = rqctx.context();
        sim.gate("papi", &rqctx).await?;
        let q = query.into_inner();
        if q.filter.is_some() {
            return Err(RestError::invalid_argument(
                "filter: dc-sim does not evaluate LDAP filters; use the attribute filters",
            ));
        }
        let desc = match q.order.as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("ASC") => false,
            Some("DESC") => true,
            Some(other) => {
                return Err(RestError::invalid_argument(format!(
                    "order: expected ASC or DESC, got {other:?}"
                )));
            }
        };
        let sort = q.sort.clone().unwrap_or_else(|| "_id".into());
        let mut found: Vec<Obj> = sim
            .read(|s| {
                s.packages
                    .iter()
                    .filter(|p| matches(p, "name", &q.name))
                    .filter(|p| matches(p, "version", &q.version))
                    .filter(|p| matches(p, "owner_uuids", &q.owner_uuids))
                    .filter(|p| {
                        q.active
                            .is_none_or(|a| p.get("active") == Some(&Value::Bool(a)))
                    })
                    .cloned()
                    .collect()
            })
            .await;
        // Without a sort attribute, the order they were created in.
        if sort != "_id" {
            found.sort_by(|a, b| {
                let key = |p: &Obj| p.get(&sort).map(Value::to_string);
                key(a).cmp(&key(b))
            });
        }
        if desc {
            found.reverse();
        }
        let total = found.len() as u64;
        let page = found
            .iter()
            .skip(q.offset.unwrap_or(0) as usize)
            .take(q.limit.map_or(usize::MAX, |l| l as usize))
            .map(typed)
            .collect::<Result<Vec<Package>, _>>()?;
        Ok(HttpResponseHeaders::new(
            HttpResponseOk(page),
            ListPackagesHeaders {
                resource_count: total,
            },
        ))
    }

    async fn get_package(
        rqctx: RequestContext<Arc<Sim>>,
        path: Path<PackagePath>,
        query: Query<GetPackageQuery>,
    ) -> Result<HttpResponseOk<Package>, RestError> {
        let sim = rqctx.context();
        sim.gate("papi", &rqctx).await?;
        let uuid = path.into_inner().uuid.to_string();
        let owners = query.into_inner().owner_uuids;
        let pkg = sim
            .read(|s| find(&s.packages, &uuid).cloned())
            .await
            .filter(|p| {
                // Universal packages (no owners) are everyone's.
                owners.is_none()
                    || p.get("owner_uuids")
                        .is_none_or(|o| o.as_array().is_none_or(|a| a.is_empty()))
                    || matches(p, "owner_uuids", &owners)
            })
            .ok_or_else(|| RestError::not_found(format!("package {uuid}")))?;
        Ok(HttpResponseOk(typed(&pkg)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_papi() {
        assert!(glob("sdc_1024", "sdc_1024"));
        assert!(glob("sdc_*", "sdc_1024"));
        assert!(glob("*_1024", "sdc_1024"));
        assert!(glob("s*_*4", "sdc_1024"));
        assert!(!glob("sdc_*", "g4-highcpu"));
        assert!(!glob("sdc_1024", "sdc_10240"));
        assert!(!glob("a*a", "a"));
    }
}
