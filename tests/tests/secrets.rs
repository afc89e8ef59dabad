//! Secrets stay secret (issue: safe by default): the peer's files are its user's alone, and
//! no secret (cluster secret, private key, API password) reaches a log or an error message.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cluster_tests::*;
use serde_json::Value;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path:?}: {e}"))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn the_peers_files_are_owner_only_and_no_secret_reaches_a_log_or_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let password = "hunter2-but-much-longer-7c1f";
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |cfg| {
        cfg["api"]["restapi"]["basic_auth_credentials"] = serde_json::json!({ "admin": password });
    })
    .unwrap();
    peer.start(&[]).await.unwrap();
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(peer.dir.join("service.json")).unwrap())
            .unwrap();
    let secret = cfg["cluster"]["secret"].as_str().unwrap().to_string();
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(peer.dir.join("identity.json")).unwrap())
            .unwrap();
    let private_key = identity["private_key"].as_str().unwrap().to_string();

    // Some work, a wrong password, and the errors a user sees.
    let pin = peer.ctl(&[
        "--force-http",
        "--basic-auth",
        &format!("admin:{password}"),
        "pin",
        "add",
        &identity_cid("secrets"),
    ]);
    let wrong = peer.ctl(&["-f", "--basic-auth", "admin:not-the-password", "id"]);
    assert!(!wrong.status.success());
    let state_out = service(&peer.dir, &["state", "export", "--file", "/dev/null"]);
    peer.stop();
    let backup = service(
        &peer.dir,
        &[
            "state",
            "export",
            "--file",
            &peer.dir.join("export.json").display().to_string(),
        ],
    );

    let mut said = peer.current_log();
    for out in [&pin, &wrong, &state_out, &backup] {
        said.push_str(&String::from_utf8_lossy(&out.stdout));
        said.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    for (what, value) in [
        ("the cluster secret", secret.as_str()),
        ("the private key", private_key.as_str()),
        ("the REST API password", password),
    ] {
        assert!(
            !said.contains(value),
            "{what} appears in the logs or output:\n{said}"
        );
    }

    // And the log, written to a file, is plain text (no terminal colour codes to grep past).
    assert!(
        !peer.current_log().contains('\x1b'),
        "colour codes in the log file"
    );

    // Owner-only: the folder, the secrets, Raft's database and whatever holds the pinset.
    assert_eq!(mode(&peer.dir), 0o700, "the peer's folder");
    for file in [
        "identity.json",
        "service.json",
        "raft/raft.sqlite",
        "export.json",
    ] {
        let path = peer.dir.join(file);
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    assert_eq!(mode(&peer.dir.join("raft")), 0o700, "raft/");
    for entry in std::fs::read_dir(peer.dir.join("raft")).unwrap() {
        let path = entry.unwrap().path();
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{path:?}");
    }
}
