//! Turning configured multiaddresses into sockets and URLs for the HTTP parts (REST API, IPFS
//! connector), which listen and dial on plain TCP.

use std::net::{IpAddr, SocketAddr};

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
}
