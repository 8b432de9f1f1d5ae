//! Loopback: free ports on 127.0.0.1 and server processes that listen on them, killed when
//! dropped (the interop peers, `lettergate sim serve`).

use std::net::TcpListener;
use std::process::Child;
use std::time::{Duration, Instant};

/// A free port on 127.0.0.1, chosen at random below the kernel's ephemeral range (which
/// starts at 32768), so that tests running at once, which each pick a port and bind it later,
/// do not pick the same one as the kernel keeps handing out.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seed = std::process::id() as u64 * 7919
        + SEQ.fetch_add(1, Ordering::SeqCst) * 104_729
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() as u64);
    // Never the same port twice in one test process, even before its server has bound it.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for i in 0..1000u64 {
        let port = 20_000 + ((seed + i * 7_727) % 12_000) as u16;
        if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between 20000 and 32000");
}

/// A server process on loopback (a peer, `lettergate sim serve`), killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Waits until `port` accepts connections, or fails the test after `within`.
    pub fn wait_listening(mut self, within: Duration) -> Server {
        let started = Instant::now();
        while started.elapsed() < within {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return self;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the peer server exited early ({status})");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the peer server did not listen on 127.0.0.1:{} within {within:?}",
            self.port
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
