//! Peers on different machines: three or more test hosts (network namespaces on one bridge,
//! made and removed by the test), each with a cluster peer and the built-in IPFS node in its
//! LAN mode. Skipped, with a message, where namespaces cannot be made (not root).

use cluster_tests::*;
use ipfs_cluster::types::PinOptions;

fn everywhere() -> PinOptions {
    PinOptions {
        replication_factor_min: -1,
        replication_factor_max: -1,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn content_added_on_one_host_is_pinned_by_every_hosts_built_in_node() {
    let Some(net) = Net::create(3).unwrap() else {
        return;
    };
    let c = TestCluster::start_on_hosts(&net.hosts, |_, _| {})
        .await
        .unwrap();
    // Each built-in node listens and announces on its host's real interface.
    for (node, host) in c.ipfs.iter().zip(&net.hosts) {
        let id: serde_json::Value = node.call("id", &[]).await.unwrap().json().await.unwrap();
        let addrs = id["Addresses"].to_string();
        assert!(
            addrs.contains(&format!("/ip4/{}/tcp/4001", host.ip)),
            "{addrs}"
        );
    }
    let cid = c.ipfs[0].add(&unique("lan")).await.unwrap();
    // Pinned through another host's peer, everywhere.
    c.peers[1].client().pin(&cid, &everywhere()).await.unwrap();
    for (i, node) in c.ipfs.iter().enumerate() {
        wait_for(
            &format!("host {i}'s IPFS node to pin {cid}"),
            DEADLINE,
            || async { node.is_pinned(&cid).await.ok().filter(|p| *p) },
        )
        .await
        .unwrap();
    }
    for p in &c.peers {
        p.wait_status(&cid, "pinned").await.unwrap();
    }
    drop(c);
    drop(net);
}
