//! `ipfs-cluster-ctl` driven by a shell script as users' scripts drive it (issue 13):
//! `tests/ctl/scripts.sh`, against a real peer and a real IPFS node.

use cluster_tests::*;

#[tokio::test(flavor = "multi_thread")]
async fn ctl_works_in_shell_scripts_with_jq_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |_| {}).unwrap();
    peer.start(&[]).await.unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // A CID whose content no node has: its pin never finishes.
    let missing = identity_cid("x")
        .parse::<ipfs_cluster::types::Cid>()
        .map(|_| "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".to_string())
        .unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ctl/scripts.sh");
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .env("CTL", bin("ipfs-cluster-ctl"))
        .env("HOST", format!("/ip4/127.0.0.1/tcp/{}", peer.rest_port))
        .env("WORK", &work)
        .env("MISSING", &missing)
        .env("IDENTITY", identity_cid("script pin"))
        .env("IDENTITY2", identity_cid("script update"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}
