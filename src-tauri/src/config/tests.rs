use std::path::Path;

use serde_json::Value;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("service.json"), text, &[])
}

fn rest_api_address(c: &Config) -> String {
    let addrs = &c.api.restapi.0.http_listen_multiaddress;
    addrs.first().unwrap().to_string()
}

fn valid_json() -> Value {
    serde_json::to_value(Config::new_for_init()).unwrap()
}

#[test]
fn defaults_match_the_spec() {
    let v = valid_json();
    assert_eq!(v["cluster"]["listen_multiaddress"], "/ip4/0.0.0.0/tcp/9096");
    assert_eq!(v["cluster"]["replication_factor_min"], -1);
    assert_eq!(v["cluster"]["state_sync_interval"], "5m0s");
    assert_eq!(v["cluster"]["pin_recover_interval"], "12m0s");
    assert_eq!(v["cluster"]["disable_repinning"], true);
    assert_eq!(v["consensus"]["raft"]["wait_for_leader_timeout"], "15s");
    assert_eq!(v["consensus"]["raft"]["commit_retry_delay"], "200ms");
    assert_eq!(v["consensus"]["raft"]["backups_rotate"], 6);
    assert_eq!(
        v["api"]["restapi"]["http_listen_multiaddress"],
        "/ip4/127.0.0.1/tcp/9094"
    );
    assert_eq!(
        v["api"]["pinsvcapi"]["http_listen_multiaddress"],
        "/ip4/127.0.0.1/tcp/9097"
    );
    assert_eq!(
        v["api"]["ipfsproxy"]["listen_multiaddress"],
        "/ip4/127.0.0.1/tcp/9095"
    );
    assert_eq!(v["api"]["restapi"]["basic_auth_credentials"], Value::Null);
    assert_eq!(v["ipfs_connector"]["ipfshttp"]["pin_timeout"], "2m0s");
    assert_eq!(v["ipfs_connector"]["ipfshttp"]["unpin_timeout"], "3h0m0s");
    assert_eq!(
        v["pin_tracker"]["stateless"]["max_pin_queue_size"],
        1_000_000
    );
    assert_eq!(v["pin_tracker"]["stateless"]["concurrent_pins"], 10);
    assert_eq!(v["monitor"]["pubsubmon"]["check_interval"], "15s");
    assert_eq!(v["informer"]["disk"]["metric_ttl"], "30s");
    assert_eq!(
        v["allocator"]["balanced"]["allocate_by"],
        serde_json::json!(["tag:group", "freespace"])
    );
    assert_eq!(v["cluster"]["secret"].as_str().unwrap().len(), 64);
    // What init writes loads back unchanged.
    let c = parse(&v.to_string()).unwrap();
    assert_eq!(serde_json::to_value(c).unwrap(), v);
}

#[test]
fn malformed_json_is_reported() {
    let err = parse("{\"cluster\": ").unwrap_err();
    assert!(matches!(err, ConfigError::Malformed { .. }), "{err}");
}

#[test]
fn unknown_keys_are_named() {
    let mut v = valid_json();
    v["cluster"]["replication_factr_min"] = 2.into();
    let err = parse(&v.to_string()).unwrap_err().to_string();
    assert!(err.contains("replication_factr_min"), "{err}");
}

/// `cluster.peer_addresses` (peers added to the peerstore at start, as a follow template
/// names the trusted peers): one that names no peer does not stop the load (IPFS Cluster
/// skips it; the peer warns at start), as a template fetched at every run would stop every
/// follower.
#[test]
fn peer_addresses_that_name_no_peer_do_not_stop_the_load() {
    let mut v = valid_json();
    v["cluster"]["peer_addresses"] = serde_json::json!([
        "/ip4/10.0.0.1/tcp/9096",
        "/ip4/10.0.0.1/tcp/9096/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
    ]);
    assert_eq!(
        parse(&v.to_string()).unwrap().cluster.peer_addresses.len(),
        2
    );
}

/// `cluster.peerstore_file` names a file in the peer's folder: a config (or a followed
/// cluster's template) cannot make the peer write elsewhere (`../../.bashrc`).
#[test]
fn the_peerstore_file_stays_in_the_peers_folder() {
    for bad in ["../../.bashrc", "/etc/passwd", "a/b", "..", "."] {
        let mut v = valid_json();
        v["cluster"]["peerstore_file"] = bad.into();
        let err = parse(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains("cluster.peerstore_file"), "{bad:?}: {err}");
    }
    let mut v = valid_json();
    v["cluster"]["peerstore_file"] = "my-peers".into();
    let dir = Path::new("/peer");
    let c = parse(&v.to_string()).unwrap();
    assert_eq!(c.cluster.peerstore_path(dir), dir.join("my-peers"));
    // Empty, as IPFS Cluster writes it: the default name.
    v["cluster"]["peerstore_file"] = "".into();
    let c = parse(&v.to_string()).unwrap();
    assert_eq!(c.cluster.peerstore_path(dir), dir.join("peerstore"));
}

#[test]
fn obsolete_keys_say_what_to_do() {
    for key in ["peers", "bootstrap"] {
        let mut v = valid_json();
        v["cluster"][key] = serde_json::json!([]);
        let err = parse(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains(&format!("cluster.{key}")), "{err}");
        assert!(err.contains("obsolete"), "{err}");
    }
}

#[test]
fn bad_secret_and_multiaddr_name_the_key() {
    let mut v = valid_json();
    v["cluster"]["secret"] = "abcd".into();
    let err = parse(&v.to_string()).unwrap_err().to_string();
    assert!(err.contains("cluster.secret"), "{err}");

    let mut v = valid_json();
    v["api"]["restapi"]["http_listen_multiaddress"] = "not/a/multiaddr".into();
    let err = parse(&v.to_string()).unwrap_err().to_string();
    assert!(
        err.contains("api.restapi.http_listen_multiaddress"),
        "{err}"
    );

    let mut v = valid_json();
    v["consensus"]["raft"]["commit_retry_delay"] = "soon".into();
    let err = parse(&v.to_string()).unwrap_err().to_string();
    assert!(err.contains("consensus.raft.commit_retry_delay"), "{err}");
}

#[test]
fn multiaddr_keys_take_one_or_many() {
    let mut v = valid_json();
    v["cluster"]["listen_multiaddress"] =
        serde_json::json!(["/ip4/0.0.0.0/tcp/9096", "/ip6/::/tcp/9096"]);
    v["api"]["restapi"]["http_listen_multiaddress"] =
        serde_json::json!(["/ip4/127.0.0.1/tcp/1234"]);
    let c = parse(&v.to_string()).unwrap();
    assert_eq!(c.cluster.listen_multiaddress.0.len(), 2);
    assert_eq!(rest_api_address(&c), "/ip4/127.0.0.1/tcp/1234");
}

#[test]
fn env_overrides_apply_and_bad_ones_name_the_variable() {
    let text = valid_json().to_string();
    let env = vec![
        ("CLUSTER_PEERNAME".to_string(), "from-env".to_string()),
        (
            "CLUSTER_RESTAPI_HTTPLISTENMULTIADDRESS".to_string(),
            "/ip4/127.0.0.1/tcp/19094".to_string(),
        ),
        ("CLUSTER_REPLICATIONFACTORMIN".to_string(), "2".to_string()),
        ("CLUSTER_REPLICATIONFACTORMAX".to_string(), "3".to_string()),
        (
            "CLUSTER_STATELESS_CONCURRENTPINS".to_string(),
            "4".to_string(),
        ),
    ];
    let c = Config::parse(Path::new("s.json"), &text, &env).unwrap();
    assert_eq!(c.cluster.peername, "from-env");
    assert_eq!(c.cluster.replication_factor_max, 3);
    assert_eq!(c.pin_tracker.stateless.concurrent_pins, 4);
    assert_eq!(rest_api_address(&c), "/ip4/127.0.0.1/tcp/19094");

    let env = vec![("CLUSTER_SECRET".to_string(), "xyz".to_string())];
    let err = Config::parse(Path::new("s.json"), &text, &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("CLUSTER_SECRET"), "{err}");
    let env = vec![("CLUSTER_DISABLEREPINNING".to_string(), "maybe".to_string())];
    let err = Config::parse(Path::new("s.json"), &text, &env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("CLUSTER_DISABLEREPINNING"), "{err}");
}

#[test]
fn replication_factors_are_checked() {
    assert!(check_replication(-1, -1).is_ok());
    assert!(check_replication(2, 3).is_ok());
    assert!(check_replication(3, 2).is_err());
    assert!(check_replication(-1, 2).is_err());
    assert!(check_replication(-5, -5).is_err());
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let (c, id) = init(dir.path(), false).unwrap();
    let before = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap();
    assert!(matches!(
        init(dir.path(), false),
        Err(ConfigError::Exists(_))
    ));
    assert_eq!(
        std::fs::read_to_string(dir.path().join(CONFIG_FILE)).unwrap(),
        before
    );
    let loaded = Config::load_with_env(dir.path(), &[]).unwrap();
    assert_eq!(loaded, c);
    let loaded_id = Identity::load(&dir.path().join(IDENTITY_FILE)).unwrap();
    assert_eq!(loaded_id.peer_id(), id.peer_id());
    let (c2, _) = init(dir.path(), true).unwrap();
    assert_ne!(c2.cluster.secret, c.cluster.secret);
}

#[test]
fn go_config_sections_are_accepted() {
    let mut v = valid_json();
    v["datastore"] = serde_json::json!({"pebble": {}});
    v["observations"] = serde_json::json!({"metrics": {}});
    assert!(parse(&v.to_string()).is_ok());
}

/// IPFS Cluster's CRDT section reads as IPFS Cluster reads it: the fixture's values, its
/// defaults for what the file leaves out.
#[test]
fn the_crdt_section_of_ipfs_clusters_fixture_reads_with_its_defaults() {
    let text = include_str!("../../../tests/fixtures/ipfs-cluster-v1.1-crdt-service.json");
    let v: Value = serde_json::from_str(text).unwrap();
    let crdt: CrdtConfig = serde_json::from_value(v["consensus"]["crdt"].clone()).unwrap();
    assert_eq!(crdt.cluster_name, "ipfs-cluster");
    assert!(crdt.trust_all());
    assert!(!crdt.batching_enabled());
    assert_eq!(crdt.batching.max_queue_size, 50_000);
    assert_eq!(crdt.repair_interval.get().as_secs(), 3600);
    assert_eq!(crdt.rebroadcast_interval.get().as_secs(), 60);
    assert_eq!(crdt.peerset_metric, "ping");
    assert_eq!(crdt.datastore_namespace, "/c");
    crdt.validate().unwrap();
    let batched: CrdtConfig = serde_json::from_value(serde_json::json!({
        "cluster_name": "c",
        "trusted_peers": ["12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"],
        "batching": {"max_batch_size": 100, "max_batch_age": "1s"}
    }))
    .unwrap();
    assert!(batched.batching_enabled());
    assert!(!batched.trust_all());
    batched.validate().unwrap();
    assert!(!crdt.drop_old_deltas, "the history is kept unless asked");
    let dropping = CrdtConfig {
        drop_old_deltas: true,
        ..batched
    };
    dropping.validate().unwrap();
}

/// A CRDT section beside Raft's is checked as IPFS Cluster checks it: a bad value stops the
/// load naming its key.
#[test]
fn a_bad_crdt_section_is_refused_naming_its_key() {
    for (crdt, key) in [
        (
            serde_json::json!({"trusted_peers": ["not-a-peer"]}),
            "consensus.crdt.trusted_peers",
        ),
        (
            serde_json::json!({"cluster_name": ""}),
            "consensus.crdt.cluster_name",
        ),
        (
            serde_json::json!({"rebroadcast_interval": "0s"}),
            "consensus.crdt.rebroadcast_interval",
        ),
        (
            serde_json::json!({"batching": {"max_queue_size": 0}}),
            "consensus.crdt.batching.max_queue_size",
        ),
        // Dropping old deltas needs every writer named: with "*" none is known stable.
        (
            serde_json::json!({"drop_old_deltas": true}),
            "consensus.crdt.drop_old_deltas",
        ),
    ] {
        let mut v = valid_json();
        v["consensus"]["crdt"] = crdt;
        let err = parse(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
    let mut v = valid_json();
    v["consensus"]["crdt"] = serde_json::json!({"cluster_name": "mine"});
    let c = parse(&v.to_string()).unwrap();
    assert_eq!(c.consensus.crdt.unwrap().cluster_name, "mine");
}

/// SPEC §config: a typo in the CRDT section is an error naming it, as anywhere else (every
/// key any IPFS Cluster release writes there is known), and a key read but not acted on
/// (`repair_interval`: this store is never dirty) is named in the start-up warning.
#[test]
fn a_typo_in_the_crdt_section_is_named_and_repair_interval_is_not_silent() {
    for (crdt, key) in [
        (serde_json::json!({"trusted_peer": ["*"]}), "trusted_peer"),
        (
            serde_json::json!({"batching": {"max_batch_sise": 10}}),
            "max_batch_sise",
        ),
    ] {
        let mut v = valid_json();
        v["consensus"]["crdt"] = crdt;
        let err = parse(&v.to_string()).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
    let mut v = valid_json();
    v["consensus"]["crdt"] = serde_json::json!({"repair_interval": "10m"});
    let c = parse(&v.to_string()).unwrap();
    assert!(
        c.not_acted_on
            .contains(&"consensus.crdt.repair_interval".to_string()),
        "{:?}",
        c.not_acted_on
    );
    v["consensus"]["crdt"] = serde_json::json!({"repair_interval": "1h0m0s"});
    let c = parse(&v.to_string()).unwrap();
    assert!(c.not_acted_on.is_empty(), "{:?}", c.not_acted_on);
}

#[test]
fn pin_only_on_trusted_and_untrusted_peers_are_acted_on_and_exclusive() {
    let mut v = valid_json();
    v["cluster"]["pin_only_on_trusted_peers"] = true.into();
    let c = parse(&v.to_string()).unwrap();
    assert!(c.cluster.pin_only_on_trusted_peers);
    assert!(
        !c.not_acted_on.iter().any(|k| k.contains("pin_only")),
        "{:?}",
        c.not_acted_on
    );
    v["cluster"]["pin_only_on_untrusted_peers"] = true.into();
    let err = parse(&v.to_string()).unwrap_err().to_string();
    assert!(err.contains("cannot both be true"), "{err}");
}
