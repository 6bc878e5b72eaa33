//! The JSON config file rendered by config-agent from the image's SAPI
//! template (`sapi_manifests/triton-api/template`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub bind_address: SocketAddr,
    pub datacenter_name: String,
    pub instance_uuid: Uuid,
    pub server_uuid: Uuid,
    pub admin_ip: IpAddr,
    /// Bunyan level name; config-agent may leave it out.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

fn default_log_level() -> String {
    "info".to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // Not `source`: the cause is already in the message, and anyhow's `{:#}`
    // would print it a second time.
    #[error("{path}: cannot read config: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: field '{field}': {message}")]
    Field {
        path: PathBuf,
        field: String,
        message: String,
    },
    #[error("{path}: not valid JSON: {message}")]
    Syntax { path: PathBuf, message: String },
}

/// The accepted `log_level` names; the logger is built from the same table,
/// so a level that passes validation always starts.
pub(crate) const LOG_LEVELS: [(&str, slog::Level); 6] = [
    ("trace", slog::Level::Trace),
    ("debug", slog::Level::Debug),
    ("info", slog::Level::Info),
    ("warn", slog::Level::Warning),
    ("error", slog::Level::Error),
    ("critical", slog::Level::Critical),
];

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let field_error = |field: String, message: String| ConfigError::Field {
            path: path.to_path_buf(),
            field,
            message,
        };
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                return ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: inner.to_string(),
                };
            }
            let message = strip_position(&inner.to_string());
            // serde names a missing or unknown field in the message; the
            // path is then just the root.
            let field = match named_field(&message) {
                Some(name) if field == "." => name.to_string(),
                _ => field,
            };
            field_error(field, message)
        })?;
        if config.datacenter_name.trim().is_empty() {
            return Err(field_error(
                "datacenter_name".into(),
                "expected a non-empty string".into(),
            ));
        }
        if !LOG_LEVELS.iter().any(|(name, _)| *name == config.log_level) {
            let names: Vec<_> = LOG_LEVELS.iter().map(|(name, _)| *name).collect();
            return Err(field_error(
                "log_level".into(),
                format!("expected one of {}", names.join(", ")),
            ));
        }
        Ok(config)
    }
}

/// serde_json appends " at line L column C", which means nothing to an
/// operator once the field is named.
fn strip_position(message: &str) -> String {
    message
        .rsplit_once(" at line ")
        .map_or(message, |(head, _)| head)
        .to_string()
}

fn named_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "bind_address": "127.0.0.1:8080",
        "datacenter_name": "us-east-1",
        "instance_uuid": "0f8e7c1a-3c1e-4d0a-9f5e-1b2c3d4e5f60",
        "server_uuid": "44454c4c-5000-104d-8037-b7c04f5a5131",
        "admin_ip": "10.99.99.7"
    }"#;

    fn err(text: &str) -> String {
        Config::parse(Path::new("/etc/c.json"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_the_rendered_template() {
        let c = Config::parse(Path::new("c.json"), GOOD).unwrap();
        assert_eq!(c.bind_address.port(), 8080);
        assert_eq!(c.log_level, "info");
    }

    #[test]
    fn missing_field_is_named() {
        let text = GOOD.replace(r#""admin_ip": "10.99.99.7""#, r#""log_level": "info""#);
        assert_eq!(
            err(&text),
            "/etc/c.json: field 'admin_ip': missing field `admin_ip`"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let text = GOOD.replace("127.0.0.1:8080", "nope");
        assert!(err(&text).starts_with("/etc/c.json: field 'bind_address': "));
        let text = GOOD.replace("10.99.99.7", "10.99.99");
        assert!(err(&text).starts_with("/etc/c.json: field 'admin_ip': "));
        let text = GOOD.replace("us-east-1", " ");
        assert!(err(&text).starts_with("/etc/c.json: field 'datacenter_name': "));
        let text = GOOD.replace(r#""admin_ip""#, r#""extra": 1, "admin_ip""#);
        assert!(
            err(&text).starts_with("/etc/c.json: field 'extra': "),
            "{}",
            err(&text)
        );
        assert!(err("{").starts_with("/etc/c.json: not valid JSON"));
    }
}
