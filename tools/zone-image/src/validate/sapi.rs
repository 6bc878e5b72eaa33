//! SAPI manifests as config-agent reads them: `manifest.json` with `name`,
//! absolute `path` and optional `post_cmd`, and a hogan.js (mustache)
//! `template`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

const KNOWN_KEYS: &[&str] = &["name", "path", "post_cmd", "post_cmd_linux"];

/// Validate a `manifest.json`; the error names the field.
pub fn check_manifest(text: &str) -> Result<(), (String, String)> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ("(document)".to_string(), format!("not valid JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        (
            "(document)".to_string(),
            "expected a JSON object".to_string(),
        )
    })?;
    for k in obj.keys() {
        if !KNOWN_KEYS.contains(&k.as_str()) {
            return Err((
                k.clone(),
                format!("unknown key, expected one of {}", KNOWN_KEYS.join(", ")),
            ));
        }
    }
    match obj.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => {}
        Some(_) => return Err(("name".into(), "expected a non-empty string".into())),
        None => return Err(("name".into(), "missing; expected the service name".into())),
    }
    match obj.get("path") {
        Some(Value::String(s)) if s.starts_with('/') => {}
        Some(_) => {
            return Err((
                "path".into(),
                "expected an absolute path for the rendered config".into(),
            ));
        }
        None => {
            return Err((
                "path".into(),
                "missing; expected the absolute path config-agent writes".into(),
            ));
        }
    }
    for k in ["post_cmd", "post_cmd_linux"] {
        if let Some(v) = obj.get(k)
            && !v.is_string()
        {
            return Err((k.into(), "expected a string command".into()));
        }
    }
    Ok(())
}

/// Compile a template as mustache, as hogan.js would.
pub fn check_template(text: &str) -> Result<(), String> {
    mustache::compile_str(text)
        .map(|_| ())
        .map_err(|e| format!("does not compile as a mustache template: {e}"))
}

/// The variables a template needs: every tag outside `{{#…}}`/`{{^…}}`
/// sections (those are optional by design), in order, without repeats.
/// Call after [`check_template`]: an unbalanced template is not scanned.
pub fn required_variables(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut depth = 0usize;
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        rest = &rest[start + 2..];
        let triple = rest.starts_with('{');
        let close = if triple { "}}}" } else { "}}" };
        let Some(end) = rest.find(close) else { break };
        let tag = rest[usize::from(triple)..end].trim();
        rest = &rest[end + close.len()..];
        match tag.chars().next() {
            Some('#' | '^') => depth += 1,
            Some('/') => depth = depth.saturating_sub(1),
            // Comments, partials and delimiter changes name no variable.
            Some('!' | '>' | '=') | None => {}
            Some(_) if depth == 0 => {
                let name = tag.trim_start_matches('&').trim().to_string();
                if !name.is_empty() && name != "." && !out.contains(&name) {
                    out.push(name);
                }
            }
            Some(_) => {}
        }
    }
    out
}

/// config-agent's `auto` values (`sdc-config-agent`): fixed names, plus
/// `<TAG>_IP`/`<TAG>_IPS` for each NIC tag.
fn is_auto(name: &str) -> bool {
    let Some(key) = name.strip_prefix("auto.") else {
        return false;
    };
    matches!(
        key,
        "INSTANCE_UUID" | "ZONENAME" | "SERVER_UUID" | "DATACENTER_NAME" | "PRIMARY_IP"
    ) || key.ends_with("_IP")
        || key.ends_with("_IPS")
}

/// Where a SAPI template's variables may come from: the service
/// definition's `metadata` and its declared `application_metadata` keys
/// (`manifests/<image>.json`, which `tritonadm post-setup` registers), and
/// config-agent's `auto.*`.
#[derive(Debug, Clone)]
pub struct VariableSources {
    pub file: PathBuf,
    pub metadata: BTreeSet<String>,
    pub application: BTreeSet<String>,
}

impl VariableSources {
    /// `manifests/<name>.json` under the workspace; `Ok(None)` when the
    /// image has no service definition (nothing registers its templates).
    /// Errors are (file, field, message).
    pub fn load(
        workspace: &Path,
        name: &str,
    ) -> Result<Option<VariableSources>, (PathBuf, String, String)> {
        let file = workspace.join("manifests").join(format!("{name}.json"));
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err((file, "(document)".into(), format!("cannot read: {e}"))),
        };
        let err = |field: &str, m: String| (file.clone(), field.to_string(), m);
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| err("(document)", format!("not valid JSON: {e}")))?;
        let metadata = match v.get("metadata") {
            Some(Value::Object(m)) => m.keys().cloned().collect(),
            None => BTreeSet::new(),
            Some(_) => return Err(err("metadata", "expected an object".into())),
        };
        let application = match v.get("application_metadata") {
            Some(Value::Array(a)) => a
                .iter()
                .map(|k| {
                    k.as_str().map(str::to_string).ok_or_else(|| {
                        err(
                            "application_metadata",
                            "expected an array of key names".into(),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            None => BTreeSet::new(),
            Some(_) => {
                return Err(err(
                    "application_metadata",
                    "expected an array of key names".into(),
                ));
            }
        };
        Ok(Some(VariableSources {
            file,
            metadata,
            application,
        }))
    }

    /// Check a template's required variables; the error names the first
    /// one nothing provides.
    pub fn check(&self, text: &str) -> Result<(), String> {
        let missing: Vec<String> = required_variables(text)
            .into_iter()
            .filter(|v| {
                let top = v.split('.').next().unwrap_or(v);
                !is_auto(v) && !self.metadata.contains(top) && !self.application.contains(top)
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{{{{{}}}}} is provided by nothing: not in {}'s metadata or \
             application_metadata, and not one of config-agent's auto.* values \
             (config-agent would render it as an empty string); add it there or \
             put it inside a {{{{#...}}}} section",
            missing.join("}}, {{"),
            self.file.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests() {
        assert!(
            check_manifest(r#"{"name":"x","path":"/etc/x.json","post_cmd":"svcadm refresh x"}"#)
                .is_ok()
        );
        assert_eq!(check_manifest(r#"{"name":"x"}"#).unwrap_err().0, "path");
        assert_eq!(
            check_manifest(r#"{"name":"x","path":"rel"}"#)
                .unwrap_err()
                .0,
            "path"
        );
        assert_eq!(check_manifest(r#"{"path":"/x"}"#).unwrap_err().0, "name");
        assert_eq!(
            check_manifest(r#"{"name":"x","path":"/x","post_cmd":1}"#)
                .unwrap_err()
                .0,
            "post_cmd"
        );
        assert_eq!(
            check_manifest(r#"{"name":"x","path":"/x","pth":1}"#)
                .unwrap_err()
                .0,
            "pth"
        );
    }

    #[test]
    fn templates() {
        assert!(check_template("{{#a}}{{b}}{{/a}} {{{c}}} {{^d}}x{{/d}}").is_ok());
        assert!(check_template("{{#a}}{{b}}").is_err());
        assert!(check_template("{{#a}}{{/b}}").is_err());
    }

    #[test]
    fn variables_outside_sections() {
        let t = "{{a}} {{{b}}} {{& c }} {{#d}}{{e}}{{/d}} {{^f}}{{g}}{{/f}} {{! x}} {{a}} {{auto.ADMIN_IP}}";
        assert_eq!(required_variables(t), vec!["a", "b", "c", "auto.ADMIN_IP"]);
    }

    #[test]
    fn variables_need_a_source() {
        let sources = VariableSources {
            file: "manifests/x.json".into(),
            metadata: ["SERVICE_NAME".to_string()].into(),
            application: ["datacenter_name".to_string()].into(),
        };
        assert!(
            sources
                .check("{{SERVICE_NAME}} {{{datacenter_name}}} {{auto.ZONENAME}} {{#X}}{{Y}}{{/X}}")
                .is_ok()
        );
        let e = sources.check("{{auto.ADMIN_IP}} {{ufds_url}}").unwrap_err();
        assert!(e.starts_with("{{ufds_url}} is provided by nothing"), "{e}");
        assert!(e.contains("manifests/x.json"), "{e}");
        assert!(sources.check("{{auto.NOPE}}").is_err());
    }

    #[test]
    fn the_triton_api_image_and_definition_agree() {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let sources = VariableSources::load(&ws, "triton-api").unwrap().unwrap();
        let t = std::fs::read_to_string(
            ws.join("images/triton-api/sapi_manifests/triton-api/template"),
        )
        .unwrap();
        sources.check(&t).unwrap();
        assert!(
            VariableSources::load(&ws, "no-such-image")
                .unwrap()
                .is_none()
        );
    }
}
