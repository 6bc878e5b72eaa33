//! What the simulated headnode knows. Records are kept as the services'
//! own JSON objects (wire format, unknown fields included); the API
//! modules turn them into the typed models of `apis/*-api` at the edge.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

pub type Obj = Map<String, Value>;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub datacenter_name: String,
    pub dns_domain: String,
    pub admin_uuid: Uuid,
    pub headnode_uuid: Uuid,
    pub applications: Vec<Obj>,
    pub services: Vec<Obj>,
    pub instances: Vec<Obj>,
    /// SAPI configuration manifests, for `GET /configs/:uuid`.
    #[serde(default)]
    pub manifests: Vec<Obj>,
    pub vms: Vec<Obj>,
    #[serde(default)]
    pub jobs: Vec<Obj>,
    pub networks: Vec<Obj>,
    pub nics: Vec<Obj>,
    pub packages: Vec<Obj>,
    pub servers: Vec<Obj>,
}

/// A string field of a record.
pub fn str_of<'a>(o: &'a Obj, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

/// A record's `uuid`.
pub fn uuid_of(o: &Obj) -> Option<&str> {
    str_of(o, "uuid")
}

pub fn find<'a>(list: &'a [Obj], uuid: &str) -> Option<&'a Obj> {
    list.iter().find(|o| uuid_of(o) == Some(uuid))
}

pub fn find_mut<'a>(list: &'a mut [Obj], uuid: &str) -> Option<&'a mut Obj> {
    list.iter_mut().find(|o| uuid_of(o) == Some(uuid))
}

/// An object-valued field (`params`, `metadata`, ...), empty when absent.
pub fn obj_of(o: &Obj, key: &str) -> Obj {
    o.get(key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Is `s` a UUID as Triton's services spell them (lower-case, hyphens)?
pub fn is_uuid(s: &str) -> bool {
    s.len() == 36 && Uuid::parse_str(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

/// A record as the API model `T` (the shape the trait answers with).
pub fn typed<T: serde::de::DeserializeOwned>(o: &Obj) -> Result<T, restify_error::RestError> {
    serde_json::from_value(Value::Object(o.clone())).map_err(|e| {
        restify_error::RestError::internal(format!(
            "stored record {} does not fit the API model: {e}",
            uuid_of(o).unwrap_or("?")
        ))
    })
}

/// An API value as a record.
pub fn to_obj<T: Serialize>(v: &T) -> Result<Obj, restify_error::RestError> {
    match serde_json::to_value(v) {
        Ok(Value::Object(o)) => Ok(o),
        Ok(other) => Err(restify_error::RestError::internal(format!(
            "expected a JSON object, got {other}"
        ))),
        Err(e) => Err(restify_error::RestError::internal(e.to_string())),
    }
}

/// Milliseconds, as the Node.js services write dates.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_spelling() {
        assert!(is_uuid("930896af-bf8c-48d4-885c-6573a94b1853"));
        assert!(!is_uuid("930896AF-BF8C-48D4-885C-6573A94B1853"));
        assert!(!is_uuid("930896afbf8c48d4885c6573a94b1853"));
        assert!(!is_uuid("not-a-uuid"));
    }
}
