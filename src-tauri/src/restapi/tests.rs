//! The REST API in process, over a real socket, in front of a real single-voter Raft and a
//! Kubo test double.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Config, Identity, Multiaddrs, Secret};
use crate::ipfsconn::fake::{test_cid, FakeKubo};
use crate::peer::Peer;

struct Api {
    _dir: tempfile::TempDir,
    _kubo: FakeKubo,
    peer: Peer,
    base: String,
    http: reqwest::Client,
}

async fn api(edit: impl FnOnce(&mut Config)) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let kubo = FakeKubo::start().await;
    let mut cfg = Config::default();
    cfg.cluster.secret = Secret::generate();
    cfg.ipfs_connector.ipfshttp = kubo.config();
    cfg.api.restapi.0.http_listen_multiaddress = Multiaddrs::one("/ip4/127.0.0.1/tcp/0");
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
    let base = format!("http://{}", peer.rest_addr());
    Api {
        _dir: dir,
        _kubo: kubo,
        peer,
        base,
        http: reqwest::Client::new(),
    }
}

impl Api {
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
    let pins: Vec<_> = futures::TryStreamExt::try_collect(a.peer.cluster().allocations(&[]))
        .await
        .unwrap();
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
    let a = api(|c| {
        c.api.restapi.0.basic_auth_credentials = Some(BTreeMap::from([(
            "alice".to_string(),
            "secret".to_string(),
        )]));
    })
    .await;
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

#[tokio::test]
async fn cors_headers_follow_the_config() {
    let a = api(|_| {}).await;
    let resp = a
        .http
        .get(format!("{}/version", a.base))
        .header("Origin", "http://example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://example.test"
    );
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["version"], crate::types::VERSION);
    a.peer.shutdown().await;
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
