//! Each API driven by an existing, independently written client for it (issue 13): what a
//! user's own tools would do against this peer, with real IPFS behind it.

use cluster_tests::clients::node;
use cluster_tests::*;
use serde_json::Value;

async fn node_and_peer(dir: &std::path::Path) -> (IpfsNode, Peer) {
    let ipfs = IpfsNode::start(dir).await.unwrap();
    let mut peer = Peer::init(&dir.join("peer"), &ipfs, |_| {}).unwrap();
    peer.start(&[]).await.unwrap();
    (ipfs, peer)
}

fn last_json_line(out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {}", text(out)))
}

#[tokio::test(flavor = "multi_thread")]
async fn nft_storage_ipfs_cluster_client_adds_pins_and_reads_status() {
    let dir = tempfile::tempdir().unwrap();
    let (ipfs, peer) = node_and_peer(dir.path()).await;
    let existing = ipfs.add(&unique("js-client")).await.unwrap();
    let url = format!("http://{}:{}/", peer.addr(), peer.rest_port);
    let out = node("rest-client.mjs", &[&url, &existing]).await;
    assert!(out.status.success(), "{}", text(&out));
    let added = last_json_line(&out);

    // What the client added is in the real IPFS node and in the cluster pinset.
    let pins = pinset(&peer.client()).await;
    for key in ["file", "directory"] {
        let cid = added[key].as_str().unwrap();
        assert!(pins.contains(&cid.to_string()), "{cid} in {pins:?}");
        peer.wait_status(cid, "pinned").await.unwrap();
        assert!(
            ipfs.is_pinned(cid).await.unwrap(),
            "{key} {cid} pinned in IPFS"
        );
    }
    // The files inside the directory are content, not pins of their own.
    for f in added["files"].as_array().unwrap() {
        assert!(!pins.contains(&f.as_str().unwrap().to_string()));
    }
    let cat = ipfs
        .call("cat", &[("arg", added["file"].as_str().unwrap())])
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(cat, "hello from a third-party client\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn kubo_rpc_client_pins_through_the_ipfs_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (ipfs, peer) = node_and_peer(dir.path()).await;
    let existing = ipfs.add(&unique("kubo-client")).await.unwrap();
    let url = peer.proxy_url();
    let out = node("kubo-proxy.mjs", &[&url, &existing]).await;
    assert!(out.status.success(), "{}", text(&out));
    let added = last_json_line(&out)["added"].as_str().unwrap().to_string();
    // The add went into the cluster's pinset and the real IPFS node pins it; the CID that
    // was pinned and removed again is in neither.
    let pins = pinset(&peer.client()).await;
    assert_eq!(pins, vec![added.clone()]);
    peer.wait_status(&added, "pinned").await.unwrap();
    assert!(ipfs.is_pinned(&added).await.unwrap());
    assert!(!ipfs.is_pinned(&existing).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn pinning_service_client_pins_lists_pages_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |cfg| {
        cfg["api"]["pinsvcapi"]["basic_auth_credentials"] = serde_json::json!({"svc": "s3cret"});
    })
    .unwrap();
    peer.start(&[]).await.unwrap();
    let existing = ipfs.add(&unique("pinsvc")).await.unwrap();
    // In base32, the form the JS multiformats library parses without extra codecs.
    let others: Vec<String> = (0..4)
        .map(|i| identity_cid(&format!("pinsvc {i}")))
        .map(|c| c.parse::<ipfs_cluster::types::Cid>().unwrap().to_string())
        .collect();
    let url = peer.pinsvc_url();
    let mut args = vec![url.as_str(), "svc", "s3cret", existing.as_str()];
    args.extend(others.iter().map(String::as_str));
    let out = node("pinning-service.mjs", &args).await;
    assert!(out.status.success(), "{}", text(&out));
    // The first pin was replaced by the last CID, which was then deleted: three are left,
    // in the cluster's pinset as the service listed them.
    let left = last_json_line(&out)["left"].as_array().unwrap().len();
    assert_eq!(left, 3);
    assert_eq!(pinset(&peer.client()).await.len(), 3);
    assert!(!pinset(&peer.client()).await.contains(&existing));
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_parser_reads_ipfs_cluster_and_raft_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let port = free_port();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |cfg| {
        cfg["observations"]["metrics"]["prometheus_endpoint"] =
            format!("/ip4/127.0.0.1/tcp/{port}").into();
    })
    .unwrap();
    peer.start(&["--stats"]).await.unwrap();
    let cids: Vec<String> = (0..3)
        .map(|i| identity_cid(&format!("metric {i}")))
        .collect();
    for c in &cids {
        let out = peer.ctl(&["pin", "add", c, "--no-status"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    for c in &cids {
        peer.wait_status(c, "pinned").await.unwrap();
    }
    let url = format!("http://127.0.0.1:{port}/metrics");
    let out = tokio::process::Command::new("python3")
        .arg(cluster_tests::clients::clients_dir().join("prometheus-parse.py"))
        .arg(&url)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let m: Value = serde_json::from_slice(&out.stdout).unwrap();
    let value = |name: &str| {
        m[name][1]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} in {m}"))
    };
    let kind = |name: &str| m[name][0].as_str().unwrap().to_string();
    assert_eq!(value("ipfscluster_pins"), 3.0);
    assert_eq!(kind("ipfscluster_pins"), "gauge");
    assert_eq!(value("ipfscluster_pins_pin_queued"), 0.0);
    assert_eq!(value("ipfscluster_pins_pin_error"), 0.0);
    assert!(value("ipfscluster_pins_ipfs_pins") >= 3.0);
    assert!(value("ipfscluster_pins_pin_add") >= 3.0);
    assert_eq!(kind("ipfscluster_pins_pin_add"), "counter");
    assert!(value("ipfscluster_informer_disk") > 0.0);
    assert_eq!(value("ipfscluster_raft_is_leader"), 1.0);
    assert_eq!(value("ipfscluster_raft_voters"), 1.0);
    assert!(value("ipfscluster_raft_term") >= 1.0);
    // Three pins were committed and applied.
    assert!(value("ipfscluster_raft_applied_index") >= 3.0);
    assert!(value("ipfscluster_raft_commit_index") >= value("ipfscluster_raft_applied_index"));
    assert!(value("ipfscluster_raft_log_entries") >= 3.0);
}
