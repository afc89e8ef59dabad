//! A Kubo RPC test double for unit tests: an in-process HTTP server with an in-memory pinset.
//! Integration tests use a real node instead (`ipfs-local-node`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use crate::config::{IpfsHttpConfig, Multiaddrs};
use crate::types::Cid;

#[derive(Default)]
pub struct FakeState {
    /// Pinned multihashes.
    pub pinned: HashSet<Vec<u8>>,
    /// Pins of these CIDs never finish (content nobody has).
    pub unavailable: HashSet<Vec<u8>>,
    /// When set, pin/add fails with this message (sent mid-stream, as Kubo does).
    pub fail_pins: Option<String>,
    pub pin_calls: usize,
    /// Successful `pin/update` calls.
    pub pin_updates: usize,
    /// `pin/ls` calls about one CID (`arg`), and of the whole list.
    pub pin_ls_one_calls: usize,
    pub pin_ls_all_calls: usize,
    /// File and directory names received by `add`, and each call's query.
    pub added: Vec<String>,
    /// The CIDs given to directories received by `add`, in order.
    pub dirs: Vec<Cid>,
    pub add_queries: Vec<std::collections::HashMap<String, String>>,
    /// Sizes of the CAR files `dag/import` received.
    pub imported: Vec<usize>,
    /// How long `add` takes after the whole upload arrived (as a node building a large DAG).
    pub add_delay: std::time::Duration,
}

#[derive(Clone)]
pub struct FakeKubo {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FakeState>>,
}

type Q = Query<std::collections::HashMap<String, String>>;

fn err(msg: &str) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"Message": msg, "Code": 0, "Type": "error"})),
    )
        .into_response()
}

fn cid_arg(q: &std::collections::HashMap<String, String>) -> Option<Cid> {
    q.get("arg")?.trim_start_matches("/ipfs/").parse().ok()
}

async fn pin_add(State(s): State<Arc<Mutex<FakeState>>>, Query(q): Q) -> Response {
    let Some(cid) = cid_arg(&q) else {
        return err("bad arg");
    };
    let mh = cid.multihash_bytes();
    let mut st = s.lock().unwrap();
    st.pin_calls += 1;
    if st.unavailable.contains(&mh) {
        // Headers, then silence: the connector's pin_timeout must end it.
        let body = futures::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
        return Body::from_stream(body).into_response();
    }
    let line = match &st.fail_pins {
        Some(m) => json!({"Message": m, "Code": 0, "Type": "error"}),
        None => {
            st.pinned.insert(mh);
            json!({"Pins": [cid.to_string()]})
        }
    };
    format!("{}\n{line}\n", json!({"Progress": 1})).into_response()
}

async fn pin_rm(State(s): State<Arc<Mutex<FakeState>>>, Query(q): Q) -> Response {
    let Some(cid) = cid_arg(&q) else {
        return err("bad arg");
    };
    if s.lock().unwrap().pinned.remove(&cid.multihash_bytes()) {
        Json(json!({"Pins": [cid.to_string()]})).into_response()
    } else {
        err("not pinned or pinned indirectly")
    }
}

async fn pin_ls(State(s): State<Arc<Mutex<FakeState>>>, Query(q): Q) -> Response {
    let mut st = s.lock().unwrap();
    if let Some(cid) = cid_arg(&q) {
        st.pin_ls_one_calls += 1;
        return if st.pinned.contains(&cid.multihash_bytes()) {
            Json(json!({"Keys": {cid.to_string(): {"Type": "recursive"}}})).into_response()
        } else {
            err(&format!("path '{cid}' is not pinned"))
        };
    }
    st.pin_ls_all_calls += 1;
    let mut out = String::new();
    for mh in &st.pinned {
        let mh = cid::multihash::Multihash::<64>::from_bytes(mh).unwrap();
        let c = cid::Cid::new_v0(mh).unwrap();
        out += &format!("{}\n", json!({"Cid": c.to_string(), "Type": "recursive"}));
    }
    out.into_response()
}

/// Adds each uploaded file under a CID derived from its bytes (not IPFS's, but stable); with
/// `wrap-with-directory=true` a directory of them comes last.
async fn add(
    State(s): State<Arc<Mutex<FakeState>>>,
    Query(q): Q,
    mut form: axum::extract::Multipart,
) -> Response {
    s.lock().unwrap().add_queries.push(q.clone());
    let mut out = String::new();
    let mut total = 0u32;
    // Directories are reported after what they hold, the outermost last (as Kubo).
    let mut dirs = Vec::new();
    while let Ok(Some(field)) = form.next_field().await {
        let name = field.file_name().unwrap_or("").to_string();
        if field.content_type() == Some("application/x-directory") {
            let cid = test_cid((0xd000 + name.len() as u32).wrapping_add(total.wrapping_mul(97)));
            s.lock().unwrap().added.push(name.clone());
            s.lock().unwrap().dirs.push(cid);
            dirs.push(json!({"Name": name, "Hash": cid.to_string(), "Size": "0"}));
            continue;
        }
        let data = field.bytes().await.unwrap_or_default();
        let n = data.iter().fold(data.len() as u32, |h, b| {
            h.wrapping_mul(31).wrapping_add(*b as u32)
        });
        let cid = test_cid(n);
        total = total.wrapping_add(n);
        s.lock().unwrap().added.push(name.clone());
        out += &format!(
            "{}\n",
            json!({"Name": name, "Hash": cid.to_string(), "Size": data.len().to_string()})
        );
    }
    for d in dirs.iter().rev() {
        out += &format!("{d}\n");
    }
    let delay = s.lock().unwrap().add_delay;
    tokio::time::sleep(delay).await;
    if q.get("wrap-with-directory").map(String::as_str) == Some("true") {
        let dir = test_cid(total ^ 0xd1d1);
        out += &format!(
            "{}\n",
            json!({"Name": "", "Hash": dir.to_string(), "Size": "0"})
        );
    }
    out.into_response()
}

/// `pin/update?arg=from&arg=to`: pins `to` if `from` is pinned (by multihash), as Kubo.
async fn pin_update(
    State(s): State<Arc<Mutex<FakeState>>>,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
) -> Response {
    let args: Vec<Cid> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .filter(|(k, _)| k == "arg")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    let [from, to] = args.as_slice() else {
        return err("two arguments required");
    };
    let mut st = s.lock().unwrap();
    if !st.pinned.contains(&from.multihash_bytes()) {
        return err("'from' cid was not recursively pinned already");
    }
    st.pin_updates += 1;
    st.pinned.insert(to.multihash_bytes());
    Json(json!({"Pins": [from.to_string(), to.to_string()]})).into_response()
}

/// Takes a CAR file and keeps nothing but its size (`imported`).
async fn dag_import(
    State(s): State<Arc<Mutex<FakeState>>>,
    Query(q): Q,
    mut form: axum::extract::Multipart,
) -> Response {
    let mut size = 0;
    while let Ok(Some(field)) = form.next_field().await {
        size += field.bytes().await.map(|b| b.len()).unwrap_or(0);
    }
    let mut st = s.lock().unwrap();
    st.add_queries.push(q);
    st.imported.push(size);
    StatusCode::OK.into_response()
}

/// Removes nothing, but reports one collected block and one error, as Kubo streams them.
async fn repo_gc(Query(q): Q) -> Response {
    let errors = q.get("stream-errors").map(String::as_str) == Some("true");
    let mut out = format!("{}\n", json!({"Key": {"/": test_cid(0x6c).to_string()}}));
    if errors {
        out += &format!("{}\n", json!({"Error": "block in use"}));
    }
    out.into_response()
}

/// Stores nothing; answers each call with a CID of its own, recording the query.
async fn block_put(State(s): State<Arc<Mutex<FakeState>>>, Query(q): Q) -> Response {
    let mut st = s.lock().unwrap();
    st.add_queries.push(q);
    let cid = test_cid(0xb10c + st.add_queries.len() as u32);
    Json(json!({"Key": cid.to_string(), "Size": 3})).into_response()
}

impl FakeKubo {
    pub async fn start() -> FakeKubo {
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app = Router::new()
            .route(
                "/api/v0/id",
                post(|| async {
                    Json(json!({"ID": "QmFakeIpfsPeer", "Addresses": ["/ip4/127.0.0.1/tcp/4001/p2p/QmFakeIpfsPeer"]}))
                }),
            )
            .route("/api/v0/pin/add", post(pin_add))
            .route("/api/v0/pin/rm", post(pin_rm))
            .route("/api/v0/pin/ls", post(pin_ls))
            .route(
                "/api/v0/repo/stat",
                post(|| async { Json(json!({"RepoSize": 1000, "StorageMax": 0})) }),
            )
            .route(
                "/api/v0/config/show",
                post(|| async {
                    Json(json!({"Datastore": {"StorageMax": "10GB"},
                                "Addresses": {"Gateway": "/ip4/0.0.0.0/tcp/8080"}}))
                }),
            )
            .route(
                "/api/v0/stats/bw",
                post(|| async {
                    Json(json!({"TotalIn": 1000, "TotalOut": 2000, "RateIn": 1.5, "RateOut": 2.5}))
                }),
            )
            .route(
                "/api/v0/resolve",
                post(|Query(q): Q| async move {
                    match cid_arg(&q) {
                        Some(c) => Json(json!({"Path": format!("/ipfs/{c}")})).into_response(),
                        None => err("cannot resolve"),
                    }
                }),
            )
            .route("/api/v0/add", post(add))
            .route("/api/v0/block/put", post(block_put))
            .route("/api/v0/pin/update", post(pin_update))
            .route(
                "/api/v0/swarm/peers",
                post(|| async {
                    Json(json!({"Peers": [{"Addr": "/ip4/127.0.0.1/tcp/4001", "Peer": "QmOtherIpfsPeer"}]}))
                }),
            )
            .route("/api/v0/repo/gc", post(repo_gc))
            .route("/api/v0/dag/import", post(dag_import))
            .route(
                "/api/v0/swarm/connect",
                post(|| async { Json(json!({"Strings": ["ok"]})) }),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeKubo { addr, state }
    }

    pub fn multiaddr(&self) -> Multiaddrs {
        Multiaddrs::one(&format!("/ip4/127.0.0.1/tcp/{}", self.addr.port()))
    }

    pub fn config(&self) -> IpfsHttpConfig {
        IpfsHttpConfig {
            node_multiaddress: self.multiaddr(),
            ..Default::default()
        }
    }

    pub fn is_pinned(&self, cid: &Cid) -> bool {
        self.state
            .lock()
            .unwrap()
            .pinned
            .contains(&cid.multihash_bytes())
    }
}

/// A multiaddr where nothing listens.
pub fn dead_config() -> IpfsHttpConfig {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    IpfsHttpConfig {
        node_multiaddress: Multiaddrs::one(&format!("/ip4/127.0.0.1/tcp/{port}")),
        ..Default::default()
    }
}

/// Distinct valid CIDs for tests.
pub fn test_cid(n: u32) -> Cid {
    use cid::multihash::Multihash;
    let mut digest = [0u8; 32];
    digest[..4].copy_from_slice(&n.to_be_bytes());
    let mh = Multihash::<64>::wrap(0x12, &digest).unwrap();
    Cid(cid::Cid::new_v0(mh).unwrap())
}
