//! `identity.json`: the peer's libp2p Ed25519 key, in IPFS Cluster's format so that an
//! existing peer's identity can be reused.

use std::path::Path;

use base64::Engine;
use libp2p_identity::{Keypair, PeerId};
use serde::{Deserialize, Serialize};

use super::error::ConfigError;
use super::files::write_private;

#[derive(Clone)]
pub struct Identity {
    pub keypair: Keypair,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    id: String,
    private_key: String,
}

impl Identity {
    pub fn generate() -> Identity {
        Identity {
            keypair: Keypair::generate_ed25519(),
        }
    }

    pub fn peer_id(&self) -> PeerId {
        self.keypair.public().to_peer_id()
    }

    pub fn to_json(&self) -> String {
        let key = self
            .keypair
            .to_protobuf_encoding()
            .expect("ed25519 keys encode");
        let file = IdentityFile {
            id: self.peer_id().to_string(),
            private_key: base64::engine::general_purpose::STANDARD.encode(key),
        };
        serde_json::to_string_pretty(&file).expect("identity serializes") + "\n"
    }

    pub fn from_json(text: &str) -> Result<Identity, ConfigError> {
        let invalid = |m: String| ConfigError::Identity(m);
        let file: IdentityFile =
            serde_json::from_str(text).map_err(|e| invalid(format!("malformed identity: {e}")))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(file.private_key.trim())
            .map_err(|e| invalid(format!("key `private_key`: not base64: {e}")))?;
        let keypair = Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| invalid(format!("key `private_key`: not a libp2p private key: {e}")))?;
        let identity = Identity { keypair };
        let actual = identity.peer_id().to_string();
        if actual != file.id {
            return Err(invalid(format!(
                "key `id`: {} does not match the private key (which is peer {actual})",
                file.id
            )));
        }
        Ok(identity)
    }

    pub fn load(path: &Path) -> Result<Identity, ConfigError> {
        let invalid = |m: String| ConfigError::Identity(m);
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => invalid(format!(
                "no identity at {}: run `ipfs-cluster-service init` first",
                path.display()
            )),
            _ => invalid(format!("{}: {e}", path.display())),
        })?;
        Identity::from_json(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))
    }

    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        write_private(path, self.to_json().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_tampering() {
        let id = Identity::generate();
        let back = Identity::from_json(&id.to_json()).unwrap();
        assert_eq!(back.peer_id(), id.peer_id());

        let other = Identity::generate();
        let mut v: serde_json::Value = serde_json::from_str(&id.to_json()).unwrap();
        v["id"] = other.peer_id().to_string().into();
        let err = Identity::from_json(&v.to_string())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("does not match"), "{err}");
        assert!(Identity::from_json("{").is_err());
        assert!(Identity::from_json(r#"{"id":"x","private_key":"!!"}"#).is_err());
    }
}
