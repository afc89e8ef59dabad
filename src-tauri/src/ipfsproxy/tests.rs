//! The proxy in process, in front of a real single-voter Raft and a Kubo double.

use serde_json::Value;

use crate::ipfsconn::fake::test_cid;
use crate::restapi::tests::{api, Api};

async fn call(a: &Api, path_and_query: &str) -> (u16, String) {
    let url = format!(
        "http://{}/api/v0/{path_and_query}",
        a.peer.proxy_addr().unwrap()
    );
    let resp = a.http.post(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

async fn pinset(a: &Api) -> Vec<String> {
    a.pins()
        .await
        .into_iter()
        .map(|p| p.cid.to_string())
        .collect()
}

#[tokio::test]
async fn pins_go_to_the_cluster_and_pin_ls_shows_the_pinset() {
    let a = api(|_| {}).await;
    let (c1, c2) = (test_cid(1), test_cid(2));
    let (status, body) = call(&a, &format!("pin/add?arg={c1}&name=first")).await;
    assert_eq!(
        (status, json(&body)),
        (200, serde_json::json!({"Pins": [c1.to_string()]}))
    );
    // The slash form and /ipfs/ paths, as some clients send them; direct pins.
    let (status, _) = call(&a, &format!("pin/add/{c2}?recursive=false")).await;
    assert_eq!(status, 200);
    assert_eq!(
        a.peer.cluster().allocation(&c1).await.unwrap().options.name,
        "first"
    );
    assert_eq!(
        a.peer.cluster().allocation(&c2).await.unwrap().options.mode,
        crate::types::PinMode::Direct
    );

    let (_, body) = call(&a, "pin/ls").await;
    let keys = json(&body)["Keys"].clone();
    assert_eq!(keys[c1.to_string()]["Type"], "recursive");
    assert_eq!(keys[c2.to_string()]["Type"], "direct");
    let (_, body) = call(&a, "pin/ls?stream=true&type=direct").await;
    let lines: Vec<Value> = body.lines().map(json).collect();
    assert_eq!(
        lines,
        vec![serde_json::json!({"Cid": c2.to_string(), "Type": "direct"})]
    );
    let (status, body) = call(&a, &format!("pin/ls?arg=/ipfs/{c1}")).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["Keys"][c1.to_string()]["Type"], "recursive");

    let (status, body) = call(&a, &format!("pin/rm?arg={c1}")).await;
    assert_eq!(
        (status, json(&body)["Pins"][0].clone()),
        (200, c1.to_string().into())
    );
    let (status, body) = call(&a, &format!("pin/ls?arg={c1}")).await;
    assert_eq!(status, 500);
    assert_eq!(json(&body)["Type"], "error");
    assert!(body.contains("is not pinned"), "{body}");
    assert_eq!(pinset(&a).await, vec![c2.to_string()]);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn pin_update_pins_the_new_cid_as_an_update_and_unpins_the_old() {
    let a = api(|_| {}).await;
    let (from, to) = (test_cid(10), test_cid(11));
    call(&a, &format!("pin/add?arg={from}")).await;
    let (status, body) = call(&a, &format!("pin/update?arg={from}&arg={to}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body),
        serde_json::json!({"Pins": [from.to_string(), to.to_string()]})
    );
    let pin = a.peer.cluster().allocation(&to).await.unwrap();
    assert_eq!(pin.options.pin_update, Some(from));
    assert_eq!(pinset(&a).await, vec![to.to_string()]);
    // unpin=false keeps the old one.
    let next = test_cid(12);
    call(&a, &format!("pin/update?arg={to}&arg={next}&unpin=false")).await;
    let mut expected = vec![to.to_string(), next.to_string()];
    expected.sort();
    let mut got = pinset(&a).await;
    got.sort();
    assert_eq!(got, expected);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn bad_arguments_are_kubo_errors_and_change_nothing() {
    let a = api(|_| {}).await;
    for q in [
        "pin/add",
        "pin/add?arg=not-a-cid",
        "pin/add?arg=/ipfs/nope",
        "pin/rm?arg=",
        "pin/update?arg=QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        "pin/ls?type=sideways",
        "pin/add?arg=QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG&replication-min=x",
        "add?only-hash=true",
        "add",
    ] {
        let (status, body) = call(&a, q).await;
        assert!((400..600).contains(&status), "{q}: {status}");
        let v = json(&body);
        assert_eq!(v["Type"], "error", "{q}: {body}");
        assert!(!v["Message"].as_str().unwrap().is_empty(), "{q}");
    }
    // Unpinning what is not pinned is an error too.
    let (status, _) = call(&a, &format!("pin/rm?arg={}", test_cid(3))).await;
    assert_eq!(status, 500);
    assert!(pinset(&a).await.is_empty());
    a.peer.shutdown().await;
}

#[tokio::test]
async fn other_calls_pass_through_and_put_with_pin_is_pinned_by_the_cluster() {
    let a = api(|_| {}).await;
    let (status, body) = call(&a, "id").await;
    assert_eq!(
        (status, json(&body)["ID"].clone()),
        (200, "QmFakeIpfsPeer".into())
    );
    // What IPFS answers, status included, comes back as it is.
    let (status, _) = call(&a, "no/such/command").await;
    assert_eq!(status, 404);

    let (status, body) = call(&a, "block/put?pin=true&name=blk").await;
    assert_eq!(status, 200, "{body}");
    let key: crate::types::Cid = json(&body)["Key"].as_str().unwrap().parse().unwrap();
    let q = a
        ._kubo
        .state
        .lock()
        .unwrap()
        .add_queries
        .last()
        .cloned()
        .unwrap();
    assert_eq!(q["pin"], "false", "IPFS itself does not pin");
    assert_eq!(
        a.peer
            .cluster()
            .allocation(&key)
            .await
            .unwrap()
            .options
            .name,
        "blk"
    );
    // Without pin=true the call is IPFS's alone.
    let (status, _) = call(&a, "block/put").await;
    assert_eq!(status, 200);
    assert_eq!(pinset(&a).await.len(), 1);
    a.peer.shutdown().await;
}

#[tokio::test]
async fn a_web_page_cannot_use_the_proxy() {
    let a = api(|_| {}).await;
    let url = format!(
        "http://{}/api/v0/pin/add?arg={}",
        a.peer.proxy_addr().unwrap(),
        test_cid(5)
    );
    let resp = a
        .http
        .post(&url)
        .header("Origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let resp = a
        .http
        .post(&url)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A page on another port of this machine is the same site, not the same origin.
    let resp = a
        .http
        .post(&url)
        .header("Sec-Fetch-Site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // DNS rebinding: the page's own name, resolved to 127.0.0.1.
    let port = a.peer.proxy_addr().unwrap().port();
    let resp = a
        .http
        .post(&url)
        .header("Host", format!("evil.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(json(&resp.text().await.unwrap())["Type"], "error");
    // A link or an image makes a GET: never a call here (Kubo's rule).
    let resp = a.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 405);
    let gc = format!("http://{}/api/v0/repo/gc", a.peer.proxy_addr().unwrap());
    assert_eq!(a.http.get(&gc).send().await.unwrap().status(), 405);
    assert!(pinset(&a).await.is_empty());
    a.peer.shutdown().await;
}

#[tokio::test]
async fn every_spelling_of_pin_add_is_the_clusters() {
    let a = api(|_| {}).await;
    let proxy = a.peer.proxy_addr().unwrap();
    for (n, path) in ["//api/v0/pin/add", "/api/v0/pin/add/", "/api/v0/pin%2Fadd"]
        .into_iter()
        .enumerate()
    {
        let cid = test_cid(40 + n as u32);
        let url = format!("http://{proxy}{path}?arg={cid}");
        let resp = a.http.post(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(
            pinset(&a).await.contains(&cid.to_string()),
            "{path} pinned in IPFS only"
        );
    }
    a.peer.shutdown().await;
}

#[tokio::test]
async fn with_credentials_the_proxy_asks_for_them_and_keeps_them() {
    let a = api(|c| {
        c.api.ipfsproxy.basic_auth_credentials =
            Some([("desktop".to_string(), "pw".to_string())].into());
    })
    .await;
    let url = format!(
        "http://{}/api/v0/pin/add?arg={}",
        a.peer.proxy_addr().unwrap(),
        test_cid(60)
    );
    for req in [
        a.http.post(&url),
        a.http.post(&url).basic_auth("desktop", Some("guess")),
    ] {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(json(&resp.text().await.unwrap())["Type"], "error");
    }
    let passthrough = format!("http://{}/api/v0/version", a.peer.proxy_addr().unwrap());
    assert_eq!(
        a.http.post(&passthrough).send().await.unwrap().status(),
        401
    );
    assert!(pinset(&a).await.is_empty());
    let resp = a
        .http
        .post(&url)
        .basic_auth("desktop", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(pinset(&a).await, [test_cid(60).to_string()]);
    // The credential is the proxy's: it is not passed on to the IPFS node.
    let mut from = axum::http::HeaderMap::new();
    from.insert(
        axum::http::header::AUTHORIZATION,
        "Basic x".parse().unwrap(),
    );
    from.insert("x-other", "1".parse().unwrap());
    let mut to = axum::http::HeaderMap::new();
    super::copy_headers(&from, &mut to, false);
    assert!(to.get(axum::http::header::AUTHORIZATION).is_none() && to.get("x-other").is_some());
    a.peer.shutdown().await;
}

#[tokio::test]
async fn repo_stat_and_repo_gc_are_the_clusters() {
    let a = api(|_| {}).await;
    let (status, body) = call(&a, "repo/stat").await;
    assert_eq!(status, 200, "{body}");
    // The Kubo double reports 1000 bytes used of 10GB; one peer, so the sums are its own.
    let v = json(&body);
    assert_eq!(v["RepoSize"], 1000);
    assert_eq!(v["StorageMax"], 10_000_000_000u64);
    let (status, body) = call(&a, "repo/gc?stream-errors=true").await;
    assert_eq!(status, 200);
    let lines: Vec<Value> = body.lines().map(json).collect();
    assert_eq!(lines[0]["Key"]["/"], test_cid(0x6c).to_string());
    assert_eq!(lines[1]["Error"], "block in use");
    a.peer.shutdown().await;
}

#[tokio::test]
async fn a_refused_web_page_gets_a_kubo_error() {
    let a = api(|_| {}).await;
    let resp = a
        .http
        .post(format!(
            "http://{}/api/v0/pin/add?arg={}",
            a.peer.proxy_addr().unwrap(),
            test_cid(91)
        ))
        .header("Origin", "http://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body = json(&resp.text().await.unwrap());
    assert_eq!(body["Type"], "error", "{body}");
    a.peer.shutdown().await;
}
