//! Whether the IPFS daemon that answers at the configured address is one the app may hand
//! the user's files to. On a shared machine another user can start a program on 127.0.0.1:5001
//! before the app does; the app would take it for "the IPFS daemon already running" and send
//! it every dropped file and pin. A daemon on loopback is trusted when its listening socket
//! belongs to this user (or to root, a system service) as the kernel reports it
//! (`/proc/net/tcp`). Only where the kernel cannot say is its peer ID compared with this
//! user's IPFS repos (the built-in node's, `$IPFS_PATH` or `~/.ipfs`): an ID is public, and
//! a squatter can claim any. An address that is not loopback is the user's own choice and is
//! not checked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a daemon is not trusted, if it is not.
pub(super) fn refusal(folder: &Path, addr: Option<SocketAddr>, id: &str) -> Option<String> {
    let addr = addr.filter(|a| a.ip().is_loopback())?;
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
    match listener_owner(addr) {
        Some(uid) if uid == me || uid == 0 => None,
        Some(uid) => Some(format!(
            "the IPFS API at {addr} belongs to another user of this machine (uid {uid}, peer \
             {id}): not used, so that your files do not go to it"
        )),
        None if known_ids(folder).iter().any(|k| k == id) => None,
        None => Some(format!(
            "the IPFS API at {addr} answers as {id}, which is neither the built-in node nor \
             your Kubo (~/.ipfs), and its owner cannot be told: not used"
        )),
    }
}

/// The address of a loopback IPFS API, also when named `localhost` (`/dns4/localhost/…`).
pub(super) fn socket_of(addr: &multiaddr::Multiaddr) -> Option<SocketAddr> {
    if let Ok(s) = crate::net::socket_addr(addr) {
        return Some(s);
    }
    let mut parts = addr.iter();
    let host = match parts.next()? {
        multiaddr::Protocol::Dns(h) | multiaddr::Protocol::Dns4(h) => h,
        multiaddr::Protocol::Dns6(h) if h.eq_ignore_ascii_case("localhost") => {
            return match parts.next()? {
                multiaddr::Protocol::Tcp(p) => {
                    Some(SocketAddr::new([0u16, 0, 0, 0, 0, 0, 0, 1].into(), p))
                }
                _ => None,
            }
        }
        _ => return None,
    };
    match (host.eq_ignore_ascii_case("localhost"), parts.next()?) {
        (true, multiaddr::Protocol::Tcp(p)) => Some(SocketAddr::new([127, 0, 0, 1].into(), p)),
        _ => None,
    }
}

/// The peer IDs of this user's IPFS repos: the built-in node's and Kubo's.
fn known_ids(folder: &Path) -> Vec<String> {
    let mut repos = vec![folder.join("ipfs")];
    match std::env::var_os("IPFS_PATH") {
        Some(p) => repos.push(PathBuf::from(p)),
        None => repos.extend(dirs::home_dir().map(|h| h.join(".ipfs"))),
    }
    repos
        .iter()
        .filter_map(|r| std::fs::read_to_string(r.join("config")).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter_map(|c| c["Identity"]["PeerID"].as_str().map(str::to_string))
        .collect()
}

/// The uid owning the socket listening at `addr` (or on every address at its port), from
/// `/proc/net/tcp{,6}`.
fn listener_owner(addr: SocketAddr) -> Option<u32> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|table| owner_in(&table, addr))
}

/// An address as `/proc/net/tcp` writes it: each 32-bit word of the IP in host (little
/// endian) order, in hex.
fn proc_hex(ip: std::net::IpAddr) -> String {
    let bytes = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    bytes
        .chunks(4)
        .map(|w| {
            w.iter()
                .rev()
                .map(|b| format!("{b:02X}"))
                .collect::<String>()
        })
        .collect()
}

/// In a `/proc/net/tcp` table: the uid of the listener (state 0A) at `addr`, or on the
/// wildcard address at its port.
fn owner_in(table: &str, addr: SocketAddr) -> Option<u32> {
    let port = format!(":{:04X}", addr.port());
    let exact = format!("{}{port}", proc_hex(addr.ip()));
    let any = match addr.ip() {
        std::net::IpAddr::V4(_) => format!("{}{port}", "0".repeat(8)),
        std::net::IpAddr::V6(_) => format!("{}{port}", "0".repeat(32)),
    };
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (local, state, uid) = (cols.get(1)?, cols.get(3)?, cols.get(7)?);
        let here = local.eq_ignore_ascii_case(&exact) || **local == any;
        (here && *state == "0A").then(|| uid.parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listeners_owner_is_read_from_the_kernels_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1389 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1001        0 123 1\n\
   1: 0100007F:1389 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 124 1\n";
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(owner_in(table, at("127.0.0.1:5001")), Some(1001));
        assert_eq!(owner_in(table, at("127.0.0.1:5002")), None);
        // Another address at the same port vouches for nobody.
        assert_eq!(owner_in(table, at("127.0.0.2:5001")), None);
        let any = "  sl  local_address\n   0: 00000000:1389 00000000:0000 0A 0:0 0:0 0 7 0 1\n";
        assert_eq!(owner_in(any, at("127.0.0.1:5001")), Some(7));
        assert_eq!(
            proc_hex("::1".parse().unwrap()),
            "00000000000000000000000001000000"
        );
    }

    #[test]
    fn a_daemon_of_this_user_is_trusted_and_another_users_is_not() {
        let dir = tempfile::tempdir().unwrap();
        // This process's own listener: this user's.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mine = l.local_addr().unwrap();
        assert_eq!(refusal(dir.path(), Some(mine), "QmSomeone"), None);
        // Not loopback: the user's own choice.
        let lan: SocketAddr = "192.168.1.5:5001".parse().unwrap();
        assert_eq!(refusal(dir.path(), Some(lan), "QmSomeone"), None);
        // Where the kernel cannot name an owner, only this user's repos' IDs are trusted.
        std::fs::create_dir_all(dir.path().join("ipfs")).unwrap();
        std::fs::write(
            dir.path().join("ipfs/config"),
            r#"{"Identity": {"PeerID": "QmBuiltIn"}}"#,
        )
        .unwrap();
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(refusal(dir.path(), Some(nobody), "QmBuiltIn"), None);
        let why = refusal(dir.path(), Some(nobody), "QmSomeone").unwrap();
        assert!(why.contains("not used"), "{why}");
        let named: multiaddr::Multiaddr = "/dns4/localhost/tcp/5001".parse().unwrap();
        assert_eq!(socket_of(&named), Some("127.0.0.1:5001".parse().unwrap()));
    }
}
