//! Configuration templates, IPFS Cluster's `source`: a `service.json` that holds only
//! `{"source": "<URL>"}` takes the cluster's configuration from that URL at every start, so
//! the cluster's owners can change it for every follower. `ipfs-cluster-follow` and the
//! desktop's "Follow a cluster" make such folders, and their peers are followers of a CRDT
//! cluster: the template gives the secret, the `crdt` section (whom to trust) and where the
//! trusted peers are (`cluster.peer_addresses`); what only concerns this machine (where its
//! APIs listen) is laid over it by the caller.

use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::ConfigError;
use super::files::{write_private, CONFIG_FILE};
use super::sections::Config;

/// The largest template read.
pub const MAX_TEMPLATE: usize = 4 << 20;
/// How long fetching a template may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

fn source_error(url: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Source {
        url: url.to_string(),
        message: message.into(),
    }
}

/// The template URL `folder`'s `service.json` names, if it names one.
pub fn source_of(folder: &Path) -> Result<Option<String>, ConfigError> {
    let path = folder.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::Missing(path))
        }
        Err(source) => return Err(ConfigError::Io { path, source }),
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|source| ConfigError::Malformed { path, source })?;
    Ok(value
        .get("source")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// Checks that `url` can name a template: an http(s) URL.
pub fn check_url(url: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| source_error(url, e.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        other => Err(source_error(
            url,
            format!("a template is fetched over http or https, not {other}"),
        )),
    }
}

/// Writes `folder`'s `service.json` as `{"source": url}` (owner-only, as IPFS Cluster writes
/// it), refusing to replace one.
pub fn write_source(folder: &Path, url: &str) -> Result<(), ConfigError> {
    check_url(url)?;
    let path = folder.join(CONFIG_FILE);
    if path.exists() {
        return Err(ConfigError::Exists(path));
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "source": url.trim() }))
        .expect("a string serializes");
    write_private(&path, format!("{json}\n").as_bytes())
        .map_err(|source| ConfigError::Io { path, source })
}

/// Fetches the template at `url`: a JSON object of at most [`MAX_TEMPLATE`] bytes, within
/// [`FETCH_TIMEOUT`], naming no source of its own (IPFS Cluster refuses a chain of sources).
/// Up to 5 redirects are followed, over http(s) only and never from https to http.
pub async fn fetch(url: &str) -> Result<Map<String, Value>, ConfigError> {
    check_url(url)?;
    let http = reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            // No more than 5, and never from https down to http (the secret would travel
            // in clear, and could be swapped on the way).
            let from_https = attempt.previous().iter().any(|u| u.scheme() == "https");
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if from_https && attempt.url().scheme() != "https" {
                attempt.error("a redirect from https to http")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| source_error(url, e.to_string()))?;
    let mut resp = http
        .get(url.trim())
        .send()
        .await
        .map_err(|e| source_error(url, e.to_string()))?;
    if !resp.status().is_success() {
        return Err(source_error(url, resp.status().to_string()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| source_error(url, e.to_string()))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_TEMPLATE {
            return Err(source_error(
                url,
                format!("the template is larger than {} MiB", MAX_TEMPLATE >> 20),
            ));
        }
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| source_error(url, format!("the template is not JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(source_error(url, "the template is not a JSON object"));
    };
    if obj.contains_key("source") {
        return Err(source_error(
            url,
            "the template names a source of its own; a source cannot point to another",
        ));
    }
    Ok(obj)
}

/// What a template never decides for a follower, being the follower's own machine's to
/// decide: its files, its name, how much work it takes on and how often it checks (a
/// template could otherwise exhaust its memory or CPU, or make it write its own identity
/// as a peerstore). These keep this program's defaults, under `local` and `env`.
const FOLLOWER_OWN: &[&str] = &[
    "/cluster/peername",
    "/cluster/peerstore_file",
    "/cluster/state_sync_interval",
    "/cluster/pin_recover_interval",
    "/cluster/monitor_ping_interval",
    "/cluster/peer_watch_interval",
    "/cluster/connection_manager",
    "/pin_tracker",
    "/observations",
];

/// A follower's configuration from the template fetched from `url`: this machine's own
/// keys ([`FOLLOWER_OWN`] at their defaults, then `local`: JSON pointers to the sections that
/// concern this machine only, with their values) laid over it, then `env`'s `CLUSTER_*`
/// overrides; refused unless it is a CRDT cluster's that names its trusted peers.
/// `follower_mode` is set, tracing and metrics are off (a follower tells nobody what it
/// holds).
pub fn follower_config(
    url: &str,
    template: Map<String, Value>,
    local: &[(&str, Value)],
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    let mut value = Value::Object(template);
    let own = serde_json::to_value(Config::default()).expect("config serializes");
    for pointer in FOLLOWER_OWN {
        let default = own.pointer(pointer).cloned().expect("a default key");
        set_pointer(&mut value, pointer, default);
    }
    for (pointer, section) in local {
        set_pointer(&mut value, pointer, section.clone());
    }
    let mut cfg = Config::parse(Path::new(url), &value.to_string(), env)?;
    if !cfg.consensus.crdt_mode {
        return Err(source_error(
            url,
            "the template is not a CRDT cluster's (it needs a consensus.crdt section and no \
             raft one): only CRDT clusters can be followed",
        ));
    }
    // Whoever has the template has the secret: trusting every peer would let any of them
    // fill the follower's disk with pins of their choosing.
    if cfg.consensus.crdt.as_ref().is_some_and(|c| c.trust_all()) {
        return Err(source_error(
            url,
            "the template trusts every peer (consensus.crdt.trusted_peers has \"*\"): a \
             follower would take pins from anyone who has the template; its owners must name \
             their trusted peers",
        ));
    }
    cfg.cluster.follower_mode = true;
    cfg.observations.tracing.enable_tracing = false;
    cfg.observations.metrics.enable_stats = false;
    Ok(cfg)
}

/// Sets `pointer` (`/a/b`) in `value`, making the objects on the way.
fn set_pointer(value: &mut Value, pointer: &str, new: Value) {
    let mut at = value;
    let keys: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let (last, path) = keys.split_last().expect("a pointer names a key");
    for k in path {
        if !at.get(*k).is_some_and(Value::is_object) {
            at[*k] = Value::Object(Map::new());
        }
        at = &mut at[*k];
    }
    at[*last] = new;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Map<String, Value> {
        let mut cfg = Config::new_for_init();
        cfg.consensus.crdt = Some(crate::config::CrdtConfig {
            trusted_peers: vec![TRUSTED.into()],
            ..Default::default()
        });
        let mut v = serde_json::to_value(cfg).unwrap();
        v["cluster"]["peerstore_file"] = "identity.json".into();
        v["pin_tracker"]["stateless"]["concurrent_pins"] = 1_000_000_000.into();
        v["consensus"].as_object_mut().unwrap().remove("raft");
        v["api"]["restapi"]["http_listen_multiaddress"] = "/ip4/0.0.0.0/tcp/9094".into();
        match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    const TRUSTED: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

    /// The local sections replace the template's (a template cannot open this machine's
    /// API to the network, nor pick its files or workload), the peer is a follower, and a
    /// Raft template, or one trusting every peer, is refused.
    #[test]
    fn a_template_becomes_a_followers_config_with_this_machines_sections() {
        let local = [(
            "/api/restapi",
            serde_json::json!({"http_listen_multiaddress": "/unix/tmp/s"}),
        )];
        let cfg = follower_config("http://t", template(), &local, &[]).unwrap();
        assert!(cfg.cluster.follower_mode);
        assert!(cfg.consensus.crdt_mode);
        let defaults = Config::default();
        assert_eq!(cfg.cluster.peerstore_file, defaults.cluster.peerstore_file);
        assert_eq!(cfg.pin_tracker, defaults.pin_tracker);
        assert_eq!(cfg.cluster.peername, defaults.cluster.peername);
        assert_eq!(
            cfg.api.restapi.0.http_listen_multiaddress.0[0].to_string(),
            "/unix/tmp/s"
        );
        let env = [(
            "CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS".to_string(),
            "/ip4/127.0.0.1/tcp/1".to_string(),
        )];
        let cfg = follower_config("http://t", template(), &local, &env).unwrap();
        assert_eq!(
            cfg.api.restapi.0.http_listen_multiaddress.0[0].to_string(),
            "/ip4/127.0.0.1/tcp/1"
        );
        let mut raft = template();
        raft.insert("consensus".into(), serde_json::json!({"raft": {}}));
        let err = follower_config("http://t", raft, &local, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("only CRDT clusters"), "{err}");
        let mut open = template();
        open["consensus"]["crdt"]["trusted_peers"] = serde_json::json!(["*"]);
        let err = follower_config("http://t", open, &local, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("trusts every peer"), "{err}");
    }

    #[test]
    fn only_http_urls_name_a_template_and_a_source_is_written_once() {
        assert!(check_url("https://example.org/t.json").is_ok());
        for bad in ["file:///etc/passwd", "example.org", "ftp://x/y"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        write_source(dir.path(), "http://example.org/t.json").unwrap();
        assert_eq!(
            source_of(dir.path()).unwrap().as_deref(),
            Some("http://example.org/t.json")
        );
        assert!(matches!(
            write_source(dir.path(), "http://example.org/u.json"),
            Err(ConfigError::Exists(_))
        ));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(CONFIG_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
