//! Spans exported with OpenTelemetry (issue 13): a daemon run with `--tracing` sends its
//! spans over OTLP/HTTP to the configured collector, here a minimal one in the test.

use std::sync::{Arc, Mutex};

use cluster_tests::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Accepts OTLP/HTTP exports and keeps each request's path and body.
async fn collector() -> (u16, Arc<Mutex<Vec<(String, Vec<u8>)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let store = got.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    store.lock().unwrap().push((path, body));
                    buf.drain(..end + 4 + len);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if conn.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, got)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_with_tracing_exports_its_spans_over_otlp() {
    let (port, got) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |cfg| {
        cfg["observations"]["tracing"]["sampling_prob"] = 1.0.into();
        cfg["observations"]["tracing"]["service_name"] = "traced-peer".into();
    })
    .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    peer.start_env(
        &["--tracing"],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await
    .unwrap();
    let cid = identity_cid("traced");
    let out = peer.ctl(&["pin", "add", &cid, "--no-status"]);
    assert!(out.status.success(), "{}", text(&out));
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    wait_for("the pin's span at the collector", DEADLINE, || async {
        let got = got.lock().unwrap();
        got.iter()
            .any(|(path, body)| {
                path == "/v1/traces" && contains(body, b"traced-peer") && contains(body, b"pin")
            })
            .then_some(())
    })
    .await
    .unwrap();
}
