"""Peers of a given release on this machine's loopback, for the upgrade scripts
(make_fixtures.py, rolling.py): each with a built-in IPFS node at free ports, in a temporary
folder, its processes logged there and killed at the end."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Work:
    """The temporary folder of a run and the processes it started."""

    def __init__(self, prefix):
        self.folder = tempfile.mkdtemp(prefix=prefix)
        self.procs = {}

    def spawn(self, name, args, env=None):
        log = open(os.path.join(self.folder, f"{name}.log"), "a")
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(env or {})})

    def stop(self, name):
        """SIGTERM, as a user's or a service manager's stop, and waits for the exit."""
        p = self.procs.pop(name)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=120)

    def kill_all(self):
        for p in self.procs.values():
            p.kill()

    def wait(self, what, cond, deadline=120):
        """Polls `cond` until it is true (errors count as not yet); exits naming `what`."""
        end = time.time() + deadline
        while time.time() < end:
            try:
                v = cond()
                if v:
                    return v
            except Exception:  # noqa: BLE001 - not yet
                pass
            time.sleep(0.2)
        raise SystemExit(f"FAILED: timed out waiting for {what}; logs in {self.folder}")


class LocalPeer:
    """Peer `n`: `init --randomports` by the release in `bin`, with the cluster `secret`,
    listening on 127.0.0.1 only, wired to its own built-in IPFS node; `raft` entries go into
    `consensus.raft`."""

    def __init__(self, work, bin, n, secret, raft=None):
        self.work, self.bin = work, bin
        self.name = f"peer{n}"
        self.folder = os.path.join(work.folder, self.name)
        self.ipfs_api = f"/ip4/127.0.0.1/tcp/{free_port()}"
        work.spawn(f"{self.name}-ipfs", [os.path.join(bin, "ipfs-local-node"), "--repo",
                                         os.path.join(self.folder, "ipfs"), "--api", self.ipfs_api,
                                         "--gateway", f"/ip4/127.0.0.1/tcp/{free_port()}", "--loopback-only"])
        subprocess.run([os.path.join(bin, "ipfs-cluster-service"), "--config", self.folder, "init", "--randomports"],
                       check=True, stdout=subprocess.DEVNULL, env={**os.environ, "CLUSTER_SECRET": secret})
        path = os.path.join(self.folder, "service.json")
        cfg = json.load(open(path))
        cfg["cluster"]["peername"] = self.name
        cfg["consensus"]["raft"].update(raft or {})
        cfg["ipfs_connector"]["ipfshttp"]["node_multiaddress"] = self.ipfs_api
        cfg["api"]["ipfsproxy"]["node_multiaddress"] = self.ipfs_api
        # Loopback only: nothing of this run is reachable from elsewhere.
        swarm = cfg["cluster"]["listen_multiaddress"]
        swarm = swarm[0] if isinstance(swarm, list) else swarm
        self.swarm = swarm.replace("/ip4/0.0.0.0/", "/ip4/127.0.0.1/")
        cfg["cluster"]["listen_multiaddress"] = [self.swarm]
        json.dump(cfg, open(path, "w"), indent=2)
        self.cfg = cfg
        self.rest = cfg["api"]["restapi"]["http_listen_multiaddress"]
        self.id = json.load(open(os.path.join(self.folder, "identity.json")))["id"]

    def addr(self):
        return f"{self.swarm}/p2p/{self.id}"

    def start(self, bootstrap=None, env=None):
        args = [os.path.join(self.bin, "ipfs-cluster-service"), "--config", self.folder, "daemon"]
        if bootstrap:
            args += ["--bootstrap", bootstrap.addr()]
        self.work.spawn(self.name, args, env)

    def stop(self):
        self.work.stop(self.name)
