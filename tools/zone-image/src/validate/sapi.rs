//! SAPI manifests as config-agent reads them: `manifest.json` with `name`,
//! absolute `path` and optional `post_cmd`, and a hogan.js (mustache)
//! `template`.

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
}
