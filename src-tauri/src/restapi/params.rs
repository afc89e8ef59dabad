//! Query-string parsing with IPFS Cluster's parameter names; every bad value is a 400 naming
//! the parameter.

use std::collections::BTreeMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::components::{AddFormat, AddOptions, AddRequest};
use crate::error::Error;
use crate::types::{Cid, PinOptions, PinType, StatusFilter};

/// The decoded query string, in order. Never rejects: bad values are reported by the getters.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(Params(
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ))
    }
}

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| Error::BadInput(format!("parameter {key}={v:?}: {e}"))),
        }
    }

    pub fn flag(&self, key: &str) -> Result<bool, Error> {
        Ok(self.parse::<bool>(key)?.unwrap_or(false))
    }

    pub fn local(&self) -> Result<bool, Error> {
        self.flag("local")
    }

    pub fn status_filter(&self) -> Result<StatusFilter, Error> {
        self.get("filter")
            .unwrap_or("")
            .parse()
            .map_err(|e| Error::BadInput(format!("parameter filter: {e}")))
    }

    pub fn pin_types(&self) -> Result<Vec<PinType>, Error> {
        self.get("filter")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "all")
            .map(|s| {
                s.parse()
                    .map_err(|e| Error::BadInput(format!("parameter filter: {e}")))
            })
            .collect()
    }

    pub fn cids(&self) -> Result<Vec<Cid>, Error> {
        self.get("cids")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse()
                    .map_err(|e| Error::BadInput(format!("parameter cids: {e}")))
            })
            .collect()
    }

    /// Pin options as `POST /pins/{cid}` takes them.
    pub fn pin_options(&self) -> Result<PinOptions, Error> {
        let mut o = PinOptions::default();
        if let Some(r) = self.parse::<i32>("replication")? {
            o.replication_factor_min = r;
            o.replication_factor_max = r;
        }
        if let Some(r) = self.parse::<i32>("replication-min")? {
            o.replication_factor_min = r;
        }
        if let Some(r) = self.parse::<i32>("replication-max")? {
            o.replication_factor_max = r;
        }
        if let Some(n) = self.get("name") {
            o.name = n.to_string();
        }
        if let Some(m) = self.parse("mode")? {
            o.mode = m;
        }
        if let Some(s) = self.parse("shard-size")? {
            o.shard_size = s;
        }
        o.user_allocations = split_list(self.get("user-allocations"));
        if let Some(t) = self.get("expire-at").filter(|s| !s.is_empty()) {
            let t = chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| Error::BadInput(format!("parameter expire-at={t:?}: {e}")))?;
            o.expire_at = Some(t.with_timezone(&chrono::Utc));
        }
        if let Some(d) = self.parse::<crate::config::GoDuration>("expire-in")? {
            let d = chrono::Duration::from_std(d.get())
                .map_err(|e| Error::BadInput(format!("parameter expire-in: {e}")))?;
            o.expire_at = Some(chrono::Utc::now() + d);
        }
        o.pin_update = self.parse("pin-update")?;
        o.origins = split_list(self.get("origins"));
        for origin in &o.origins {
            origin
                .parse::<multiaddr::Multiaddr>()
                .map_err(|e| Error::BadInput(format!("parameter origins: {origin:?}: {e}")))?;
        }
        let mut metadata = BTreeMap::new();
        for (k, v) in &self.0 {
            if let Some(key) = k.strip_prefix("meta-") {
                metadata.insert(key.to_string(), v.clone());
            }
        }
        o.metadata = metadata;
        Ok(o)
    }
}

impl Params {
    /// `POST /add`'s options: the pin options plus IPFS Cluster's add parameters.
    pub fn add_request(&self) -> Result<AddRequest, Error> {
        let cid_version = self.parse::<u8>("cid-version")?;
        if let Some(v) = cid_version.filter(|v| *v > 1) {
            return Err(Error::BadInput(format!(
                "parameter cid-version={v}: must be 0 or 1"
            )));
        }
        let format = match self.get("format").unwrap_or("") {
            "" | "unixfs" => AddFormat::Unixfs,
            "car" => AddFormat::Car,
            other => {
                return Err(Error::BadInput(format!(
                    "parameter format={other:?}: must be unixfs or car"
                )))
            }
        };
        // Validated for IPFS Cluster's clients; every add is local here (cluster/add.rs).
        self.local()?;
        Ok(AddRequest {
            pin: self.pin_options()?,
            ipfs: AddOptions {
                cid_version,
                raw_leaves: self.parse("raw-leaves")?,
                chunker: self
                    .get("chunker")
                    .filter(|c| !c.is_empty())
                    .map(String::from),
                hidden: self.flag("hidden")?,
                wrap_with_directory: self.flag("wrap-with-directory")?,
            },
            no_pin: self.flag("no-pin")?,
            format,
        })
    }

    /// `stream-channels`: NDJSON as produced (default), or one JSON array at the end.
    pub fn stream_channels(&self) -> Result<bool, Error> {
        Ok(self.parse::<bool>("stream-channels")?.unwrap_or(true))
    }
}

fn split_list(v: Option<&str>) -> Vec<String> {
    v.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params(form_urlencoded::parse(q.as_bytes()).into_owned().collect())
    }

    #[test]
    fn pin_options_from_query() {
        let o = p("replication-min=2&replication-max=3&name=hello&meta-a=b&mode=direct")
            .pin_options()
            .unwrap();
        assert_eq!((o.replication_factor_min, o.replication_factor_max), (2, 3));
        assert_eq!(o.name, "hello");
        assert_eq!(o.metadata.get("a").map(String::as_str), Some("b"));
        assert_eq!(o.mode, crate::types::PinMode::Direct);
        let a = p("cid-version=1&raw-leaves=true&chunker=size-1000&wrap-with-directory=true&no-pin=true&format=car&name=n")
            .add_request()
            .unwrap();
        assert_eq!(a.ipfs.cid_version, Some(1));
        assert_eq!(a.ipfs.raw_leaves, Some(true));
        assert_eq!(a.ipfs.chunker.as_deref(), Some("size-1000"));
        assert!(a.ipfs.wrap_with_directory && a.no_pin);
        assert_eq!(a.format, AddFormat::Car);
        assert_eq!(a.pin.name, "n");
        assert!(p("").stream_channels().unwrap());
        let o = p("replication=4").pin_options().unwrap();
        assert_eq!((o.replication_factor_min, o.replication_factor_max), (4, 4));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (q, key) in [
            ("replication-min=x", "replication-min"),
            ("mode=sideways", "mode"),
            ("expire-at=tomorrow", "expire-at"),
            ("origins=nope", "origins"),
            ("pin-update=notacid", "pin-update"),
        ] {
            let err = p(q).pin_options().unwrap_err().to_string();
            assert!(err.contains(key), "{q}: {err}");
        }
        assert!(p("filter=pinned,bogus").status_filter().is_err());
        assert!(p("filter=bogus").pin_types().is_err());
        assert!(p("cids=abc").cids().is_err());
        assert!(p("local=maybe").local().is_err());
        for (q, key) in [
            ("cid-version=2", "cid-version"),
            ("raw-leaves=perhaps", "raw-leaves"),
            ("format=zip", "format"),
            ("wrap-with-directory=2", "wrap-with-directory"),
            ("no-pin=x", "no-pin"),
            ("replication-min=x", "replication-min"),
        ] {
            let err = p(q).add_request().unwrap_err().to_string();
            assert!(err.contains(key), "{q}: {err}");
        }
        assert!(p("stream-channels=nah").stream_channels().is_err());
    }
}
