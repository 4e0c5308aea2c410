"""A real IPFS Cluster for the pinning tests (a pytest plugin, registered from ``tests/conftest.py``).

Two cluster peers (``ipfs-cluster-service`` 1.1.0, CRDT consensus, one shared secret), each with
its own Kubo daemon (tests/kubo_fixtures.py: isolated repos, loopback ports picked free, no DHT),
replication factor 2, and on the first peer the ``pinsvcapi`` endpoint (the IPFS Pinning Service
API) behind basic-auth credentials, so a request needs the JWT that ``POST /token`` hands out.
A third Kubo node, the publisher's, is peered with both cluster nodes; a test may stop it.

Fixtures:
    cluster_bin   the directory of ``.tools/bin/ipfs-cluster-*`` (skips, saying so, when absent)
    cluster       a running :class:`Cluster` for the module, stopped at its end
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.kubo_fixtures import KuboNode, free_port, make_node

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".tools" / "bin"
SERVICE = BIN / "ipfs-cluster-service"
CTL = BIN / "ipfs-cluster-ctl"
START_TIMEOUT = 120.0
#: The pinsvcapi's basic-auth user and password (the JWT is signed with the password).
USER, PASSWORD = "elements", "cluster-test-password"


def cluster_env(path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IPFS_", "CLUSTER_"))}
    env.update(IPFS_CLUSTER_PATH=str(path), GOLOG_LOG_LEVEL="error")
    return env


def begin_init(path: Path) -> subprocess.Popen:
    """Start ``ipfs-cluster-service init`` (its identity and default configuration, about a second)
    for a peer at ``path``: it needs no Kubo, so it runs while the Kubo daemons start."""
    return subprocess.Popen([str(SERVICE), "-c", str(path), "init", "--consensus", "crdt"], env=cluster_env(path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@dataclass
class ClusterPeer:
    """One ``ipfs-cluster-service daemon`` and the Kubo node it drives."""

    name: str
    path: Path
    kubo: KuboNode
    cluster_port: int
    rest_port: int
    pinsvc_port: int
    peer_id: str = ""
    process: subprocess.Popen | None = None
    log: Path | None = None

    @property
    def address(self) -> str:
        return f"/ip4/127.0.0.1/tcp/{self.cluster_port}/p2p/{self.peer_id}"

    @property
    def pinsvc_url(self) -> str:
        return f"http://127.0.0.1:{self.pinsvc_port}"

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(CTL), "--host", f"/ip4/127.0.0.1/tcp/{self.rest_port}", *args],
                              capture_output=True, text=True, timeout=120, check=check)

    def init(self, secret: str, *, pinsvc: bool, begun: subprocess.Popen | None = None) -> "ClusterPeer":
        """Write the peer's configuration; ``begun`` is its ``init`` already started by :func:`begin_init`."""
        initialised = begun or begin_init(self.path)
        _, err = initialised.communicate(timeout=120)
        if initialised.returncode != 0:
            raise RuntimeError(f"ipfs-cluster-service init of {self.name} failed: {err.decode(errors='replace')[-2000:]}")
        return self.configure(secret, pinsvc=pinsvc)

    def configure(self, secret: str, *, pinsvc: bool) -> "ClusterPeer":
        """Write the ports, the secret and the test's timings into the initialised configuration."""
        config_path = self.path / "service.json"
        config = json.loads(config_path.read_text())
        cluster = config["cluster"]
        cluster.update(
            peername=self.name, secret=secret, listen_multiaddress=[f"/ip4/127.0.0.1/tcp/{self.cluster_port}"],
            replication_factor_min=2, replication_factor_max=2, mdns_interval="0s",
            monitor_ping_interval="1s", peer_watch_interval="1s", dial_peer_timeout="3s",
        )
        api = config["api"]
        api["restapi"]["http_listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{self.rest_port}"
        api["ipfsproxy"]["listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{free_port()}"
        api["ipfsproxy"]["node_multiaddress"] = f"/ip4/127.0.0.1/tcp/{self.kubo.api_port}"
        if pinsvc:
            api["pinsvcapi"]["http_listen_multiaddress"] = f"/ip4/127.0.0.1/tcp/{self.pinsvc_port}"
            api["pinsvcapi"]["basic_auth_credentials"] = {USER: PASSWORD}
        else:
            api.pop("pinsvcapi", None)
        connector = config["ipfs_connector"]["ipfshttp"]
        connector.update(node_multiaddress=f"/ip4/127.0.0.1/tcp/{self.kubo.api_port}", connect_swarms_delay="1s",
                         pin_timeout="2m0s")
        config["consensus"]["crdt"]["trusted_peers"] = ["*"]
        for informer in config["informer"].values():
            informer["metric_ttl"] = "5s"
        config["monitor"]["pubsubmon"]["check_interval"] = "1s"
        config_path.write_text(json.dumps(config, indent=2))
        self.peer_id = json.loads((self.path / "identity.json").read_text())["id"]
        return self

    def start(self, bootstrap: str | None = None) -> "ClusterPeer":
        self.log = self.path.parent / f"{self.name}.log"
        out = open(self.log, "wb")
        args = [str(SERVICE), "-c", str(self.path), "daemon"] + (["--bootstrap", bootstrap] if bootstrap else [])
        self.process = subprocess.Popen(args, env=cluster_env(self.path), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cluster peer {self.name} exited at start: {self.log.read_text()[-2000:]}")
            if b"IPFS Cluster is READY" in self.log.read_bytes():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"cluster peer {self.name} did not start in {START_TIMEOUT:.0f}s: {self.log.read_text()[-2000:]}")

    def start_on_free_ports(self, secret: str, *, pinsvc: bool, bootstrap: str | None = None) -> "ClusterPeer":
        """:meth:`start`, on new ports when one picked free was taken before the daemon bound it
        (every daemon of the run, and of other runs on the machine, takes ports too)."""
        for attempt in range(3):
            try:
                return self.start(bootstrap)
            except RuntimeError as exc:
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
            self.cluster_port, self.rest_port, self.pinsvc_port = free_port(), free_port(), free_port()
            self.configure(secret, pinsvc=pinsvc)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@dataclass
class Cluster:
    """Two peers (``peers[0]`` serves the Pinning Service API) and the publisher's own Kubo node."""

    peers: list[ClusterPeer]
    publisher: KuboNode
    _token: str = field(default="", repr=False)

    @property
    def pinsvc_url(self) -> str:
        return self.peers[0].pinsvc_url

    def token(self) -> str:
        """A JWT for the pinsvcapi, as ``POST /token`` with the basic-auth credentials gives it."""
        if not self._token:
            import httpx

            answer = httpx.post(f"{self.pinsvc_url}/token", auth=(USER, PASSWORD), timeout=30)
            answer.raise_for_status()
            self._token = answer.json()["token"]
        return self._token

    def status(self, cid: str) -> dict[str, str]:
        """Each peer's pin status of ``cid`` (peer name -> ``pinned``, ``pinning``, ...)."""
        answer = json_objects(self.peers[0].ctl("--enc", "json", "status", cid).stdout)[0]
        return {info.get("peername") or peer: info["status"] for peer, info in answer["peer_map"].items()}

    def stop(self) -> None:
        for peer in reversed(self.peers):
            peer.stop()
        for peer in self.peers:
            peer.kubo.stop()
        self.publisher.stop()


def json_objects(text: str) -> list:
    """The JSON values ``ipfs-cluster-ctl --enc json`` prints one after another (each indented)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at >= len(text):
            return values
        value, at = decoder.raw_decode(text, at)
        values.append(value)


def _wait_for_peers(peer: ClusterPeer, count: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        listed = peer.ctl("--enc", "json", "peers", "ls", check=False)
        ids = {p.get("id") for p in json_objects(listed.stdout) if isinstance(p, dict)} if listed.returncode == 0 else set()
        if len(ids - {None, ""}) >= count:
            # Allocation needs every peer's metrics (freespace, tags, pinqueue), sent each few seconds.
            metrics = peer.ctl("--enc", "json", "health", "metrics", "freespace", check=False)
            if metrics.returncode == 0 and metrics.stdout.count('"peer":') >= count:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the cluster did not gather {count} peers in {START_TIMEOUT:.0f}s: {peer.log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def cluster_bin(kubo_bin: Path) -> Path:
    for binary in (SERVICE, CTL):
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            pytest.skip(f"IPFS Cluster is not installed at {binary}; run scripts/install_cluster.sh (needs Go) to run this test")
    return BIN


@pytest.fixture(scope="module")
def cluster(cluster_bin: Path, tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("cluster")
    started: list = []
    inits = [begin_init(base / f"peer-{i + 1}") for i in range(2)]
    try:
        kubos = []
        for name in ("kubo-1", "kubo-2"):
            kubos.append(make_node(base, name, peers=kubos).start())
            started.append(kubos[-1])
        publisher = make_node(base, "kubo-publisher", peers=kubos).start()
        started.append(publisher)
        for kubo in kubos:
            publisher.ipfs("swarm", "connect", kubo.swarm_addr)
        kubos[1].ipfs("swarm", "connect", kubos[0].swarm_addr)
        secret = secrets.token_hex(32)
        peers = [ClusterPeer(f"peer-{i + 1}", base / f"peer-{i + 1}", kubo, free_port(), free_port(), free_port())
                 for i, kubo in enumerate(kubos)]
        peers[0].init(secret, pinsvc=True, begun=inits[0]).start_on_free_ports(secret, pinsvc=True)
        started.append(peers[0])
        peers[1].init(secret, pinsvc=False, begun=inits[1]).start_on_free_ports(secret, pinsvc=False, bootstrap=peers[0].address)
        started.append(peers[1])
        _wait_for_peers(peers[0], 2)
        cluster = Cluster(peers, publisher)
    except BaseException:
        for initialising in inits:
            if initialising.poll() is None:
                initialising.kill()
            initialising.communicate()
        for thing in reversed(started):
            thing.stop()
        raise
    try:
        yield cluster
    finally:
        cluster.stop()
