//! Properties of every parser that takes input from outside (issue: safe by default): for any
//! input it returns a value or an error of the right class, and never panics. proptest
//! generates the inputs (and shrinks a failure to its smallest form); the REST API as a whole
//! gets 10,000 random requests in `restapi::tests`.

use std::path::Path;

use proptest::prelude::*;

use crate::config::Config;
use crate::error::ErrorKind;
use crate::restapi::Params;
use crate::types::Cid;

/// Text that is often almost valid: CID-, multiaddr- and JSON-like pieces, glued at random.
fn near_misses() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("Qm".to_string()),
        Just("bafy".to_string()),
        Just("/ip4/".to_string()),
        Just("/tcp/".to_string()),
        Just("/dns4/".to_string()),
        Just("{\"".to_string()),
        Just("\":".to_string()),
        Just("}".to_string()),
        Just("%".to_string()),
        "[0-9]{1,6}",
        "[a-z2-7]{1,60}",
        "\\PC{0,8}",
    ];
    prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #[test]
    fn any_text_is_a_cid_or_an_error(s in prop_oneof![near_misses(), any::<String>()]) {
        if let Ok(cid) = s.parse::<Cid>() {
            // What parses prints back to something that parses to the same CID.
            prop_assert_eq!(cid.to_string().parse::<Cid>().unwrap(), cid);
        }
    }

    #[test]
    fn any_multiaddr_is_an_address_or_an_error(s in prop_oneof![near_misses(), any::<String>()]) {
        if let Ok(ma) = s.parse::<multiaddr::Multiaddr>() {
            let _ = crate::net::socket_addr(&ma);
        }
    }

    #[test]
    fn any_query_string_gives_options_or_bad_input(q in prop_oneof![near_misses(), any::<String>()]) {
        let params = Params(form_urlencoded::parse(q.as_bytes()).into_owned().collect());
        let classes = [
            params.pin_options().err(),
            params.status_filter().err(),
            params.pin_types().err(),
            params.cids().err(),
        ];
        for e in classes.into_iter().flatten() {
            prop_assert_eq!(e.kind(), ErrorKind::BadInput, "{}", e);
        }
    }

    #[test]
    fn any_service_json_loads_or_is_an_error(
        key in 0usize..64,
        value in prop_oneof![
            Just(serde_json::Value::Null),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
            near_misses().prop_map(serde_json::Value::from),
            Just(serde_json::json!([])),
            Just(serde_json::json!({})),
        ],
        cut in 0usize..6000,
    ) {
        // A valid config with one value replaced, then (maybe) cut short.
        let mut cfg: serde_json::Value =
            serde_json::from_str(&Config::new_for_init().to_json()).unwrap();
        let mut leaves = Vec::new();
        collect_leaves(&cfg, String::new(), &mut leaves);
        let pointer = &leaves[key % leaves.len()];
        *cfg.pointer_mut(pointer).unwrap() = value;
        let text = cfg.to_string();
        let text: String = text.chars().take(cut.max(text.len() / 2)).collect();
        let _ = Config::parse(Path::new("service.json"), &text, &[]);
    }

    #[test]
    fn any_import_gives_pins_or_a_line_error(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        for r in crate::state::read_pins(std::io::Cursor::new(bytes)) {
            let _ = r;
        }
    }

    #[test]
    fn any_bytes_as_a_cluster_rpc_message_decode_or_fail(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = cbor4ii::serde::from_slice::<crate::rpc::RpcRequest>(&bytes);
        let _ = cbor4ii::serde::from_slice::<crate::rpc::RpcResponse>(&bytes);
    }
}

/// JSON pointers of every leaf (non-object value) of `v`.
fn collect_leaves(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                collect_leaves(
                    child,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        _ => out.push(at),
    }
}
