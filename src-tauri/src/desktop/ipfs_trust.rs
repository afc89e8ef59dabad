//! Whether the IPFS daemon that answers at the configured address is one the app may hand
//! the user's files to. On a shared machine another user can start a program on 127.0.0.1:5001
//! before the app does; the app would take it for "the IPFS daemon already running" and send
//! it every dropped file and pin. A daemon on loopback is trusted when it is one of this
//! user's IPFS nodes (its peer ID is the built-in node's or that of this user's Kubo repo,
//! `$IPFS_PATH` or `~/.ipfs`), or when its listening socket belongs to this user (or to root,
//! a system service) as the kernel reports it (`/proc/net/tcp`). An address that is not
//! loopback is the user's own choice and is not checked.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a daemon is not trusted, if it is not.
pub(super) fn refusal(folder: &Path, addr: Option<SocketAddr>, id: &str) -> Option<String> {
    let addr = addr.filter(|a| a.ip().is_loopback())?;
    if known_ids(folder).iter().any(|k| k == id) {
        return None;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
    match listener_owner(addr.port()) {
        Some(uid) if uid == me || uid == 0 => None,
        Some(uid) => Some(format!(
            "the IPFS API at {addr} belongs to another user of this machine (uid {uid}, peer \
             {id}): not used, so that your files do not go to it"
        )),
        None => Some(format!(
            "the IPFS API at {addr} answers as {id}, which is neither the built-in node nor \
             your Kubo (~/.ipfs), and its owner cannot be told: not used"
        )),
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

/// The uid owning the socket listening on loopback `port`, from `/proc/net/tcp{,6}`.
fn listener_owner(port: u16) -> Option<u32> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|table| owner_in(&table, port))
}

/// In a `/proc/net/tcp` table: the uid of the listener (state 0A) on `port`.
fn owner_in(table: &str, port: u16) -> Option<u32> {
    let port = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (local, state, uid) = (cols.get(1)?, cols.get(3)?, cols.get(7)?);
        (local.ends_with(&port) && *state == "0A").then(|| uid.parse().ok())?
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
        assert_eq!(owner_in(table, 5001), Some(1001));
        assert_eq!(owner_in(table, 5002), None);
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
        // The built-in node's recorded ID is trusted wherever it listens.
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
    }
}
