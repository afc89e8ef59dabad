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

#[tokio::test(flavor = "multi_thread")]
async fn pin_add_from_file_pins_every_line_in_one_request_and_reports_the_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |_| {}).unwrap();
    peer.start(&[]).await.unwrap();
    // As the cluster writes them (base32), to compare with what it prints.
    let norm = |c: String| c.parse::<ipfs_cluster::types::Cid>().unwrap().to_string();
    let cids: Vec<String> = (0..50)
        .map(|n| norm(identity_cid(&format!("from file {n}"))))
        .collect();
    let file = dir.path().join("pins.ndjson");
    let lines: Vec<String> = cids
        .iter()
        .map(|c| format!("{{\"cid\":\"{c}\",\"name\":\"batch\"}}"))
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = peer.ctl(&["pin", "add", "--from-file", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(printed, cids, "each CID as committed, in the file's order");
    let client = peer.client();
    let mut pinned: Vec<String> = pinset(&client).await.into_iter().map(norm).collect();
    pinned.sort();
    let mut want = cids.clone();
    want.sort();
    assert_eq!(pinned, want);

    // A bad line is reported with its number; the others are pinned; the exit status is 1.
    let good = norm(identity_cid("after a bad line"));
    std::fs::write(
        &file,
        format!("{{\"cid\":\"nope\"}}\n{{\"cid\":\"{good}\"}}\n"),
    )
    .unwrap();
    let out = peer.ctl(&["pin", "add", "--from-file", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1: error (400)"),
        "{}",
        text(&out)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), good);
}
