//! The desktop app's Add against a real IPFS node (`ipfs-local-node`): a dropped folder is one
//! CID whose listing in IPFS holds every file, and a cancelled add pins nothing. The app's
//! code runs in this process (`ipfs_cluster::desktop::Desktop`, as the Tauri shell calls it).

use std::path::Path;
use std::time::Duration;

use cluster_tests::{wait_for, IpfsNode};
use ipfs_cluster::config::Multiaddrs;
use ipfs_cluster::desktop::secrets::FileStore;
use ipfs_cluster::desktop::{loopback_defaults, Desktop};
use serde_json::Value;

fn desktop(dir: &Path, ipfs: &IpfsNode) -> Desktop {
    Desktop::with(
        dir.join("app"),
        Box::new(FileStore::in_folder(&dir.join("app"))),
        Box::new(loopback_defaults(Multiaddrs::one(&ipfs.api_multiaddr()))),
    )
}

/// The entries of directory `cid` in IPFS: (name, CID, type: 1 directory, 2 file).
async fn ls(ipfs: &IpfsNode, cid: &str) -> Vec<(String, String, u64)> {
    let v: Value = ipfs
        .call("ls", &[("arg", cid)])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["Objects"][0]["Links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["Name"].as_str().unwrap().to_string(),
                l["Hash"].as_str().unwrap().to_string(),
                l["Type"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_folder_is_one_pin_whose_listing_holds_every_file_and_a_cancel_pins_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("node")).unwrap();
    let ipfs = IpfsNode::start(&dir.path().join("node")).await.unwrap();
    let d = desktop(dir.path(), &ipfs);
    d.new_cluster().await.unwrap();

    let album = dir.path().join("Holiday 2026");
    std::fs::create_dir_all(album.join("day one")).unwrap();
    std::fs::write(album.join("notes.txt"), b"sunny").unwrap();
    std::fs::write(album.join("day one/beach.jpg"), vec![42u8; 3_000_000]).unwrap();
    std::fs::write(album.join("day one/map+route.txt"), b"north").unwrap();
    std::fs::write(album.join(".DS_Store"), b"junk").unwrap();
    let added = d
        .add(std::slice::from_ref(&album), "", Some(1))
        .await
        .unwrap();
    assert_eq!(
        added.skipped_hidden, 1,
        "hidden files are left out, and told"
    );
    let pin = added.pin;
    assert_eq!(pin.options.name, "Holiday 2026");
    let root = pin.cid.to_string();
    let top = ls(&ipfs, &root).await;
    let names: Vec<(&str, u64)> = top.iter().map(|(n, _, t)| (n.as_str(), *t)).collect();
    assert_eq!(names, [("day one", 1), ("notes.txt", 2)]);
    let inner = ls(&ipfs, &top[0].1).await;
    let names: Vec<&str> = inner.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["beach.jpg", "map+route.txt"]);
    let beach = ipfs
        .call("cat", &[("arg", &inner[0].1)])
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(beach.len(), 3_000_000);
    // The cluster pins the folder's one CID, and IPFS here holds it pinned.
    assert_eq!(d.summary().await.unwrap().pins, 1);
    wait_for(
        "the folder pinned in IPFS",
        Duration::from_secs(60),
        || async { ipfs.is_pinned(&root).await.ok().filter(|p| *p) },
    )
    .await
    .unwrap();

    // A large file, cancelled once bytes flow: an error that says so, nothing pinned, and
    // the next add may start.
    let big = dir.path().join("big.iso");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(2_000_000_000)
        .unwrap();
    let adding = d.add(std::slice::from_ref(&big), "", None);
    let cancelling = async {
        wait_for(
            "bytes of the big file sent",
            Duration::from_secs(60),
            || async { d.add_progress().filter(|p| p.bytes_done > 0) },
        )
        .await
        .unwrap();
        assert!(d.cancel_add());
    };
    let (added, ()) = tokio::join!(adding, cancelling);
    let err = added.unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(d.add_progress().is_none());
    assert_eq!(d.summary().await.unwrap().pins, 1, "nothing more pinned");
    let again = d
        .add(&[album.join("notes.txt")], "notes", None)
        .await
        .unwrap();
    assert_eq!(again.pin.options.name, "notes");
    d.stop().await;
}
