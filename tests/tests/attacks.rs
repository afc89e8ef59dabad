//! Attacks on every listener, against real processes (`docs/reliability.md` lists each with
//! its result). Who can reach a port decides what is tried:
//! - a web page in the user's browser: cross-site, same-site (another loopback port) and
//!   DNS-rebound requests (the page's own name resolved to 127.0.0.1, so `Host` names it);
//! - any client on the machine or the LAN: bodies that trickle, paths spelled to slip past
//!   the proxy's interception.
//!
//! Each attack must change nothing and read nothing, and the peer must stay healthy.

use std::time::{Duration, Instant};

use anyhow::Result;
use cluster_tests::{identity_cid, IpfsNode, TestCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The ways a web page can reach a loopback API, as headers of the request it makes.
fn from_pages(port: u16) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    vec![
        (
            "cross-site form (text/plain)",
            vec![
                ("Origin", "http://evil.example".into()),
                ("Content-Type", "text/plain".into()),
            ],
        ),
        (
            "cross-site no-cors fetch",
            vec![("Sec-Fetch-Site", "cross-site".into())],
        ),
        (
            "page on another loopback port",
            vec![
                ("Sec-Fetch-Site", "same-site".into()),
                ("Origin", "http://127.0.0.1:8080".into()),
            ],
        ),
        (
            "same-site without Origin",
            vec![("Sec-Fetch-Site", "same-site".into())],
        ),
        (
            "DNS rebinding",
            vec![("Host", format!("evil.example:{port}"))],
        ),
    ]
}

async fn send(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(&str, String)],
) -> Result<u16> {
    let mut req = http.request(method.parse()?, url);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    Ok(req.send().await?.status().as_u16())
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn web_pages_change_and_read_nothing_through_any_api() -> Result<()> {
    let c = TestCluster::start(1, 0).await?;
    let p = &c.peers[0];
    let http = reqwest::Client::new();
    let rest = format!("http://127.0.0.1:{}", p.rest_port);
    let (proxy, pinsvc) = (p.proxy_url(), p.pinsvc_url());
    let kept = identity_cid("kept by a client");
    p.client().pin(&kept, &Default::default()).await?;
    p.wait_status(&kept, "pinned").await?;
    let target = identity_cid("a page's pin");
    for (what, headers) in from_pages(p.rest_port) {
        let (proxy_headers, pinsvc_headers) = (
            from_pages(port_of(&proxy))
                .into_iter()
                .find(|(w, _)| *w == what)
                .unwrap()
                .1,
            from_pages(port_of(&pinsvc))
                .into_iter()
                .find(|(w, _)| *w == what)
                .unwrap()
                .1,
        );
        let writes = [
            ("POST", format!("{rest}/pins/{target}"), &headers),
            ("DELETE", format!("{rest}/pins/{kept}"), &headers),
            ("POST", format!("{rest}/ipfs/gc"), &headers),
            (
                "POST",
                format!("{proxy}/api/v0/pin/add?arg={target}"),
                &proxy_headers,
            ),
            (
                "POST",
                format!("{proxy}/api/v0/pin/rm?arg={kept}"),
                &proxy_headers,
            ),
            ("POST", format!("{proxy}/api/v0/repo/gc"), &proxy_headers),
            ("POST", format!("{proxy}/api/v0/shutdown"), &proxy_headers),
            ("DELETE", format!("{pinsvc}/pins/{kept}"), &pinsvc_headers),
        ];
        for (method, url, h) in writes {
            let status = send(&http, method, &url, h).await?;
            assert_eq!(status, 403, "{what}: {method} {url}");
        }
        let mut req = http
            .post(format!("{pinsvc}/pins"))
            .json(&serde_json::json!({ "cid": target }));
        for (k, v) in &pinsvc_headers {
            req = req.header(*k, v);
        }
        assert_eq!(
            req.send().await?.status(),
            403,
            "{what}: pinning service POST"
        );
    }
    // Reads: a rebound page reads nothing (a plain cross-site read is what the default CORS
    // config allows, as IPFS Cluster's).
    for url in [
        format!("{rest}/allocations"),
        format!("{rest}/id"),
        format!("{pinsvc}/pins"),
    ] {
        let host = format!("evil.example:{}", port_of(&url[..url.rfind('/').unwrap()]));
        assert_eq!(
            send(&http, "GET", &url, &[("Host", host)]).await?,
            403,
            "{url}"
        );
    }
    let host = format!("evil.example:{}", port_of(&proxy));
    let status = send(
        &http,
        "POST",
        &format!("{proxy}/api/v0/pin/ls"),
        &[("Host", host)],
    )
    .await?;
    assert_eq!(status, 403);
    // A link or an image makes a GET: never a state change.
    let get = send(
        &http,
        "GET",
        &format!("{proxy}/api/v0/pin/add?arg={target}"),
        &[],
    )
    .await?;
    assert_eq!(get, 405);

    let pins = cluster_tests::pinset(&p.client()).await;
    let same = |a: &str, b: &str| a.parse::<ipfs_cluster::types::Cid>() == b.parse();
    assert!(
        pins.len() == 1 && same(&pins[0], &kept),
        "the pinset is as the client left it: {pins:?}"
    );
    assert!(
        c.ipfs[0].is_pinned(&kept).await?,
        "no GC, no unpin reached IPFS"
    );
    assert!(p.client().id().await.is_ok(), "the peer answers");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn spellings_of_a_path_do_not_slip_past_the_proxy() -> Result<()> {
    let c = TestCluster::start(1, 0).await?;
    let p = &c.peers[0];
    let http = reqwest::Client::new();
    let proxy = p.proxy_url();
    let mut expected = Vec::new();
    for path in [
        "//api/v0/pin/add",
        "/api/v0/pin/add/",
        "/api/v0//pin/add",
        "/api/v0/pin%2Fadd",
    ] {
        let data = format!("content for {path}");
        let cid = c.ipfs[0].add(data.as_bytes()).await?;
        let status = send(&http, "POST", &format!("{proxy}{path}?arg={cid}"), &[]).await?;
        assert_eq!(status, 200, "{path}");
        expected.push(cid);
    }
    let pins = cluster_tests::pinset(&p.client()).await;
    for cid in &expected {
        assert!(
            pins.contains(cid),
            "pinned in IPFS only, not in the cluster: {cid}"
        );
    }
    Ok(())
}

/// Sends a request head announcing `length` body bytes to `addr`, then one byte a second;
/// returns how long the server held the connection (None: still open at `give_up`).
async fn trickle(addr: &str, head: &str, give_up: Duration) -> Result<Option<Duration>> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(head.as_bytes()).await?;
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < give_up {
        if tcp.write_all(b"x").await.is_err() {
            return Ok(Some(start.elapsed()));
        }
        match tokio::time::timeout(Duration::from_secs(1), tcp.read(&mut buf)).await {
            // Closed, or answered (a refusal ends the request).
            Ok(Ok(_)) | Ok(Err(_)) => return Ok(Some(start.elapsed())),
            Err(_) => {}
        }
    }
    Ok(None)
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_that_trickle_are_cut_off() -> Result<()> {
    let c = TestCluster::start(1, 0).await?;
    let p = &c.peers[0];
    let hostport = |url: String| url.trim_start_matches("http://").to_string();
    let (proxy, pinsvc) = (hostport(p.proxy_url()), hostport(p.pinsvc_url()));
    let give_up = Duration::from_secs(40);
    let cases = [
        (
            pinsvc.clone(),
            format!(
                "POST /pins HTTP/1.1\r\nHost: {pinsvc}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100000\r\n\r\n"
            ),
        ),
        (
            proxy.clone(),
            format!(
                "POST /api/v0/add HTTP/1.1\r\nHost: {proxy}\r\nContent-Type: multipart/form-data; \
                 boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; \
                 name=\"file\"; filename=\"f\"\r\n\r\n"
            ),
        ),
        (
            proxy.clone(),
            format!(
                "POST /api/v0/block/put?pin=true HTTP/1.1\r\nHost: {proxy}\r\nContent-Type: \
                 multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n\
                 Content-Disposition: form-data; name=\"file\"\r\n\r\n"
            ),
        ),
    ];
    for (addr, head) in cases {
        let held = trickle(&addr, &head, give_up).await?;
        let first_line = head.lines().next().unwrap_or_default().to_string();
        assert!(held.is_some(), "{first_line}: still held after {give_up:?}");
    }
    assert!(p.client().id().await.is_ok(), "the peer answers");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_built_in_node_obeys_no_page_and_takes_real_files() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let node = IpfsNode::start(dir.path()).await?;
    let http = reqwest::Client::new();
    let api = node.api_url();
    for (what, headers) in from_pages(node.api_port) {
        for path in [
            "shutdown",
            "config/show",
            "swarm/connect?arg=/ip4/127.0.0.1/tcp/1",
        ] {
            let status = send(&http, "POST", &format!("{api}/api/v0/{path}"), &headers).await?;
            assert_eq!(status, 403, "{what}: {path}");
        }
    }
    // A cross-site form upload stores nothing.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"a page's file".to_vec()).file_name("f"),
    );
    let resp = http
        .post(format!("{api}/api/v0/add"))
        .header("Origin", "http://evil.example")
        .multipart(form)
        .send()
        .await?;
    assert_eq!(resp.status(), 403);
    // A GET is never a call (Kubo's RPC API is POST only).
    assert_eq!(
        send(&http, "GET", &format!("{api}/api/v0/config/show"), &[]).await?,
        405
    );
    assert!(node.call("id", &[]).await.is_ok(), "still running");
    // Real files: 50 MB, streamed to disk.
    let big: Vec<u8> = (0..50u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let cid = node.add(&big).await?;
    let back = node.call("cat", &[("arg", &cid)]).await?.bytes().await?;
    assert_eq!(back.len(), big.len());
    assert!(back == big, "the file reads back whole");
    Ok(())
}

/// The swarm port is open to the LAN, and strangers (without the secret) never finish a
/// handshake: 2,000 of their connections under a 1,024-descriptor limit must leave the peer
/// answering and committing (before the limits, new REST clients timed out, pins failed
/// with SQLite's "unable to open database file" and Raft could stop for good).
#[tokio::test(flavor = "multi_thread")]
async fn strangers_on_the_swarm_port_cannot_exhaust_the_peers_descriptors() -> Result<()> {
    ipfs_cluster::process::raise_open_files_limit();
    let mut c = TestCluster::start_without_ipfs(3, 0).await?;
    let pid = c.peers[0].pid().expect("running");
    let limited = std::process::Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--nofile=1024:1024"])
        .status()?;
    assert!(limited.success(), "prlimit");
    let swarm = format!("127.0.0.1:{}", c.peers[0].swarm_port);
    // 2,000 strangers that connect again as soon as the peer closes them: half idle, half
    // stopping in the middle of the secret's handshake. Bounded: they stop with `stop`.
    let stop = tokio_util::sync::CancellationToken::new();
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut strangers = Vec::new();
    for i in 0..2000u32 {
        let (swarm, stop, opened) = (swarm.clone(), stop.clone(), opened.clone());
        strangers.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let Ok(Ok(mut s)) = tokio::time::timeout(
                    Duration::from_secs(5),
                    tokio::net::TcpStream::connect(&swarm),
                )
                .await
                else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i % 2 == 1 {
                    let _ = s.write_all(&[7u8; 12]).await;
                }
                let mut buf = [0u8; 256];
                // Held until the peer closes it (or the test ends).
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = async { while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {} } => {}
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // While they keep coming: a new REST client is answered and pins commit.
    for n in 0..6 {
        let cid = identity_cid(&format!("pinned during the flood {n}"));
        let client = c.peers[0].client();
        tokio::time::timeout(
            Duration::from_secs(10),
            client.pin(&cid, &Default::default()),
        )
        .await
        .map_err(|_| anyhow::anyhow!("pin {n} not answered in 10 s"))??;
        tokio::time::timeout(Duration::from_secs(10), client.id())
            .await
            .map_err(|_| anyhow::anyhow!("/id not answered in 10 s"))??;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    eprintln!(
        "{} stranger connections opened",
        opened.load(std::sync::atomic::Ordering::Relaxed)
    );
    stop.cancel();
    for s in strangers {
        let _ = s.await;
    }
    let other = c.peers[1].client();
    cluster_tests::wait_for(
        "every pin on another peer",
        Duration::from_secs(30),
        || async { (cluster_tests::pinset(&other).await.len() == 6).then_some(()) },
    )
    .await?;
    assert!(c.peers[0].is_running(), "the peer runs");
    let log = c.peers[0].current_log();
    assert!(!log.contains("Raft stopped"), "{log}");
    assert!(!log.contains("unable to open database file"), "{log}");
    Ok(())
}

/// Holding the secret is not membership: a host with the secret that is no member cannot
/// commit, remove a member, tell one it was removed, join in another's name or read pin
/// statuses; the members do not notice it.
#[tokio::test(flavor = "multi_thread")]
async fn a_stranger_with_the_secret_cannot_commit_or_remove() -> Result<()> {
    use ipfs_cluster::probe::{as_stranger, Ask};
    let mut c = TestCluster::start_without_ipfs(3, 0).await?;
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        c.peers[0].dir.join("service.json"),
    )?)?;
    let secret = cfg["cluster"]["secret"]
        .as_str()
        .expect("a secret")
        .to_string();
    let leader = c.leader_seen_by(0).await?;
    let other = (leader + 1) % 3;
    let (at_leader, at_other) = (
        c.peers[leader].cluster_addr(),
        c.peers[other].cluster_addr(),
    );
    let cid = identity_cid("a stranger's pin");
    let asks = [
        (&at_leader, Ask::Commit(cid.parse().expect("a CID"))),
        (&at_other, Ask::Commit(cid.parse().expect("a CID"))),
        (&at_leader, Ask::Remove(c.peers[other].id())),
        (&at_other, Ask::Removed),
        (&at_leader, Ask::JoinAs(c.peers[other].id())),
        (&at_other, Ask::Status),
        (&at_other, Ask::Vote),
        (&at_leader, Ask::Vote),
    ];
    for (to, ask) in asks {
        let text = as_stranger(&secret, to, ask).await;
        assert!(
            text.contains("not a member") || text.contains("cannot ask to join"),
            "{text}"
        );
    }
    // Nothing changed: three voters, the same leader, no pin, everyone running.
    assert_eq!(c.leader_seen_by(other).await?, leader, "no one was deposed");
    let client = c.peers[other].client();
    assert!(cluster_tests::pinset(&client).await.is_empty());
    assert_eq!(client.peers().await?.len(), 3);
    for p in &mut c.peers {
        assert!(p.is_running(), "{} runs", p.id());
    }
    Ok(())
}

/// Another user of the machine listens on a loopback port and waits for `ipfs-cluster-ctl`:
/// the local peer's credential goes only to a server that proves it knows it, bound to the
/// port ctl dialled; a proof asked of the real peer and relayed is not one.
#[tokio::test(flavor = "multi_thread")]
async fn ctl_gives_the_desktop_credential_to_no_impostor() -> Result<()> {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir()?;
    let ipfs = IpfsNode::start(dir.path()).await?;
    let mut peer = cluster_tests::Peer::init(&dir.path().join("peer"), &ipfs, |cfg| {
        cfg["api"]["restapi"]["basic_auth_credentials"] =
            serde_json::json!({ "desktop": "a-long-random-password" });
    })?;
    std::fs::write(
        peer.dir.join("restapi.credential"),
        "desktop:a-long-random-password\n",
    )?;
    peer.start(&[]).await?;
    // The impostor: records every request head, relays `/auth/proof` to the real peer.
    let fake = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let fake_port = fake.local_addr()?.port();
    let seen = Arc::new(Mutex::new(String::new()));
    let (real, log) = (peer.rest_port, seen.clone());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = fake.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                log.lock().unwrap().push_str(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let body = if path.starts_with("/auth/proof") {
                    match reqwest::get(format!("http://127.0.0.1:{real}{path}")).await {
                        Ok(r) => r.text().await.unwrap_or_default(),
                        Err(_) => String::new(),
                    }
                } else {
                    r#"{"code":401,"message":"Unauthorized"}"#.to_string()
                };
                let status = if path.starts_with("/auth/proof") {
                    "200 OK"
                } else {
                    "401 Unauthorized"
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    let ctl = |port: u16| {
        std::process::Command::new(cluster_tests::bin("ipfs-cluster-ctl"))
            .args(["--host", &format!("/ip4/127.0.0.1/tcp/{port}"), "id"])
            .env("IPFS_CLUSTER_PATH", &peer.dir)
            .output()
            .expect("ctl runs")
    };
    let fooled = ctl(fake_port);
    assert!(!fooled.status.success());
    let heads = seen.lock().unwrap().clone();
    assert!(
        heads.contains("/auth/proof"),
        "ctl asked for the proof: {heads}"
    );
    assert!(
        !heads.to_ascii_lowercase().contains("authorization"),
        "the credential reached the impostor: {heads}"
    );
    // The real peer proves itself and gets it.
    let real_ctl = ctl(peer.rest_port);
    assert!(
        real_ctl.status.success(),
        "{}",
        cluster_tests::text(&real_ctl)
    );
    assert!(cluster_tests::text(&real_ctl).contains(&peer.id()));
    Ok(())
}
