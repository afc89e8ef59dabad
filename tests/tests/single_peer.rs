//! One cluster peer driving one real IPFS node, both as real processes (issue: a single peer
//! that pins into a real IPFS node, end to end).

use std::time::Duration;

use cluster_tests::*;
use ipfs_cluster::types::{PinOptions, TrackerStatus};
use serde_json::Value;

async fn node_and_peer(dir: &std::path::Path) -> (IpfsNode, Peer) {
    let ipfs = IpfsNode::start(dir).await.unwrap();
    let mut peer = Peer::init(&dir.join("peer"), &ipfs, |_| {}).unwrap();
    peer.start(&[]).await.unwrap();
    (ipfs, peer)
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_pin_add_pins_in_real_ipfs_and_pin_rm_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ipfs, peer) = node_and_peer(dir.path()).await;
    let cid = ipfs.add(&unique("pin-add")).await.unwrap();
    assert!(!ipfs.is_pinned(&cid).await.unwrap());

    let out = peer.ctl(&[
        "pin",
        "add",
        &cid,
        "--name",
        "hello",
        "--wait",
        "--wait-timeout",
        "60",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PINNED"),
        "{}",
        text(&out)
    );
    assert!(
        ipfs.is_pinned(&cid).await.unwrap(),
        "the real node lists the pin"
    );

    let out = peer.ctl(&["--enc", "json", "pin", "ls"]);
    assert!(out.status.success(), "{}", text(&out));
    let pins: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0]["cid"], cid.as_str());
    assert_eq!(pins[0]["name"], "hello");

    let out = peer.ctl(&["status", &cid]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PINNED"),
        "{}",
        text(&out)
    );
    let out = peer.ctl(&["id"]);
    assert!(out.status.success(), "{}", text(&out));

    let out = peer.ctl(&["pin", "rm", &cid, "--wait", "--wait-timeout", "60"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !ipfs.is_pinned(&cid).await.unwrap(),
        "the real node dropped the pin"
    );
    assert!(peer
        .client()
        .allocations("")
        .await
        .gather()
        .await
        .unwrap()
        .is_empty());
    let err = peer.client().allocation(&cid).await.unwrap_err();
    assert_eq!(err.code(), Some(404));
}

#[tokio::test(flavor = "multi_thread")]
async fn pinset_survives_restart_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let (ipfs, mut peer) = node_and_peer(dir.path()).await;
    let client = peer.client();
    let a = ipfs.add(&unique("a")).await.unwrap();
    let b = ipfs.add(&unique("b")).await.unwrap();
    for (cid, name) in [(&a, "a"), (&b, "b")] {
        let opts = PinOptions {
            name: name.into(),
            ..Default::default()
        };
        client.pin(cid, &opts).await.unwrap();
        peer.wait_status(cid, "pinned").await.unwrap();
    }

    peer.stop();
    peer.start(&[]).await.unwrap();
    let pins = client.allocations("").await.gather().await.unwrap();
    let mut names: Vec<_> = pins.iter().map(|p| p.options.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["a", "b"], "graceful restart keeps the pinset");

    // Acknowledged, then the process dies at once: the pin must still be there.
    let c = ipfs.add(&unique("c")).await.unwrap();
    client.pin(&c, &PinOptions::default()).await.unwrap();
    client.unpin(&a).await.unwrap();
    peer.kill9();
    peer.start(&[]).await.unwrap();
    assert_eq!(
        pinset(&client).await,
        sorted(&[&b, &c]),
        "kill -9 loses no acknowledged pin or unpin"
    );
    peer.wait_status(&c, "pinned").await.unwrap();
    assert!(ipfs.is_pinned(&c).await.unwrap());
    wait_for("the unpin of a to reach IPFS", DEADLINE, || async {
        (!ipfs.is_pinned(&a).await.unwrap()).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ipfs_outage_shows_errors_and_the_peer_recovers_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ipfs, peer) = node_and_peer(dir.path()).await;
    let client = peer.client();
    let a = ipfs.add(&unique("before")).await.unwrap();
    client.pin(&a, &PinOptions::default()).await.unwrap();
    peer.wait_status(&a, "pinned").await.unwrap();
    let b = ipfs.add(&unique("during")).await.unwrap();

    ipfs.stop();
    let id = client.id().await.unwrap();
    assert!(!id.ipfs.error.is_empty(), "ID reports the IPFS error");
    peer.wait_status(&a, "cluster_error").await.unwrap();
    // A pin is still accepted (it is cluster state) and fails on this peer's IPFS.
    client.pin(&b, &PinOptions::default()).await.unwrap();
    peer.wait_status(&b, "pin_error").await.unwrap();
    let info = client.status_local(&b).await.unwrap();
    assert!(info.info.attempt_count >= 1);
    assert!(!info.info.error.is_empty());
    let errors = client
        .status_all("error", &[])
        .await
        .gather()
        .await
        .unwrap();
    assert!(errors.iter().any(|g| g.cid.to_string() == b));
    let out = peer.ctl(&["status", "--filter", "error"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&b),
        "{}",
        text(&out)
    );

    // No restart of the peer: it notices IPFS is back and retries by itself.
    ipfs.restart().await.unwrap();
    peer.wait_status(&b, "pinned").await.unwrap();
    peer.wait_status(&a, "pinned").await.unwrap();
    assert!(ipfs.is_pinned(&b).await.unwrap());
    assert!(client.id().await.unwrap().ipfs.error.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_rest_input_gets_a_clear_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ipfs, peer) = node_and_peer(dir.path()).await;
    let cid = ipfs.add(&unique("bad-input")).await.unwrap();
    let base = format!("http://127.0.0.1:{}", peer.rest_port);
    let http = reqwest::Client::new();
    let cases: &[(&str, &str, u16, &str)] = &[
        ("POST", "/pins/notacid", 400, "invalid CID"),
        ("DELETE", "/pins/notacid", 400, "invalid CID"),
        ("GET", "/pins/notacid", 400, "invalid CID"),
        ("GET", "/pins?filter=pinned,bogus", 400, "filter"),
        ("GET", "/pins?cids=nope", 400, "cids"),
        ("GET", "/allocations?filter=nope", 400, "filter"),
        (
            "POST",
            "/pins/CID?replication-min=x",
            400,
            "replication-min",
        ),
        (
            "POST",
            "/pins/CID?replication-min=3&replication-max=2",
            400,
            "replication",
        ),
        ("POST", "/pins/CID?mode=sideways", 400, "mode"),
        ("POST", "/pins/CID?user-allocations=bogus", 400, "bogus"),
        ("POST", "/pins/CID?expire-at=tomorrow", 400, "expire-at"),
        ("POST", "/pins/ipfs", 400, "invalid CID"),
        ("GET", "/allocations/CID", 404, "not in the pinset"),
        ("DELETE", "/pins/CID", 404, "not in the pinset"),
        ("DELETE", "/peers/notapeer", 400, "peer"),
        ("GET", "/no/such/endpoint", 404, ""),
    ];
    for (method, path, code, needle) in cases {
        let url = format!("{base}{}", path.replace("CID", &cid));
        let resp = http
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), *code, "{method} {path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], *code, "{method} {path}: {body}");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{method} {path}: {msg}");
    }
    let out = peer.ctl(&["pin", "add", "notacid"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid CID"),
        "{}",
        text(&out)
    );
    let out = peer.ctl(&["status", "--filter", "bogus"]);
    assert!(!out.status.success(), "{}", text(&out));

    // Nothing changed anywhere.
    let resp = http
        .get(format!("{base}/allocations"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204, "the pinset is still empty");
    assert!(ipfs.pins().await.unwrap().is_empty());
    assert!(peer
        .client()
        .status_all("", &[])
        .await
        .gather()
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn rest_api_streams_and_status_filters() {
    let dir = tempfile::tempdir().unwrap();
    let (ipfs, peer) = node_and_peer(dir.path()).await;
    let client = peer.client();
    let mut cids = Vec::new();
    for i in 0..3 {
        let cid = ipfs.add(&unique(&format!("stream-{i}"))).await.unwrap();
        client.pin(&cid, &PinOptions::default()).await.unwrap();
        cids.push(cid);
    }
    for c in &cids {
        peer.wait_status(c, "pinned").await.unwrap();
    }
    let base = format!("http://127.0.0.1:{}", peer.rest_port);
    let resp = reqwest::get(format!("{base}/pins")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "one NDJSON line per pin: {body}");
    for l in &lines {
        let (_, info) = l["peer_map"].as_object().unwrap().iter().next().unwrap();
        assert_eq!(info["status"], "pinned");
    }
    let pinned = client
        .status_all("pinned", &[])
        .await
        .gather()
        .await
        .unwrap();
    assert_eq!(pinned.len(), 3);
    let none = client
        .status_all("pin_error,unpinning", &[])
        .await
        .gather()
        .await
        .unwrap();
    assert!(none.is_empty());
    let some = client
        .status_all("", &cids[..2])
        .await
        .gather()
        .await
        .unwrap();
    assert_eq!(some.len(), 2);
    let local = client.status_all_local("").await.gather().await.unwrap();
    assert!(local.iter().all(|i| i.info.status == TrackerStatus::Pinned));
    let recovered = client.recover_all().await.gather().await.unwrap();
    assert!(recovered.is_empty(), "nothing to recover");
    let r = client.recover(&cids[0]).await.unwrap();
    assert!(r
        .peer_map
        .values()
        .all(|i| i.status == TrackerStatus::Pinned));
    let resp = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    let v = client.version().await.unwrap();
    assert_eq!(v.version, ipfs_cluster::types::full_version());
    let peers = client.peers().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].id, client.id().await.unwrap().id);
    // A path pin resolves through IPFS.
    let path_pin = client
        .pin(&format!("/ipfs/{}", cids[0]), &PinOptions::default())
        .await
        .unwrap();
    assert_eq!(path_pin.cid.to_string(), cids[0]);
    let _ = Duration::ZERO;
}

#[tokio::test(flavor = "multi_thread")]
async fn state_export_and_import_move_a_pinset() {
    let dir = tempfile::tempdir().unwrap();
    let (ipfs, mut peer) = node_and_peer(dir.path()).await;
    let cid = ipfs.add(&unique("export")).await.unwrap();
    peer.client()
        .pin(
            &cid,
            &PinOptions {
                name: "kept".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The folder is locked while the daemon runs.
    let out = service(&peer.dir, &["state", "export"]);
    assert!(!out.status.success(), "{}", text(&out));
    peer.stop();
    let file = dir.path().join("pins.ndjson");
    let out = service(
        &peer.dir,
        &["state", "export", "-f", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), 1);
    assert!(exported.contains(&cid));

    let garbage = dir.path().join("garbage.ndjson");
    std::fs::write(&garbage, "{\"cid\": 1}\n").unwrap();
    let out = service(
        &peer.dir,
        &["state", "import", "--force", garbage.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 1"),
        "{}",
        text(&out)
    );

    let mut other = Peer::init(&dir.path().join("other"), &ipfs, |_| {}).unwrap();
    let out = service(
        &other.dir,
        // IPFS Cluster's form: the file positional, -f to skip the confirmation.
        &["state", "import", "-f", file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    other.start(&[]).await.unwrap();
    let pins = other.client().allocations("").await.gather().await.unwrap();
    assert_eq!(pins.len(), 1);
    assert_eq!(pins[0].options.name, "kept");
    other.wait_status(&cid, "pinned").await.unwrap();

    other.stop();
    let out = service(&other.dir, &["state", "cleanup", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = service(&other.dir, &["state", "export"]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_healthy_peer_renews_every_metric_and_raises_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    // init's proportions, ten times faster: numpin's TTL (10 s) shorter than the ping
    // interval (15 s), which used to let numpin expire between pushes.
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |cfg| {
        cfg["cluster"]["monitor_ping_interval"] = "1500ms".into();
        cfg["informer"]["numpin"]["metric_ttl"] = "1s".into();
        cfg["informer"]["disk"]["metric_ttl"] = "3s".into();
        cfg["informer"]["pinqueue"]["metric_ttl"] = "3s".into();
        cfg["monitor"]["pubsubmon"]["check_interval"] = "100ms".into();
    })
    .unwrap();
    peer.start(&[]).await.unwrap();
    let client = peer.client();
    // Several renewals of every metric (each a new expiry), then: no alert, no warning.
    let renewals: std::sync::Mutex<
        std::collections::HashMap<&str, std::collections::HashSet<i64>>,
    > = Default::default();
    wait_for("every metric renewed 4 times", DEADLINE, || async {
        let mut seen = Vec::new();
        for name in ["ping", "numpin", "freespace", "pinqueue"] {
            for m in client.metrics(name).await.ok()? {
                seen.push((name, m.expire));
            }
        }
        let mut renewals = renewals.lock().unwrap();
        for (name, expire) in seen {
            renewals.entry(name).or_default().insert(expire);
        }
        (renewals.len() == 4 && renewals.values().all(|r| r.len() >= 4)).then_some(())
    })
    .await
    .unwrap();
    let numpin = client.metrics("numpin").await.unwrap();
    assert!(numpin[0].valid, "{numpin:?}");
    assert_eq!(client.alerts().await.unwrap(), vec![]);
    assert!(
        !peer.current_log().contains("metric expired"),
        "{}",
        peer.current_log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_on_the_same_machine_uses_the_peers_credential_without_being_told() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |cfg| {
        cfg["api"]["restapi"]["basic_auth_credentials"] =
            serde_json::json!({ "desktop": "a-long-random-password" });
    })
    .unwrap();
    // What the desktop app keeps next to the peer's identity.
    std::fs::write(
        peer.dir.join("restapi.credential"),
        "desktop:a-long-random-password\n",
    )
    .unwrap();
    peer.start(&[]).await.unwrap();
    let ctl = |cluster_path: &std::path::Path| {
        std::process::Command::new(bin("ipfs-cluster-ctl"))
            .args([
                "--host",
                &format!("/ip4/127.0.0.1/tcp/{}", peer.rest_port),
                "id",
            ])
            .env("IPFS_CLUSTER_PATH", cluster_path)
            .output()
            .unwrap()
    };
    let found = ctl(&peer.dir);
    assert!(found.status.success(), "{}", text(&found));
    assert!(text(&found).contains(&peer.id()));
    let elsewhere = ctl(dir.path());
    assert!(!elsewhere.status.success(), "{}", text(&elsewhere));
    assert!(text(&elsewhere).contains("401"), "{}", text(&elsewhere));
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_json_lists_print_one_object_per_item_as_ipfs_cluster_does() {
    let dir = tempfile::tempdir().unwrap();
    let (_ipfs, peer) = node_and_peer(dir.path()).await;
    let client = peer.client();
    for tag in ["json list a", "json list b"] {
        client
            .pin(&identity_cid(tag), &PinOptions::default())
            .await
            .unwrap();
    }
    let out = peer.ctl(&["--enc", "json", "pin", "ls"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.trim_start().starts_with('{'),
        "objects, not an array: {stdout}"
    );
    // What `| jq .cid` reads: JSON values one after another.
    let items: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(items.len(), 2, "{stdout}");
    assert!(items.iter().all(|p| p["cid"].is_string()), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_exits_2_when_the_peer_answers_an_error_and_1_when_the_call_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (_ipfs, peer) = node_and_peer(dir.path()).await;
    // As IPFS Cluster's ctl: 2 for an error answer, 1 for a call that did not happen.
    let answered = peer.ctl(&["status", "not-a-cid"]);
    assert_eq!(answered.status.code(), Some(2), "{}", text(&answered));
    assert!(
        text(&answered).contains("An error occurred"),
        "{}",
        text(&answered)
    );
    let unreachable = std::process::Command::new(bin("ipfs-cluster-ctl"))
        .args(["--host", &format!("127.0.0.1:{}", free_port()), "id"])
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1), "{}", text(&unreachable));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_level_comes_from_ipfs_cluster_log_level_as_in_ipfs_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |_| {}).unwrap();
    peer.start_env(&[], &[("IPFS_CLUSTER_LOG_LEVEL", "debug")])
        .await
        .unwrap();
    let log = peer.current_log();
    assert!(log.contains(" DEBUG "), "no debug lines:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_wait_timeouts_take_go_durations() {
    let dir = tempfile::tempdir().unwrap();
    let (_ipfs, peer) = node_and_peer(dir.path()).await;
    let cid = identity_cid("waited for a minute at most");
    let out = peer.ctl(&["pin", "add", &cid, "--wait", "--wait-timeout", "1m"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = peer.ctl(&["pin", "rm", &cid, "--wait", "--wait-timeout", "90"]);
    assert!(out.status.success(), "seconds still work: {}", text(&out));
    let out = peer.ctl(&["pin", "add", &cid, "--wait", "--wait-timeout", "soon"]);
    assert!(!out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_pin_add_prints_the_status_unless_told_no_status() {
    let dir = tempfile::tempdir().unwrap();
    let (_ipfs, peer) = node_and_peer(dir.path()).await;
    let json = |out: &std::process::Output| -> Value {
        assert!(out.status.success(), "{}", text(out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let status = json(&peer.ctl(&["--enc", "json", "pin", "add", &identity_cid("status after")]));
    assert!(status["peer_map"].is_object(), "{status}");
    let pin = json(&peer.ctl(&[
        "--enc",
        "json",
        "pin",
        "add",
        &identity_cid("no status"),
        "--no-status",
    ]));
    assert!(
        pin.get("peer_map").is_none() && pin["cid"].is_string(),
        "{pin}"
    );
    let removed = json(&peer.ctl(&[
        "--enc",
        "json",
        "pin",
        "rm",
        &identity_cid("no status"),
        "--ns",
    ]));
    assert!(removed["cid"].is_string(), "{removed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctl_takes_ipfs_cluster_ctls_short_flags_and_cluster_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |cfg| {
        cfg["api"]["restapi"]["basic_auth_credentials"] = serde_json::json!({ "ops": "pw-9f2" });
    })
    .unwrap();
    peer.start(&[]).await.unwrap();
    let host = format!("/ip4/127.0.0.1/tcp/{}", peer.rest_port);
    let out = std::process::Command::new(bin("ipfs-cluster-ctl"))
        .args(["-l", &host, "-t", "30", "-f", "id"])
        .env("CLUSTER_CREDENTIALS", "ops:pw-9f2")
        .env("IPFS_CLUSTER_PATH", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&peer.id()), "{}", text(&out));
}

/// The built-in IPFS node's gateway (what "open in the local gateway" opens) and its
/// `stats/bw` (what the overview's IPFS traffic chart draws), on two real nodes.
#[tokio::test(flavor = "multi_thread")]
async fn the_built_in_node_serves_a_gateway_and_counts_its_swarm_traffic() {
    let dir = tempfile::tempdir().unwrap();
    for d in ["a", "b"] {
        std::fs::create_dir(dir.path().join(d)).unwrap();
    }
    let a = IpfsNode::start(&dir.path().join("a")).await.unwrap();
    let b = IpfsNode::start(&dir.path().join("b")).await.unwrap();
    let gw = a.gateway_url().await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: String| {
        let http = http.clone();
        let url = format!("{gw}{path}");
        async move { http.get(url).send().await.unwrap() }
    };

    // A folder, as Kubo's clients send one, with a name that is markup.
    let form = reqwest::multipart::Form::new()
        .part(
            "d",
            reqwest::multipart::Part::bytes(Vec::new())
                .file_name("site")
                .mime_str("application/x-directory")
                .unwrap(),
        )
        .part(
            "f",
            reqwest::multipart::Part::bytes(b"hello gateway".to_vec()).file_name("site/a.txt"),
        )
        .part(
            "g",
            reqwest::multipart::Part::bytes(b"\x89PNG\r\n\x1a\nnot really".to_vec())
                .file_name("site/%3Cb%3Epic"),
        );
    let added = a.call_form("add", &[("pin", "true")], form).await.unwrap();
    let root = added
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["Name"] == "site")
        .and_then(|v| v["Hash"].as_str().map(String::from))
        .expect("the folder's CID");

    // A folder is listed with every name escaped.
    let r = get(format!("/ipfs/{root}/")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-security-policy"], "sandbox");
    let page = r.text().await.unwrap();
    assert!(
        page.contains(&format!("href=\"/ipfs/{root}/a.txt\"")),
        "{page}"
    );
    assert!(page.contains("&lt;b&gt;pic"), "{page}");
    assert!(!page.contains("<b>"), "{page}");

    // Files stream with a type by name, or by their first bytes.
    let r = get(format!("/ipfs/{root}/a.txt")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.text().await.unwrap(), "hello gateway");
    let r = get(format!("/ipfs/{root}/%3Cb%3Epic")).await;
    assert_eq!(r.headers()["content-type"], "image/png");

    // Bad paths are refused, and nothing outside the DAG is ever served.
    assert_eq!(get(format!("/ipfs/{root}/missing")).await.status(), 404);
    // Dot segments, even escaped, never leave the folder (the listener resolves them first).
    for sneaky in [
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
    ] {
        let r = get(format!("/ipfs/{root}/{sneaky}")).await;
        assert!(r.status().is_client_error(), "{sneaky}: {}", r.status());
        assert!(!r.text().await.unwrap().contains("root:"));
    }
    assert_eq!(get("/ipfs/not-a-cid".into()).await.status(), 400);
    assert_eq!(get("/api/v0/id".into()).await.status(), 404);
    // A page that rebinds a name of its own to 127.0.0.1 is refused.
    let r = http
        .get(format!("{gw}/ipfs/{root}/a.txt"))
        .header("Host", "rebind.example:8080")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Another site's page cannot embed or probe what the node keeps; the gateway's own can.
    let from = |site: &'static str, referer: String| {
        http.get(format!("{gw}/ipfs/{root}/a.txt"))
            .header("Sec-Fetch-Site", site)
            .header("Referer", referer)
            .send()
    };
    let r = from("cross-site", "https://evil.example/".into())
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = from("cross-site", format!("{gw}/ipfs/{root}/"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Only what this node keeps is served: B has not got the folder, and does not fetch it.
    let r = http
        .get(format!(
            "{}/ipfs/{root}/a.txt",
            b.gateway_url().await.unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("not pinned on this node"));

    // Traffic: B fetches 2 MB from A over their swarm connection. A counts it out, B in;
    // the RPC calls to each node (its own listeners) are not swarm traffic.
    let before_a: Value = a.call("stats/bw", &[]).await.unwrap().json().await.unwrap();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let cid = a.add(&data).await.unwrap();
    let id: Value = a.call("id", &[]).await.unwrap().json().await.unwrap();
    let addr = id["Addresses"][0].as_str().unwrap().to_string();
    b.call("swarm/connect", &[("arg", &addr)]).await.unwrap();
    // Listed as Kubo lists connections: the address, and the peer apart.
    let peers: Value = b
        .call("swarm/peers", &[])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        peers["Peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["Peer"] == id["ID"] && !p["Addr"].as_str().unwrap().contains("Qm")),
        "{peers}"
    );
    b.call("pin/add", &[("arg", &cid)])
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let out_before = before_a["TotalOut"].as_u64().unwrap();
    wait_for(
        "the nodes' traffic counted",
        Duration::from_secs(30),
        || async {
            let a: Value = a.call("stats/bw", &[]).await.ok()?.json().await.ok()?;
            let b: Value = b.call("stats/bw", &[]).await.ok()?.json().await.ok()?;
            let sent = a["TotalOut"].as_u64()? - out_before;
            let got = b["TotalIn"].as_u64()?;
            (sent >= 2_000_000 && got >= 2_000_000).then_some(())
        },
    )
    .await
    .unwrap();
    // A's own RPC answers (`add` took 2 MB in through its API) are not counted as swarm.
    let a_now: Value = a.call("stats/bw", &[]).await.unwrap().json().await.unwrap();
    assert!(
        a_now["TotalIn"].as_u64().unwrap() < 1_000_000,
        "the 2 MB added through the RPC API counted as swarm traffic: {a_now}"
    );
}
