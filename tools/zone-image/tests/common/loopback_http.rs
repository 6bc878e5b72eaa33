//! A tiny HTTP/1.1 server on loopback that plays an IMGAPI updates server
//! for origin downloads (`GET /images/:uuid`, `GET /images/:uuid/file`).
//! Deliberately minimal so these tests don't depend on services/imgapi-server.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub enum Reply {
    Json(String),
    File(PathBuf),
    Status(u16),
}

pub struct Server {
    pub url: String,
    /// Request targets seen, e.g. "/images/<uuid>?channel=dev".
    pub seen: Arc<Mutex<Vec<String>>>,
}

/// Serve `routes` (path without query -> reply); anything else is 404.
pub fn serve(routes: HashMap<String, Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    let routes = Arc::new(routes);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let routes = Arc::clone(&routes);
            let seen = Arc::clone(&seen2);
            std::thread::spawn(move || {
                let _ = handle(conn, &routes, &seen);
            });
        }
    });
    Server { url, seen }
}

fn handle(
    conn: TcpStream,
    routes: &HashMap<String, Reply>,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    seen.lock().unwrap().push(target.clone());
    let path = target.split('?').next().unwrap_or("/");
    let mut out = conn;
    let head = |status: u16, len: u64, ctype: &str| {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
    };
    match routes.get(path) {
        Some(Reply::Json(body)) => {
            out.write_all(head(200, body.len() as u64, "application/json").as_bytes())?;
            out.write_all(body.as_bytes())?;
        }
        Some(Reply::File(p)) => {
            let mut f = std::fs::File::open(p)?;
            let len = f.metadata()?.len();
            out.write_all(head(200, len, "application/octet-stream").as_bytes())?;
            std::io::copy(&mut f, &mut out)?;
        }
        Some(Reply::Status(s)) => {
            let body = format!("{{\"code\":\"Error{s}\",\"message\":\"test server says {s}\"}}");
            out.write_all(head(*s, body.len() as u64, "application/json").as_bytes())?;
            out.write_all(body.as_bytes())?;
        }
        None => {
            let body = "{\"code\":\"ResourceNotFound\",\"message\":\"not found\"}";
            out.write_all(head(404, body.len() as u64, "application/json").as_bytes())?;
            out.write_all(body.as_bytes())?;
        }
    }
    out.flush()
}
