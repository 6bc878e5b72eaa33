//! A missing or bad config: the server exits non-zero with exactly one line
//! on stderr, naming the file and (where there is one) the field.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use common::{
    ConfigVia, SERVER_BIN, assert_names_file, config_json, free_port, loopback, run_to_exit,
    scratch, server_cmd, write_config, write_text,
};

/// Runs the server on `config` and returns its single stderr line, after
/// checking the exit status is non-zero.
fn rejected(config: &Path, via: ConfigVia) -> String {
    let (status, lines) = run_to_exit(server_cmd(config, via));
    assert!(
        !status.success() && status.code().is_some(),
        "expected a non-zero exit, got {status}; stderr:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one stderr line, got:\n{}",
        lines.join("\n")
    );
    lines.into_iter().next().unwrap_or_default()
}

/// Writes `value` as the config, runs the server, and checks the one error
/// line names the file and `field`.
fn rejects_field(value: &serde_json::Value, field: &str) -> String {
    let s = scratch();
    write_config(&s.config, value);
    let line = rejected(&s.config, ConfigVia::Env);
    assert_names_file(&line, &s.config);
    assert!(
        line.contains(&format!("field '{field}'")),
        "error does not name field {field:?}: {line}"
    );
    line
}

fn valid() -> serde_json::Value {
    config_json(loopback(free_port()))
}

fn with(field: &str, value: serde_json::Value) -> serde_json::Value {
    let mut v = valid();
    v[field] = value;
    v
}

#[test]
fn missing_file_names_the_file() {
    for via in [ConfigVia::Env, ConfigVia::Flag] {
        let s = scratch();
        let line = rejected(&s.config, via);
        assert_names_file(&line, &s.config);
        assert!(
            line.contains("No such file"),
            "error does not say why ({via:?}): {line}"
        );
    }
}

#[test]
fn unreadable_path_names_the_file() {
    // A directory where the file should be.
    let s = scratch();
    std::fs::create_dir(&s.config).expect("creating directory");
    let line = rejected(&s.config, ConfigVia::Env);
    assert_names_file(&line, &s.config);
}

#[test]
fn invalid_json_names_the_file() {
    for text in [
        "",
        "{",
        "{\"bind_address\": \"127.0.0.1:80\",}",
        "not json",
        "[]",
    ] {
        let s = scratch();
        write_text(&s.config, text);
        let line = rejected(&s.config, ConfigVia::Flag);
        let path = s.config.display().to_string();
        assert!(
            line.contains(&path),
            "error for {text:?} does not name {path}: {line}"
        );
    }
}

#[test]
fn every_missing_required_field_is_named() {
    for field in [
        "bind_address",
        "datacenter_name",
        "instance_uuid",
        "server_uuid",
        "admin_ip",
    ] {
        let mut v = valid();
        v.as_object_mut()
            .expect("config is an object")
            .remove(field);
        let line = rejects_field(&v, field);
        assert!(line.contains("missing"), "not called missing: {line}");
    }
}

#[test]
fn log_level_is_optional() {
    // The template leaves log_level out when TRITON_API_LOG_LEVEL is unset;
    // the server must start. (Checked by parsing; starting is covered by the
    // server tests.)
    let mut v = valid();
    v.as_object_mut()
        .expect("config is an object")
        .remove("log_level");
    let parsed = triton_api_server::Config::parse(Path::new("c.json"), &v.to_string())
        .expect("config without log_level parses");
    assert_eq!(parsed.log_level, "info");
}

#[test]
fn bad_bind_address_is_named() {
    for bad in ["127.0.0.1", "localhost:80", "127.0.0.1:99999", "", ":80"] {
        rejects_field(
            &with("bind_address", serde_json::json!(bad)),
            "bind_address",
        );
    }
    rejects_field(&with("bind_address", serde_json::json!(80)), "bind_address");
}

#[test]
fn bad_instance_uuid_is_named() {
    for bad in ["", "not-a-uuid", "0f8e7c1a-3c1e-4d0a-9f5e-1b2c3d4e5f6"] {
        rejects_field(
            &with("instance_uuid", serde_json::json!(bad)),
            "instance_uuid",
        );
    }
}

#[test]
fn bad_server_uuid_is_named() {
    rejects_field(
        &with("server_uuid", serde_json::json!("xyz")),
        "server_uuid",
    );
    rejects_field(&with("server_uuid", serde_json::json!(null)), "server_uuid");
}

#[test]
fn bad_admin_ip_is_named() {
    for bad in ["10.99.99", "10.99.99.7:80", ""] {
        rejects_field(&with("admin_ip", serde_json::json!(bad)), "admin_ip");
    }
}

#[test]
fn bad_datacenter_name_is_named() {
    rejects_field(
        &with("datacenter_name", serde_json::json!("")),
        "datacenter_name",
    );
    rejects_field(
        &with("datacenter_name", serde_json::json!(7)),
        "datacenter_name",
    );
}

#[test]
fn bad_log_level_is_named() {
    rejects_field(&with("log_level", serde_json::json!("loud")), "log_level");
}

#[test]
fn unknown_field_is_named() {
    rejects_field(
        &with("bind_adress", serde_json::json!("127.0.0.1:80")),
        "bind_adress",
    );
}

#[test]
fn missing_file_error_does_not_repeat_itself() {
    let s = scratch();
    let line = rejected(&s.config, ConfigVia::Env);
    assert_eq!(
        line.matches("No such file").count(),
        1,
        "the cause is printed more than once: {line}"
    );
}

#[test]
fn port_in_use_is_one_line_naming_the_address() {
    let squatter = TcpListener::bind(loopback(0)).expect("binding squatter");
    let taken = squatter.local_addr().expect("squatter address");
    let s = scratch();
    write_config(&s.config, &config_json(taken));
    let mut cmd = Command::new(SERVER_BIN);
    cmd.env("TRITON__CONFIG_FILE", &s.config);
    let (status, lines) = run_to_exit(cmd);
    assert!(!status.success(), "started on a taken port: {status}");
    // Bunyan records may precede it; the error itself is one plain line.
    let plain: Vec<_> = lines.iter().filter(|l| !l.starts_with('{')).collect();
    assert_eq!(plain.len(), 1, "stderr:\n{}", lines.join("\n"));
    assert!(
        plain[0].contains(&taken.to_string()),
        "error does not name {taken}: {}",
        plain[0]
    );
    drop(squatter);
}

#[test]
fn no_config_at_all_is_an_error() {
    let mut cmd = Command::new(SERVER_BIN);
    cmd.env_remove("TRITON__CONFIG_FILE");
    let (status, lines) = run_to_exit(cmd);
    assert!(!status.success(), "started without a config: {status}");
    let all = lines.join("\n");
    assert!(
        all.contains("--config"),
        "usage error does not say what is missing: {all}"
    );
}
