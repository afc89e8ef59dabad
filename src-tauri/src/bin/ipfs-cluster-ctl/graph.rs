//! `health graph`: the cluster's connectivity as a Graphviz dot graph, drawn as IPFS
//! Cluster's ctl draws it (cluster peers as orange boxes, this one doubly outlined; IPFS
//! nodes as turquoise cylinders, a peer whose IPFS could not be asked as a red one).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use ipfs_cluster::types::ConnectGraph;

fn shorten(id: &str) -> String {
    if id.len() > 8 {
        format!("{}*{}", &id[..2], &id[id.len() - 6..])
    } else {
        id.to_string()
    }
}

fn label(name: &str, id: &str) -> String {
    format!("< <B> {name} </B> <BR/> <B> {id} </B> >")
}

/// The dot text of `g`; with `all_ipfs`, also the IPFS peers outside the cluster.
pub fn dot(g: &ConnectGraph, all_ipfs: bool) -> String {
    let cluster: Vec<&String> = g.cluster_links.keys().collect();
    let mut ipfs: BTreeSet<String> = g.ipfs_links.keys().cloned().collect();
    if all_ipfs {
        ipfs.extend(g.ipfs_links.values().flatten().cloned());
    }
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut out = String::from("digraph cluster {\n");
    out += "/* The nodes of the connectivity graph */\n/* The cluster-service peers */\nsubgraph  {\nrank=\"min\"\n";
    for (i, p) in cluster.iter().enumerate() {
        let name = g.id_to_peername.get(*p).map(String::as_str).unwrap_or("");
        let (node, color, extra) = if **p == g.cluster_id {
            (format!("C{i}"), "orange", " peripheries=\"2\"")
        } else {
            (format!("T{i}"), "orange", "")
        };
        let _ = writeln!(
            out,
            "{node} [label={} group=\"{p}\" color=\"{color}\" style=\"filled\" colorscheme=\"x11\" fontcolor=\"black\" fontname=\"Arial\" shape=\"box3d\"{extra}]",
            label(name, &shorten(p))
        );
        ids.insert((*p).clone(), node);
    }
    out += "}\n\n/* The ipfs peers */\nsubgraph  {\nrank=\"max\"\n";
    for (i, p) in ipfs.iter().enumerate() {
        let node = format!("I{i}");
        let _ = writeln!(
            out,
            "{node} [label={} group=\"{p}\" color=\"turquoise3\" style=\"filled\" colorscheme=\"x11\" fontcolor=\"black\" fontname=\"Arial\" shape=\"cylinder\"]",
            label("IPFS", &shorten(p))
        );
        ids.insert(p.clone(), node);
    }
    let mut missing = ipfs.len();
    let mut ipfs_of: BTreeMap<&String, String> = BTreeMap::new();
    for p in &cluster {
        match g.cluster_to_ipfs.get(*p) {
            Some(i) => {
                ipfs_of.insert(p, ids.get(i).cloned().unwrap_or_default());
            }
            None => {
                let node = format!("I{missing}");
                missing += 1;
                let _ = writeln!(
                    out,
                    "{node} [label={} group=\"{p}\" color=\"firebrick1\" style=\"filled\" colorscheme=\"x11\" fontcolor=\"black\" fontname=\"Arial\" shape=\"cylinder\"]",
                    label("IPFS", "Errored")
                );
                ipfs_of.insert(p, node);
            }
        }
    }
    out += "}\n\n/* Edges representing active connections in the cluster */\n/* The connections among cluster-service peers */\n";
    for p in &cluster {
        for to in &g.cluster_links[*p] {
            if let (Some(a), Some(b)) = (ids.get(*p), ids.get(to)) {
                let _ = writeln!(out, "{a} -> {b}");
            }
        }
    }
    out += "\n/* The connections between cluster peers and their ipfs daemons */\n";
    for p in &cluster {
        if let (Some(a), Some(b)) = (ids.get(*p), ipfs_of.get(p)) {
            let style = if g.cluster_to_ipfs.contains_key(*p) {
                ""
            } else {
                " [style=\"dotted\"]"
            };
            let _ = writeln!(out, "{a} -> {b}{style}");
        }
    }
    out += "\n/* The swarm peer connections among ipfs daemons in the cluster */\n";
    for (from, tos) in &g.ipfs_links {
        for to in tos {
            if let (Some(a), Some(b)) = (ids.get(from), ids.get(to)) {
                let _ = writeln!(out, "{a} -> {b}");
            }
        }
    }
    out += "}\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_peers_their_ipfs_nodes_and_an_errored_one() {
        let mut g = ConnectGraph {
            cluster_id: "12D3KooWAAAAAAAAAAAA".into(),
            ..Default::default()
        };
        let (a, b, c) = (
            "12D3KooWAAAAAAAAAAAA",
            "12D3KooWBBBBBBBBBBBB",
            "12D3KooWCCCCCCCCCCCC",
        );
        g.cluster_links.insert(a.into(), vec![b.into()]);
        g.cluster_links.insert(b.into(), vec![a.into()]);
        g.cluster_links.insert(c.into(), vec![]);
        g.cluster_to_ipfs.insert(a.into(), "QmIpfsAAAAAAAA".into());
        g.cluster_to_ipfs.insert(b.into(), "QmIpfsBBBBBBBB".into());
        g.ipfs_links.insert(
            "QmIpfsAAAAAAAA".into(),
            vec!["QmIpfsBBBBBBBB".into(), "QmOutsider00".into()],
        );
        g.ipfs_links
            .insert("QmIpfsBBBBBBBB".into(), vec!["QmIpfsAAAAAAAA".into()]);
        let text = dot(&g, false);
        assert!(text.starts_with("digraph cluster {"));
        assert!(text.trim_end().ends_with('}'));
        assert!(
            text.contains("C0 -> T1") && text.contains("T1 -> C0"),
            "{text}"
        );
        assert!(
            text.contains("C0 -> I0") && text.contains("T1 -> I1"),
            "{text}"
        );
        assert!(
            text.contains("I0 -> I1") && text.contains("I1 -> I0"),
            "{text}"
        );
        assert!(
            text.contains("Errored") && text.contains("T2 -> I2 [style=\"dotted\"]"),
            "{text}"
        );
        assert!(
            !text.contains("Outsider"),
            "outside peers only with --all-ipfs-peers"
        );
        assert!(dot(&g, true).contains("Qm*tsider00") || dot(&g, true).contains("QmOutsider00"));
    }
}
