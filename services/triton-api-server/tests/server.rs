//! The built server binary, run as SMF runs it: config file from
//! `TRITON__CONFIG_FILE` or `--config`, real HTTP on loopback, real signals.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;

use common::{
    ConfigVia, SERVER_BIN, Server, assert_names_file, config_json, free_port, loopback, ping,
    scratch, write_config, write_text,
};

fn assert_ping_body(body: &serde_json::Value) {
    assert_eq!(
        body,
        &serde_json::json!({
            "status": "OK",
            "healthy": true,
            "version": env!("CARGO_PKG_VERSION"),
        }),
        "unexpected /ping body"
    );
}

fn start(via: ConfigVia) -> (common::Scratch, Server, u16) {
    let port = free_port();
    let (s, server) = start_on(loopback(port), port, via);
    (s, server, port)
}

/// Starts a server bound to `bind` and waits until it answers on loopback
/// `port`.
fn start_on(bind: SocketAddr, port: u16, via: ConfigVia) -> (common::Scratch, Server) {
    let s = scratch();
    write_config(&s.config, &config_json(bind));
    let mut server = Server::spawn(&s.config, via);
    let body = server.wait_ready(loopback(port));
    assert_ping_body(&body);
    (s, server)
}

/// SIGTERM, then checks the server exits successfully. Returns its stderr.
fn stop(server: Server) -> Vec<String> {
    server.signal(libc::SIGTERM);
    let (status, lines) = server.wait_exit();
    assert!(status.success(), "exit status {status}");
    lines
}

/// Sends SIGHUP and returns the first later stderr line satisfying `done`.
fn sighup(server: &mut Server, what: &str, done: impl Fn(&str) -> bool) -> String {
    let seen = server.stderr_lines().len();
    server.signal(libc::SIGHUP);
    server.wait_for_line(seen, what, done)
}

/// The record a reload ends with, whichever way it went.
fn reload_outcome(line: &str) -> bool {
    line.contains("config reloaded") || line.contains("reload failed")
}

/// Sends SIGHUP and checks the reload took. Returns its record.
fn sighup_reloaded(server: &mut Server) -> String {
    let line = sighup(server, "'config reloaded'", reload_outcome);
    assert_eq!(msg(&line), "config reloaded", "reload failed: {line}");
    line
}

fn parse_record(line: &str) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(serde_json::Value::Object(map)) => map,
        other => panic!("stderr line is not a JSON object ({other:?}): {line}"),
    }
}

fn level(line: &str) -> u64 {
    parse_record(line)
        .get("level")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no numeric level in {line}"))
}

fn msg(line: &str) -> String {
    parse_record(line)
        .get("msg")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_else(|| panic!("no msg in {line}"))
        .to_string()
}

#[test]
fn ping_with_config_from_env() {
    let (_s, server, port) = start(ConfigVia::Env);
    let (status, body) = ping(loopback(port)).expect("second /ping");
    assert_eq!(status, 200);
    assert_ping_body(&body);
    stop(server);
}

#[test]
fn ping_with_config_from_flag() {
    let (_s, server, _port) = start(ConfigVia::Flag);
    stop(server);
}

#[test]
fn config_flag_wins_over_env() {
    let s = scratch();
    let port = free_port();
    write_config(&s.config, &config_json(loopback(port)));
    let mut cmd = Command::new(SERVER_BIN);
    cmd.env(
        "TRITON__CONFIG_FILE",
        s.dir.path().join("does-not-exist.json"),
    )
    .arg("--config")
    .arg(&s.config);
    let mut server = Server::spawn_cmd(cmd);
    assert_ping_body(&server.wait_ready(loopback(port)));
}

#[test]
fn unknown_path_is_404_not_a_crash() {
    let (_s, mut server, port) = start(ConfigVia::Env);
    let resp =
        reqwest::blocking::get(format!("http://{}/nope", loopback(port))).expect("GET /nope");
    assert_eq!(resp.status().as_u16(), 404);
    assert!(server.try_wait().is_none(), "server exited after a 404");
    assert_ping_body(&server.wait_ready(loopback(port)));
}

#[test]
fn logs_are_bunyan_json_lines() {
    let (_s, server, port) = start(ConfigVia::Env);
    let pid = u64::try_from(server.pid()).expect("positive pid");
    let lines = stop(server);
    assert!(!lines.is_empty(), "server logged nothing on stderr");

    for line in &lines {
        let rec = parse_record(line);
        assert_eq!(rec.get("v"), Some(&serde_json::json!(0)), "v in {line}");
        let level = rec.get("level").and_then(serde_json::Value::as_u64);
        assert!(
            matches!(level, Some(10 | 20 | 30 | 40 | 50 | 60)),
            "level is not a bunyan level number in {line}"
        );
        assert_eq!(
            rec.get("name").and_then(serde_json::Value::as_str),
            Some("triton-api"),
            "name in {line}"
        );
        let hostname = rec.get("hostname").and_then(serde_json::Value::as_str);
        assert!(
            hostname.is_some_and(|h| !h.is_empty()),
            "hostname in {line}"
        );
        assert_eq!(
            rec.get("pid").and_then(serde_json::Value::as_u64),
            Some(pid),
            "pid in {line}"
        );
        let time = rec
            .get("time")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_else(|| panic!("no string time in {line}"));
        // ISO 8601 UTC, as bunyan writes it: 2024-01-02T03:04:05.678Z
        assert!(
            time.len() >= 20 && time.as_bytes()[10] == b'T' && time.ends_with('Z'),
            "time is not ISO 8601 UTC in {line}"
        );
        assert!(
            rec.get("msg").is_some_and(serde_json::Value::is_string),
            "msg in {line}"
        );
    }

    // The records we expect to see: the address we listen on, and the
    // orderly shutdown.
    let addr = loopback(port).to_string();
    assert!(
        lines.iter().any(|l| {
            let rec = parse_record(l);
            msg(l) == "listening"
                && level(l) == 30
                && rec.get("address").and_then(serde_json::Value::as_str) == Some(addr.as_str())
        }),
        "no info 'listening' record with address {addr}:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| msg(l) == "shutting down"),
        "no 'shutting down' record:\n{}",
        lines.join("\n")
    );
}

fn exits_cleanly_on(sig: libc::c_int) {
    let (_s, server, port) = start(ConfigVia::Env);
    server.signal(sig);
    let (status, lines) = server.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status} after signal {sig}; stderr:\n{}",
        lines.join("\n")
    );
    assert!(
        ping(loopback(port)).is_err(),
        "something still answers on the port after exit"
    );
}

#[test]
fn sigterm_exits_zero() {
    exits_cleanly_on(libc::SIGTERM);
}

#[test]
fn sigint_exits_zero() {
    exits_cleanly_on(libc::SIGINT);
}

#[test]
fn sighup_rebinds_to_the_new_port() {
    let (s, mut server, old) = start(ConfigVia::Env);
    let new = free_port();
    assert_ne!(old, new);
    write_config(&s.config, &config_json(loopback(new)));

    sighup_reloaded(&mut server);

    assert_ping_body(&server.wait_ready(loopback(new)));
    assert!(
        ping(loopback(old)).is_err(),
        "old port {old} still answers after the rebind"
    );

    // A second reload with an unchanged address is a no-op for the listener.
    sighup(&mut server, "a second 'config reloaded'", |l| {
        l.contains("config reloaded")
    });
    assert_ping_body(&server.wait_ready(loopback(new)));

    stop(server);
}

/// SIGHUP with a config the server cannot use: it must log an error naming
/// the problem and keep serving on the old config; a later good config
/// still takes effect.
fn sighup_keeps_running_with(broken: &str, mentions: &str) {
    let (s, mut server, old) = start(ConfigVia::Env);
    write_text(&s.config, broken);

    let line = sighup(&mut server, "a reload error", reload_outcome);
    assert_eq!(level(&line), 50, "reload of a broken config: {line}");
    assert!(
        line.contains(mentions),
        "error does not mention {mentions:?}: {line}"
    );
    assert!(server.try_wait().is_none(), "server exited on a bad reload");
    assert_ping_body(&server.wait_ready(loopback(old)));

    // Still handling signals: fix the config, move to a new port.
    let new = free_port();
    write_config(&s.config, &config_json(loopback(new)));
    sighup_reloaded(&mut server);
    assert_ping_body(&server.wait_ready(loopback(new)));

    stop(server);
}

#[test]
fn sighup_with_invalid_json_keeps_old_config() {
    sighup_keeps_running_with("{ \"bind_address\": ", "not valid JSON");
}

#[test]
fn sighup_with_missing_field_keeps_old_config() {
    let mut v = config_json(loopback(free_port()));
    v.as_object_mut()
        .expect("config is an object")
        .remove("server_uuid");
    sighup_keeps_running_with(&v.to_string(), "server_uuid");
}

#[test]
fn sighup_with_bad_bind_address_keeps_old_config() {
    let mut v = config_json(loopback(free_port()));
    v["bind_address"] = serde_json::json!("127.0.0.1");
    sighup_keeps_running_with(&v.to_string(), "bind_address");
}

#[test]
fn sighup_with_deleted_config_keeps_old_config() {
    let (s, mut server, old) = start(ConfigVia::Env);
    std::fs::remove_file(&s.config).expect("removing config");
    let line = sighup(&mut server, "a reload error", reload_outcome);
    assert_eq!(level(&line), 50, "reload of a missing config: {line}");
    assert_names_file(&line, &s.config);
    assert_ping_body(&server.wait_ready(loopback(old)));
}

#[test]
fn sighup_to_a_port_in_use_keeps_serving_on_the_old_one() {
    let (s, mut server, old) = start(ConfigVia::Env);
    // Someone else holds the port the new config names.
    let squatter = TcpListener::bind(loopback(0)).expect("binding squatter");
    let taken = squatter.local_addr().expect("squatter address");
    write_config(&s.config, &config_json(taken));

    // A plain (non-bunyan) line is the fatal error of a server that gave up.
    let line = sighup(&mut server, "a reload error", |l| {
        reload_outcome(l) || !l.starts_with('{')
    });
    assert!(
        server.try_wait().is_none(),
        "server exited when the new port was taken; stderr:\n{}",
        server.stderr_lines().join("\n")
    );
    assert_eq!(level(&line), 50, "reload onto a taken port: {line}");
    assert!(
        line.contains(&taken.to_string()),
        "error does not name {taken}: {line}"
    );
    assert_ping_body(&server.wait_ready(loopback(old)));

    // The running config is still the old one: a refresh with the original
    // config (same address) is a no-op for the listener.
    write_config(&s.config, &config_json(loopback(old)));
    let seen = server.stderr_lines().len();
    sighup_reloaded(&mut server);
    let relistened: Vec<_> = server
        .stderr_lines()
        .into_iter()
        .skip(seen)
        .filter(|l| msg(l) == "listening")
        .collect();
    assert!(
        relistened.is_empty(),
        "the refused address was left as the running config (the reload moved the listener):\n{}",
        relistened.join("\n")
    );
    assert_ping_body(&server.wait_ready(loopback(old)));
    drop(squatter);
}

#[test]
fn sighup_to_an_overlapping_address_moves_the_listener() {
    // 0.0.0.0:P -> 127.0.0.1:P: on Linux the new socket cannot be bound while
    // the old one listens, so the server must let go of the old one first.
    let port = free_port();
    let wildcard = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    let (s, mut server) = start_on(wildcard, port, ConfigVia::Env);

    write_config(&s.config, &config_json(loopback(port)));
    let line = sighup_reloaded(&mut server);
    let addr = loopback(port).to_string();
    assert_eq!(
        parse_record(&line)
            .get("address")
            .and_then(serde_json::Value::as_str),
        Some(addr.as_str()),
        "{line}"
    );
    assert_ping_body(&server.wait_ready(loopback(port)));
}
