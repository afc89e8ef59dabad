//! Turning configured multiaddresses into sockets and URLs for the HTTP parts (REST API, IPFS
//! connector), which listen and dial on TCP, and the HTTP APIs also on unix sockets
//! (`/unix/<absolute path>`, as IPFS Cluster writes them: `ipfs-cluster-follow` serves its
//! REST API on one).

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};

/// A multiaddress that cannot serve where it was given.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{addr}: {problem}")]
pub struct AddrError {
    pub addr: String,
    pub problem: String,
}

fn addr_error(addr: &Multiaddr, problem: impl Into<String>) -> AddrError {
    AddrError {
        addr: addr.to_string(),
        problem: problem.into(),
    }
}

/// Where an HTTP API listens (or, once bound, listens: the port chosen for a `tcp/0`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    /// A unix socket at this absolute path.
    Unix(PathBuf),
}

impl ListenAddr {
    /// The TCP address, if it is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            ListenAddr::Tcp(a) => Some(*a),
            ListenAddr::Unix(_) => None,
        }
    }
}

impl ListenAddr {
    /// How a client reaches it: `scheme://host:port`, or the `/unix/<path>` multiaddress
    /// (what `ipfs-cluster-ctl --host` takes).
    pub fn url(&self, scheme: &str) -> String {
        match self {
            ListenAddr::Tcp(a) => format!("{scheme}://{a}"),
            ListenAddr::Unix(p) => unix_multiaddr(p).to_string(),
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Parses a multiaddress as IPFS Cluster (go-multiaddr) does, where `/unix/` takes the rest
/// as a path (`/unix/home/me/api-socket` is the socket `/home/me/api-socket`; this crate's
/// own parser would take one segment).
pub fn parse_multiaddr(s: &str) -> Result<Multiaddr, AddrError> {
    let s = s.trim();
    let bad = |problem: String| AddrError {
        addr: s.to_string(),
        problem,
    };
    if let Some(path) = s.strip_prefix("/unix/") {
        if path.trim_matches('/').is_empty() {
            return Err(bad("the unix socket's path is missing".into()));
        }
        return Ok(unix_multiaddr(Path::new(&format!("/{path}"))));
    }
    s.parse::<Multiaddr>().map_err(|e| bad(e.to_string()))
}

/// `/unix/<path>` for the socket at absolute `path`.
pub fn unix_multiaddr(path: &Path) -> Multiaddr {
    let path = path.to_string_lossy();
    let rest = path.trim_start_matches('/').to_string();
    Multiaddr::empty().with(Protocol::Unix(Cow::Owned(rest)))
}

/// The socket path of a `/unix/<path>` multiaddress.
pub fn unix_path(addr: &Multiaddr) -> Option<PathBuf> {
    let mut it = addr.iter();
    match (it.next(), it.next()) {
        (Some(Protocol::Unix(p)), None) => {
            Some(PathBuf::from(format!("/{}", p.trim_start_matches('/'))))
        }
        _ => None,
    }
}

/// The longest path a unix socket may have (`sun_path` holds 108 bytes with its NUL).
pub const MAX_UNIX_PATH: usize = 107;

/// Where an HTTP API configured with `addr` listens: `/ip4|ip6/…/tcp/…` or `/unix/<path>`.
pub fn listen_addr(addr: &Multiaddr) -> Result<ListenAddr, AddrError> {
    if let Some(path) = unix_path(addr) {
        if path.as_os_str().len() > MAX_UNIX_PATH {
            return Err(addr_error(
                addr,
                format!("a unix socket's path has at most {MAX_UNIX_PATH} bytes"),
            ));
        }
        return Ok(ListenAddr::Unix(path));
    }
    socket_addr(addr).map(ListenAddr::Tcp)
}

/// Splits `/…/p2p/<id>` into the peer and its address.
pub fn split_p2p(addr: &Multiaddr) -> Option<(PeerId, Multiaddr)> {
    let mut base = addr.clone();
    match base.pop()? {
        Protocol::P2p(peer) => Some((peer, base)),
        _ => None,
    }
}

/// `/ip4/A/tcp/P`, `/ip6/A/tcp/P` → `A:P`. DNS names are resolved by the caller when dialing,
/// so they are kept as a host string in [`http_url`] instead.
pub fn socket_addr(addr: &Multiaddr) -> Result<SocketAddr, AddrError> {
    let mut ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(a.into()),
            Protocol::Ip6(a) => ip = Some(a.into()),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::Http | Protocol::Https => {}
            other => {
                return Err(addr_error(
                    addr,
                    format!("unsupported protocol {other} (expected /ip4|ip6/…/tcp/…)"),
                ))
            }
        }
    }
    match (ip, port) {
        (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
        _ => Err(addr_error(addr, "expected /ip4/<address>/tcp/<port>")),
    }
}

/// Base URL (`http://host:port`) of an HTTP service at `addr`; accepts `/dns*/host/tcp/port`.
pub fn http_url(addr: &Multiaddr) -> Result<String, AddrError> {
    let mut host: Option<String> = None;
    let mut port: Option<u16> = None;
    let mut scheme = "http";
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => host = Some(a.to_string()),
            Protocol::Ip6(a) => host = Some(format!("[{a}]")),
            Protocol::Dns(h) | Protocol::Dns4(h) | Protocol::Dns6(h) | Protocol::Dnsaddr(h) => {
                host = Some(h.to_string())
            }
            Protocol::Tcp(p) => port = Some(p),
            Protocol::Https => scheme = "https",
            Protocol::Http => {}
            other => return Err(addr_error(addr, format!("unsupported protocol {other}"))),
        }
    }
    match (host, port) {
        (Some(h), Some(p)) => Ok(format!("{scheme}://{h}:{p}")),
        _ => Err(addr_error(addr, "expected /ip4|ip6|dns/<host>/tcp/<port>")),
    }
}

/// The multiaddr of a bound socket, for display in `ID.addresses`-like fields.
pub fn multiaddr_of(addr: SocketAddr) -> Multiaddr {
    let mut m = Multiaddr::empty();
    match addr.ip() {
        IpAddr::V4(a) => m.push(Protocol::Ip4(a)),
        IpAddr::V6(a) => m.push(Protocol::Ip6(a)),
    }
    m.push(Protocol::Tcp(addr.port()));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_common_forms() {
        let m: Multiaddr = "/ip4/127.0.0.1/tcp/9094".parse().unwrap();
        assert_eq!(socket_addr(&m).unwrap().to_string(), "127.0.0.1:9094");
        assert_eq!(http_url(&m).unwrap(), "http://127.0.0.1:9094");
        let d: Multiaddr = "/dns4/localhost/tcp/5001".parse().unwrap();
        assert_eq!(http_url(&d).unwrap(), "http://localhost:5001");
        assert!(socket_addr(&d).is_err());
        let u: Multiaddr = "/ip4/127.0.0.1/udp/1".parse().unwrap();
        assert!(socket_addr(&u).is_err());
        assert_eq!(
            multiaddr_of("127.0.0.1:5".parse().unwrap()).to_string(),
            "/ip4/127.0.0.1/tcp/5"
        );
    }

    /// `/unix/` takes the rest of the text as its path, as in go-multiaddr, and reads back
    /// as written.
    #[test]
    fn unix_socket_addresses_read_as_ipfs_cluster_writes_them() {
        let text = "/unix/home/me/.ipfs-cluster-follow/c/api-socket";
        let m = parse_multiaddr(text).unwrap();
        assert_eq!(m.to_string(), text);
        assert_eq!(
            listen_addr(&m).unwrap(),
            ListenAddr::Unix("/home/me/.ipfs-cluster-follow/c/api-socket".into())
        );
        assert!(text.parse::<Multiaddr>().is_err(), "the crate's own parser");
        assert_eq!(
            unix_multiaddr(Path::new("/tmp/s")),
            parse_multiaddr("/unix/tmp/s").unwrap()
        );
        assert!(parse_multiaddr("/unix/").is_err());
        let long = format!("/unix/{}", "a".repeat(120));
        let err = listen_addr(&parse_multiaddr(&long).unwrap()).unwrap_err();
        assert!(err.to_string().contains("at most 107"), "{err}");
        let tcp = parse_multiaddr("/ip4/127.0.0.1/tcp/9094").unwrap();
        assert_eq!(
            listen_addr(&tcp).unwrap(),
            ListenAddr::Tcp("127.0.0.1:9094".parse().unwrap())
        );
        assert!(socket_addr(&m).is_err());
    }
}
