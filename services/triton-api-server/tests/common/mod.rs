//! Shared helpers for the triton-api-server integration tests: a config
//! writer, a child-process guard that kills the server if a test fails, a
//! stderr collector, and bounded waits.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long any single bounded wait may take before the test gives up. This
/// is a safety net against hangs, not an assertion about speed: the machine
/// is shared with other builds.
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const SERVER_BIN: &str = env!("CARGO_BIN_EXE_triton-api-server");

pub const INSTANCE_UUID: &str = "0f8e7c1a-3c1e-4d0a-9f5e-1b2c3d4e5f60";
pub const SERVER_UUID: &str = "44454c4c-5000-104d-8037-b7c04f5a5131";

/// A port on 127.0.0.1 that was free a moment ago: bind port 0, read the
/// port the kernel picked, release it.
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding 127.0.0.1:0");
    l.local_addr().expect("local_addr of probe listener").port()
}

pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// A complete, valid config as the SAPI template renders it.
pub fn config_json(bind: SocketAddr) -> serde_json::Value {
    serde_json::json!({
        "bind_address": bind.to_string(),
        "datacenter_name": "test-1",
        "instance_uuid": INSTANCE_UUID,
        "server_uuid": SERVER_UUID,
        "admin_ip": "127.0.0.1",
        "log_level": "info",
    })
}

pub fn write_config(path: &Path, value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).expect("serializing config");
    write_text(path, &text);
}

/// Writes atomically (temp file + rename), as config-agent does, so a SIGHUP
/// never races a half-written file.
pub fn write_text(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("writing config temp file");
    std::fs::rename(&tmp, path).expect("renaming config into place");
}

/// How the config path reaches the server.
#[derive(Clone, Copy, Debug)]
pub enum ConfigVia {
    Env,
    Flag,
}

/// A running server. Dropping it kills the process (so a failing assertion
/// never leaves a server behind) and reaps it.
pub struct Server {
    child: Option<Child>,
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

/// The server command, reading its config from `config` as `via` says.
pub fn server_cmd(config: &Path, via: ConfigVia) -> Command {
    let mut cmd = Command::new(SERVER_BIN);
    cmd.env_remove("TRITON__CONFIG_FILE");
    match via {
        ConfigVia::Env => cmd.env("TRITON__CONFIG_FILE", config),
        ConfigVia::Flag => cmd.arg("--config").arg(config),
    };
    cmd
}

impl Server {
    pub fn spawn(config: &Path, via: ConfigVia) -> Server {
        Self::spawn_cmd(server_cmd(config, via))
    }

    pub fn spawn_cmd(mut cmd: Command) -> Server {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning triton-api-server");
        let pipe = child.stderr.take().expect("child stderr is piped");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("stderr lock").push(line);
            }
        });
        Server {
            child: Some(child),
            stderr,
            reader: Some(reader),
        }
    }

    pub fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("server already reaped");
        i32::try_from(child.id()).expect("pid fits in i32")
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with a pid we spawned and have not yet reaped.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(
            rc,
            0,
            "kill({}, {sig}): {}",
            self.pid(),
            std::io::Error::last_os_error()
        );
    }

    /// Snapshot of the stderr lines read so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().expect("stderr lock").clone()
    }

    /// Waits (bounded) for a stderr line satisfying `pred`, looking only at
    /// lines after the first `skip`. Returns the line.
    pub fn wait_for_line(
        &mut self,
        skip: usize,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        self.poll(
            &format!("logging {what}"),
            &format!("no stderr line with {what}"),
            |server| {
                server
                    .stderr_lines()
                    .into_iter()
                    .skip(skip)
                    .find(|l| pred(l))
            },
        )
    }

    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut().expect("server already reaped");
        child.try_wait().expect("try_wait on server")
    }

    /// Waits (bounded) until `GET /ping` on `addr` answers 200, failing early
    /// if the server exits.
    pub fn wait_ready(&mut self, addr: SocketAddr) -> serde_json::Value {
        self.poll(
            &format!("answering on {addr}"),
            &format!("server did not answer on {addr}"),
            |_| match ping(addr) {
                Ok((200, body)) => Some(body),
                _ => None,
            },
        )
    }

    /// Polls `probe` (bounded) until it yields a value. Panics with "server
    /// exited before `before`" if the server exits first, or with `timeout`
    /// if PATIENCE runs out.
    fn poll<T>(&mut self, before: &str, timeout: &str, probe: impl Fn(&Self) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(found) = probe(self) {
                return found;
            }
            if let Some(status) = self.try_wait() {
                panic!(
                    "server exited ({status}) before {before}; stderr:\n{}",
                    self.stderr_lines().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "{timeout} within {PATIENCE:?}; stderr:\n{}",
                self.stderr_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) for the process to exit, then for its stderr to be
    /// drained. Returns the exit status and every stderr line.
    pub fn wait_exit(mut self) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.try_wait() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit within {PATIENCE:?}; stderr:\n{}",
                self.stderr_lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        self.child = None;
        // The pipe closes when the process exits, so the reader finishes.
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader thread");
        }
        (status, self.stderr_lines())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the server to completion (for configs that must be rejected).
pub fn run_to_exit(cmd: Command) -> (ExitStatus, Vec<String>) {
    Server::spawn_cmd(cmd).wait_exit()
}

/// Asserts an error line names the config file at `path`.
pub fn assert_names_file(line: &str, path: &Path) {
    let path = path.display().to_string();
    assert!(line.contains(&path), "error does not name {path}: {line}");
}

/// One `GET /ping` on a fresh connection (no pooling, so a closed listener
/// is noticed). Returns the status and the JSON body.
pub fn ping(addr: SocketAddr) -> Result<(u16, serde_json::Value), reqwest::Error> {
    let client = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()?;
    let resp = client.get(format!("http://{addr}/ping")).send()?;
    let status = resp.status().as_u16();
    let body = resp.json()?;
    Ok((status, body))
}

/// A scratch directory with a `config.json` path in it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

pub fn scratch() -> Scratch {
    let dir = tempfile::tempdir().expect("creating temp dir");
    let config = dir.path().join("config.json");
    Scratch { dir, config }
}
