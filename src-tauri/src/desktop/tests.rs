//! The desktop commands against real in-process peers and a Kubo test double.

use super::secrets::FileStore;
use super::*;
use crate::ipfsconn::fake::{test_cid, FakeKubo};
use crate::types::PeerRole;

fn desktop(dir: &Path, kubo: &FakeKubo) -> Desktop {
    Desktop::with(
        dir.to_path_buf(),
        Box::new(FileStore::in_folder(dir)),
        Box::new(loopback_defaults(kubo.multiaddr())),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pins_view_pages_and_searches_on_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let kubo = FakeKubo::start().await;
    let d = desktop(dir.path(), &kubo);
    d.new_cluster().await.unwrap();
    for n in 0..7 {
        let name = if n % 2 == 0 { "even photo" } else { "odd" };
        d.pin(&test_cid(n).to_string(), name, None).await.unwrap();
    }
    let s = d.snapshot().await;
    assert_eq!(s.pins, Some(7), "the overview counts the pinset");
    // Pages of 3, in CID order, each starting where the last ended.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = d
            .pins_page(PinsQuery {
                after: after.clone(),
                limit: Some(3),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.pins.len() <= 3);
        seen.extend(page.pins.iter().map(|g| g.cid.to_string()));
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let mut want: Vec<String> = (0..7).map(|n| test_cid(n).to_string()).collect();
    want.sort();
    assert_eq!(seen, want);
    // Search by the start of a name (any case) or of a CID, on the peer.
    let photos = d
        .pins_page(PinsQuery {
            search: "EVEN PH".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(photos.pins.len(), 4);
    assert!(photos.next.is_none());
    let inside = d
        .pins_page(PinsQuery {
            search: "photo".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        inside.pins.is_empty(),
        "a name is searched by its start: {:?}",
        inside.pins.iter().map(|g| &g.name).collect::<Vec<_>>()
    );
    let one = test_cid(3).to_string();
    let by_cid = d
        .pins_page(PinsQuery {
            search: one[..20].to_string(),
            search_in: SearchIn::Cid,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_cid.pins.len(), 1);
    assert_eq!(by_cid.pins[0].cid.to_string(), one);
    // Orders: last CID first; by name, then unnamed by CID.
    let mut all: Vec<String> = (0..7).map(|n| test_cid(n).to_string()).collect();
    all.sort();
    let desc = d
        .pins_page(PinsQuery {
            order: PinsOrder::CidDesc,
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    let desc: Vec<String> = desc.pins.iter().map(|g| g.cid.to_string()).collect();
    assert_eq!(desc, [all[6].clone(), all[5].clone()]);
    let by_name = d
        .pins_page(PinsQuery {
            order: PinsOrder::Name,
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<&str> = by_name.pins.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "even photo",
            "even photo",
            "even photo",
            "even photo",
            "odd",
            "odd",
            "odd"
        ]
    );
    // A status filter goes on through the pinset until its page is full.
    let pinned = d
        .pins_page(PinsQuery {
            filter: "pinned,pinning,queued,error".into(),
            limit: Some(7),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(pinned.pins.len(), 7);
    let bad_cursor = d
        .pins_page(PinsQuery {
            after: Some("not a cursor".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_cursor.kind(), crate::error::ErrorKind::BadInput);
    let bad = d
        .pins_page(PinsQuery {
            filter: "no-such-status".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), crate::error::ErrorKind::BadInput);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_cluster_runs_pins_and_invites() {
    let dir = tempfile::tempdir().unwrap();
    let kubo = FakeKubo::start().await;
    let d = desktop(dir.path(), &kubo);
    let before = d.snapshot().await;
    assert!(!before.configured && !before.running);
    assert!(d
        .pins_page(PinsQuery::default())
        .await
        .unwrap_err()
        .to_string()
        .contains("not running"));

    let s = d.new_cluster().await.unwrap();
    assert!(s.configured && s.running && s.ready, "{s:?}");
    assert_eq!(s.ipfs.as_ref().unwrap().source, IpfsSource::Running);
    assert_eq!(s.id.as_ref().unwrap().role, Some(PeerRole::Voter));
    // The secret is kept apart from service.json.
    let cfg = std::fs::read_to_string(dir.path().join("service.json")).unwrap();
    assert!(!cfg.contains("\"secret\""), "{cfg}");
    assert!(s.secret_location.contains("secret"));
    // A second "new cluster" in the same folder is refused.
    assert!(d.new_cluster().await.is_err());

    let cid = test_cid(1);
    let pin = d
        .pin(&format!("ipfs://{cid}"), "from a link", None)
        .await
        .unwrap();
    assert_eq!(pin.cid, cid);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let pins = d.pins_page(PinsQuery::default()).await.unwrap().pins;
        let pinned = pins
            .iter()
            .any(|g| g.cid == cid && g.peer_map.values().all(|i| i.status.as_str() == "pinned"));
        if pinned {
            break;
        }
        assert!(Instant::now() < end, "never pinned: {pins:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(d
        .pin("not a cid", "", None)
        .await
        .unwrap_err()
        .to_string()
        .contains("invalid CID"));
    d.unpin(&cid.to_string()).await.unwrap();

    // Dropped files and folders: one DAG each, its root pinned under the name chosen (the
    // item's own by default), with the copies chosen.
    let drop = tempfile::tempdir().unwrap();
    std::fs::write(drop.path().join("a.txt"), b"alpha").unwrap();
    std::fs::create_dir(drop.path().join("album")).unwrap();
    std::fs::write(drop.path().join("album/b.txt"), b"beta").unwrap();
    let one = d
        .add(&[drop.path().join("a.txt")], "", None)
        .await
        .unwrap()
        .pin;
    assert_eq!(one.options.name, "a.txt");
    let folder = d
        .add(&[drop.path().join("album")], "My album", Some(1))
        .await
        .unwrap()
        .pin;
    assert_eq!(folder.options.name, "My album");
    assert_eq!(folder.options.replication_factor_max, 1);
    assert_eq!(
        kubo.state.lock().unwrap().added,
        ["a.txt", "album", "album/b.txt"]
    );
    // The folder's root is its directory: Kubo reports it last.
    let dir_cid = kubo.state.lock().unwrap().dirs[0];
    assert_eq!(folder.cid, dir_cid);
    // Several items: wrapped in one directory.
    let both = d
        .add(
            &[drop.path().join("a.txt"), drop.path().join("album")],
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(both.pin.options.name, "a.txt and 1 more");
    let queries = kubo.state.lock().unwrap().add_queries.clone();
    assert_eq!(
        queries
            .iter()
            .map(|q| q.get("wrap-with-directory").cloned().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["", "", "true"]
    );
    assert!(d
        .add(&[drop.path().join("missing")], "", None)
        .await
        .is_err());
    assert!(
        d.add_progress().is_none(),
        "nothing runs once an add is over"
    );
    // Cancelled after the last byte, while IPFS builds the DAG: still nothing pinned.
    let pins_before = d.summary().await.unwrap().pins;
    kubo.state.lock().unwrap().add_delay = Duration::from_secs(2);
    let late = async {
        let end = Instant::now() + Duration::from_secs(10);
        while !d
            .add_progress()
            .is_some_and(|p| p.files_total > 0 && p.bytes_done == p.bytes_total)
        {
            assert!(Instant::now() < end, "the upload never ended");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(d.cancel_add());
    };
    let small = [drop.path().join("a.txt")];
    let (r, ()) = tokio::join!(d.add(&small, "late", None), late);
    assert!(r.unwrap_err().to_string().contains("cancelled"));
    assert_eq!(
        d.summary().await.unwrap().pins,
        pins_before,
        "nothing pinned"
    );
    kubo.state.lock().unwrap().add_delay = Duration::ZERO;
    // Links inside a dropped folder are not followed: not to a secret outside, not in a
    // loop. A dropped link itself is what the user chose.
    kubo.state.lock().unwrap().added.clear();
    let secret = drop.path().join("id_ed25519");
    std::fs::write(&secret, b"PRIVATE KEY").unwrap();
    let shared = drop.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("c.txt"), b"gamma").unwrap();
    std::os::unix::fs::symlink(&secret, shared.join("x")).unwrap();
    std::os::unix::fs::symlink(".", shared.join("loop1")).unwrap();
    std::os::unix::fs::symlink(".", shared.join("loop2")).unwrap();
    d.add(std::slice::from_ref(&shared), "", None)
        .await
        .unwrap();
    std::os::unix::fs::symlink(shared.join("c.txt"), drop.path().join("link.txt")).unwrap();
    let linked = d
        .add(&[drop.path().join("link.txt")], "", None)
        .await
        .unwrap()
        .pin;
    assert_eq!(linked.options.name, "link.txt", "named as the user sees it");
    assert_eq!(
        kubo.state.lock().unwrap().added,
        ["shared", "shared/c.txt", "link.txt"],
        "nothing through the links was added"
    );

    let health = d.health().await.unwrap();
    assert_eq!(
        health.freespace.len(),
        1,
        "this peer measures its free space at once"
    );
    assert!(health.alerts.is_empty());

    d.set_paused(true).await.unwrap();
    assert!(d.snapshot().await.paused);

    let inv = d.invitation().await.unwrap();
    assert!(inv.svg.contains("<svg"));
    let parsed = Invitation::parse(&inv.text, None).unwrap();
    assert_eq!(parsed.secret.len(), 64);
    d.stop().await;
    assert!(!d.snapshot().await.running);
    // The next launch starts the same peer again.
    let again = d.start(Default::default()).await.unwrap();
    assert_eq!(again.id.unwrap().id, s.id.unwrap().id);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn joining_by_invitation_makes_a_follower_unless_asked_for_a_voter() {
    let kubo = FakeKubo::start().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let first = desktop(dirs[0].path(), &kubo);
    first.new_cluster().await.unwrap();
    let inv = first.invitation().await.unwrap();

    let laptop = desktop(dirs[1].path(), &kubo);
    let s = laptop.join(&inv.text, None, false).await.unwrap();
    assert!(s.ready, "{s:?}");
    assert_eq!(s.id.unwrap().role, Some(PeerRole::Follower));

    let server = desktop(dirs[2].path(), &kubo);
    let parsed = Invitation::parse(&inv.text, None).unwrap();
    let s = server
        .join(&parsed.bootstrap[0], Some(&parsed.secret), true)
        .await
        .unwrap();
    assert_eq!(s.id.unwrap().role, Some(PeerRole::Voter));

    let peers = first.peers().await.unwrap();
    assert_eq!(peers.len(), 3);
    assert!(peers.iter().all(|p| p.error.is_empty()), "{peers:?}");
    for d in [&laptop, &server, &first] {
        d.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_join_leaves_nothing_behind() {
    let kubo = FakeKubo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = desktop(dir.path(), &kubo);
    assert!(d
        .join("garbage", None, false)
        .await
        .unwrap_err()
        .to_string()
        .contains("not an invitation"));
    // A well-formed invitation to a peer that does not exist.
    let nobody = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let inv = Invitation {
        bootstrap: vec![format!("/ip4/127.0.0.1/tcp/{port}/p2p/{nobody}")],
        secret: crate::config::Secret::generate().to_string(),
    };
    let e = d
        .join(&inv.to_text(), None, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("could not join"), "{e}");
    assert!(!d.is_configured(), "no config left behind");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_runs_a_peer_made_by_the_command_line() {
    let kubo = FakeKubo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (mut cfg, _) = crate::config::init(dir.path(), false).unwrap();
    loopback_defaults(kubo.multiaddr())(&mut cfg);
    std::fs::write(dir.path().join("service.json"), cfg.to_json()).unwrap();
    let d = desktop(dir.path(), &kubo);
    let s = d.start(Default::default()).await.unwrap();
    assert!(s.running && s.ready, "{s:?}");
    let inv = Invitation::parse(&d.invitation().await.unwrap().text, None).unwrap();
    assert_eq!(inv.secret, cfg.cluster.secret.to_string());
    // The app's peer has a REST credential of its own, in an owner-only file in the folder.
    let cred = crate::config::ApiCredential::load(dir.path())
        .unwrap()
        .expect("made");
    let rest = s.rest_api.clone().unwrap();
    let http = reqwest::Client::new();
    let status = |r: reqwest::Response| r.status().as_u16();
    let anonymous = http.get(format!("{rest}/id")).send().await.unwrap();
    assert_eq!(status(anonymous), 401);
    let with = http
        .get(format!("{rest}/id"))
        .basic_auth(&cred.user, Some(&cred.password))
        .send()
        .await
        .unwrap();
    assert_eq!(status(with), 200);
    // The same credential guards the Pinning Service API and the IPFS proxy: another user
    // of the machine can use none of the three.
    let peer = d.peer().await.unwrap();
    let pinsvc = format!("http://{}/pins", peer.pinsvc_addr().unwrap());
    let proxy = format!("http://{}/api/v0/pin/ls", peer.proxy_addr().unwrap());
    let pin = format!("http://{}/pins", peer.pinsvc_addr().unwrap());
    let cid = crate::ipfsconn::fake::test_cid(77).to_string();
    for req in [
        http.get(&pinsvc),
        http.post(&pin).json(&serde_json::json!({ "cid": cid })),
        http.post(&proxy),
        http.post(format!(
            "http://{}/api/v0/repo/gc",
            peer.proxy_addr().unwrap()
        )),
    ] {
        assert_eq!(status(req.send().await.unwrap()), 401);
    }
    assert!(peer
        .cluster()
        .allocation(&cid.parse().unwrap())
        .await
        .is_err());
    for req in [http.get(&pinsvc), http.post(&proxy)] {
        let r = req.basic_auth(&cred.user, Some(&cred.password));
        assert_eq!(status(r.send().await.unwrap()), 200);
    }
    // The folder is locked like the daemon locks it: no ipfs-cluster-service on it now.
    let err = crate::config::lock_folder(dir.path()).expect_err("in use by the app");
    assert!(err.to_string().contains("in use"), "{err}");
    // The overview says where that secret really is.
    assert!(!dir.path().join("secret").exists());
    assert!(
        s.secret_location.contains("service.json"),
        "{}",
        s.secret_location
    );
    d.stop().await;
    drop(crate::config::lock_folder(dir.path()).expect("free once the app's peer stopped"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_says_when_raft_stopped_on_a_full_disk() {
    let kubo = FakeKubo::start().await;
    let dir = tempfile::tempdir().unwrap();
    let d = desktop(dir.path(), &kubo);
    d.new_cluster().await.unwrap();
    d.stop().await;
    // Raft's folder on a small disk (tmpfs; the tests run as root), then fill it with pins.
    let raft = dir.path().join("raft");
    let moved = dir.path().join("raft.saved");
    std::fs::rename(&raft, &moved).unwrap();
    std::fs::create_dir(&raft).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&raft)
        .status()
        .unwrap();
    assert!(mount.success(), "mount a tmpfs (needs root)");
    let _unmount = scopeguard(&raft);
    for entry in std::fs::read_dir(&moved).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), raft.join(entry.file_name())).unwrap();
        }
    }
    let s = d.start(Default::default()).await.unwrap();
    assert!(s.ready && !s.consensus_stopped, "{s:?}");
    for n in 0..100_000 {
        if d.pin(&test_cid(50_000 + n).to_string(), "", None)
            .await
            .is_err()
        {
            break;
        }
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let s = loop {
        let s = d.snapshot().await;
        if s.consensus_stopped || std::time::Instant::now() > end {
            break s;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(s.consensus_stopped && !s.ready, "{s:?}");
    d.stop().await;
}

/// Unmounts `path` when dropped.
fn scopeguard(path: &Path) -> impl Drop {
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    Unmount(path.to_path_buf())
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_are_checked_kept_apart_from_service_json_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let kubo = FakeKubo::start().await;
    let d = desktop(dir.path(), &kubo);
    d.new_cluster().await.unwrap();
    let service = std::fs::read_to_string(dir.path().join("service.json")).unwrap();
    let view = d.settings().await.unwrap();
    assert!(view.rest_api.is_some() && !view.api_password.is_empty());
    let mut s = view.settings.clone();
    s.peer_name = "renamed laptop".into();
    s.default_copies = Some(1);
    // Refused as a whole: nothing saved.
    let bad = settings::Settings {
        default_copies: Some(0),
        ..s.clone()
    };
    assert_eq!(
        d.save_settings(bad).await.unwrap_err().kind(),
        crate::error::ErrorKind::BadInput
    );
    assert_eq!(d.settings().await.unwrap().settings.default_copies, None);
    let saved = d.save_settings(s).await.unwrap();
    assert_eq!(saved.settings.default_copies, Some(1));
    assert_ne!(
        saved.peer_name_now.as_deref(),
        Some("renamed laptop"),
        "at the next start"
    );
    // Default copies apply to a pin made without a choice; a choice wins.
    let p = d.pin(&test_cid(1).to_string(), "", None).await.unwrap();
    assert_eq!(
        (
            p.options.replication_factor_min,
            p.options.replication_factor_max
        ),
        (1, 1)
    );
    let p = d.pin(&test_cid(2).to_string(), "", Some(-1)).await.unwrap();
    assert_eq!(p.options.replication_factor_max, -1);
    // The name applies once the peer starts again; service.json is never rewritten.
    d.restart().await.unwrap();
    assert_eq!(
        d.settings().await.unwrap().peer_name_now.as_deref(),
        Some("renamed laptop")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("service.json")).unwrap(),
        service
    );
    d.stop().await;
}

/// Serves `body` to every request on a loopback port until `stop` is cancelled (a web
/// server holding a cluster's template); returns its URL.
async fn serve_template(body: String, stop: CancellationToken) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => match a { Ok(a) => a, Err(_) => return },
            };
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
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/template.json")
}

/// "Follow a cluster": the template is checked before anything is written (a Raft one is
/// refused, leaving nothing), the peer follows the trusted peer's pinset read-only, and it
/// starts again with the template kept when the template's server is gone.
#[tokio::test(flavor = "multi_thread")]
async fn following_a_cluster_by_its_template_is_read_only_and_starts_offline() {
    let kubo = FakeKubo::start().await;
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    // The cluster's trusted peer.
    let mut cfg = Config::new_for_init();
    loopback_defaults(kubo.multiaddr())(&mut cfg);
    cfg.consensus.crdt = Some(crate::config::CrdtConfig {
        cluster_name: "followed".into(),
        ..Default::default()
    });
    cfg.consensus.crdt_mode = true;
    let identity = Identity::generate();
    let trusted_id = identity.peer_id().to_string();
    let trusted = Peer::start(
        dirs[0].path().to_path_buf(),
        cfg.clone(),
        identity,
        Default::default(),
    )
    .await
    .unwrap();
    // Its template, as its owners publish it.
    let mut template = serde_json::to_value(&cfg).unwrap();
    template["consensus"]
        .as_object_mut()
        .unwrap()
        .remove("raft");
    template["consensus"]["crdt"]["trusted_peers"] = serde_json::json!([trusted_id]);
    template["cluster"]["peer_addresses"] = serde_json::json!(trusted.cluster_addrs());
    let server = CancellationToken::new();
    let url = serve_template(template.to_string(), server.clone()).await;

    let laptop = desktop(dirs[1].path(), &kubo);
    let mut raft = template.clone();
    raft["consensus"] = serde_json::json!({"raft": {}});
    let raft_stop = CancellationToken::new();
    let raft_url = serve_template(raft.to_string(), raft_stop.clone()).await;
    let err = laptop.follow(&raft_url).await.unwrap_err().to_string();
    assert!(err.contains("only CRDT clusters"), "{err}");
    assert!(
        !laptop.is_configured(),
        "nothing written for a refused template"
    );
    raft_stop.cancel();

    let s = laptop.follow(&url).await.unwrap();
    assert_eq!(s.following.as_deref(), Some(url.as_str()));
    assert!(s.read_only, "{s:?}");
    assert!(s.secret_location.contains(&url), "{}", s.secret_location);
    let err = laptop.invitation().await.err().unwrap().to_string();
    assert!(err.contains("invites nobody"), "{err}");
    let err = laptop.follow(&url).await.unwrap_err().to_string();
    assert!(err.contains("holds a peer already"), "{err}");
    let cid = test_cid(1).to_string();
    let err = laptop
        .pin(&cid, "mine", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("follower_mode"), "{err}");
    trusted
        .cluster()
        .pin(
            test_cid(2),
            crate::types::PinOptions {
                name: "theirs".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let page = laptop.pins_page(PinsQuery::default()).await.unwrap();
        if page.pins.iter().any(|g| g.name == "theirs") {
            break;
        }
        assert!(Instant::now() < end, "the followed pin never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    laptop.stop().await;
    // The template's server is gone: the next start uses the template kept.
    server.cancel();
    let again = desktop(dirs[1].path(), &kubo);
    let s = again.start(Default::default()).await.unwrap();
    assert!(s.running && s.read_only, "{s:?}");
    again.stop().await;
    trusted.shutdown().await;
}

/// A CRDT peer of the app that writes: alone, it pins and says its writes will reach the
/// others when it meets them ("will sync"); once it hears another peer it no longer says so.
/// A Raft peer never says it.
#[tokio::test(flavor = "multi_thread")]
async fn a_crdt_peer_alone_pins_and_says_its_writes_will_sync() {
    let kubo = FakeKubo::start().await;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let base = Arc::new(loopback_defaults(kubo.multiaddr()));
    let crdt = move |cfg: &mut Config| {
        base(cfg);
        cfg.consensus.crdt = Some(crate::config::CrdtConfig {
            cluster_name: "desk".into(),
            ..Default::default()
        });
        cfg.consensus.crdt_mode = true;
        cfg.cluster.monitor_ping_interval = crate::config::GoDuration::secs(1);
    };
    let laptop = Desktop::with(
        dirs[0].path().to_path_buf(),
        Box::new(FileStore::in_folder(dirs[0].path())),
        Box::new(crdt.clone()),
    );
    let s = laptop.new_cluster().await.unwrap();
    assert!(s.will_sync && !s.read_only && s.crdt, "{s:?}");
    laptop
        .pin(&test_cid(1).to_string(), "on the plane", None)
        .await
        .unwrap();
    // Another peer of the cluster meets it: its writes are no longer only its own.
    let secret = FileStore::in_folder(dirs[0].path()).get().unwrap().unwrap();
    let mut cfg = Config::new_for_init();
    crdt(&mut cfg);
    cfg.cluster.secret = secret.parse().unwrap();
    let laptop_addrs = laptop.peer().await.unwrap().cluster_addrs();
    let other = Peer::start(
        dirs[1].path().to_path_buf(),
        cfg,
        Identity::generate(),
        crate::peer::StartOptions {
            bootstrap: laptop_addrs.iter().map(|a| a.parse().unwrap()).collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let end = Instant::now() + Duration::from_secs(30);
    while laptop.snapshot().await.will_sync {
        assert!(Instant::now() < end, "the other peer was never heard");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    laptop.stop().await;
    other.shutdown().await;
    // A Raft peer, alone, never says it.
    let raft = desktop(dirs[2].path(), &kubo);
    let s = raft.new_cluster().await.unwrap();
    assert!(!s.will_sync && !s.crdt, "{s:?}");
    raft.stop().await;
}
