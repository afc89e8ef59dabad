//! The Pinning Service API in process, in front of a real single-voter Raft and a Kubo
//! double.

use serde_json::{json, Value};

use crate::ipfsconn::fake::test_cid;
use crate::restapi::tests::{api, Api};

async fn call(a: &Api, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("http://{}{path}", a.peer.pinsvc_addr().unwrap());
    let mut req = a.http.request(method.parse().unwrap(), url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn listing_filters_by_name_meta_and_status_newest_first() {
    let a = api(|_| {}).await;
    for (i, name) in ["Svc-First", "other", "other"].iter().enumerate() {
        let pin = json!({"cid": test_cid(i as u32).to_string(), "name": name, "meta": {"n": i.to_string()}});
        let (status, body) = call(&a, "POST", "/pins", Some(pin)).await;
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["status"], "queued");
    }
    let all = "status=queued,pinning,pinned,failed";
    let (_, body) = call(
        &a,
        "GET",
        &format!("/pins?{all}&name=svc-f&match=ipartial"),
        None,
    )
    .await;
    assert_eq!(body["count"], 1, "{body}");
    assert_eq!(body["results"][0]["pin"]["name"], "Svc-First");
    let (_, body) = call(&a, "GET", &format!("/pins?{all}&name=svc-first"), None).await;
    assert_eq!(body["count"], 0, "exact match by default: {body}");
    let meta = form_urlencoded::byte_serialize(br#"{"n":"2"}"#).collect::<String>();
    let (_, body) = call(&a, "GET", &format!("/pins?{all}&meta={meta}"), None).await;
    assert_eq!(body["count"], 1, "{body}");
    let (_, body) = call(&a, "GET", &format!("/pins?{all}&meta%5Bn%5D=1"), None).await;
    assert_eq!(body["count"], 1, "deep-object form: {body}");
    let (_, body) = call(&a, "GET", &format!("/pins?{all}&limit=2"), None).await;
    assert_eq!(body["count"], 3);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(results[0]["created"].as_str() >= results[1]["created"].as_str());
    assert_eq!(
        results[0]["pin"]["cid"],
        test_cid(2).to_string(),
        "newest first"
    );
    a.peer.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_a_spec_error_and_changes_nothing() {
    let a = api(|_| {}).await;
    let cids11 = (0..11)
        .map(|i| test_cid(i).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let unknown = test_cid(99).to_string();
    let long_name = "n".repeat(256);
    let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
        ("POST", "/pins".into(), Some(json!("not an object")), 400),
        ("POST", "/pins".into(), Some(json!({"cid": "nope"})), 400),
        ("POST", "/pins".into(), Some(json!({"name": "no cid"})), 400),
        (
            "POST",
            "/pins".into(),
            Some(json!({"cid": unknown, "name": long_name})),
            400,
        ),
        (
            "POST",
            "/pins".into(),
            Some(json!({"cid": unknown, "origins": ["nope"]})),
            400,
        ),
        ("GET", "/pins?limit=0".into(), None, 400),
        ("GET", "/pins?limit=1001".into(), None, 400),
        ("GET", "/pins?status=sideways".into(), None, 400),
        ("GET", "/pins?match=fuzzy".into(), None, 400),
        ("GET", "/pins?before=yesterday".into(), None, 400),
        ("GET", "/pins?meta=notjson".into(), None, 400),
        ("GET", "/pins?cid=nope".into(), None, 400),
        ("GET", format!("/pins?cid={cids11}"), None, 400),
        ("GET", "/pins/not-a-cid".into(), None, 400),
        ("GET", format!("/pins/{unknown}"), None, 404),
        ("DELETE", format!("/pins/{unknown}"), None, 404),
        (
            "POST",
            format!("/pins/{unknown}"),
            Some(json!({"cid": test_cid(98).to_string()})),
            404,
        ),
        ("GET", "/nowhere".into(), None, 404),
    ];
    for (method, path, body, want) in cases {
        let (status, body) = call(&a, method, &path, body).await;
        assert_eq!(status, want, "{method} {path}: {body}");
        assert!(
            body["error"]["reason"].is_string(),
            "{method} {path}: {body}"
        );
        assert!(!body["error"]["details"].as_str().unwrap().is_empty());
    }
    let (_, body) = call(&a, "GET", "/pins?status=queued,pinning,pinned,failed", None).await;
    assert_eq!(body, json!({"count": 0, "results": []}));
    a.peer.shutdown().await;
}

#[tokio::test]
async fn get_replace_and_delete_by_request_id() {
    let a = api(|_| {}).await;
    let (old, new) = (test_cid(50).to_string(), test_cid(51).to_string());
    let (_, created) = call(&a, "POST", "/pins", Some(json!({"cid": old, "name": "v1"}))).await;
    let id = created["requestid"].as_str().unwrap().to_string();
    let (status, got) = call(&a, "GET", &format!("/pins/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(got["pin"]["name"], "v1");
    assert!(["queued", "pinning", "pinned"].contains(&got["status"].as_str().unwrap()));
    let (status, replaced) = call(
        &a,
        "POST",
        &format!("/pins/{id}"),
        Some(json!({"cid": new, "name": "v2"})),
    )
    .await;
    assert_eq!(status, 202, "{replaced}");
    assert_eq!(replaced["pin"]["cid"], new);
    assert_eq!(call(&a, "GET", &format!("/pins/{id}"), None).await.0, 404);
    let new_id = replaced["requestid"].as_str().unwrap();
    let (status, _) = call(&a, "DELETE", &format!("/pins/{new_id}"), None).await;
    assert_eq!(status, 202);
    assert_eq!(
        call(&a, "GET", &format!("/pins/{new_id}"), None).await.0,
        404
    );
    a.peer.shutdown().await;
}

#[tokio::test]
async fn credentials_and_tokens_guard_the_api_with_spec_errors() {
    let a = api(|c| {
        c.api.pinsvcapi.0.basic_auth_credentials =
            Some([("u".to_string(), "p".to_string())].into());
    })
    .await;
    let (status, body) = call(&a, "GET", "/pins", None).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["reason"], "UNAUTHORIZED");
    let base = format!("http://{}", a.peer.pinsvc_addr().unwrap());
    let token: Value = a
        .http
        .post(format!("{base}/token"))
        .basic_auth("u", Some("p"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = a
        .http
        .get(format!("{base}/pins"))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = a.http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(resp.status(), 204, "liveness stays open");
    a.peer.shutdown().await;
}

#[tokio::test]
async fn a_refused_web_page_gets_a_spec_error_and_pins_nothing() {
    let a = api(|_| {}).await;
    let resp = a
        .http
        .post(format!("http://{}/pins", a.peer.pinsvc_addr().unwrap()))
        .header("Origin", "http://evil.test")
        .json(&json!({"cid": test_cid(90).to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["reason"], "FORBIDDEN", "{body}");
    assert!(a.pins().await.is_empty());
    a.peer.shutdown().await;
}
