//! A fault-injecting TCP proxy for tests: it forwards loopback connections
//! to a real server and, when armed, resets the connection that carries
//! the Nth byte in one direction, or stalls it. Byte counts run across
//! every connection since the fault was armed, so a cut point anywhere in
//! a transfer spread over pooled or parallel connections is reachable.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// Cut points for tests: xorshift from a fixed seed, so a failing run can
/// be named by seed and run number, and repeated.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Busy loops, two per core, while alive: a loaded CI runner, for tests
/// whose output must not depend on how threads get scheduled.
pub struct CpuHogs(Vec<std::process::Child>);

impl CpuHogs {
    pub fn start() -> io::Result<CpuHogs> {
        let n = thread::available_parallelism().map_or(2, |n| n.get()) * 2;
        let mut hogs = CpuHogs(Vec::with_capacity(n));
        for _ in 0..n {
            hogs.0.push(
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(std::process::Stdio::null())
                    .spawn()?,
            );
        }
        Ok(hogs)
    }
}

impl Drop for CpuHogs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Which way the counted bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (request bodies: uploads).
    Up,
    /// Server to client (response bodies: downloads).
    Down,
}

/// What happens when the byte count is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reset the connection (RST, as a dropped link or a killed peer).
    Reset,
    /// Stop forwarding on that connection and hold it open: a hung peer.
    Stall,
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    direction: Direction,
    after: u64,
    action: Action,
}

#[derive(Default)]
struct State {
    fault: Option<Fault>,
    counted: u64,
    fired: u32,
    connections: u32,
}

/// A running proxy; stops accepting when dropped (open connections end
/// when their peers close them).
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl FaultProxy {
    /// Listen on an ephemeral loopback port, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if sp.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = conn else { continue };
                    lock(&st).connections += 1;
                    let st = st.clone();
                    let _ = thread::Builder::new()
                        .name("fault-proxy-conn".into())
                        .spawn(move || {
                            if let Ok(server) = TcpStream::connect(upstream) {
                                splice(client, server, st);
                            }
                        });
                }
            })?;
        Ok(FaultProxy { addr, state, stop })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, for clients that take a base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Arm a one-shot fault: the connection carrying byte number `after`
    /// (counted from now, across connections) in `direction` gets `action`.
    pub fn arm(&self, direction: Direction, after: u64, action: Action) {
        let mut s = lock(&self.state);
        s.fault = Some(Fault {
            direction,
            after,
            action,
        });
        s.counted = 0;
    }

    /// Forward everything from now on.
    pub fn disarm(&self) {
        lock(&self.state).fault = None;
    }

    /// How many armed faults have fired so far.
    pub fn fired(&self) -> u32 {
        lock(&self.state).fired
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u32 {
        lock(&self.state).connections
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

/// Pump both directions until either side closes or a fault fires.
fn splice(client: TcpStream, server: TcpStream, state: Arc<Mutex<State>>) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let st = state.clone();
    let up = thread::spawn(move || pump(client, server, Direction::Up, &st));
    pump(s2, c2, Direction::Down, &state);
    let _ = up.join();
}

fn pump(mut from: TcpStream, mut to: TcpStream, dir: Direction, state: &Mutex<State>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        // How much of this chunk may pass before the fault fires.
        let (pass, action) = {
            let mut s = lock(state);
            match s.fault {
                Some(f) if f.direction == dir => {
                    let left = f.after.saturating_sub(s.counted);
                    if (n as u64) < left {
                        s.counted += n as u64;
                        (n, None)
                    } else {
                        s.fault = None;
                        s.fired += 1;
                        (left as usize, Some(f.action))
                    }
                }
                _ => (n, None),
            }
        };
        if to.write_all(&buf[..pass]).is_err() {
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
        match action {
            None => {}
            Some(Action::Reset) => {
                reset(&from);
                reset(&to);
                return;
            }
            Some(Action::Stall) => {
                // Hold both ends open, forwarding nothing, until the peer
                // gives up and closes its side.
                let _ = from.set_read_timeout(None);
                let mut sink = [0u8; 4096];
                while matches!(from.read(&mut sink), Ok(n) if n > 0) {
                    thread::sleep(Duration::from_millis(10));
                }
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// Close with RST rather than FIN: linger 0 makes close abortive.
fn reset(s: &TcpStream) {
    let sock = socket2::SockRef::from(s);
    let _ = sock.set_linger(Some(Duration::ZERO));
    let _ = s.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                thread::spawn(move || {
                    let mut r = c.try_clone().unwrap();
                    let _ = io::copy(&mut r, &mut c);
                });
            }
        });
        addr
    }

    #[test]
    fn forwards_then_resets_at_the_byte_asked() {
        let p = FaultProxy::start(echo()).unwrap();
        let mut c = TcpStream::connect(p.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");

        p.arm(Direction::Down, 3, Action::Reset);
        c.write_all(b"abcdef").unwrap();
        let mut back = Vec::new();
        let r = c.read_to_end(&mut back);
        // Exactly the first 3 bytes pass, then the connection is cut.
        assert_eq!(&back[..], b"abc");
        assert!(
            r.is_err() || back.len() == 3,
            "the read ends in a reset or EOF"
        );
        assert_eq!(p.fired(), 1);

        // One-shot: a new connection is forwarded whole.
        let mut c = TcpStream::connect(p.addr()).unwrap();
        c.write_all(b"again").unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"again");
    }

    #[test]
    fn stall_holds_the_connection_without_data() {
        let p = FaultProxy::start(echo()).unwrap();
        p.arm(Direction::Up, 2, Action::Stall);
        let mut c = TcpStream::connect(p.addr()).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        c.write_all(b"xyz").unwrap();
        let mut got = [0u8; 2];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"xy");
        let mut more = [0u8; 1];
        let e = c.read(&mut more).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{e}"
        );
    }
}
