//! IPFS connector: a client of the Kubo RPC API (`POST /api/v0/…`, SPEC §7).
//!
//! Every call carries its configured timeout; an unreachable daemon is an error value, never a
//! panic, and the next call simply tries again, so the peer recovers by itself when IPFS returns.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::Deserialize;

/// One line of `pin/ls`: `{"Cid": …}` streamed, or `{"Keys": {cid: …}}` whole.
#[derive(Deserialize)]
struct PinLsItem {
    #[serde(rename = "Cid")]
    cid: Option<String>,
    #[serde(rename = "Keys")]
    keys: Option<std::collections::BTreeMap<String, serde::de::IgnoredAny>>,
}
use serde_json::Value;

use crate::components::{
    AddOptions, AddedNode, ByteStream, IpfsBandwidth, IpfsConnector, IpfsError, RepoStat,
};
use crate::config::IpfsHttpConfig;
use crate::net::AddrError;
use crate::types::{Cid, IpfsId, IpfsRepoGc, Pin, PinMode};

pub struct IpfsHttp {
    base: String,
    client: reqwest::Client,
    cfg: IpfsHttpConfig,
}

#[derive(Deserialize)]
struct KuboError {
    #[serde(rename = "Message")]
    message: String,
}

/// Whether the IPFS daemon `cfg` names answers (its `id`): what `ipfs-cluster-follow` waits
/// for before it starts a peer, and reports in `info`.
pub async fn answers(cfg: &IpfsHttpConfig) -> bool {
    match IpfsHttp::new(cfg) {
        Ok(ipfs) => ipfs.id().await.is_ok(),
        Err(_) => false,
    }
}

impl IpfsHttp {
    pub fn new(cfg: &IpfsHttpConfig) -> Result<IpfsHttp, AddrError> {
        let addr = cfg.node_multiaddress.first().ok_or_else(|| AddrError {
            addr: "ipfs_connector.ipfshttp.node_multiaddress".into(),
            problem: "no address given".into(),
        })?;
        let base = crate::net::http_url(addr)?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AddrError {
                addr: base.clone(),
                problem: format!("cannot make an HTTP client: {e}"),
            })?;
        Ok(IpfsHttp {
            base,
            client,
            cfg: cfg.clone(),
        })
    }

    async fn send(
        &self,
        path: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<reqwest::Response, IpfsError> {
        let url = format!("{}/api/v0/{path}", self.base);
        let mut req = self.client.post(&url).query(query);
        if !timeout.is_zero() {
            req = req.timeout(timeout);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        check_status(resp).await
    }

    fn transport_error(&self, e: reqwest::Error, timeout: Duration) -> IpfsError {
        if e.is_timeout() {
            IpfsError::Timeout(timeout)
        } else if e.is_connect() || e.is_request() {
            IpfsError::Unreachable {
                url: self.base.clone(),
                message: std::error::Error::source(&e)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| e.to_string()),
            }
        } else {
            IpfsError::Api(e.to_string())
        }
    }

    async fn call_json(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, IpfsError> {
        let timeout = self.cfg.ipfs_request_timeout.get();
        let resp = self.send(path, query, timeout).await?;
        resp.json::<Value>()
            .await
            .map_err(|e| IpfsError::Decode(e.to_string()))
    }
}

/// The URL of the first gateway address Kubo's `Addresses.Gateway` names (a string or a
/// list of multiaddrs); an address on every interface is reached on loopback.
pub fn gateway_url(addrs: Option<&Value>) -> Option<String> {
    let list: Vec<&str> = match addrs? {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    list.into_iter().find_map(|ma| {
        let parts: Vec<&str> = ma.split('/').collect();
        let (kind, host, tcp, port) = (parts.get(1)?, parts.get(2)?, parts.get(3)?, parts.get(4)?);
        if *tcp != "tcp" || port.parse::<u16>().is_err() {
            return None;
        }
        // Only what parses as an address, or a plain host name, goes into the URL: a config
        // cannot smuggle in another host (`127.0.0.1@elsewhere`).
        let host = match (*kind, *host) {
            ("ip4", h) => match h.parse::<std::net::Ipv4Addr>().ok()? {
                ip if ip.is_unspecified() => "127.0.0.1".to_string(),
                ip => ip.to_string(),
            },
            ("ip6", h) => match h.parse::<std::net::Ipv6Addr>().ok()? {
                ip if ip.is_unspecified() => "[::1]".to_string(),
                ip => format!("[{ip}]"),
            },
            ("dns" | "dns4" | "dns6", h)
                if !h.is_empty()
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
            {
                h.to_string()
            }
            _ => return None,
        };
        Some(format!("http://{host}:{port}"))
    })
}

/// A success answer as is; an error answer as Kubo's `Message`.
async fn check_status(resp: reqwest::Response) -> Result<reqwest::Response, IpfsError> {
    if resp.status().is_success() {
        return Ok(resp);
    }
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<KuboError>(&body)
        .map(|e| e.message)
        .unwrap_or_else(|_| format!("{status}: {}", body.trim()));
    Err(IpfsError::Api(message))
}

/// A Kubo NDJSON answer, one line at a time as each line completes.
fn ndjson_lines(resp: reqwest::Response) -> BoxStream<'static, Result<Vec<u8>, IpfsError>> {
    let mut body = resp.bytes_stream();
    async_stream::try_stream! {
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            buf.extend_from_slice(&chunk.map_err(|e| IpfsError::Decode(e.to_string()))?);
            let mut start = 0;
            while let Some(end) = buf[start..].iter().position(|b| *b == b'\n') {
                yield buf[start..start + end].to_vec();
                start += end + 1;
            }
            buf.drain(..start);
        }
        if !buf.is_empty() {
            yield buf;
        }
    }
    .boxed()
}

/// One line of Kubo's `add` answer: a node, progress (`Bytes` without `Hash`), or an error.
#[derive(Deserialize)]
struct AddLine {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Hash")]
    hash: Option<String>,
    #[serde(rename = "Size", default)]
    size: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "Type")]
    kind: Option<String>,
}

fn added_node(text: &[u8]) -> Result<Option<AddedNode>, IpfsError> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let line: AddLine =
        serde_json::from_slice(text).map_err(|e| IpfsError::Decode(e.to_string()))?;
    if line.kind.as_deref() == Some("error") {
        return Err(IpfsError::Api(line.message.unwrap_or_default()));
    }
    let Some(hash) = line.hash else {
        return Ok(None);
    };
    Ok(Some(AddedNode {
        name: line.name,
        cid: hash.parse().map_err(IpfsError::Decode)?,
        size: line.size.and_then(|s| s.parse().ok()).unwrap_or(0),
    }))
}

fn str_field<'a>(v: &'a Value, key: &str) -> Result<&'a str, IpfsError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| IpfsError::Decode(format!("missing {key} in {v}")))
}

#[async_trait]
impl IpfsConnector for IpfsHttp {
    async fn id(&self) -> Result<IpfsId, IpfsError> {
        let v = self.call_json("id", &[]).await?;
        let id = IpfsId {
            id: str_field(&v, "ID")?.to_string(),
            addresses: v
                .get("Addresses")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            error: String::new(),
        };
        Ok(id)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(cid = %pin.cid))]
    async fn pin(&self, pin: &Pin) -> Result<(), IpfsError> {
        let cid = pin.cid.to_string();
        // A pin update of content IPFS has pinned recursively: IPFS's pin/update fetches only
        // what differs (as IPFS Cluster). Anything else, or a failed update, pins normally.
        if let Some(from) = pin
            .options
            .pin_update
            .filter(|_| pin.options.mode == PinMode::Recursive)
        {
            if self.is_pinned(&from).await.unwrap_or(false) {
                let from = from.to_string();
                let query = [
                    ("arg", from.as_str()),
                    ("arg", cid.as_str()),
                    ("unpin", "false"),
                ];
                match self
                    .send("pin/update", &query, self.cfg.pin_timeout.get())
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(e) => {
                        tracing::info!(%from, to = %cid, "IPFS pin/update failed, pinning instead: {e}")
                    }
                }
            }
        }
        let recursive = if pin.options.mode == PinMode::Direct {
            "false"
        } else {
            "true"
        };
        // IPFS Cluster's pin_timeout bounds the time without progress, not the whole pin: a
        // large DAG may take hours while it keeps fetching blocks.
        let stall = self.cfg.pin_timeout.get();
        let query = [
            ("arg", cid.as_str()),
            ("recursive", recursive),
            ("progress", "true"),
        ];
        let request = self.send("pin/add", &query, Duration::ZERO);
        let resp = if stall.is_zero() {
            request.await?
        } else {
            tokio::time::timeout(stall, request)
                .await
                .map_err(|_| IpfsError::Timeout(stall))??
        };
        let mut body = resp.bytes_stream();
        let mut buf = Vec::new();
        loop {
            let next = if stall.is_zero() {
                body.next().await
            } else {
                tokio::time::timeout(stall, body.next())
                    .await
                    .map_err(|_| IpfsError::Timeout(stall))?
            };
            match next {
                None => break,
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => return Err(IpfsError::Api(format!("pin/add stream broke: {e}"))),
            }
        }
        // The stream is a series of {"Progress": n} objects ending in {"Pins": [...]}; an
        // error mid-stream arrives as an object with "Message".
        let mut pinned = false;
        for item in serde_json::Deserializer::from_slice(&buf).into_iter::<Value>() {
            let item = item.map_err(|e| IpfsError::Decode(e.to_string()))?;
            if let Some(msg) = item.get("Message").and_then(Value::as_str) {
                return Err(IpfsError::Api(msg.to_string()));
            }
            if item.get("Pins").is_some() {
                pinned = true;
            }
        }
        if pinned {
            Ok(())
        } else {
            Err(IpfsError::Api(
                "pin/add ended without confirming the pin".into(),
            ))
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(cid = %cid))]
    async fn unpin(&self, cid: &Cid) -> Result<bool, IpfsError> {
        let arg = cid.to_string();
        match self
            .send(
                "pin/rm",
                &[("arg", &arg), ("recursive", "true")],
                self.cfg.unpin_timeout.get(),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(IpfsError::Api(m)) if m.contains("not pinned") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn pin_ls_each(&self, each: &mut (dyn FnMut(Cid) + Send)) -> Result<u64, IpfsError> {
        let resp = self
            .send(
                "pin/ls",
                &[("type", "recursive"), ("stream", "true")],
                self.cfg.ipfs_request_timeout.get(),
            )
            .await?;
        let decode = |e: String| IpfsError::Decode(e);
        // One JSON object per line, handed on as each line completes.
        let line = |text: &[u8], each: &mut (dyn FnMut(Cid) + Send)| -> Result<u64, IpfsError> {
            if text.iter().all(u8::is_ascii_whitespace) {
                return Ok(0);
            }
            let item: PinLsItem =
                serde_json::from_slice(text).map_err(|e| decode(e.to_string()))?;
            let mut n = 0;
            if let Some(c) = item.cid {
                each(c.parse().map_err(decode)?);
                n += 1;
            }
            // Non-streaming form, sent by daemons that ignore `stream`.
            for k in item.keys.into_iter().flat_map(|k| k.into_keys()) {
                each(k.parse().map_err(decode)?);
                n += 1;
            }
            Ok(n)
        };
        let mut lines = ndjson_lines(resp);
        let mut count = 0u64;
        while let Some(text) = lines.next().await {
            count += line(&text?, each)?;
        }
        Ok(count)
    }

    async fn is_pinned(&self, cid: &Cid) -> Result<bool, IpfsError> {
        let arg = cid.to_string();
        match self
            .send(
                "pin/ls",
                &[("arg", &arg), ("type", "recursive")],
                self.cfg.ipfs_request_timeout.get(),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(IpfsError::Api(m)) if m.contains("not pinned") => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn resolve(&self, path: &str) -> Result<Cid, IpfsError> {
        let v = self
            .call_json("resolve", &[("arg", path), ("recursive", "true")])
            .await?;
        let resolved = str_field(&v, "Path")?;
        let cid = resolved
            .trim_start_matches("/ipfs/")
            .split('/')
            .next()
            .unwrap_or_default();
        cid.parse().map_err(IpfsError::Decode)
    }

    async fn repo_stat(&self) -> Result<RepoStat, IpfsError> {
        let v = self
            .call_json("repo/stat", &[("size-only", "true")])
            .await?;
        let repo_size = v.get("RepoSize").and_then(Value::as_u64).unwrap_or(0);
        let mut storage_max = v.get("StorageMax").and_then(Value::as_u64).unwrap_or(0);
        if storage_max == 0 {
            let cfg = self.call_json("config/show", &[]).await?;
            storage_max = cfg
                .pointer("/Datastore/StorageMax")
                .and_then(Value::as_str)
                .and_then(crate::types::parse_storage_size)
                .unwrap_or(0);
        }
        Ok(RepoStat {
            repo_size,
            storage_max,
        })
    }

    async fn bandwidth(&self) -> Result<IpfsBandwidth, IpfsError> {
        let v = self.call_json("stats/bw", &[]).await?;
        let num = |k: &str| v.get(k).and_then(Value::as_f64);
        match (num("TotalIn"), num("TotalOut")) {
            (Some(i), Some(o)) => Ok(IpfsBandwidth {
                total_in: i as u64,
                total_out: o as u64,
                rate_in: num("RateIn").unwrap_or(0.0),
                rate_out: num("RateOut").unwrap_or(0.0),
            }),
            _ => Err(IpfsError::Decode(format!("stats/bw answered {v}"))),
        }
    }

    async fn gateway(&self) -> Result<Option<String>, IpfsError> {
        let cfg = self.call_json("config/show", &[]).await?;
        Ok(gateway_url(cfg.pointer("/Addresses/Gateway")))
    }

    async fn swarm_peers(&self) -> Result<Vec<String>, IpfsError> {
        let v = self.call_json("swarm/peers", &[]).await?;
        let mut peers: Vec<String> = v["Peers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["Peer"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        peers.sort();
        peers.dedup();
        Ok(peers)
    }

    async fn repo_gc(&self) -> Result<Vec<IpfsRepoGc>, IpfsError> {
        let resp = self
            .send(
                "repo/gc",
                &[("stream-errors", "true")],
                self.cfg.repogc_timeout.get(),
            )
            .await?;
        let mut lines = ndjson_lines(resp);
        let mut out = Vec::new();
        while let Some(line) = lines.next().await {
            let line = line?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let v: Value =
                serde_json::from_slice(&line).map_err(|e| IpfsError::Decode(e.to_string()))?;
            let key = v["Key"]["/"].as_str().and_then(|c| c.parse().ok());
            let error = v["Error"].as_str().unwrap_or_default().to_string();
            if key.is_some() || !error.is_empty() {
                out.push(IpfsRepoGc { key, error });
            }
        }
        Ok(out)
    }

    async fn swarm_connect(&self, addr: &str) -> Result<(), IpfsError> {
        self.call_json("swarm/connect", &[("arg", addr)])
            .await
            .map(|_| ())
    }

    async fn add(&self, name: &str, data: Vec<u8>) -> Result<Cid, IpfsError> {
        let url = format!("{}/api/v0/add", self.base);
        let part = reqwest::multipart::Part::bytes(data).file_name(name.to_string());
        let form = reqwest::multipart::Form::new().part("file", part);
        let timeout = self.cfg.ipfs_request_timeout.get();
        let resp = self
            .client
            .post(&url)
            .query(&[("pin", "false"), ("cid-version", "0")])
            .multipart(form)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        if !resp.status().is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(IpfsError::Api(body.trim().to_string()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| IpfsError::Decode(e.to_string()))?;
        // One line per added node; the last is the root.
        let last = serde_json::Deserializer::from_slice(&body)
            .into_iter::<Value>()
            .filter_map(Result::ok)
            .last()
            .ok_or_else(|| IpfsError::Decode("add answered nothing".into()))?;
        str_field(&last, "Hash")?.parse().map_err(IpfsError::Decode)
    }

    async fn dag_import(&self, name: &str, car: ByteStream) -> Result<(), IpfsError> {
        let url = format!("{}/api/v0/dag/import", self.base);
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(car))
            .file_name(name.to_string())
            .mime_str("application/vnd.ipld.car")
            .map_err(|e| IpfsError::Decode(e.to_string()))?;
        let resp = self
            .client
            .post(&url)
            .query(&[("pin-roots", "false"), ("stats", "false")])
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .map_err(|e| self.transport_error(e, Duration::ZERO))?;
        let resp = check_status(resp).await?;
        // Errors may come as a line after the head (Kubo's streamed commands).
        let mut lines = ndjson_lines(resp);
        while let Some(line) = lines.next().await {
            let line = line?;
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                if v["Type"] == "error" {
                    return Err(IpfsError::Api(
                        v["Message"].as_str().unwrap_or("").to_string(),
                    ));
                }
            }
        }
        Ok(())
    }

    async fn add_multipart(
        &self,
        content_type: &str,
        body: ByteStream,
        opts: &AddOptions,
    ) -> Result<BoxStream<'static, Result<AddedNode, IpfsError>>, IpfsError> {
        let url = format!("{}/api/v0/add", self.base);
        let mut query: Vec<(&str, String)> =
            vec![("pin", "false".into()), ("stream-channels", "true".into())];
        if let Some(v) = opts.cid_version {
            query.push(("cid-version", v.to_string()));
        }
        if let Some(r) = opts.raw_leaves {
            query.push(("raw-leaves", r.to_string()));
        }
        if let Some(c) = &opts.chunker {
            query.push(("chunker", c.clone()));
        }
        if opts.hidden {
            query.push(("hidden", "true".into()));
        }
        if opts.wrap_with_directory {
            query.push(("wrap-with-directory", "true".into()));
        }
        // No overall timeout: an upload lasts as long as the client sends.
        let resp = self
            .client
            .post(&url)
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| self.transport_error(e, Duration::ZERO))?;
        let resp = check_status(resp).await?;
        Ok(ndjson_lines(resp)
            .filter_map(|line| async move { line.and_then(|l| added_node(&l)).transpose() })
            .boxed())
    }
}

#[cfg(test)]
pub(crate) mod fake;
#[cfg(test)]
mod tests;
