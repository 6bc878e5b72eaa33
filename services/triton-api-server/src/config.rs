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

const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "critical"];

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
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
            // serde names a missing field in the message, not in the path.
            let message = strip_position(&inner.to_string());
            let field = match (field.as_str(), missing_field(&message)) {
                (".", Some(name)) => name,
                _ => field,
            };
            ConfigError::Field {
                path: path.to_path_buf(),
                field,
                message,
            }
        })?;
        if config.datacenter_name.trim().is_empty() {
            return Err(ConfigError::Field {
                path: path.to_path_buf(),
                field: "datacenter_name".into(),
                message: "expected a non-empty string".into(),
            });
        }
        if !LOG_LEVELS.contains(&config.log_level.as_str()) {
            return Err(ConfigError::Field {
                path: path.to_path_buf(),
                field: "log_level".into(),
                message: format!("expected one of {}", LOG_LEVELS.join(", ")),
            });
        }
        Ok(config)
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn missing_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))?;
    Some(rest.split('`').next()?.to_string())
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
