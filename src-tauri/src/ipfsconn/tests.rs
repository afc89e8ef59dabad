use super::fake::{dead_config, test_cid, FakeKubo};
use super::*;
use crate::config::GoDuration;
use crate::types::PinOptions;

fn pin_of(n: u32) -> Pin {
    Pin::new(test_cid(n), PinOptions::default())
}

#[tokio::test]
async fn id_pin_ls_unpin_round_trip() {
    let kubo = FakeKubo::start().await;
    let ipfs = IpfsHttp::new(&kubo.config()).unwrap();
    let id = ipfs.id().await.unwrap();
    assert_eq!(id.id, "QmFakeIpfsPeer");
    assert_eq!(id.addresses.len(), 1);

    let pin = pin_of(1);
    assert!(!ipfs.is_pinned(&pin.cid).await.unwrap());
    ipfs.pin(&pin).await.unwrap();
    assert!(kubo.is_pinned(&pin.cid));
    assert!(ipfs.is_pinned(&pin.cid).await.unwrap());
    // The v1 form of the same content counts as pinned.
    let v1 = Cid(cid::Cid::new_v1(0x70, *pin.cid.0.hash()));
    assert!(ipfs.is_pinned(&v1).await.unwrap());
    let listed = listed(&ipfs).await.unwrap();
    assert_eq!(listed, vec![pin.cid]);

    assert!(ipfs.unpin(&pin.cid).await.unwrap(), "it was pinned");
    assert!(!kubo.is_pinned(&pin.cid));
    // Unpinning what is not pinned is done, not an error.
    assert!(!ipfs.unpin(&pin.cid).await.unwrap(), "it was not pinned");
}

#[tokio::test]
async fn an_error_inside_the_pin_stream_is_an_error() {
    let kubo = FakeKubo::start().await;
    kubo.state.lock().unwrap().fail_pins = Some("merkledag: not found".into());
    let ipfs = IpfsHttp::new(&kubo.config()).unwrap();
    let err = ipfs.pin(&pin_of(2)).await.unwrap_err();
    assert!(
        matches!(&err, IpfsError::Api(m) if m.contains("not found")),
        "{err}"
    );
}

#[tokio::test]
async fn a_pin_without_progress_times_out() {
    let kubo = FakeKubo::start().await;
    let pin = pin_of(3);
    kubo.state
        .lock()
        .unwrap()
        .unavailable
        .insert(pin.cid.multihash_bytes());
    let mut cfg = kubo.config();
    cfg.pin_timeout = GoDuration::millis(300);
    let ipfs = IpfsHttp::new(&cfg).unwrap();
    let err = ipfs.pin(&pin).await.unwrap_err();
    assert!(matches!(err, IpfsError::Timeout(_)), "{err}");
}

#[tokio::test]
async fn an_unreachable_daemon_is_reported_not_fatal() {
    let ipfs = IpfsHttp::new(&dead_config()).unwrap();
    let err = ipfs.id().await.unwrap_err();
    assert!(err.is_unreachable(), "{err}");
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(ipfs.pin(&pin_of(4)).await.unwrap_err().is_unreachable());
    assert!(listed(&ipfs).await.unwrap_err().is_unreachable());
}

#[tokio::test]
async fn repo_stat_falls_back_to_the_configured_storage_max() {
    let kubo = FakeKubo::start().await;
    let ipfs = IpfsHttp::new(&kubo.config()).unwrap();
    let st = ipfs.repo_stat().await.unwrap();
    assert_eq!(st.repo_size, 1000);
    assert_eq!(st.storage_max, 10_000_000_000);
    let c = test_cid(5);
    assert_eq!(ipfs.resolve(&format!("/ipfs/{c}")).await.unwrap(), c);
    ipfs.swarm_connect("/ip4/127.0.0.1/tcp/4001/p2p/QmX")
        .await
        .unwrap();
}

#[test]
fn storage_sizes_parse_like_kubo() {
    assert_eq!(
        crate::types::parse_storage_size("10GB"),
        Some(10_000_000_000)
    );
    assert_eq!(crate::types::parse_storage_size("1.5 MiB"), Some(1_572_864));
    assert_eq!(crate::types::parse_storage_size("1000"), Some(1000));
    assert_eq!(crate::types::parse_storage_size("lots"), None);
}

async fn listed(ipfs: &IpfsHttp) -> Result<Vec<Cid>, crate::components::IpfsError> {
    let mut out = Vec::new();
    ipfs.pin_ls_each(&mut |c| out.push(c)).await?;
    Ok(out)
}

#[tokio::test]
async fn pin_ls_is_read_line_by_line_across_chunks_in_either_form() {
    use axum::body::Body;
    use axum::routing::post;
    let a = test_cid(1).to_string();
    let b = test_cid(2).to_string();
    let c = test_cid(3).to_string();
    // Streamed lines cut at arbitrary places, then the whole-object form some daemons send.
    let text = format!(
        "{{\"Cid\":\"{a}\",\"Type\":\"recursive\"}}\n{{\"Cid\":\"{b}\",\"Type\":\"recursive\"}}\n{{\"Keys\":{{\"{c}\":{{\"Type\":\"recursive\"}}}}}}"
    );
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = text
        .as_bytes()
        .chunks(7)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let chunks = std::sync::Arc::new(std::sync::Mutex::new(Some(chunks)));
    let app = axum::Router::new().route(
        "/api/v0/pin/ls",
        post(move || {
            let chunks = chunks.lock().unwrap().take().unwrap_or_default();
            async move { Body::from_stream(futures::stream::iter(chunks)) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let cfg = crate::config::IpfsHttpConfig {
        node_multiaddress: crate::config::Multiaddrs::one(&format!(
            "/ip4/127.0.0.1/tcp/{}",
            addr.port()
        )),
        ..Default::default()
    };
    let ipfs = IpfsHttp::new(&cfg).unwrap();
    let got: Vec<String> = listed(&ipfs)
        .await
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(got, vec![a, b, c]);
}

#[tokio::test]
async fn a_pin_update_of_pinned_content_uses_ipfs_pin_update() {
    let kubo = FakeKubo::start().await;
    let ipfs = IpfsHttp::new(&kubo.config()).unwrap();
    let from = pin_of(30);
    ipfs.pin(&from).await.unwrap();
    let mut to = pin_of(31);
    to.options.pin_update = Some(from.cid);
    ipfs.pin(&to).await.unwrap();
    assert!(kubo.is_pinned(&to.cid) && kubo.is_pinned(&from.cid));
    {
        let st = kubo.state.lock().unwrap();
        assert_eq!(
            (st.pin_updates, st.pin_calls),
            (1, 1),
            "one pin/add, one pin/update"
        );
    }
    // From content this node does not hold: a plain pin.
    let mut other = pin_of(32);
    other.options.pin_update = Some(test_cid(33));
    ipfs.pin(&other).await.unwrap();
    let st = kubo.state.lock().unwrap();
    assert_eq!((st.pin_updates, st.pin_calls), (1, 2));
}

#[tokio::test]
async fn the_nodes_traffic_and_gateway_come_from_stats_bw_and_its_config() {
    let kubo = FakeKubo::start().await;
    let ipfs = IpfsHttp::new(&kubo.config()).unwrap();
    let bw = ipfs.bandwidth().await.unwrap();
    assert_eq!((bw.total_in, bw.total_out), (1000, 2000));
    assert_eq!((bw.rate_in, bw.rate_out), (1.5, 2.5));
    assert_eq!(
        ipfs.gateway().await.unwrap().as_deref(),
        Some("http://127.0.0.1:8080"),
        "a gateway on every interface is reached on loopback"
    );
}

#[test]
fn gateway_addresses_as_kubo_writes_them() {
    use serde_json::json;
    let url = |v: Value| gateway_url(Some(&v));
    assert_eq!(
        url(json!("/ip4/127.0.0.1/tcp/8080")).as_deref(),
        Some("http://127.0.0.1:8080")
    );
    assert_eq!(
        url(json!(["/ip6/::/tcp/8081", "/ip4/127.0.0.1/tcp/8080"])).as_deref(),
        Some("http://[::1]:8081")
    );
    assert_eq!(
        url(json!([
            "/ip4/127.0.0.1/udp/8080/quic",
            "/dns/localhost/tcp/9"
        ]))
        .as_deref(),
        Some("http://localhost:9")
    );
    assert_eq!(url(json!([])), None, "no gateway");
    // Nothing but an address or a host name becomes the URL's host.
    assert_eq!(url(json!("/ip4/127.0.0.1@evil.example/tcp/80")), None);
    assert_eq!(url(json!("/dns/a@b/tcp/80")), None);
    assert_eq!(url(json!("/ip4/127.0.0.1/tcp/99999")), None);
    assert_eq!(url(json!("/unix/tmp/gw.sock")), None);
    assert_eq!(gateway_url(None), None);
}
