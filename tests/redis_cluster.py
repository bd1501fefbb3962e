"""A real local Redis Cluster for the tests: three masters, no replicas, on loopback.

Each master is a redis-server child (cache/redis_server.EmbeddedRedis, the same binary as
the single-server fixture) in cluster mode with its own data directory and nodes file. The
16384 slots are split in three (CLUSTER ADDSLOTS), the nodes meet (CLUSTER MEET), and
`start` returns once every node reports `cluster_state:ok` with all slots and all three
nodes known: polled, never slept for.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from cache.redis_client import AsyncClient, SyncClient, connect, connect_sync
from cache.redis_server import EmbeddedRedis
from tests.ports import fixed_cluster_port

SLOTS = 16384


class LocalRedisCluster:
    def __init__(self, data_dir: Path, masters: int = 3, executable: str | None = None,
                 full_coverage: bool = True) -> None:
        """`full_coverage` False: the nodes serve their slots while another node is failed
        (`cluster-require-full-coverage no`; Redis's default refuses every key then)."""
        self._dir = data_dir
        self._masters = masters
        self._exe = executable
        self._full = full_coverage
        self.nodes: list[EmbeddedRedis] = []

    @property
    def url(self) -> str:
        """Any one node: the cluster client discovers the rest."""
        return self.nodes[0].url

    def start(self, timeout_s: float = 30.0) -> str:
        for i in range(self._masters):
            node_dir = self._dir / f"node{i}"
            node = EmbeddedRedis(str(node_dir), executable=self._exe, port=fixed_cluster_port(),
                                 extra_args=("--cluster-enabled", "yes",
                                             "--cluster-config-file", str(node_dir / "nodes.conf"),
                                             "--cluster-node-timeout", "5000",
                                             "--cluster-require-full-coverage",
                                             "yes" if self._full else "no",
                                             "--appendonly", "no"))
            self.nodes.append(node)
            node.start()
        clients = [redis.Redis(host="127.0.0.1", port=n.port, socket_timeout=5.0)
                   for n in self.nodes]
        try:
            self._assemble(clients)
            self._wait_ok(clients, timeout_s)
        finally:
            for c in clients:
                c.close()
        return self.url

    def slots(self, i: int) -> range:
        """The slots node `i` was given."""
        return range(SLOTS * i // self._masters, SLOTS * (i + 1) // self._masters)

    def _assemble(self, clients: list[redis.Redis]) -> None:
        for i, client in enumerate(clients):
            client.execute_command("CLUSTER ADDSLOTS", *self.slots(i))
        for node in self.nodes[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", node.port)

    def _wait_ok(self, clients: list[redis.Redis], timeout_s: float,
                 known: int | None = None) -> None:
        """Until every one of `clients` reports the cluster ok, all slots served and
        `known` nodes (default: all of them) known."""
        known = len(self.nodes) if known is None else known
        deadline = time.monotonic() + timeout_s
        last: dict[str, str] = {}
        while time.monotonic() < deadline:
            infos = [c.execute_command("CLUSTER INFO") for c in clients]
            last = {k: str(v) for k, v in _parse(infos[-1]).items()}
            if all(_ready(_parse(info), known) for info in infos):
                return
            time.sleep(0.05)
        raise RuntimeError(f"redis cluster not ready in {timeout_s} s: {last}")

    def _clients(self, indices: list[int]) -> list[redis.Redis]:
        return [redis.Redis(host="127.0.0.1", port=self.nodes[i].port, socket_timeout=5.0)
                for i in indices]

    def stop_node(self, i: int) -> None:
        """Node `i`'s process stopped (its slots out of reach; the others go on)."""
        self.nodes[i].stop()

    def restart_node(self, i: int, timeout_s: float = 30.0) -> None:
        """Node `i` started again on its port, from its nodes file; returns once it reports
        the cluster whole (the others may hold it failed a while longer)."""
        self.nodes[i].start()
        clients = self._clients([i])
        try:
            self._wait_ok(clients, timeout_s)
        finally:
            for c in clients:
                c.close()

    def hand_over(self, dead: int, heir: int, timeout_s: float = 30.0) -> None:
        """Stopped node `dead`'s slots given to node `heir` (as a failover would move them
        to a promoted replica): the others forget it, `heir` claims its slots. Returns once
        the nodes left report every slot served (the keys it held are lost)."""
        live = [i for i in range(len(self.nodes)) if i != dead]
        clients = self._clients(live)
        try:
            gone = _node_id(clients[0], self.nodes[dead].port)
            for c in clients:
                c.execute_command("CLUSTER FORGET", gone)
            clients[live.index(heir)].execute_command("CLUSTER ADDSLOTS", *self.slots(dead))
            self._wait_ok(clients, timeout_s, known=len(live))
        finally:
            for c in clients:
                c.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []


def _node_id(client: redis.Redis, port: int) -> str:
    """The id of the node on `port`, as `client`'s node knows it (CLUSTER NODES)."""
    raw = client.execute_command("CLUSTER NODES")
    if isinstance(raw, dict):  # (redis-py may parse it: address -> fields)
        for address, fields in raw.items():
            if str(address).split("@")[0].endswith(f":{port}"):
                return str(fields["node_id"])
    else:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) > 1 and parts[1].split("@")[0].endswith(f":{port}"):
                return parts[0]
    raise LookupError(f"no node on port {port}")


def _parse(info: object) -> dict[str, str]:
    if isinstance(info, dict):  # redis-py parses CLUSTER INFO into a dict
        return {str(k): str(v) for k, v in info.items()}
    text = info.decode() if isinstance(info, bytes) else str(info)
    return dict(line.split(":", 1) for line in text.split() if ":" in line)


def _ready(info: dict[str, str], masters: int) -> bool:
    return (info.get("cluster_state") == "ok"
            and info.get("cluster_slots_ok") == str(SLOTS)
            and info.get("cluster_known_nodes") == str(masters))


@dataclass(frozen=True)
class RedisTarget:
    """Where a test's Redis is: one server, or a cluster (the `redis_target` fixture runs a
    test against each). Clients come from the production factory, cache/redis_client.py."""

    url: str
    cluster: bool

    def client(self, **options: Any) -> AsyncClient:
        return connect(self.url, cluster=self.cluster, **options)

    def sync_client(self, **options: Any) -> SyncClient:
        return connect_sync(self.url, cluster=self.cluster, **options)

    @property
    def every_node(self) -> dict[str, Any]:
        """Options of a server command (CLIENT PAUSE, ...) meant for the whole deployment: a
        cluster client otherwise sends some of them to one node only."""
        return {"target_nodes": AsyncRedisCluster.ALL_NODES} if self.cluster else {}
