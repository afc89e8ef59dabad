//! The REST API in process, over a real socket, in front of a real single-voter Raft and a
//! Kubo test double.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Config, Identity, Multiaddrs, Secret};
use crate::ipfsconn::fake::{test_cid, FakeKubo};
use crate::peer::Peer;

/// A single-voter peer in front of a Kubo double; also used by the other APIs' tests.
pub(crate) struct Api {
    _dir: tempfile::TempDir,
    pub _kubo: FakeKubo,
    pub peer: Peer,
    pub base: String,
    pub http: reqwest::Client,
}

pub(crate) async fn api(edit: impl FnOnce(&mut Config)) -> Api {
    api_with_files(&[], edit).await
}

/// [`api`], with `files` (name, text) written in the peer's folder before it starts.
async fn api_with_files(files: &[(&str, &str)], edit: impl FnOnce(&mut Config)) -> Api {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let kubo = FakeKubo::start().await;
    let mut cfg = Config::default();
    cfg.cluster.secret = Secret::generate();
    cfg.ipfs_connector.ipfshttp = kubo.config();
    cfg.api.ipfsproxy.node_multiaddress = kubo.multiaddr();
    cfg.api.restapi.0.http_listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
    cfg.api.ipfsproxy.listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
    cfg.api.pinsvcapi.0.http_listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
    cfg.cluster.listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
    edit(&mut cfg);
    let peer = Peer::start(
        dir.path().to_path_buf(),
        cfg,
        Identity::generate(),
        Default::default(),
    )
    .await
    .unwrap();
    tokio::time::timeout(Duration::from_secs(10), peer.ready())
        .await
        .expect("single voter becomes ready");
    let base = format!("http://{}", peer.rest_addr().unwrap());
    Api {
        _dir: dir,
        _kubo: kubo,
        peer,
        base,
        http: reqwest::Client::new(),
    }
}

/// [`api`] with basic auth for one user.
async fn api_with_user(user: &str, password: &str) -> Api {
    api(|c| {
        c.api.restapi.0.basic_auth_credentials =
            Some(BTreeMap::from([(user.to_string(), password.to_string())]));
    })
    .await
}

impl Api {
    /// The pinset as the peer holds it.
    pub async fn pins(&self) -> Vec<crate::types::Pin> {
        futures::TryStreamExt::try_collect(self.peer.cluster().allocations(&[]))
            .await
            .unwrap()
    }

    /// `GET path` → its JSON body.
    async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn pin_options_round_trip_through_the_pinset() {
    let a = api(|_| {}).await;
    let cid = test_cid(1);
    let url = format!(
        "{}/pins/{cid}?name=n1&replication-min=1&replication-max=1&meta-team=blue&expire-at=2030-01-01T00:00:00Z",
        a.base
    );
    let resp = a.http.post(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let pin: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(pin["name"], "n1");
    assert_eq!(pin["metadata"]["team"], "blue");
    assert_eq!(pin["replication_factor_max"], 1);
    assert_eq!(pin["expire_at"], "2030-01-01T00:00:00Z");
    let me = a.peer.cluster().me().peer_id.clone();
    assert_eq!(pin["allocations"], serde_json::json!([me]));
    let got = a.get_json(&format!("/allocations/{cid}")).await;
    assert_eq!(got, pin);
    // Asking for more copies than there are peers fails and commits nothing.
    let resp = a
        .http
        .post(format!(
            "{}/pins/{}?replication-min=2&replication-max=3",
            a.base,
            test_cid(2)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("not enough peers"));
    let pins = a.pins().await;
    assert_eq!(pins.len(), 1);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn empty_streams_are_204_and_unknown_routes_are_json_404() {
    let a = api(|_| {}).await;
    for path in ["/pins", "/allocations", "/pins?filter=pinned"] {
        let resp = a
            .http
            .get(format!("{}{path}", a.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204, "{path}");
    }
    let resp = a
        .http
        .post(format!("{}/pins/recover", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = a.http.get(format!("{}/nope", a.base)).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 404);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn basic_auth_is_enforced_when_configured() {
    let a = api_with_user("alice", "secret").await;
    // Liveness stays open, as in IPFS Cluster (load balancers and monitors ask it).
    assert_eq!(answer(&a, "GET", "/health").await.0, 204);
    let url = format!("{}/id", a.base);
    let resp = a.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], 401);
    let resp = a
        .http
        .get(&url)
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = a
        .http
        .get(&url)
        .basic_auth("alice", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let client = crate::client::Client::new(
        &a.base,
        Some(("alice".into(), "secret".into())),
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(client.id().await.unwrap().id, a.peer.cluster().me().peer_id);
    a.peer.shutdown().await;
}

/// The CORS answer of an API with `origins` (and alice's credentials when `creds`) to a
/// page of `origin`: (Allow-Origin, Allow-Credentials).
async fn cors_answer(origins: &[&str], creds: bool, origin: &str) -> (String, Option<String>) {
    let a = api(|c| {
        let r = &mut c.api.restapi.0;
        r.cors_allowed_origins = origins.iter().map(|o| o.to_string()).collect();
        if creds {
            r.basic_auth_credentials = Some(BTreeMap::from([("alice".into(), "secret".into())]));
        }
    })
    .await;
    let resp = a
        .http
        .get(format!("{}/version", a.base))
        .basic_auth("alice", Some("secret"))
        .header("Origin", origin)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let answer = (
        header("access-control-allow-origin").unwrap_or_default(),
        header("access-control-allow-credentials"),
    );
    a.peer.shutdown().await;
    answer
}

#[tokio::test]
async fn cors_headers_follow_the_config() {
    // Any origin (IPFS Cluster's default): "*", which browsers never send credentials with,
    // with or without credentials configured: a mirrored origin with Allow-Credentials
    // would let any site read with the browser's ambient authority.
    let page = "http://example.test";
    assert_eq!(cors_answer(&["*"], false, page).await, ("*".into(), None));
    assert_eq!(cors_answer(&["*"], true, page).await, ("*".into(), None));
    // A listed origin gets credentials.
    let app = "http://app.test";
    assert_eq!(
        cors_answer(&[app], true, app).await,
        (app.into(), Some("true".into()))
    );
}

#[tokio::test]
async fn id_reports_ipfs_and_role() {
    let a = api(|_| {}).await;
    let id = a.get_json("/id").await;
    assert_eq!(id["ipfs"]["id"], "QmFakeIpfsPeer");
    assert_eq!(id["role"], "voter");
    assert_eq!(id["cluster_peers"].as_array().unwrap().len(), 1);
    for key in [
        "addresses",
        "cluster_peers_addresses",
        "version",
        "commit",
        "rpc_protocol_version",
        "error",
        "peername",
    ] {
        assert!(id.get(key).is_some(), "missing {key}");
    }
    a.peer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_awaits_every_task_and_closes_the_api() {
    let a = api(|_| {}).await;
    assert!(
        a.peer.running_tasks() > 5,
        "the peer runs its loops as tasks"
    );
    let cluster_addr = a.peer.cluster_addrs()[0].clone();
    a.peer.shutdown().await;
    assert_eq!(
        a.peer.running_tasks(),
        0,
        "every task ended before shutdown returned"
    );
    let down = a.http.get(format!("{}/id", a.base)).send().await;
    assert!(down.is_err(), "the REST API no longer answers");
    // The cluster swarm's listener is gone with its task.
    let tcp = cluster_addr.split('/').collect::<Vec<_>>();
    let port: u16 = tcp[4].parse().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_is_answered_at_once_and_an_unknown_peer_is_404() {
    let a = api(|cfg| cfg.consensus.raft.commit_retries = 3).await;
    let me = a.peer.cluster().me().peer_id.clone();
    let r = a
        .http
        .delete(format!("{}/peers/{me}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        500,
        "SPEC §4: 500 for what is neither bad input nor not found"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("last voter"), "{body}");
    // A retried failure reports its attempts; a refusal is answered at once.
    assert!(
        !message.contains("attempt"),
        "a refusal is not retried: {body}"
    );
    let stranger = Identity::generate().peer_id();
    let r = a
        .http
        .delete(format!("{}/peers/{stranger}", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = a
        .http
        .delete(format!("{}/peers/not-a-peer", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn a_stream_sends_every_line_before_an_error_and_the_error_in_the_trailer() {
    use http_body_util::BodyExt;
    let items: Vec<crate::error::Result<u32>> = vec![
        Ok(1),
        Ok(2),
        Ok(3),
        Err(crate::error::Error::Unavailable(
            "the store went away".into(),
        )),
        Ok(4),
    ];
    let resp = super::ndjson(futures::stream::iter(items)).await;
    assert_eq!(resp.status(), 200);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("a trailer");
    let body = collected.to_bytes();
    assert_eq!(
        &body[..],
        b"1\n2\n3\n",
        "every line before the error, none after"
    );
    assert_eq!(trailers["x-stream-error"], "the store went away");
}

#[tokio::test]
async fn a_stream_that_ends_well_still_has_an_empty_error_trailer() {
    use http_body_util::BodyExt;
    // As IPFS Cluster: clients (browsers in particular) expect the trailer always.
    let items: Vec<crate::error::Result<u32>> = (1..=600).map(Ok).collect();
    let resp = super::ndjson(futures::stream::iter(items)).await;
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("a trailer");
    assert_eq!(trailers["x-stream-error"], "");
    assert_eq!(
        collected.to_bytes().iter().filter(|b| **b == b'\n').count(),
        600
    );
}

/// What a web page can make a browser send: `method path` with these headers, no credentials.
async fn from_page(a: &Api, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = a
        .http
        .request(method.parse().unwrap(), format!("{}{path}", a.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn a_web_page_cannot_change_anything_with_the_default_cors_config() {
    // IPFS Cluster's defaults: any origin, GET only.
    let a = api(|_| {}).await;
    let cid = test_cid(61).to_string();
    let pins = format!("/pins/{cid}");
    let evil = [("Origin", "http://evil.test")];
    let fetch_metadata = [("Sec-Fetch-Site", "cross-site")];
    assert_eq!(from_page(&a, "POST", &pins, &evil).await, 403);
    assert_eq!(from_page(&a, "POST", &pins, &fetch_metadata).await, 403);
    // A page on another port of this machine: same site, not same origin.
    let same_site = [("Sec-Fetch-Site", "same-site")];
    assert_eq!(from_page(&a, "POST", &pins, &same_site).await, 403);
    // DNS rebinding: the page's own name, resolved to 127.0.0.1, reads and writes nothing.
    let rebound = [("Host", "evil.example")];
    assert_eq!(from_page(&a, "POST", &pins, &rebound).await, 403);
    assert_eq!(from_page(&a, "GET", "/allocations", &rebound).await, 403);
    assert_eq!(from_page(&a, "POST", "/pins/recover", &evil).await, 403);
    let role = format!("/peers/{}/role?role=voter", a.peer.cluster().me().peer_id);
    assert_eq!(from_page(&a, "POST", &role, &evil).await, 403);
    assert_eq!(
        from_page(&a, "GET", "/allocations", &[]).await,
        204,
        "nothing pinned"
    );
    // Reading stays open to pages, as IPFS Cluster's default allows.
    assert_eq!(from_page(&a, "GET", "/version", &evil).await, 200);
    assert_eq!(from_page(&a, "GET", "/version", &fetch_metadata).await, 200);

    // What a page cannot undo: a pin made by a client (no Origin) stays.
    assert_eq!(from_page(&a, "POST", &pins, &[]).await, 200);
    assert_eq!(from_page(&a, "DELETE", &pins, &evil).await, 403);
    assert_eq!(from_page(&a, "DELETE", &pins, &fetch_metadata).await, 403);
    let allocation = a.get_json(&pins.replace("/pins/", "/allocations/")).await;
    assert_eq!(allocation["cid"], cid.as_str());
    // The browser's own (same-origin) requests and preflights are not refused.
    assert_eq!(
        from_page(&a, "GET", "/version", &[("Sec-Fetch-Site", "same-origin")]).await,
        200
    );
    let preflight = [
        ("Origin", "http://evil.test"),
        ("Access-Control-Request-Method", "POST"),
    ];
    assert_eq!(from_page(&a, "OPTIONS", &pins, &preflight).await, 200);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn only_the_configured_origins_and_methods_reach_the_api() {
    let a = api(|c| {
        let r = &mut c.api.restapi.0;
        r.cors_allowed_origins = vec!["http://app.test".into()];
        r.cors_allowed_methods = vec!["GET".into(), "POST".into()];
    })
    .await;
    let pins = format!("/pins/{}", test_cid(62));
    let app = [("Origin", "http://app.test")];
    let evil = [("Origin", "http://evil.test")];
    assert_eq!(from_page(&a, "GET", "/version", &evil).await, 403);
    assert_eq!(from_page(&a, "POST", &pins, &evil).await, 403);
    assert_eq!(from_page(&a, "DELETE", &pins, &app).await, 403);
    // A cross-site request without Origin cannot show it is from an allowed one.
    let anonymous = [("Sec-Fetch-Site", "cross-site")];
    assert_eq!(from_page(&a, "GET", "/version", &anonymous).await, 403);
    assert_eq!(
        from_page(&a, "GET", "/allocations", &[]).await,
        204,
        "nothing pinned"
    );
    assert_eq!(from_page(&a, "POST", &pins, &app).await, 200);
    assert_eq!(from_page(&a, "GET", "/version", &app).await, 200);
    a.peer.shutdown().await;
}

/// `method path` → (status, message of the JSON error).
async fn answer(a: &Api, method: &str, path: &str) -> (u16, String) {
    let resp = a
        .http
        .request(method.parse().unwrap(), format!("{}{path}", a.base))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (
        status,
        body["message"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test]
async fn an_unreachable_ipfs_is_a_502_and_a_malformed_path_a_400_without_asking_it() {
    let a = api(|c| c.ipfs_connector.ipfshttp = crate::ipfsconn::fake::dead_config()).await;
    let cid = test_cid(71);
    let (status, msg) = answer(&a, "POST", &format!("/pins/ipfs/{cid}/a/b")).await;
    assert_eq!(status, 502, "{msg}");
    assert!(msg.contains("unreachable"), "{msg}");
    for (method, path) in [
        ("POST", "/pins/ipfs/not-a-cid/a"),
        ("DELETE", "/pins/ipfs/not-a-cid"),
        ("POST", "/pins/ipld/zzz/a"),
        ("POST", "/pins/ipns/a%20b/c"),
        ("POST", "/pins/ipfs/%20/a"),
    ] {
        let (status, msg) = answer(&a, method, path).await;
        assert_eq!(status, 400, "{method} {path}: {msg}");
        assert!(!msg.contains("unreachable"), "{method} {path}: {msg}");
    }
    a.peer.shutdown().await;
}

#[tokio::test]
async fn an_ipfs_that_does_not_answer_in_time_is_a_504() {
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let a = api(|c| {
        let ipfs = &mut c.ipfs_connector.ipfshttp;
        ipfs.node_multiaddress = Multiaddrs::one(&format!("/ip4/127.0.0.1/tcp/{port}"));
        ipfs.ipfs_request_timeout = "500ms".parse().unwrap();
    })
    .await;
    let (status, msg) = answer(&a, "POST", &format!("/pins/ipfs/{}/a", test_cid(72))).await;
    assert_eq!(status, 504, "{msg}");
    assert!(msg.contains("timed out"), "{msg}");
    drop(silent);
    a.peer.shutdown().await;
}

/// A self-signed certificate for `127.0.0.1`, written as PEM into `dir`; returns the file
/// names (relative to `dir`, as a user would write them in `service.json`) and the cert.
fn self_signed(dir: &std::path::Path) -> (String, String, Vec<u8>) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
    (
        "cert.pem".into(),
        "key.pem".into(),
        cert.cert.der().to_vec(),
    )
}

/// One HTTP/1.1 `GET path` over TLS to `addr`, trusting only `cert`; the raw response.
async fn get_over_tls(
    addr: std::net::SocketAddr,
    cert: &[u8],
    path: &str,
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(cert.to_vec()))
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn tls_as_configured_on_every_listen_address() {
    let certs = tempfile::tempdir().unwrap();
    let (cert_file, key_file, cert) = self_signed(certs.path());
    let a = api(|c| {
        let r = &mut c.api.restapi.0;
        r.http_listen_multiaddress = Multiaddrs(vec![
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
        ]);
        r.ssl_cert_file = certs.path().join(cert_file).display().to_string();
        r.ssl_key_file = certs.path().join(key_file).display().to_string();
    })
    .await;
    let addrs: Vec<_> = a.peer.rest_addrs().iter().filter_map(|a| a.tcp()).collect();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    for addr in addrs {
        let resp = get_over_tls(addr, &cert, "/version").await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.contains(crate::types::VERSION), "{resp}");
        // Plain HTTP gets no answer: nothing (not even credentials) goes in clear text.
        let plain = a.http.get(format!("http://{addr}/version")).send().await;
        assert!(plain.is_err(), "{plain:?}");
    }
    a.peer.shutdown().await;
}

#[tokio::test]
async fn an_unreadable_certificate_is_a_clear_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let kubo = FakeKubo::start().await;
    let mut cfg = Config::default();
    cfg.cluster.secret = Secret::generate();
    cfg.ipfs_connector.ipfshttp = kubo.config();
    cfg.api.restapi.0.http_listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
    cfg.api.ipfsproxy.listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
    cfg.api.pinsvcapi.0.http_listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
    cfg.cluster.listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
    cfg.api.restapi.0.ssl_cert_file = "missing.pem".into();
    cfg.api.restapi.0.ssl_key_file = "key.pem".into();
    let err = Peer::start(
        dir.path().to_path_buf(),
        cfg,
        Identity::generate(),
        Default::default(),
    )
    .await
    .err()
    .expect("no REST API without its certificate");
    let msg = err.to_string();
    assert!(msg.contains("api.restapi.ssl_cert_file"), "{msg}");
    assert!(msg.contains("missing.pem"), "{msg}");
}

#[tokio::test]
async fn a_client_that_sends_its_headers_too_slowly_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = api(|c| c.api.restapi.0.read_header_timeout = "300ms".parse().unwrap()).await;
    let mut tcp = tokio::net::TcpStream::connect(a.peer.rest_addr().unwrap())
        .await
        .unwrap();
    tcp.write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // ... and never the end of the headers. The server closes the connection.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "still open after 30 s with a 300 ms header timeout"
    );
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    a.peer.shutdown().await;
}

#[test]
fn credentials_match_only_as_pairs() {
    let creds = BTreeMap::from([
        ("alice".to_string(), "a-secret".to_string()),
        ("bob".to_string(), "b-secret".to_string()),
    ]);
    assert!(super::credentials_match(&creds, "alice", "a-secret"));
    assert!(super::credentials_match(&creds, "bob", "b-secret"));
    assert!(!super::credentials_match(&creds, "alice", "b-secret"));
    assert!(!super::credentials_match(&creds, "carol", "a-secret"));
    assert!(!super::credentials_match(&creds, "alice", "a-secre"));
    assert!(!super::credentials_match(&creds, "", ""));
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let a = api(|_| {}).await;
    let big = "x".repeat(64 * 1024);
    let resp = a
        .http
        .get(format!("{}/version", a.base))
        .header("X-Big", big)
        .send()
        .await;
    match resp {
        Ok(r) => assert_eq!(r.status(), 431, "max_header_bytes 4096"),
        Err(e) => assert!(e.is_request() || e.is_connect(), "{e}"),
    }
    // A normal request still works.
    assert_eq!(answer(&a, "GET", "/version").await.0, 200);
    a.peer.shutdown().await;
}

/// A random path segment of the kinds clients get wrong: not-quite CIDs, encodings, huge,
/// empty, unicode, traversal. Never a valid CID (checked), so no request can pin.
fn hostile_segment(rng: &mut impl rand::Rng) -> String {
    use rand::seq::SliceRandom;
    let base = test_cid(rng.gen_range(0..1000)).to_string();
    let s = match rng.gen_range(0..12) {
        0 => base[..rng.gen_range(0..base.len())].to_string(),
        1 => format!("{base}x"),
        2 => base.replace('Q', "q"),
        3 => "%00%ff%2F..%2F".to_string(),
        4 => "a".repeat(rng.gen_range(1000..9000)),
        5 => "ünïcødé-💥".to_string(),
        6 => "..".to_string(),
        7 => rng.gen::<u64>().to_string(),
        8 => ["ipfs", "ipns", "ipld", "recover", "role", "metrics"]
            .choose(rng)
            .unwrap()
            .to_string(),
        9 => format!("b{}", "a".repeat(rng.gen_range(1..80))),
        10 => format!("12D3KooW{}", "x".repeat(rng.gen_range(0..50))),
        _ => (0..rng.gen_range(1..30))
            .map(|_| rng.gen_range(b'!'..=b'~') as char)
            .filter(|c| !matches!(c, '/' | '?' | '#'))
            .collect(),
    };
    assert!(
        s.parse::<crate::types::Cid>().is_err() || s.is_empty(),
        "{s}"
    );
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_thousand_hostile_requests_cause_no_5xx_no_panic_and_no_change() {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let a = api(|_| {}).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x1c0ffee);
    let methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"];
    let roots = [
        "pins",
        "allocations",
        "peers",
        "monitor/metrics",
        "health",
        "id",
        "version",
        "add",
        "pins/ipfs",
        "pins/ipns",
        "pins/ipld",
        "health/alerts",
        "token",
    ];
    let params = [
        "replication",
        "replication-min",
        "replication-max",
        "name",
        "mode",
        "user-allocations",
        "expire-at",
        "shard-size",
        "origins",
        "meta-x",
        "filter",
        "cids",
        "local",
        "role",
        "pin-update",
    ];
    let mut seen = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..10_000 {
        let method = *methods.choose(&mut rng).unwrap();
        let mut path = format!("/{}", roots.choose(&mut rng).unwrap());
        for _ in 0..rng.gen_range(0..3) {
            path.push('/');
            path.push_str(&hostile_segment(&mut rng));
        }
        let query: Vec<String> = (0..rng.gen_range(0..4))
            .map(|_| {
                let value = hostile_segment(&mut rng);
                format!("{}={}", params.choose(&mut rng).unwrap(), value)
            })
            .collect();
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        let body: Vec<u8> = (0..rng.gen_range(0..64)).map(|_| rng.gen()).collect();
        let resp = a
            .http
            .request(method.parse().unwrap(), format!("{}{path}", a.base))
            .body(body)
            .send()
            .await;
        let status = match resp {
            Ok(r) => r.status().as_u16(),
            // The client may refuse to send what it cannot encode; the server must answer
            // everything else.
            Err(e) if e.is_builder() => continue,
            Err(e) => panic!("request {i} {method} {path}: no answer ({e})"),
        };
        assert!(status < 500, "request {i} {method} {path}: {status}");
        *seen.entry(status).or_default() += 1;
    }
    // Still up, still empty, and the requests were mostly refusals, not successes.
    assert_eq!(answer(&a, "GET", "/version").await.0, 200);
    assert_eq!(
        answer(&a, "GET", "/allocations").await.0,
        204,
        "nothing was pinned"
    );
    assert!(
        seen.keys().any(|s| *s == 400) && seen.keys().any(|s| *s == 404),
        "{seen:?}"
    );
    a.peer.shutdown().await;
}

#[tokio::test]
async fn a_token_from_post_token_works_as_bearer_auth() {
    let a = api_with_user("alice", "a-secret").await;
    let url = |p: &str| format!("{}{p}", a.base);
    let resp = a.http.post(url("/token")).send().await.unwrap();
    assert_eq!(resp.status(), 401, "no token without credentials");
    let resp = a
        .http
        .post(url("/token"))
        .basic_auth("alice", Some("a-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token = resp.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let with = |t: &str| a.http.get(url("/id")).bearer_auth(t.to_string()).send();
    assert_eq!(with(&token).await.unwrap().status(), 200);
    let resp = with("not.a.token").await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    // A token can ask for a new one, as in IPFS Cluster.
    let again = a
        .http
        .post(url("/token"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn post_token_without_configured_credentials_is_401() {
    let a = api(|_| {}).await;
    assert_eq!(answer(&a, "POST", "/token").await.0, 401);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn a_huge_body_is_never_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let a = api(|_| {}).await;
    let mut tcp = tokio::net::TcpStream::connect(a.peer.rest_addr().unwrap())
        .await
        .unwrap();
    // Ten gigabytes announced, one megabyte sent: the answer must not wait for the rest.
    let head = "GET /version HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10000000000\r\n\r\n";
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&vec![b'x'; 1 << 20]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
        .await
        .expect("answered before the body was sent")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // And the server does not keep reading gigabytes: it closes the connection.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the connection stayed open to read the body"
    );
    a.peer.shutdown().await;
}

#[tokio::test]
async fn local_answers_are_global_pin_infos_with_this_peer_alone() {
    let a = api(|_| {}).await;
    let cid = test_cid(81);
    assert_eq!(answer(&a, "POST", &format!("/pins/{cid}")).await.0, 200);
    let me = a.peer.cluster().me().peer_id.clone();
    let check = |v: &serde_json::Value| {
        assert_eq!(v["cid"], cid.to_string(), "{v}");
        assert!(v.get("peer").is_none(), "PinInfo's peer field: {v}");
        let map = v["peer_map"].as_object().expect("a peer_map");
        assert_eq!(map.keys().collect::<Vec<_>>(), vec![&me], "{v}");
    };
    check(&a.get_json(&format!("/pins/{cid}?local=true")).await);
    let stream = a
        .http
        .get(format!("{}/pins?local=true", a.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<serde_json::Value> = stream
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    check(&lines[0]);
    let recovered: serde_json::Value = a
        .http
        .post(format!("{}/pins/{cid}/recover?local=true", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    check(&recovered);
    // The client (and so ipfs-cluster-ctl) still hands this peer's PinInfo to its callers.
    let client = crate::client::Client::new(&a.base, None, Duration::from_secs(5)).unwrap();
    let info = client.status_local(&cid.to_string()).await.unwrap();
    assert_eq!(info.peer, me);
    a.peer.shutdown().await;
}

fn two_files() -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"one".to_vec()).file_name("a.txt"),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"two".to_vec()).file_name("b.txt"),
        )
}

#[tokio::test]
async fn add_streams_files_to_ipfs_then_pins_the_root_with_the_pin_options() {
    let a = api(|_| {}).await;
    let resp = a
        .http
        .post(format!(
            "{}/add?wrap-with-directory=true&cid-version=1&raw-leaves=true&chunker=size-262144&name=docs&meta-k=v&replication=1",
            a.base
        ))
        .multipart(two_files())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["name"], "a.txt");
    assert_eq!(lines[1]["name"], "b.txt");
    let root = lines[2]["cid"].as_str().unwrap().to_string();
    let me = a.peer.cluster().me().peer_id.clone();
    assert_eq!(lines[2]["allocations"], serde_json::json!([me]));
    // IPFS was asked with the layout options and not to pin; the cluster pinned the root.
    let q = a._kubo.state.lock().unwrap().add_queries[0].clone();
    assert_eq!(q["pin"], "false");
    assert_eq!(q["cid-version"], "1");
    assert_eq!(q["raw-leaves"], "true");
    assert_eq!(q["chunker"], "size-262144");
    assert_eq!(q["wrap-with-directory"], "true");
    let pin = a.get_json(&format!("/allocations/{root}")).await;
    assert_eq!(pin["name"], "docs");
    assert_eq!(pin["metadata"]["k"], "v");
    // The files themselves are not pinned by the cluster, only the root.
    let first = lines[0]["cid"].as_str().unwrap();
    assert_eq!(
        answer(&a, "GET", &format!("/allocations/{first}")).await.0,
        404
    );
    a.peer.shutdown().await;
}

#[tokio::test]
async fn add_with_stream_channels_false_is_one_array_and_no_pin_pins_nothing() {
    let a = api(|_| {}).await;
    let resp = a
        .http
        .post(format!("{}/add?stream-channels=false&no-pin=true", a.base))
        .multipart(two_files())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let all: Vec<crate::types::AddedOutput> = resp.json().await.unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[1].allocations.is_empty());
    let pins = a.pins().await;
    assert!(pins.is_empty());
    a.peer.shutdown().await;
}

#[tokio::test]
async fn add_refuses_bad_input_before_anything_reaches_ipfs() {
    let a = api(|_| {}).await;
    for query in [
        "cid-version=7",
        "format=zip",
        "raw-leaves=maybe",
        "replication-min=3&replication-max=2",
        "user-allocations=not-a-peer",
        "stream-channels=perhaps",
        "local=sometimes",
    ] {
        let resp = a
            .http
            .post(format!("{}/add?{query}", a.base))
            .multipart(two_files())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{query}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], 400, "{query}");
    }
    // Not multipart at all.
    let resp = a
        .http
        .post(format!("{}/add", a.base))
        .body("just text")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // A multipart body without a single file.
    let resp = a
        .http
        .post(format!("{}/add", a.base))
        .multipart(reqwest::multipart::Form::new())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(a._kubo.state.lock().unwrap().added.is_empty());
    let pins = a.pins().await;
    assert!(pins.is_empty());
    a.peer.shutdown().await;
}

#[tokio::test]
async fn pin_update_copies_the_old_pins_options_and_needs_it_in_the_pinset() {
    let a = api(|_| {}).await;
    let (from, to) = (test_cid(40), test_cid(41));
    let post = |path: String| a.http.post(format!("{}{path}", a.base)).send();
    let resp = post(format!("/pins/{from}?name=v1&replication=1&meta-app=site"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = post(format!("/pins/{to}?pin-update={from}&name=v2"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let pin: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(pin["pin_update"], from.to_string());
    assert_eq!(pin["name"], "v2");
    assert_eq!(pin["metadata"]["app"], "site", "options copied");
    assert_eq!(pin["replication_factor_max"], 1);
    let old = a.get_json(&format!("/allocations/{from}")).await;
    assert_eq!(pin["allocations"], old["allocations"], "allocations copied");
    // The old pin stays; an update of something not pinned is a 404 and pins nothing.
    let resp = post(format!(
        "/pins/{}?pin-update={}",
        test_cid(42),
        test_cid(43)
    ))
    .await
    .unwrap();
    assert_eq!(resp.status(), 404);
    let pins = a.pins().await;
    assert_eq!(pins.len(), 2);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn ipfs_gc_runs_on_every_peer_and_local_on_this_one() {
    let a = api(|_| {}).await;
    let me = a.peer.cluster().me().peer_id.clone();
    let resp = a
        .http
        .post(format!("{}/ipfs/gc", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let gc: crate::types::GlobalRepoGc = resp.json().await.unwrap();
    let mine = &gc.peer_map[&me];
    assert_eq!(mine.peer, me);
    assert_eq!(mine.keys[0].key, Some(test_cid(0x6c)));
    assert_eq!(mine.keys[1].error, "block in use");
    let resp = a
        .http
        .post(format!("{}/ipfs/gc?local=true", a.base))
        .send()
        .await
        .unwrap();
    let local: crate::types::RepoGc = resp.json().await.unwrap();
    assert_eq!(local.peer, me);
    assert_eq!(answer(&a, "POST", "/ipfs/gc?local=perhaps").await.0, 400);
    // Only POST.
    assert_eq!(answer(&a, "GET", "/ipfs/gc").await.0, 405);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn health_graph_links_each_peer_to_its_ipfs_and_its_connections() {
    let a = api(|_| {}).await;
    let me = a.peer.cluster().me().peer_id.clone();
    let g: crate::types::ConnectGraph = a
        .http
        .get(format!("{}/health/graph", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(g.cluster_id, me);
    assert_eq!(g.cluster_to_ipfs[&me], "QmFakeIpfsPeer");
    assert_eq!(
        g.ipfs_links["QmFakeIpfsPeer"],
        vec!["QmOtherIpfsPeer".to_string()]
    );
    assert_eq!(g.cluster_links[&me], Vec::<String>::new());
    assert!(g.cluster_trust_links[&me]);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn an_expired_pin_leaves_the_pinset_by_itself_and_a_past_expiry_is_refused() {
    let a = api(|c| {
        c.cluster.state_sync_interval = crate::config::GoDuration::millis(200);
    })
    .await;
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let resp = a
        .http
        .post(format!("{}/pins/{}", a.base, test_cid(60)))
        .query(&[("expire-at", past.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(1500)).to_rfc3339();
    let post = |cid: crate::types::Cid, q: Vec<(&'static str, String)>| {
        a.http
            .post(format!("{}/pins/{cid}", a.base))
            .query(&q)
            .send()
    };
    assert_eq!(
        post(test_cid(61), vec![("expire-at", soon)])
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post(test_cid(62), vec![("expire-in", "1h".into())])
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(post(test_cid(63), vec![]).await.unwrap().status(), 200);
    let cluster = a.peer.cluster().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if cluster.allocation(&test_cid(61)).await.is_err() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expired pin is still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The others stay.
    assert!(cluster.allocation(&test_cid(62)).await.is_ok());
    assert!(cluster.allocation(&test_cid(63)).await.is_ok());
    a.peer.shutdown().await;
}

/// Every route of SPEC §4, each with good input and with bad input: the status IPFS Cluster's
/// clients expect, JSON errors with the same code, and bad input changing nothing.
#[tokio::test]
async fn every_spec_route_answers_good_and_bad_input() {
    let a = api(|_| {}).await;
    let me = a.peer.cluster().me().peer_id.clone();
    let (pinned, unknown) = (test_cid(70), test_cid(71));
    let stranger = "12D3KooWQYV9dGMFoRzNStwpXztXaBUjtPqi6aU76ZgUriHhKust";
    let form = || {
        reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x"),
        )
    };
    enum Body {
        None,
        Json(serde_json::Value),
        Text(&'static str),
        Files,
    }
    use Body::*;
    let cases: Vec<(&str, String, Body, u16)> = vec![
        ("GET", "/id".into(), None, 200),
        ("GET", "/version".into(), None, 200),
        ("GET", "/health".into(), None, 204),
        ("GET", "/peers".into(), None, 200),
        (
            "POST",
            "/peers".into(),
            Json(serde_json::json!({ "peer_id": me })),
            200,
        ),
        ("POST", "/peers".into(), Text("{not json"), 400),
        (
            "POST",
            "/peers".into(),
            Json(serde_json::json!({ "peer_id": "nope" })),
            400,
        ),
        (
            "POST",
            "/peers".into(),
            Json(serde_json::json!({ "peer_id": stranger })),
            500,
        ),
        ("DELETE", format!("/peers/{stranger}"), None, 404),
        ("DELETE", "/peers/not-a-peer".into(), None, 400),
        ("POST", format!("/pins/{pinned}?name=p"), None, 200),
        ("POST", "/pins/not-a-cid".into(), None, 400),
        ("POST", format!("/pins/{unknown}?mode=sideways"), None, 400),
        (
            "POST",
            format!("/pins/{unknown}?expire-at=yesterday"),
            None,
            400,
        ),
        (
            "POST",
            format!("/pins/{unknown}?pin-update={unknown}x"),
            None,
            400,
        ),
        ("POST", format!("/pins/ipfs/{pinned}"), None, 200),
        ("POST", "/pins/ipfs/not-a-cid/x".into(), None, 400),
        ("GET", "/allocations".into(), None, 200),
        ("GET", "/allocations?filter=pin,meta-pin".into(), None, 200),
        ("GET", "/allocations?filter=bogus".into(), None, 400),
        ("GET", format!("/allocations/{pinned}"), None, 200),
        ("GET", format!("/allocations/{unknown}"), None, 404),
        ("GET", "/allocations/not-a-cid".into(), None, 400),
        ("GET", "/pins".into(), None, 200),
        (
            "GET",
            "/pins?local=true&filter=pinned,pin_queued,pinning".into(),
            None,
            200,
        ),
        ("GET", format!("/pins?cids={pinned}"), None, 200),
        ("GET", "/pins?filter=bogus".into(), None, 400),
        ("GET", "/pins?local=perhaps".into(), None, 400),
        ("GET", "/pins?cids=not-a-cid".into(), None, 400),
        ("GET", format!("/pins/{pinned}"), None, 200),
        ("GET", format!("/pins/{pinned}?local=true"), None, 200),
        ("GET", "/pins/not-a-cid".into(), None, 400),
        ("POST", format!("/pins/{pinned}/recover"), None, 200),
        ("POST", "/pins/not-a-cid/recover".into(), None, 400),
        ("POST", "/pins/recover?local=true".into(), None, 204),
        ("POST", "/pins/recover?local=perhaps".into(), None, 400),
        ("POST", "/add?no-pin=true".into(), Files, 200),
        ("POST", "/add".into(), Text("not multipart"), 400),
        ("POST", "/add?cid-version=9".into(), Files, 400),
        ("GET", "/monitor/metrics".into(), None, 200),
        ("GET", "/monitor/metrics/ping".into(), None, 200),
        ("GET", "/health/alerts".into(), None, 200),
        ("GET", "/health/graph".into(), None, 200),
        ("GET", "/health/bandwidth".into(), None, 200),
        ("POST", "/ipfs/gc".into(), None, 200),
        ("POST", "/ipfs/gc?local=perhaps".into(), None, 400),
        ("POST", "/token".into(), None, 401),
        ("DELETE", format!("/pins/{unknown}"), None, 404),
        ("DELETE", "/pins/not-a-cid".into(), None, 400),
        ("GET", "/no/such/route".into(), None, 404),
    ];
    for (method, path, body, want) in cases {
        let mut req = a
            .http
            .request(method.parse().unwrap(), format!("{}{path}", a.base));
        req = match body {
            None => req,
            Json(v) => req.json(&v),
            Text(t) => req.body(t),
            Files => req.multipart(form()),
        };
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        assert_eq!(status, want, "{method} {path}: {text}");
        if status >= 400 {
            let e: crate::types::ApiError = serde_json::from_str(&text)
                .unwrap_or_else(|err| panic!("{method} {path}: {err}: {text}"));
            assert_eq!(e.code, status, "{method} {path}");
            assert!(!e.message.is_empty(), "{method} {path}");
        }
    }
    // Only the two good pins went in: the bad input changed nothing.
    let pins = a.pins().await;
    assert_eq!(pins.len(), 1, "{pins:?}");
    a.peer.shutdown().await;
}

#[tokio::test]
async fn add_of_a_car_imports_its_blocks_and_pins_its_single_root() {
    use crate::cluster::car::tests::car_header;
    let a = api(|_| {}).await;
    let root = test_cid(80);
    let mut car = car_header(&[root]);
    car.extend_from_slice(&[7u8; 5000]); // stands for the blocks
    let upload = |bytes: Vec<u8>| {
        a.http
            .post(format!("{}/add?format=car&name=site", a.base))
            .multipart(reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name("site.car"),
            ))
            .send()
    };
    let resp = upload(car.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let out: Vec<crate::types::AddedOutput> = resp
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].cid, root);
    {
        let st = a._kubo.state.lock().unwrap();
        assert_eq!(st.imported, vec![car.len()], "every byte reached IPFS");
        assert_eq!(st.add_queries.last().unwrap()["pin-roots"], "false");
    }
    assert_eq!(
        a.peer
            .cluster()
            .allocation(&root)
            .await
            .unwrap()
            .options
            .name,
        "site"
    );
    // Two roots, no root, not a CAR: 400, nothing imported or pinned.
    for bad in [
        car_header(&[test_cid(81), test_cid(82)]),
        car_header(&[]),
        b"\x05hello world".to_vec(),
    ] {
        let resp = upload(bad).await.unwrap();
        assert_eq!(resp.status(), 400);
    }
    assert_eq!(a._kubo.state.lock().unwrap().imported.len(), 1);
    let pins = a.pins().await;
    assert_eq!(pins.len(), 1);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn the_peer_proves_it_knows_the_local_credential_before_a_client_sends_it() {
    let a = api_with_files(
        &[(
            crate::config::API_CREDENTIAL_FILE,
            "desktop:random-256-bits\n",
        )],
        |c| {
            c.api.restapi.0.basic_auth_credentials = Some(BTreeMap::from([
                ("desktop".to_string(), "random-256-bits".to_string()),
                ("alice".to_string(), "chosen by a person".to_string()),
            ]));
        },
    )
    .await;
    let peer = &a.peer;
    let base = format!("http://{}", peer.rest_addr().unwrap());
    let client = crate::client::Client::new(&base, None, Duration::from_secs(5)).unwrap();
    let cred = |user: &str, password: &str| crate::config::ApiCredential {
        user: user.into(),
        password: password.into(),
    };
    assert_eq!(
        client
            .server_knows(&cred("desktop", "random-256-bits"))
            .await,
        Some(peer.rest_addr().unwrap())
    );
    assert_eq!(client.server_knows(&cred("desktop", "another")).await, None);
    // No proof for a password a person chose (an offline guessing oracle), nor a relayed one.
    assert_eq!(
        client
            .server_knows(&cred("alice", "chosen by a person"))
            .await,
        None
    );
    let http = reqwest::Client::new();
    let nonce = "n".repeat(32);
    let url = |user: &str, nonce: &str| format!("{base}/auth/proof?user={user}&nonce={nonce}");
    assert_eq!(
        http.get(url("alice", &nonce))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(url("desktop", "x")).send().await.unwrap().status(),
        400
    );
    let v: serde_json::Value = http
        .get(url("desktop", &nonce))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let other: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
    assert_eq!(
        v["proof"],
        crate::config::ApiCredential::proof("random-256-bits", &nonce, peer.rest_addr().unwrap())
    );
    assert_ne!(
        v["proof"],
        crate::config::ApiCredential::proof("random-256-bits", &nonce, other)
    );
    a.peer.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    use tokio::io::AsyncReadExt;
    let a = api(|_| {}).await;
    let mut tcp = tokio::net::TcpStream::connect(a.peer.rest_addr().unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "still open after 30 s: {read:?}"
    );
    a.peer.shutdown().await;
}

#[tokio::test]
async fn only_add_streams_carry_x_chunked_output() {
    // IPFS Cluster sets X-Chunked-Output on /add alone (its adder); a client that sees it on
    // /peers, /pins or /allocations hands its callers a raw stream instead of the objects.
    let a = api(|_| {}).await;
    for path in ["/peers", "/pins", "/allocations", "/pins?local=true"] {
        let resp = a
            .http
            .get(format!("{}{path}", a.base))
            .send()
            .await
            .unwrap();
        // 204 for an empty stream, as IPFS Cluster.
        assert!([200, 204].contains(&resp.status().as_u16()), "{path}");
        assert!(
            resp.headers().get("x-chunked-output").is_none(),
            "{path} answers with X-Chunked-Output"
        );
    }
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"chunked".to_vec()).file_name("a.txt"),
    );
    let resp = a
        .http
        .post(format!("{}/add", a.base))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-chunked-output"], "1");
}

/// `POST /pins` with `body`: the answer's text and its results, one a line.
async fn post_batch(
    a: &Api,
    body: impl Into<reqwest::Body>,
) -> (String, Vec<crate::types::PinResult>) {
    let resp = a
        .http
        .post(format!("{}/pins", a.base))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let results = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (text, results)
}

#[tokio::test]
async fn the_batch_form_pins_each_line_and_answers_each_in_order() {
    let a = api(|_| {}).await;
    let cid = |n: u32| crate::ipfsconn::fake::test_cid(n).to_string();
    let body = format!(
        "{{\"cid\":\"{}\"}}\n\
         {{\"cid\":\"{}\",\"name\":\"named\",\"replication_factor_min\":1,\"replication_factor_max\":1,\"metadata\":{{\"k\":\"v\"}}}}\n\
         \n\
         not json\n\
         {{\"cid\":\"not-a-cid\"}}\n\
         {{\"cid\":\"{}\",\"type\":1,\"allocations\":[],\"max_depth\":-1,\"reference\":null,\"timestamp\":\"2026-01-01T00:00:00Z\"}}\n",
        cid(1),
        cid(2),
        cid(3)
    );
    let (text, results) = post_batch(&a, body).await;
    let lines: Vec<(u64, u16)> = results.iter().map(|r| (r.line, r.code)).collect();
    assert_eq!(
        lines,
        vec![(1, 200), (2, 200), (4, 400), (5, 400), (6, 200)],
        "{text}"
    );
    let named = results[1].pin.as_ref().unwrap();
    assert_eq!(named.options.name, "named");
    assert_eq!(named.options.replication_factor_min, 1);
    assert_eq!(named.options.metadata["k"], "v");
    assert!(results[2].message.contains("not a pin"), "{text}");
    let mut pinned: Vec<String> = a.pins().await.iter().map(|p| p.cid.to_string()).collect();
    pinned.sort();
    let mut want = vec![cid(1), cid(2), cid(3)];
    want.sort();
    assert_eq!(pinned, want);
}

#[tokio::test]
async fn a_batch_goes_on_after_an_overlong_or_garbled_line() {
    let a = api(|_| {}).await;
    let cid = |n: u32| crate::ipfsconn::fake::test_cid(n).to_string();
    let mut body: Vec<u8> = Vec::new();
    body.extend_from_slice(format!("{{\"cid\":\"{}\",\"name\":\"", cid(11)).as_bytes());
    body.extend_from_slice("x".repeat(100 * 1024).as_bytes());
    body.extend_from_slice(b"\"}\n");
    body.extend_from_slice(b"{\"cid\":\"\xff\xfe\"}\n");
    body.extend_from_slice(format!("{{\"cid\":\"{}\"}}\n", cid(12)).as_bytes());
    // The last line without its newline.
    body.extend_from_slice(format!("{{\"cid\":\"{}\"}}", cid(13)).as_bytes());
    let (text, results) = post_batch(&a, body).await;
    let lines: Vec<(u64, u16)> = results.iter().map(|r| (r.line, r.code)).collect();
    assert_eq!(
        lines,
        vec![(1, 400), (2, 400), (3, 200), (4, 200)],
        "{text}"
    );
    assert!(results[0].message.contains("longer than"), "{text}");
    let mut pinned: Vec<String> = a.pins().await.iter().map(|p| p.cid.to_string()).collect();
    pinned.sort();
    let mut want = vec![cid(12), cid(13)];
    want.sort();
    assert_eq!(pinned, want);
}

#[tokio::test]
async fn a_batch_commits_its_lines_in_order_an_update_after_the_pin_it_updates() {
    let a = api(|_| {}).await;
    let cid = |n: u32| crate::ipfsconn::fake::test_cid(n).to_string();
    let body = format!(
        "{{\"cid\":\"{from}\",\"name\":\"v1\",\"metadata\":{{\"app\":\"site\"}}}}\n\
         {{\"cid\":\"{to}\",\"name\":\"v2\",\"pin_update\":\"{from}\"}}\n\
         {{\"cid\":\"{again}\",\"name\":\"first\"}}\n\
         {{\"cid\":\"{again}\",\"name\":\"second\"}}\n",
        from = cid(60),
        to = cid(61),
        again = cid(62),
    );
    let (text, results) = post_batch(&a, body).await;
    assert!(results.iter().all(|r| r.code == 200), "{text}");
    let updated = results[1].pin.as_ref().unwrap();
    assert_eq!(updated.options.name, "v2");
    assert_eq!(
        updated.options.metadata["app"], "site",
        "copied from line 1"
    );
    let last = a.get_json(&format!("/allocations/{}", cid(62))).await;
    assert_eq!(last["name"], "second", "the later line wins");
}

/// Every listing is in the pinset's one order (CIDs as text): the status of named CIDs (gathered
/// from every member) comes in the same order as the status of every pin (streamed), where a
/// v0 CID (`Qm…`) comes before a v1 (`bafy…`) though its bytes sort after.
#[tokio::test]
async fn named_and_streamed_statuses_come_in_the_one_order_of_the_pinset() {
    let a = api(|_| {}).await;
    let v0 = test_cid(1);
    let v1 = crate::types::Cid(cid::Cid::new_v1(0x70, *test_cid(2).0.hash()));
    assert!(v1.0.to_bytes() < v0.0.to_bytes() && v0.key() < v1.key());
    for c in [v1, v0] {
        let resp = a
            .http
            .post(format!("{}/pins/{c}", a.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let order = |body: String| -> Vec<String> {
        body.lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["cid"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let want = vec![v0.to_string(), v1.to_string()];
    for path in [
        format!("/pins?cids={v1},{v0}"),
        "/pins".to_string(),
        "/allocations".to_string(),
    ] {
        let body = a
            .http
            .get(format!("{}{path}", a.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(order(body), want, "{path}");
    }
}

/// The REST API on a unix socket (`/unix/<path>`, as `ipfs-cluster-follow` serves it):
/// a socket left by a process that died is replaced, the new one is owner-only, the client
/// reaches it by its multiaddress, any `Host` is answered (no page reaches a unix socket),
/// and it is gone once the peer stops.
#[tokio::test]
async fn the_api_serves_a_unix_socket_owner_only_and_removes_it_at_stop() {
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api-socket");
    // A stale socket: binding over it fails unless it is removed first.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::os::unix::net::UnixListener::bind(&path).is_err());
    let ma = crate::net::unix_multiaddr(&path);
    let a = api(|c| {
        c.api.restapi.0.http_listen_multiaddress =
            Multiaddrs(vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap(), ma.clone()])
    })
    .await;
    assert_eq!(
        a.peer.rest_addrs()[1],
        crate::net::ListenAddr::Unix(path.clone())
    );
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let client =
        crate::client::Client::new(&ma.to_string(), None, Duration::from_secs(10)).unwrap();
    assert_eq!(
        client.version().await.unwrap().version,
        crate::types::full_version()
    );
    let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
    s.write_all(b"GET /version HTTP/1.1\r\nHost: rebound.example\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    a.peer.shutdown().await;
    assert!(!path.exists(), "the socket is removed at stop");
    let err = client.version().await.unwrap_err().to_string();
    assert!(err.contains(&ma.to_string()), "{err}");
}
