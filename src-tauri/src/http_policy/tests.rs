use super::*;
use axum::routing::post;
use http_body_util::BodyExt;
use tower::ServiceExt;

fn loopback() -> ListenerPolicy {
    ListenerPolicy::new("api.test", "127.0.0.1:9094".parse().unwrap(), plain_error)
}

fn app(policy: ListenerPolicy) -> Router {
    let r = Router::new().route(
        "/api/v0/pin/add",
        post(|body: Bytes| async move { format!("pinned {}", body.len()) }),
    );
    protect(r, policy)
}

async fn send(app: &Router, path: &str, host: Option<&str>) -> (StatusCode, String) {
    let mut req = axum::http::Request::post(path);
    if let Some(h) = host {
        req = req.header(header::HOST, h);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from("abc")).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn host_names_lose_port_brackets_case_and_final_dot() {
    assert_eq!(host_name("LocalHost.:9094"), "localhost");
    assert_eq!(host_name("[::1]:9094"), "::1");
    assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    assert_eq!(host_name("evil.example:9094"), "evil.example");
}

#[tokio::test]
async fn a_loopback_listener_answers_only_its_own_names() {
    let app = app(loopback());
    for ok in [
        Some("127.0.0.1:9094"),
        Some("localhost:9094"),
        Some("LOCALHOST"),
        None,
    ] {
        assert_eq!(
            send(&app, "/api/v0/pin/add", ok).await.0,
            StatusCode::OK,
            "{ok:?}"
        );
    }
    for bad in [
        "evil.example:9094",
        "127.0.0.1.nip.io",
        "localhost.evil.example",
        "[::1]:9094",
    ] {
        let (status, why) = send(&app, "/api/v0/pin/add", Some(bad)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{bad}");
        assert!(why.contains("api.test") && why.contains("Host"), "{why}");
    }
    // A listener on every interface is reached by names only its users know.
    let any = ListenerPolicy::new("api.test", "0.0.0.0:9094".parse().unwrap(), plain_error);
    let app = self::app(any);
    assert_eq!(
        send(&app, "/api/v0/pin/add", Some("nas.lan")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_spelling_of_a_path_reaches_the_same_handler() {
    let app = app(loopback());
    for path in [
        "/api/v0/pin/add",
        "//api/v0/pin/add",
        "/api/v0/pin/add/",
        "/api/v0//pin/add?arg=x",
        "/api/v0/pin%2Fadd",
        "/api/v0/%70in/add",
        "/api/v0/x/../pin/./add",
    ] {
        let (status, body) = send(&app, path, None).await;
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::OK, "pinned 3"),
            "{path}"
        );
    }
}

#[test]
fn clean_paths_are_kept_and_others_rewritten_once() {
    assert!(matches!(clean_path("/pins/bafy"), Cow::Borrowed(_)));
    assert_eq!(clean_path("/"), "/");
    assert_eq!(clean_path(""), "/");
    assert_eq!(clean_path("/../.."), "/");
    // Decoded once: an escaped percent stays one.
    assert_eq!(clean_path("/a%2541"), "/a%2541");
    assert_eq!(clean_path("/a%20b/"), "/a%20b");
}

/// A body that yields `first` and then never anything more.
fn stalled(first: &'static str) -> Body {
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(first))])
        .chain(futures::stream::pending());
    Body::from_stream(chunks)
}

use futures::StreamExt;

#[tokio::test(start_paused = true)]
async fn a_trickling_body_fails_once_it_falls_behind_the_minimum_pace() {
    let started = tokio::time::Instant::now();
    let err = Deadline::paced(stalled("a few bytes"))
        .collect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(
        started.elapsed(),
        BODY_GRACE,
        "refused at the end of the grace"
    );
    // Bytes earn time: a body that sent twice the grace's worth may stall that long...
    let big: &'static str = Box::leak(
        "x".repeat(2 * BODY_GRACE.as_secs() as usize * MIN_BODY_RATE as usize)
            .into_boxed_str(),
    );
    let started = tokio::time::Instant::now();
    Deadline::paced(stalled(big)).collect().await.unwrap_err();
    assert_eq!(started.elapsed(), 2 * BODY_GRACE);
    // ...but never longer than the stall limit, however much it sent.
    let huge: &'static str = Box::leak("x".repeat(1 << 20).into_boxed_str());
    let started = tokio::time::Instant::now();
    Deadline::paced(stalled(huge)).collect().await.unwrap_err();
    assert_eq!(started.elapsed(), BODY_STALL);
}

#[tokio::test(start_paused = true)]
async fn bodies_in_time_pass_and_fixed_deadlines_hold() {
    let ok = Deadline::paced(Body::from("hello"))
        .collect()
        .await
        .unwrap();
    assert_eq!(ok.to_bytes(), "hello");
    let never = Body::from_stream(futures::stream::pending::<Result<Bytes, std::io::Error>>());
    let at = tokio::time::Instant::now() + Duration::from_millis(20);
    let err = Deadline::at(never, at, "writing the response")
        .collect()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("writing the response timed out"),
        "{err}"
    );
    let at = tokio::time::Instant::now() + Duration::from_secs(60);
    let ok = Deadline::at(Body::from("hello"), at, "reading the request")
        .collect()
        .await
        .unwrap();
    assert_eq!(ok.to_bytes(), "hello");
}

#[tokio::test(start_paused = true)]
async fn time_the_handler_spends_not_reading_is_not_the_clients() {
    use http_body_util::BodyExt;
    // A batch reads its body as its commits finish: it may leave the body unread for longer
    // than the stall limit, then wait a moment for the client's next line.
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from("line 1\n"))]).chain(
        futures::stream::once(async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Bytes::from("line 2\n"))
        }),
    );
    let mut body = Deadline::paced(Body::from_stream(chunks));
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "line 1\n");
    tokio::time::sleep(BODY_STALL * 2).await;
    let second = body.frame().await.expect("a frame").expect("not timed out");
    assert_eq!(second.into_data().unwrap(), "line 2\n");
}
