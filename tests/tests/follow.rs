//! `ipfs-cluster-follow` with real processes: a trusted CRDT peer with its IPFS node, its
//! template served over HTTP, and a follower made by `init <url>`, started by `run`, asked by
//! `list` and `info` over its unix socket, refusing writes, and listed offline once stopped.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use cluster_tests::*;
use ipfs_cluster::types::PinOptions;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CID as the pinset lists it.
fn listed(cid: &str) -> String {
    cid.parse::<ipfs_cluster::types::Cid>().unwrap().to_string()
}

fn follow(base: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin("ipfs-cluster-follow"))
        .arg("--config")
        .arg(base)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("ipfs-cluster-follow runs")
}

/// Serves `body` to every GET on a loopback port, as a web server holding a template;
/// returns its URL.
async fn serve_template(body: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/template.json")
}

/// The trusted peer's `service.json` made a template, as a cluster's owners publish one:
/// its secret and CRDT section (trusting the peer by id), where to find it, and a listen
/// address of the follower's own.
fn template(trusted: &Peer) -> String {
    let text = std::fs::read_to_string(trusted.dir.join("service.json")).unwrap();
    let mut cfg: Value = serde_json::from_str(&text).unwrap();
    cfg["cluster"]["peer_addresses"] = serde_json::json!([trusted.cluster_addr()]);
    cfg["cluster"]["listen_multiaddress"] = "/ip4/127.0.0.1/tcp/0".into();
    cfg["consensus"]["crdt"]["trusted_peers"] = serde_json::json!([trusted.id()]);
    cfg.to_string()
}

/// A running `ipfs-cluster-follow run`, killed when dropped.
struct Running {
    child: Child,
    log: std::path::PathBuf,
}

impl Running {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- ipfs-cluster-follow run ---\n{}", self.log());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_follower_initialized_from_a_template_url_follows_lists_and_refuses_writes() {
    let mut c = TestCluster::start_custom(
        1,
        |_| "10GB".into(),
        |_, cfg| {
            let consensus = cfg["consensus"].as_object_mut().unwrap();
            consensus.remove("raft");
            consensus.insert(
                "crdt".into(),
                serde_json::json!({"cluster_name": "followed", "trusted_peers": ["*"]}),
            );
        },
    )
    .await
    .unwrap();
    let trusted = c.peers[0].client();
    let before = listed(&c.ipfs[0].add(&unique("pinned before")).await.unwrap());
    trusted
        .pin(
            &before,
            &PinOptions {
                name: "before".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let url = serve_template(template(&c.peers[0])).await;

    let work = tempfile::tempdir().unwrap();
    let base = work.path().join("followers");
    let out = follow(&base, &[], &[]);
    assert!(
        text(&out).contains("No clusters configured yet!"),
        "{}",
        text(&out)
    );
    let out = follow(&base, &["mine", "list"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("This cluster peer has not been initialized."),
        "{}",
        text(&out)
    );
    let out = follow(&base, &["mine", "init", &url], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Cluster \"mine\" follower peer initialized."),
        "{}",
        text(&out)
    );
    let folder = base.join("mine");
    let service: Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("service.json")).unwrap())
            .unwrap();
    assert_eq!(service, serde_json::json!({ "source": url }));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&folder), 0o700);
    assert_eq!(mode(&folder.join("service.json")), 0o600);
    assert_eq!(mode(&folder.join("identity.json")), 0o600);
    let again = follow(&base, &["mine", "init", &url], &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    let out = follow(&base, &[], &[]);
    assert!(
        text(&out).contains("ipfs-cluster-follow \"mine\""),
        "{}",
        text(&out)
    );

    // Run, with an IPFS node of its own.
    std::fs::create_dir(work.path().join("ipfs")).unwrap();
    let ipfs = IpfsNode::start(&work.path().join("ipfs")).await.unwrap();
    let node = ipfs.api_multiaddr();
    let env = [("CLUSTER_IPFSHTTP_NODEMULTIADDRESS", node.as_str())];
    let log = work.path().join("run.log");
    let file = std::fs::File::create(&log).unwrap();
    let child = Command::new(bin("ipfs-cluster-follow"))
        .arg("--config")
        .arg(&base)
        .args(["mine", "run"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let mut running = Running { child, log };
    wait_for("the follower to be ready", DEADLINE, || async {
        running
            .log()
            .contains("** IPFS Cluster is READY **")
            .then_some(())
    })
    .await
    .unwrap();
    let socket = folder.join("api-socket");
    assert_eq!(mode(&socket), 0o600);

    // A pin after it started reaches it too; both are pinned by its IPFS node.
    let after = listed(&c.ipfs[0].add(&unique("pinned after")).await.unwrap());
    trusted
        .pin(
            &after,
            &PinOptions {
                name: "after".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let expect = |status: &str, cid: &str, name: &str| format!("{status:<20} {cid} {name}");
    let listed = wait_for(
        "the follower to list both pins pinned",
        DEADLINE,
        || async {
            let out = follow(&base, &["mine", "list"], &env);
            let t = String::from_utf8_lossy(&out.stdout).to_string();
            (t.contains(&expect("pinned", &before, "before"))
                && t.contains(&expect("pinned", &after, "after")))
            .then_some(t)
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(ipfs.is_pinned(&after).await.unwrap());

    let out = follow(&base, &["mine", "info"], &env);
    let info = text(&out);
    assert!(out.status.success(), "{info}");
    for line in [
        "Information about follower peer for Cluster \"mine\":".to_string(),
        format!("Config folder: {}", folder.display()),
        format!("Config source URL: Available ({url})"),
        "Cluster Peer online: true".to_string(),
        "IPFS peer online: true".to_string(),
    ] {
        assert!(info.contains(&line), "{line:?} in {info}");
    }

    // The trusted peers' `ipfs gc` does not reach the follower's IPFS node (IPFS Cluster's
    // follow closes RepoGCLocal: a template's secret is no secret).
    let follower_id = serde_json::from_str::<Value>(
        &std::fs::read_to_string(folder.join("identity.json")).unwrap(),
    )
    .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let gc = trusted.ipfs_gc().await.unwrap();
    let theirs = &gc.peer_map[&follower_id];
    assert!(theirs.keys.is_empty(), "{theirs:?}");
    assert!(theirs.error.contains("follower"), "{theirs:?}");
    // Its API refuses writes, and offers no proxy or pinning service.
    let host = format!("/unix{}", socket.display());
    let out = Command::new(bin("ipfs-cluster-ctl"))
        .args([
            "--host",
            &host,
            "pin",
            "add",
            &identity_cid("a follower's write"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("follower_mode"), "{}", text(&out));
    assert!(!running.log().contains("IPFS proxy API listening"));

    // Stopped (Ctrl-C): the socket is gone, the list comes from the state on disk.
    let pid = running.child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let child = std::sync::Mutex::new(&mut running.child);
    wait_for("the follower to stop", DEADLINE, || {
        let exited = child.lock().unwrap().try_wait().ok().flatten();
        async move { exited.map(|_| ()) }
    })
    .await
    .unwrap();
    assert!(!socket.exists(), "the socket is removed at stop");
    let offline = wait_for("the follower's pins listed offline", DEADLINE, || async {
        let out = follow(&base, &["mine", "list"], &env);
        let t = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success()
            && t.contains(&expect("offline", &before, "before"))
            && t.contains(&expect("offline", &after, "after")))
        .then_some(t)
    })
    .await
    .unwrap();
    assert_eq!(offline.lines().count(), 2, "{offline}");
    let out = follow(&base, &["mine", "info"], &env);
    assert!(
        text(&out).contains("Cluster Peer online: false"),
        "{}",
        text(&out)
    );
    c.peers[0].stop();
}
