#!/usr/bin/env python3
"""Makes the upgrade fixtures of a release with that release's own binaries:

    python3 tests/upgrade/make_fixtures.py BIN_DIR OUT_DIR

BIN_DIR holds the release's ipfs-cluster-service, ipfs-cluster-ctl and ipfs-local-node; OUT_DIR
(tests/fixtures/upgrade/<version>/) receives:

- peer1/, peer2/: the two voters left of the cluster, stopped: identity.json, service.json,
  peerstore and raft/ (raft.sqlite with pins, a log and a snapshot, and raft/snapshots/;
  consensus.raft.snapshot_threshold is lowered so that snapshots are taken), so that a test
  can start them again with a later release;
- snapshot.icdsnap: peer1's snapshot file on its own;
- state-export.ndjson: `state export` of peer1;
- pins.json: every pin the cluster acknowledged (`pin ls --enc json`), what the tests of later
  releases must find in each of the above;
- rpc/: cluster RPC messages the release's peers wrote (IPFS_CLUSTER_RECORD_RPC), a few of
  each kind: every call the three peers made while joining, writing through a follower,
  reading status, recovering, asking peers and IPFS nodes, electing a new leader after a
  stop, and removing a peer.

Three peers with built-in IPFS nodes, on 127.0.0.1 at free ports, in a temporary folder.
"""

import json
import os
import shutil
import subprocess
import sys
import urllib.request

from local_cluster import LocalPeer, Work

BIN, OUT = sys.argv[1], sys.argv[2]
WORK = Work("upgrade-fixtures-")
SECRET = "9a" * 32


class Peer(LocalPeer):
    def __init__(self, n):
        # Snapshots taken often, and the log before them purged, so that a peer joining
        # later is sent one.
        super().__init__(WORK, BIN, n, SECRET, {"snapshot_threshold": 30, "trailing_logs": 5})

    def start(self, bootstrap=None):
        super().start(bootstrap, {"IPFS_CLUSTER_RECORD_RPC": os.path.join(WORK.folder, "rpc", self.name)})
        WORK.wait(f"{self.name}'s REST API", lambda: self.ctl("id", check=False).returncode == 0)

    def ctl(self, *args, check=True):
        out = subprocess.run([os.path.join(BIN, "ipfs-cluster-ctl"), "--host", self.rest] + list(args),
                             capture_output=True, text=True, timeout=120)
        if check and out.returncode != 0:
            raise SystemExit(f"ctl {args} on {self.name}: {out.stdout} {out.stderr}")
        return out

    def json(self, *args):
        """The JSON values `--enc json` prints (one per item, each may span lines)."""
        out, values, at = self.ctl("--enc", "json", *args).stdout, [], 0
        decoder = json.JSONDecoder()
        while True:
            while at < len(out) and out[at].isspace():
                at += 1
            if at == len(out):
                return values
            value, at = decoder.raw_decode(out, at)
            values.append(value)


def ipfs_post(api, path, arg):
    port = api.split("/")[4]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v0/{path}?arg={arg}", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def proxy_post(peer, path):
    port = json.load(open(os.path.join(peer.folder, "service.json")))["api"]["ipfsproxy"]["listen_multiaddress"].split("/")[4]
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v0/{path}", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def voters(peer):
    return {p["id"] for p in peer.json("peers", "ls") if not p.get("error")}


def add(peer, text, *flags):
    path = os.path.join(WORK.folder, "content.txt")
    with open(path, "w") as f:
        f.write(text)
    return peer.ctl("add", "-Q", *flags, path).stdout.strip()


def main():
    a, b, c = Peer(1), Peer(2), Peer(3)
    a.start()
    b.start(bootstrap=a)
    WORK.wait("peer2 to join", lambda: b.id in voters(a))
    cids = []
    # Writes on the leader and through a follower (forwarded to the leader), with every pin
    # option a user sets: names, replication, metadata, expiry, modes, user allocations.
    for i in range(20):
        cids.append(add(a if i % 2 else b, f"fixture content {i}", "--name", f"file {i}"))
    cids.append(add(a, "with options", "--name", "options", "--rmin", "1", "--rmax", "2",
                    "--metadata", "project=upgrade", "--expire-in", "8760h"))
    cids.append(add(b, "recursive everywhere", "--rmin=-1", "--rmax=-1"))
    raw = add(a, "direct pin", "--name", "direct")
    a.ctl("pin", "rm", raw)
    a.ctl("pin", "add", "--mode", "direct", "--name", "direct", raw)
    cids.append(raw)
    cids.append(add(b, "allocated", "--allocations", a.id, "--rmin", "1", "--rmax", "1"))
    # A third peer joins after a snapshot exists (it is sent one).
    for i in range(20, 40):
        cids.append(add(a, f"fixture content {i}"))
    c.start(bootstrap=b)
    WORK.wait("peer3 to join", lambda: c.id in voters(a))
    gone = add(c, "to be unpinned", "--name", "gone")
    c.ctl("pin", "rm", gone)
    old = add(a, "before the update", "--name", "updated")
    new = add(a, "after the update", "--no-pin")
    a.ctl("pin", "update", old, new)
    cids += [old, new]
    # A pin its IPFS node lost behind the cluster's back: recovered through every peer.
    ipfs_post(b.ipfs_api, "pin/rm", cids[0])
    WORK.wait("peer2 to see the lost pin", lambda: "unexpectedly_unpinned" in b.ctl("status", cids[0]).stdout.lower(), deadline=60)
    # Reads that go to every peer.
    for p in (a, b, c):
        proxy_post(p, "repo/stat")
        p.ctl("status")
        p.ctl("status", cids[0])
        p.ctl("recover", cids[1])
        p.ctl("recover")
        p.ctl("peers", "ls")
        p.ctl("health", "graph")
        p.ctl("health", "metrics", "freespace")
        p.ctl("ipfs", "gc")
        p.ctl("pin", "ls")
    # The leader stops and comes back: the others elect another (vote requests).
    leader = a
    leader.stop()
    WORK.wait("a new leader", lambda: b.ctl("pin", "add", "--name", "after election",
                                       add(b, "after the election")).returncode == 0)
    leader.start()
    cids.append(add(a, "after the restart"))
    for i in range(10):
        cids.append(add(b if i % 2 else c, f"more content {i}", "--name", f"more {i}"))
    pins = sorted(a.json("pin", "ls"), key=lambda p: p["cid"])
    WORK.wait("every peer to hold every pin", lambda: all(
        len(p.json("pin", "ls")) == len(pins) for p in (a, b, c)))
    # A peer removed (the leader tells it).
    b.ctl("peers", "rm", c.id)
    WORK.wait("peer3 removed", lambda: c.id not in voters(b))
    for p in (c, b, a):
        p.stop()

    os.makedirs(OUT, exist_ok=True)
    for n, p in ((1, a), (2, b)):
        dest = os.path.join(OUT, f"peer{n}")
        os.makedirs(dest, exist_ok=True)
        for name in ("identity.json", "service.json", "peerstore"):
            shutil.copy(os.path.join(p.folder, name), dest)
        shutil.copytree(os.path.join(p.folder, "raft"), os.path.join(dest, "raft"), dirs_exist_ok=True)
        # As the release leaves it: its write-ahead log is part of the database (SQLite's
        # index of it, -shm, is made again when opened).
        shm = os.path.join(dest, "raft", "raft.sqlite-shm")
        if os.path.exists(shm):
            os.remove(shm)
    snaps = sorted(os.listdir(os.path.join(OUT, "peer1", "raft", "snapshots")))
    if not snaps:
        raise SystemExit("no snapshot was taken")
    shutil.copy(os.path.join(OUT, "peer1", "raft", "snapshots", snaps[-1]), os.path.join(OUT, "snapshot.icdsnap"))
    subprocess.run([os.path.join(BIN, "ipfs-cluster-service"), "--config", a.folder, "state", "export",
                    "--file", os.path.join(OUT, "state-export.ndjson")], check=True)
    with open(os.path.join(OUT, "pins.json"), "w") as f:
        json.dump(pins, f, indent=1, sort_keys=True)
    shutil.copytree(os.path.join(WORK.folder, "rpc"), os.path.join(OUT, "rpc"), dirs_exist_ok=True)
    version = subprocess.run([os.path.join(BIN, "ipfs-cluster-service"), "--version"],
                             capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(OUT, "MADE_BY"), "w") as f:
        f.write(version + "\n")
    print(f"{len(pins)} pins; fixtures in {OUT} (made by {version}); work folder {WORK.folder}")


try:
    main()
finally:
    WORK.kill_all()
