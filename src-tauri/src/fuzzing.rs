//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): each feeds bytes from outside
//! to one parser of the peer, the way a request, a file or a cluster message would reach it.
//! A crash (panic) is a finding; an error is the right answer to bad input. Not part of the
//! library's API.

/// A REST query string through every option parser a route uses.
pub fn rest_query(data: &[u8]) {
    let params = crate::restapi::Params(form_urlencoded::parse(data).into_owned().collect());
    let _ = params.pin_options();
    let _ = params.status_filter();
    let _ = params.pin_types();
    let _ = params.cids();
}

/// A CID as it arrives in a path.
pub fn cid(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = s.parse::<crate::types::Cid>();
    }
}

/// A multiaddr from a config or an invitation, down to a socket address.
pub fn multiaddr(data: &[u8]) {
    if let Ok(m) = multiaddr::Multiaddr::try_from(data.to_vec()) {
        let _ = crate::net::socket_addr(&m);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(m) = s.parse::<multiaddr::Multiaddr>() {
            let _ = crate::net::socket_addr(&m);
        }
    }
}

/// A `service.json`.
pub fn service_json(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = crate::config::Config::parse(std::path::Path::new("service.json"), s, &[]);
    }
}

/// A `state import` file.
pub fn state_import(data: &[u8]) {
    for pin in crate::state::read_pins(std::io::Cursor::new(data)) {
        let _ = pin;
    }
}

/// A cluster RPC message as another peer's bytes arrive (CBOR, both directions).
pub fn rpc_message(data: &[u8]) {
    let _ = cbor4ii::serde::from_slice::<crate::rpc::RpcRequest>(data);
    let _ = cbor4ii::serde::from_slice::<crate::rpc::RpcResponse>(data);
}
