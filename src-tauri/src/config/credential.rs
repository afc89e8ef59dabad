//! The REST API credential of a desktop peer: random, made on its first start, kept in an
//! owner-only file in the peer's folder (as `identity.json` keeps its private key), so that
//! `ipfs-cluster-ctl` run by the same user on the same machine finds it without anyone
//! typing it. The OS keyring would hide it from `ipfs-cluster-ctl`, which cannot ask one; the
//! cluster secret, which admits a peer to the cluster, stays there.

use std::path::Path;

use base64::Engine;

/// The file, in the peer's folder.
pub const API_CREDENTIAL_FILE: &str = "restapi.credential";

/// A basic-auth user and password for the peer's REST API.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiCredential {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for ApiCredential {
    // Never print the password (logs, panics, error messages).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ApiCredential {{ user: {:?}, password: <hidden> }}",
            self.user
        )
    }
}

impl ApiCredential {
    /// The credential kept in `folder`, if there is one (`user:password` on one line).
    pub fn load(folder: &Path) -> std::io::Result<Option<ApiCredential>> {
        let path = folder.join(API_CREDENTIAL_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let (user, password) = text.trim().split_once(':').ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: expected user:password", path.display()),
            )
        })?;
        Ok(Some(ApiCredential {
            user: user.to_string(),
            password: password.to_string(),
        }))
    }

    /// The credential kept in `folder`, made (random, 256 bits) if there is none yet.
    pub fn load_or_create(folder: &Path) -> std::io::Result<ApiCredential> {
        if let Some(c) = Self::load(folder)? {
            return Ok(c);
        }
        let bytes: [u8; 32] = rand::random();
        let c = ApiCredential {
            user: "desktop".into(),
            password: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        };
        super::files::write_private(
            &folder.join(API_CREDENTIAL_FILE),
            format!("{}:{}\n", c.user, c.password).as_bytes(),
        )?;
        Ok(c)
    }

    /// What a server that knows this credential's password answers to a client's `nonce`
    /// when it was reached at `addr` (`GET /auth/proof`): HMAC-SHA256 keyed by the password
    /// over a label, the nonce and the address, hex. A client on this machine sends the
    /// credential only to a server that answers it, and then only at that address (another
    /// user's program on a loopback port cannot answer, and a proof relayed from the real
    /// peer names the real peer's address). The label keeps it apart from the JWTs the same
    /// key signs.
    pub fn proof(password: &str, nonce: &str, addr: std::net::SocketAddr) -> String {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(password.as_bytes())
            .expect("HMAC takes any key");
        mac.update(format!("ipfs-cluster-desktop/rest-proof/v1\0{nonce}\0{addr}").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// For a client on this machine talking to `host` (a multiaddr, `host:port` or URL): the
    /// credential of the local peer folder (`$IPFS_CLUSTER_PATH`, else `~/.ipfs-cluster`), but
    /// only when `host` is this machine's loopback: it is never sent anywhere else.
    pub fn for_local_client(host: &str) -> Option<ApiCredential> {
        if !is_loopback(host) {
            return None;
        }
        Self::load(&super::files::folder(None)).ok().flatten()
    }
}

/// Whether a REST API address (as `ipfs-cluster-ctl --host` takes it) is on loopback.
fn is_loopback(host: &str) -> bool {
    if host.starts_with('/') {
        return host
            .parse::<multiaddr::Multiaddr>()
            .ok()
            .and_then(|m| crate::net::socket_addr(&m).ok())
            .is_some_and(|a| a.ip().is_loopback());
    }
    let rest = host
        .strip_prefix("http://")
        .or_else(|| host.strip_prefix("https://"))
        .unwrap_or(host);
    let authority = rest.split('/').next().unwrap_or_default();
    if let Ok(a) = authority.parse::<std::net::SocketAddr>() {
        return a.ip().is_loopback();
    }
    let name = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_owner_only_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ApiCredential::load(dir.path()).unwrap(), None);
        let made = ApiCredential::load_or_create(dir.path()).unwrap();
        assert!(made.password.len() >= 40);
        assert_eq!(ApiCredential::load_or_create(dir.path()).unwrap(), made);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(API_CREDENTIAL_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{made:?}").contains(&made.password));
    }

    #[test]
    fn only_loopback_addresses_get_the_local_credential() {
        for local in [
            "/ip4/127.0.0.1/tcp/9094",
            "127.0.0.1:9094",
            "http://localhost:9094",
            "https://[::1]:9094/",
            "/ip6/::1/tcp/9094",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in [
            "/ip4/10.0.0.2/tcp/9094",
            "example.com:9094",
            "http://192.168.1.5:9094",
            "/dns4/localhost.example.com/tcp/9094",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }
}
