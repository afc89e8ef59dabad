#!/usr/bin/env python3
"""A rolling upgrade under a steady write load (run by tests/upgrade/rolling.sh):

    python3 tests/upgrade/rolling.py OLD_BIN NEW_BIN

Three voters of the old release (binaries in OLD_BIN) with built-in IPFS nodes on 127.0.0.1;
a writer pins new CIDs through their REST APIs, one after another, as fast as they are
acknowledged; each peer in turn, the followers first and the leader last (as operators of Raft
clusters do), is drained (the writer stops sending it writes and finishes
the one in flight, as a load balancer would), stopped with SIGTERM, started again with the new
release's binary (NEW_BIN) on the same folder, and waited for until every member answers.
Checked, and printed as a summary line:
- no write failed (every answer was a success);
- global status, asked of the peers that are up every half second for the whole upgrade and of
  every peer after each step, shows no `cluster_error` but for the peer down for its upgrade
  (a peer of the other release answers every status call);
- at the end, every acknowledged pin is in every peer's pinset;
- the longest pause between two acknowledged writes, and each step's.
Exits 1 when a check fails.
"""

import base64
import hashlib
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request

from local_cluster import LocalPeer, Work

OLD, NEW = sys.argv[1], sys.argv[2]
WORK = Work("rolling-upgrade-")
SECRET = "5c" * 32


def cid_of(data):
    """A CIDv1 (raw, sha2-256) in base32, as IPFS prints it."""
    raw = bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


class Peer(LocalPeer):
    def __init__(self, n):
        super().__init__(WORK, OLD, n, SECRET)
        rest = self.rest.split("/")
        self.url = f"http://{rest[2]}:{rest[4]}"

    def get(self, path, timeout=30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.read().decode()

    def lines(self, path):
        return [json.loads(x) for x in self.get(path, timeout=120).splitlines() if x.strip()]

    def version(self):
        return json.loads(self.get("/version"))["version"]


def all_answer(peers):
    """Every member answers `GET /peers` on every peer, without an error."""
    for p in peers:
        ids = p.lines("/peers")
        if len(ids) != len(peers) or any(i.get("error") for i in ids):
            return False
    return True


class Writer(threading.Thread):
    def __init__(self, peers):
        super().__init__(daemon=True)
        self.peers = peers
        self.drained = set()
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.in_flight = None
        self.stopping = False
        self.acked = []          # (time, cid)
        self.failures = []       # (time, peer, error)
        self.n = 0

    def drain(self, peer):
        """Sends `peer` no more writes; returns once the one in flight to it has its answer."""
        with self.lock:
            self.drained.add(peer.name)
            self.idle.wait_for(lambda: self.in_flight != peer.name)

    def undrain(self, peer):
        with self.lock:
            self.drained.discard(peer.name)

    def run(self):
        while not self.stopping:
            with self.lock:
                live = [p for p in self.peers if p.name not in self.drained]
                peer = live[self.n % len(live)]
                self.in_flight = peer.name
            self.n += 1
            cid = cid_of(f"rolling {self.n} {random.random()}".encode())
            req = urllib.request.Request(f"{peer.url}/pins/{cid}?name=rolling-{self.n}", method="POST")
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    r.read()
                self.acked.append((time.time(), cid))
            except (urllib.error.URLError, OSError) as e:
                body = e.read().decode(errors="replace") if isinstance(e, urllib.error.HTTPError) else ""
                self.failures.append((time.time(), peer.name, f"{e} {body}".strip()))
            with self.lock:
                self.in_flight = None
                self.idle.notify_all()

    def longest_pause(self, since=0.0, until=None):
        times = [t for t, _ in self.acked if t >= since and (until is None or t <= until)]
        return max((b - a for a, b in zip(times, times[1:])), default=0.0)


class StatusWatcher(threading.Thread):
    """Global status, asked of each peer that is up in turn for the whole upgrade: any
    `cluster_error` except for the peer that is down for its upgrade (which cannot answer,
    as any stopped peer) is a problem."""

    def __init__(self, peers, writer):
        super().__init__(daemon=True)
        self.peers, self.writer = peers, writer
        self.stopping = False
        self.checks = 0
        self.seen = []  # (time, peer asked, cid, peer in error, error)

    def run(self):
        n = 0
        while not self.stopping:
            with self.writer.lock:
                down = {p.id for p in self.peers if p.name in self.writer.drained}
                up = [p for p in self.peers if p.name not in self.writer.drained]
            p = up[n % len(up)]
            n += 1
            try:
                statuses = p.lines("/pins")
            except (urllib.error.URLError, OSError, ValueError):
                continue  # stopping or just started: asked again of the next one
            with self.writer.lock:
                # A peer drained meanwhile was down during part of this listing.
                down |= {q.id for q in self.peers if q.name in self.writer.drained}
            for info in statuses:
                for pid, st in info.get("peer_map", {}).items():
                    if st.get("status") == "cluster_error" and pid not in down:
                        self.seen.append((time.time(), p.name, info["cid"], pid, st.get("error")))
            self.checks += 1
            time.sleep(0.5)


def cluster_errors(peers):
    """(peer asked, cid, peer with cluster_error, its error) of global status on every peer."""
    found = []
    for p in peers:
        for info in p.lines("/pins"):
            for pid, st in info.get("peer_map", {}).items():
                if st.get("status") == "cluster_error":
                    found.append((p.name, info["cid"], pid, st.get("error")))
    return found


def main():
    peers = [Peer(1), Peer(2), Peer(3)]
    a, b, c = peers
    a.start()
    WORK.wait("peer1's REST API", lambda: a.get("/id"))
    b.start(bootstrap=a)
    c.start(bootstrap=a)
    WORK.wait("three voters answering", lambda: all_answer(peers))
    old_version = a.version()
    writer = Writer(peers)
    writer.start()
    watcher = StatusWatcher(peers, writer)
    watcher.start()
    WORK.wait("writes under way", lambda: len(writer.acked) >= 50)
    problems = []
    steps = []
    # The followers first, the leader last (a leader of the previous release may not hand
    # leadership over; by then the others run this release and elect at once).
    leader = json.loads(a.get("/id")).get("leader")
    order = sorted(peers, key=lambda p: p.id == leader)
    for p in order:
        started = time.time()
        writer.drain(p)
        p.stop()
        p.bin = NEW
        p.start()
        WORK.wait(f"{p.name} upgraded and every member answering", lambda: all_answer(peers), deadline=180)
        writer.undrain(p)
        WORK.wait("writes through the upgraded peer", lambda: len(writer.acked) >= 50 + 50 * (len(steps) + 1))
        errors = cluster_errors(peers)
        if errors:
            problems.append(f"after upgrading {p.name}: cluster_error in global status: {errors[:3]}")
        steps.append((p.name, writer.longest_pause(started, time.time())))
        print(f"{p.name}: {old_version} -> {p.version()}, longest write pause {steps[-1][1]:.2f} s")
    writer.stopping = watcher.stopping = True
    writer.join(timeout=180)
    watcher.join(timeout=180)
    if watcher.seen:
        problems.append(f"cluster_error in global status during the upgrade ({len(watcher.seen)} times), "
                        f"e.g. {watcher.seen[:3]}")
    acked = {cid for _, cid in writer.acked}
    for p in peers:
        have = {i["cid"] for i in p.lines("/allocations")}
        missing = acked - have
        if missing:
            problems.append(f"{p.name} lacks {len(missing)} acknowledged pins, e.g. {sorted(missing)[:3]}")
    if writer.failures:
        problems.append(f"{len(writer.failures)} writes failed, e.g. {writer.failures[:3]}")
    print(f"rolling upgrade {old_version} -> {a.version()}: {len(acked)} writes acknowledged, "
          f"{len(writer.failures)} failed, global status asked {watcher.checks} times, "
          f"longest pause {writer.longest_pause():.2f} s "
          f"({', '.join(f'{n} {s:.2f} s' for n, s in steps)})")
    for problem in problems:
        print("FAILED:", problem)
    if problems:
        print(f"logs in {WORK.folder}")
        sys.exit(1)
    print("rolling upgrade: passed")


try:
    main()
finally:
    WORK.kill_all()
