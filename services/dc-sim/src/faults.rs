//! Fault injection: rules set through the admin API (its own port, away
//! from the simulated services' paths) that make the next N matching
//! requests fail or wait, or the next provision jobs fail.

use std::sync::Mutex;
use std::time::Duration;

use dropshot::ErrorStatusCode;
use restify_error::RestError;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One rule: the next `count` requests to `service` (any service when
/// absent) with this method and path are delayed by `delay_ms`, then
/// answered with `status` (when given) instead of being served.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// `sapi`, `vmapi`, `napi`, `papi` or `cnapi`; all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// HTTP method, any case.
    pub method: String,
    /// The request path without its query; a trailing `*` matches any
    /// path with that prefix.
    pub path: String,
    #[serde(default = "one")]
    pub count: u32,
    /// Answer with this status (and a restify body) instead of serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Restify code of that answer; by default the one for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Wait this long before answering (or serving, without `status`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
}

fn one() -> u32 {
    1
}

/// The next `count` provision jobs fail with `message`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionFault {
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default = "default_provision_message")]
    pub message: String,
}

fn default_provision_message() -> String {
    "injected provision failure (dc-sim fault injection)".to_string()
}

/// What is armed right now.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Armed {
    pub requests: Vec<Fault>,
    pub provisions: Vec<ProvisionFault>,
}

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("status: {0} is not an HTTP error status (expected 400-599)")]
    Status(u16),
    #[error("count: must be at least 1")]
    Count,
    #[error("method: {0:?} is not an HTTP method")]
    Method(String),
    #[error("path: {0:?} must start with /")]
    Path(String),
    #[error("service: {0:?} is not one of sapi, vmapi, napi, papi, cnapi")]
    Service(String),
}

pub const SERVICES: &[&str] = &["sapi", "vmapi", "napi", "papi", "cnapi"];

#[derive(Default)]
pub struct Faults {
    armed: Mutex<Armed>,
}

impl Faults {
    pub fn add(&self, fault: Fault) -> Result<(), FaultError> {
        if fault.count == 0 {
            return Err(FaultError::Count);
        }
        if let Some(s) = fault.status
            && !(400..=599).contains(&s)
        {
            return Err(FaultError::Status(s));
        }
        if http::Method::from_bytes(fault.method.to_ascii_uppercase().as_bytes()).is_err() {
            return Err(FaultError::Method(fault.method));
        }
        if !fault.path.starts_with('/') {
            return Err(FaultError::Path(fault.path));
        }
        if let Some(s) = &fault.service
            && !SERVICES.contains(&s.as_str())
        {
            return Err(FaultError::Service(s.clone()));
        }
        self.lock().requests.push(fault);
        Ok(())
    }

    pub fn add_provision(&self, fault: ProvisionFault) -> Result<(), FaultError> {
        if fault.count == 0 {
            return Err(FaultError::Count);
        }
        self.lock().provisions.push(fault);
        Ok(())
    }

    pub fn armed(&self) -> Armed {
        self.lock().clone()
    }

    pub fn clear(&self) {
        *self.lock() = Armed::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Armed> {
        // A panic while holding this lock cannot leave the rules
        // half-updated (every change is one push or decrement).
        self.armed.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Consume the first rule matching this request, if any: wait its
    /// delay, then fail with its status.
    pub async fn check(&self, service: &str, method: &str, path: &str) -> Result<(), RestError> {
        let hit = {
            let mut armed = self.lock();
            let found = armed.requests.iter().position(|f| {
                f.service.as_deref().is_none_or(|s| s == service)
                    && f.method.eq_ignore_ascii_case(method)
                    && match f.path.strip_suffix('*') {
                        Some(prefix) => path.starts_with(prefix),
                        None => path == f.path,
                    }
            });
            found.map(|i| {
                let f = armed.requests[i].clone();
                armed.requests[i].count -= 1;
                if armed.requests[i].count == 0 {
                    armed.requests.remove(i);
                }
                f
            })
        };
        let Some(f) = hit else { return Ok(()) };
        if let Some(ms) = f.delay_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        match f.status {
            None => Ok(()),
            Some(status) => {
                let status = ErrorStatusCode::from_u16(status)
                    .map_err(|e| RestError::internal(e.to_string()))?;
                let code = f
                    .code
                    .unwrap_or_else(|| restify_error::code_of_status(status.as_u16()).to_string());
                let message = f
                    .message
                    .unwrap_or_else(|| format!("injected fault: {method} {path}"));
                Err(RestError::new(status, &code, message))
            }
        }
    }

    /// Whether the provision job starting now must fail, and why.
    pub fn take_provision_failure(&self) -> Option<String> {
        let mut armed = self.lock();
        let first = armed.provisions.first_mut()?;
        let message = first.message.clone();
        first.count -= 1;
        if first.count == 0 {
            armed.provisions.remove(0);
        }
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(json: serde_json::Value) -> Fault {
        serde_json::from_value(json).unwrap()
    }

    #[tokio::test]
    async fn rules_match_method_path_and_service_and_run_out() {
        let f = Faults::default();
        f.add(fault(serde_json::json!({
            "service": "sapi", "method": "get", "path": "/services", "count": 2, "status": 503
        })))
        .unwrap();
        assert!(f.check("vmapi", "GET", "/services").await.is_ok());
        assert!(f.check("sapi", "POST", "/services").await.is_ok());
        assert!(f.check("sapi", "GET", "/services/x").await.is_ok());
        let e = f.check("sapi", "GET", "/services").await.unwrap_err();
        assert_eq!(e.status().as_u16(), 503);
        assert_eq!(e.code, "ServiceUnavailableError");
        assert!(f.check("sapi", "GET", "/services").await.is_err());
        assert!(f.check("sapi", "GET", "/services").await.is_ok());
    }

    #[tokio::test]
    async fn prefix_rules_and_bad_rules() {
        let f = Faults::default();
        f.add(fault(serde_json::json!({
            "method": "GET", "path": "/vms/*", "status": 500, "code": "Boom"
        })))
        .unwrap();
        let e = f.check("vmapi", "GET", "/vms/123").await.unwrap_err();
        assert_eq!((e.code.as_str(), e.status().as_u16()), ("Boom", 500));
        for (bad, want) in [
            (
                serde_json::json!({"method": "GET", "path": "/", "status": 200}),
                "status",
            ),
            (
                serde_json::json!({"method": "GET", "path": "/", "count": 0}),
                "count",
            ),
            (serde_json::json!({"method": "G T", "path": "/"}), "method"),
            (serde_json::json!({"method": "GET", "path": "x"}), "path"),
            (
                serde_json::json!({"method": "GET", "path": "/", "service": "ufds"}),
                "service",
            ),
        ] {
            let e = f.add(fault(bad)).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
        assert!(f.armed().requests.is_empty());
    }

    #[test]
    fn provision_failures_count_down() {
        let f = Faults::default();
        f.add_provision(ProvisionFault {
            count: 2,
            message: "no".into(),
        })
        .unwrap();
        assert_eq!(f.take_provision_failure().as_deref(), Some("no"));
        assert_eq!(f.take_provision_failure().as_deref(), Some("no"));
        assert_eq!(f.take_provision_failure(), None);
    }
}
