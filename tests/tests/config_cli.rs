//! Configuration and command-line behaviour of `ipfs-cluster-service`, through the real binary.

use cluster_tests::*;
use serde_json::Value;

fn init(dir: &std::path::Path) {
    let out = service(dir, &["init"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn bare_invocation_prints_help_and_version_prints_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin("ipfs-cluster-service"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["init", "daemon", "state", "version"] {
        assert!(help.contains(cmd), "{help}");
    }
    let out = service(dir.path(), &["version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        release_and_commit()
    );
}

/// The version as every binary should say it: the release, and the commit git's HEAD names
/// (this test runs in the checkout the binaries were built from).
fn release_and_commit() -> String {
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(head.status.success(), "the tests run in a git checkout");
    let head = String::from_utf8(head.stdout).unwrap();
    format!("{}+git{}", ipfs_cluster::types::VERSION, &head.trim()[..12])
}

/// `--version` of every binary tells the release and the commit, so that two builds of one
/// release can be told apart (a bug report names the build); the REST API says the same.
#[tokio::test]
async fn every_binary_and_the_rest_api_say_the_release_and_the_commit() {
    let want = release_and_commit();
    // The desktop app's (built with the desktop feature, for the e2e) is checked by the e2e,
    // against its About.
    for name in [
        "ipfs-cluster-service",
        "ipfs-cluster-ctl",
        "ipfs-local-node",
    ] {
        let out = std::process::Command::new(bin(name))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", text(&out));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{name} {want}")
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |_| {}).unwrap();
    peer.start(&[]).await.unwrap();
    let client = peer.client();
    assert_eq!(client.version().await.unwrap().version, want);
    let id = client.id().await.unwrap();
    assert_eq!(id.version, want);
    assert!(id.commit.starts_with(&want[want.len() - 12..]), "{id:?}");
    assert_eq!(id.commit.len(), 40, "{id:?}");
}

#[test]
fn ctl_pin_ls_lists_every_pin_type_by_default_as_ipfs_cluster() {
    let out = std::process::Command::new(bin("ipfs-cluster-ctl"))
        .args(["pin", "ls", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("[default: all]"), "{help}");
}

#[test]
fn init_writes_every_section_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("service.json")).unwrap())
            .unwrap();
    for path in [
        "/cluster/secret",
        "/consensus/raft/wait_for_leader_timeout",
        "/api/restapi/http_listen_multiaddress",
        "/api/ipfsproxy/listen_multiaddress",
        "/api/pinsvcapi/http_listen_multiaddress",
        "/ipfs_connector/ipfshttp/node_multiaddress",
        "/pin_tracker/stateless/concurrent_pins",
        "/monitor/pubsubmon/check_interval",
        "/allocator/balanced/allocate_by",
        "/informer/disk/metric_ttl",
        "/informer/numpin/metric_ttl",
        "/informer/tags/tags",
    ] {
        assert!(cfg.pointer(path).is_some(), "missing {path}");
    }
    assert_eq!(cfg["cluster"]["secret"].as_str().unwrap().len(), 64);
    assert_eq!(cfg["consensus"]["raft"]["commit_retry_delay"], "200ms");
    let identity: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("identity.json")).unwrap())
            .unwrap();
    assert!(identity["id"].as_str().unwrap().starts_with("12D3KooW"));

    let before = std::fs::read(dir.path().join("service.json")).unwrap();
    let out = service(dir.path(), &["init"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(dir.path().join("service.json")).unwrap(),
        before
    );
    let identity_before = std::fs::read(dir.path().join("identity.json")).unwrap();
    let out = service(dir.path(), &["init", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_ne!(
        std::fs::read(dir.path().join("service.json")).unwrap(),
        before
    );
    // As IPFS Cluster: --force rewrites the configuration and keeps the peer's identity.
    assert_eq!(
        std::fs::read(dir.path().join("identity.json")).unwrap(),
        identity_before
    );
    assert!(text(&out).contains("kept"), "{}", text(&out));
}

/// Each broken config stops `daemon` with an error naming the key, and changes nothing.
#[test]
fn bad_configs_stop_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let path = dir.path().join("service.json");
    let good: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        serde_json::to_string_pretty(&v).unwrap()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        ("malformed JSON", "{\"cluster\": ".into(), "malformed JSON"),
        (
            "unknown key",
            edit(&|v| v["cluster"]["colour"] = "blue".into()),
            "colour",
        ),
        (
            "obsolete peers",
            edit(&|v| v["cluster"]["peers"] = Value::Array(vec![])),
            "cluster.peers",
        ),
        (
            "obsolete bootstrap",
            edit(&|v| v["cluster"]["bootstrap"] = Value::Array(vec![])),
            "cluster.bootstrap",
        ),
        (
            "bad secret",
            edit(&|v| v["cluster"]["secret"] = "abc".into()),
            "cluster.secret",
        ),
        (
            "bad multiaddr",
            edit(&|v| v["api"]["restapi"]["http_listen_multiaddress"] = "/ip4/nope".into()),
            "http_listen_multiaddress",
        ),
        (
            "bad duration",
            edit(&|v| v["cluster"]["state_sync_interval"] = "soon".into()),
            "state_sync_interval",
        ),
        (
            "bad replication",
            edit(&|v| v["cluster"]["replication_factor_min"] = 5.into()),
            "replication_factor_min",
        ),
    ];
    for (what, content, needle) in cases {
        std::fs::write(&path, &content).unwrap();
        let out = service(dir.path(), &["daemon"]);
        assert!(!out.status.success(), "{what}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{what}: {err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            content,
            "{what}: file unchanged"
        );
        assert!(
            !dir.path().join("raft").exists(),
            "{what}: no state created"
        );
    }
    // A bad environment override names the variable.
    std::fs::write(&path, edit(&|_| {})).unwrap();
    let out = std::process::Command::new(bin("ipfs-cluster-service"))
        .args(["daemon"])
        .env("IPFS_CLUSTER_PATH", dir.path())
        .env("CLUSTER_SECRET", "zz")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CLUSTER_SECRET"),
        "{}",
        text(&out)
    );
    // A missing identity is reported with what to do.
    std::fs::remove_file(dir.path().join("identity.json")).unwrap();
    let out = service(dir.path(), &["daemon"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("init"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn environment_overrides_and_cluster_path_apply_without_rewriting_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |_| {}).unwrap();
    let before = std::fs::read(peer.dir.join("service.json")).unwrap();
    let port = free_port();
    let addr = format!("/ip4/127.0.0.1/tcp/{port}");
    peer.start_env(
        &[],
        &[
            ("CLUSTER_PEERNAME", "from-env"),
            ("CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS", &addr),
        ],
    )
    .await
    .unwrap();
    peer.rest_port = port;
    let id = peer.client().id().await.unwrap();
    assert_eq!(id.peername, "from-env");
    assert_eq!(
        std::fs::read(peer.dir.join("service.json")).unwrap(),
        before
    );
    // A second daemon on the same folder is refused.
    let out = service(&peer.dir, &["daemon"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("in use"),
        "{}",
        text(&out)
    );
}

/// `service.json` files as IPFS Cluster v1.1's `init` writes them (copied from SPEC's fixtures).
const FIXTURES: &str = "fixtures";

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(FIXTURES)
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_json_written_by_ipfs_cluster_init_loads_and_says_what_it_does_not_use() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |_| {}).unwrap();
    // IPFS Cluster v1.1's own file, as its init writes it; only the ports of this test
    // machine come from the environment, as a user of containers would set them.
    let original = fixture("ipfs-cluster-v1.1-raft-service.json");
    std::fs::write(peer.dir.join("service.json"), &original).unwrap();
    let listen = format!("/ip4/127.0.0.1/tcp/{}", peer.swarm_port);
    let rest = format!("/ip4/127.0.0.1/tcp/{}", peer.rest_port);
    let node = ipfs.api_multiaddr();
    let (proxy, pinsvc) = ("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/0");
    peer.start_env(
        &[],
        &[
            ("CLUSTER_LISTENMULTIADDRESS", listen.as_str()),
            ("CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS", rest.as_str()),
            ("CLUSTER_IPFSPROXY_LISTENMULTIADDRESS", proxy),
            ("CLUSTER_IPFSPROXY_NODEMULTIADDRESS", node.as_str()),
            ("CLUSTER_PINSVCAPI_HTTPLISTENMULTIADDRESS", pinsvc),
            ("CLUSTER_IPFSHTTP_NODEMULTIADDRESS", node.as_str()),
        ],
    )
    .await
    .unwrap();
    let log = peer.current_log();
    for key in [
        "cluster.resource_manager",
        "cluster.no_announce_multiaddress",
    ] {
        assert!(log.contains(key), "no word about {key}:\n{log}");
    }
    assert_eq!(
        std::fs::read_to_string(peer.dir.join("service.json")).unwrap(),
        original,
        "never rewritten"
    );
    peer.client().id().await.unwrap();
}

/// `init --consensus crdt` writes IPFS Cluster's CRDT section (and no Raft one); the file
/// loads as a CRDT peer's (its daemon runs in `tests/crdt.rs`).
#[test]
fn init_consensus_crdt_writes_the_crdt_section_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = service(dir.path(), &["init", "--consensus", "crdt"]);
    assert!(out.status.success(), "{}", text(&out));
    let cfg = config_of(dir.path());
    assert!(
        cfg["consensus"].get("raft").is_none(),
        "{}",
        cfg["consensus"]
    );
    assert_eq!(cfg["consensus"]["crdt"]["cluster_name"], "ipfs-cluster");
    assert_eq!(cfg["consensus"]["crdt"]["trusted_peers"][0], "*");
}

/// The state tools on a CRDT peer, and a pinset carried from a Raft peer to a CRDT peer and
/// back by `state export` / `state import`, unchanged.
#[test]
fn a_raft_export_imports_into_a_crdt_peer_and_back_unchanged() {
    let raft = tempfile::tempdir().unwrap();
    let crdt = tempfile::tempdir().unwrap();
    let again = tempfile::tempdir().unwrap();
    for (dir, args) in [
        (raft.path(), vec!["init"]),
        (crdt.path(), vec!["init", "--consensus", "crdt"]),
        (again.path(), vec!["init"]),
    ] {
        let out = service(dir, &args);
        assert!(out.status.success(), "{}", text(&out));
    }
    // A pinset with what a pin can carry: names, metadata, replication, allocations, modes.
    let cids = [
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
    ];
    let pins = [
        serde_json::json!({"cid": cids[0], "name": "first", "metadata": {"k": "v"},
            "replication_factor_min": 2, "replication_factor_max": 3, "type": "pin",
            "max_depth": -1, "timestamp": "2026-12-01T10:00:00Z"}),
        serde_json::json!({"cid": cids[1], "name": "second", "mode": "direct",
            "allocations": ["12D3KooWQYV9dGMFoRzNStwpXztXaBUjtPqi6aU76ZgUriHhKust"],
            "replication_factor_min": 1, "replication_factor_max": 1, "type": "pin",
            "max_depth": 0, "timestamp": "2026-12-01T10:00:01Z"}),
        serde_json::json!({"cid": cids[2], "type": "pin", "max_depth": -1,
            "replication_factor_min": -1, "replication_factor_max": -1,
            "timestamp": "2026-12-01T10:00:02Z"}),
    ];
    let input = raft.path().join("input.ndjson");
    std::fs::write(
        &input,
        pins.iter().map(|p| format!("{p}\n")).collect::<String>(),
    )
    .unwrap();
    let export = |dir: &std::path::Path| {
        let out = service(dir, &["state", "export"]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let import = |dir: &std::path::Path, file: &std::path::Path| {
        let out = service(dir, &["state", "import", "--force", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("imported 3 pins"), "{}", text(&out));
    };
    import(raft.path(), &input);
    let from_raft = export(raft.path());
    assert_eq!(from_raft.lines().count(), 3, "{from_raft}");
    let a = raft.path().join("a.ndjson");
    std::fs::write(&a, &from_raft).unwrap();
    // Into the CRDT peer: its own database, no Raft one.
    import(crdt.path(), &a);
    assert!(crdt.path().join("crdt/crdt.sqlite").exists());
    assert!(!crdt.path().join("raft").exists());
    let from_crdt = export(crdt.path());
    assert_eq!(
        from_crdt, from_raft,
        "the CRDT peer exports what it imported"
    );
    // And back into a Raft peer.
    let b = crdt.path().join("b.ndjson");
    std::fs::write(&b, &from_crdt).unwrap();
    import(again.path(), &b);
    assert_eq!(export(again.path()), from_raft);
    // Cleanup on the CRDT peer: backed up, and nothing left.
    let out = service(crdt.path(), &["state", "cleanup", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("crdt.backups"), "{}", text(&out));
    assert!(!crdt.path().join("crdt").exists());
    assert_eq!(export(crdt.path()), "");
    assert!(!crdt.path().join("raft").exists());
}

fn config_of(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("service.json")).unwrap()).unwrap()
}

#[test]
fn init_takes_ipfs_cluster_services_flags() {
    let dir = tempfile::tempdir().unwrap();
    let a = "/ip4/192.0.2.1/tcp/9096/p2p/12D3KooWQYV9dGMFoRzNStwpXztXaBUjtPqi6aU76ZgUriHhKust";
    let b = "/dns4/peer.example/tcp/9096/p2p/12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq";
    let out = service(
        dir.path(),
        &[
            "init",
            "--peers",
            &format!("{a},{b}"),
            "--randomports",
            "--consensus",
            "raft",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let cfg = config_of(dir.path());
    assert_eq!(
        cfg["consensus"]["raft"]["init_peerset"],
        serde_json::json!([
            "12D3KooWQYV9dGMFoRzNStwpXztXaBUjtPqi6aU76ZgUriHhKust",
            "12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq"
        ])
    );
    let store = std::fs::read_to_string(dir.path().join("peerstore")).unwrap();
    assert_eq!(
        store,
        format!("{a}\n{b}\n"),
        "DNS addresses kept as written"
    );
    let rest = cfg["api"]["restapi"]["http_listen_multiaddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        rest.starts_with("/ip4/127.0.0.1/tcp/") && !rest.ends_with("/9094"),
        "{rest}"
    );
    let swarm = cfg["cluster"]["listen_multiaddress"].to_string();
    assert!(!swarm.contains("/9096"), "{swarm}");

    // The secret from the environment, or typed in with --custom-secret.
    let secret = "a".repeat(64);
    let dir2 = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(bin("ipfs-cluster-service"))
        .args(["--config", dir2.path().to_str().unwrap(), "init"])
        .env("CLUSTER_SECRET", &secret)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(config_of(dir2.path())["cluster"]["secret"], secret.as_str());
    let dir3 = tempfile::tempdir().unwrap();
    let typed = "b".repeat(64);
    let mut child = std::process::Command::new(bin("ipfs-cluster-service"))
        .args(["--config", dir3.path().to_str().unwrap(), "init", "-s"])
        .env_remove("CLUSTER_SECRET")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{typed}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(config_of(dir3.path())["cluster"]["secret"], typed.as_str());

    // Bad input: nothing written.
    for (args, says) in [
        (
            vec!["init", "--consensus", "paxos"],
            "expected raft or crdt",
        ),
        (vec!["init", "--peers", "/ip4/1.2.3.4/tcp/9096"], "/p2p/"),
        (
            vec!["init", "--peers", "not-a-multiaddr"],
            "not a multiaddr",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let out = service(d.path(), &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
        assert!(!d.path().join("service.json").exists(), "{args:?}");
    }
}

#[test]
fn state_import_applies_ipfs_cluster_services_overrides() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let pin = ipfs_cluster::types::Pin::new(
        identity_cid("import override").parse().unwrap(),
        Default::default(),
    );
    let file = dir.path().join("pins.json");
    std::fs::write(&file, serde_json::to_string(&pin).unwrap() + "\n").unwrap();
    let peer = "12D3KooWQYV9dGMFoRzNStwpXztXaBUjtPqi6aU76ZgUriHhKust";
    let out = service(
        dir.path(),
        &[
            "state",
            "import",
            "-f",
            "--rmin",
            "2",
            "--rmax",
            "3",
            "--allocs",
            peer,
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = service(dir.path(), &["state", "export"]);
    let exported: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(exported["replication_factor_min"], 2);
    assert_eq!(exported["replication_factor_max"], 3);
    assert_eq!(exported["allocations"], serde_json::json!([peer]));
}

#[test]
fn invite_prints_a_link_to_this_peer_that_the_desktop_app_reads() {
    let dir = tempfile::tempdir().unwrap();
    // No configuration: says so, prints no link.
    let out = service(dir.path(), &["invite"]);
    assert!(!out.status.success());
    assert!(
        !text(&out).contains("ipfs-cluster-invite:"),
        "{}",
        text(&out)
    );
    init(dir.path());
    let cfg = config_of(dir.path());
    let id: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("identity.json")).unwrap())
            .unwrap();
    let out = service(dir.path(), &["invite", "--qr"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let link = stdout.lines().last().unwrap();
    let inv = ipfs_cluster::desktop::invite::Invitation::parse(link, None).unwrap();
    assert_eq!(inv.secret, cfg["cluster"]["secret"].as_str().unwrap());
    // The default listen address (0.0.0.0:9096) given as this machine's addresses.
    let me = format!("/tcp/9096/p2p/{}", id["id"].as_str().unwrap());
    assert!(
        !inv.bootstrap.is_empty()
            && inv
                .bootstrap
                .iter()
                .all(|a| a.starts_with("/ip4/") && a.ends_with(&me) && !a.contains("/0.0.0.0/")),
        "{:?}",
        inv.bootstrap
    );
    assert!(
        stdout.lines().count() > 10 && stdout.contains('\u{2588}'),
        "a QR code above the link: {stdout}"
    );
}
