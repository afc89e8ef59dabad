//! What a web page open in the user's browser can do to a peer on the same machine (issue:
//! safe by default): a real browser (WebKit) loads a page from another site that posts to
//! the peer's REST API the two ways browsers allow without asking (`fetch` with
//! `mode: "no-cors"` and a form), then reads `/version` as pages may.

use std::io::{Read, Write};
use std::net::TcpListener;

use cluster_tests::browser::Browser;
use cluster_tests::*;

/// Serves `page` to every request on a port of its own; returns its URL on `localhost`, a
/// different site from the peer's `127.0.0.1`.
fn serve_page(page: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port for the page");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                page.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(page.as_bytes());
        }
    });
    format!("http://localhost:{port}/")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_in_a_real_browser_can_read_but_not_pin_through_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let ipfs = IpfsNode::start(dir.path()).await.unwrap();
    let mut peer = Peer::init(&dir.path().join("peer"), &ipfs, |_| {}).unwrap();
    peer.start(&[]).await.unwrap();
    let api = format!("http://127.0.0.1:{}", peer.rest_port);
    let by_fetch = identity_cid("pinned by a page's fetch");
    let by_form = identity_cid("pinned by a page's form");
    let page = format!(
        r#"<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="form" method="POST" target="sink" action="{api}/pins/{by_form}"></form>
<script>
async function attack() {{
  await fetch("{api}/pins/{by_fetch}", {{method: "POST", mode: "no-cors"}}).catch(() => null);
  await new Promise(done => {{
    document.querySelector("iframe").onload = done;
    document.getElementById("form").submit();
  }});
  const version = await fetch("{api}/version")
    .then(r => r.json()).then(v => v.version).catch(e => "unreadable: " + e);
  document.title = "done " + version;
}}
attack();
</script></body></html>"#
    );
    let url = serve_page(page);
    let browser = Browser::start(dir.path()).await.unwrap();
    browser.open(&url).await.unwrap();
    let title = browser.wait_title("done", DEADLINE).await.unwrap();

    // The page reached the peer: it could read what any page may read.
    let version = peer.client().version().await.unwrap().version;
    assert_eq!(title, format!("done {version}"));
    // Both writes were answered before the title changed: nothing was pinned.
    assert_eq!(pinset(&peer.client()).await, Vec::<String>::new());
    assert!(!ipfs.is_pinned(&by_fetch).await.unwrap());
    assert!(!ipfs.is_pinned(&by_form).await.unwrap());
    // Both writes arrived from the browser and were refused before anything ran.
    let log = wait_for("the peer to log both refusals", DEADLINE, || async {
        let log = peer.current_log();
        let refused = |cid: &str| {
            log.lines()
                .any(|l| l.contains("cross-site request refused") && l.contains(cid))
        };
        (refused(&by_fetch) && refused(&by_form)).then_some(log)
    })
    .await;
    assert!(log.is_ok(), "{log:?}\npeer log:\n{}", peer.current_log());
}
