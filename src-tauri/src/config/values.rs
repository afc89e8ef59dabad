//! The value types of `service.json` that are more than JSON: multiaddress lists and the
//! cluster secret.

use std::fmt;
use std::str::FromStr;

use multiaddr::Multiaddr;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One multiaddress or a list of them: IPFS Cluster accepts both spellings for every
/// multiaddress key, so configs written by either form load.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Multiaddrs(pub Vec<Multiaddr>);

impl Multiaddrs {
    pub fn one(s: &str) -> Multiaddrs {
        Multiaddrs(vec![s.parse().expect("valid built-in multiaddr")])
    }
    pub fn first(&self) -> Option<&Multiaddr> {
        self.0.first()
    }
}

impl Serialize for Multiaddrs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let strs: Vec<String> = self.0.iter().map(|m| m.to_string()).collect();
        if strs.len() == 1 {
            s.serialize_str(&strs[0])
        } else {
            strs.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Multiaddrs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let strs = match OneOrMany::deserialize(d)? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        strs.iter()
            .map(|s| {
                crate::net::parse_multiaddr(s).map_err(|e| {
                    serde::de::Error::custom(format!("invalid multiaddress {s:?}: {}", e.problem))
                })
            })
            .collect::<Result<_, _>>()
            .map(Multiaddrs)
    }
}

/// The cluster secret: 32 bytes, written as 64 hex characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; 32]);

impl Secret {
    pub fn generate() -> Secret {
        Secret(rand::random())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s.trim())
            .map_err(|e| format!("the secret must be 64 hexadecimal characters ({e})"))?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "the secret must be 32 bytes (64 hexadecimal characters), this one is {} bytes",
                b.len()
            )
        })?;
        Ok(Secret(arr))
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
