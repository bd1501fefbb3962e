"""The one place Redis clients are made: one server, or a Redis Cluster (`redis.cluster`).

`redis.url` names the server, or, with `redis.cluster: true`, any node of a Redis Cluster:
the client then asks that node for the slot map and follows MOVED / ASK redirections.
Nothing else changes for the caller: the key layout (cache/keys.py) puts every multi-key
operation's keys in one slot with hash tags, and the pipelines that span slots are
non-transactional, which the cluster client splits by node.

A cluster has one database only (`/0` or none in the URL).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any, TypeAlias, TypeVar

import redis
import redis.asyncio as aioredis
import structlog
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.asyncio.cluster import ClusterPipeline as AsyncClusterPipeline
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.typing import KeyT

from cache.outage import WHOLE, Attempt, RedisOutage, Skipped, outage_of
from ostinato.config import RedisConfig

AsyncClient: TypeAlias = aioredis.Redis | AsyncRedisCluster
SyncClient: TypeAlias = redis.Redis | RedisCluster
T = TypeVar("T")
log = structlog.get_logger(__name__)
# Connections a client holds to one server (each cluster node): a burst past them waits for
# a free one (at most its socket timeout), then fails with MaxConnectionsError, the client's
# own overload. redis-py's default pool failed at once past 100 with that error, which was
# taken for Redis out of reach: a burst of about 150 requests turned quotas off for every
# tenant for a second (cancellation review 2026-12-08 F1).
MAX_CONNECTIONS = 256
# what says Redis is out of reach (a Cluster's "cluster down" too), not that it refused one
# operation (nor that this client is out of connections: MaxConnectionsError, a subclass of
# ConnectionError, is told apart first)
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
               redis.exceptions.ClusterDownError, redis.exceptions.RedisClusterException,
               OSError, TimeoutError)


# what an operation fails with (a cluster client with no node to reach raises
# RedisClusterException, not a RedisError)
FAILURES = (aioredis.RedisError, redis.exceptions.RedisClusterException, OSError, TimeoutError)
# what a Redis that is there but not answering yet fails with: slow, loading its data after
# a restart (-LOADING), a cluster failing over (one that refuses connections, not running,
# fails with a ConnectionError at once)
SLOW = (TimeoutError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError,
        redis.exceptions.ClusterDownError, redis.exceptions.TryAgainError)


async def within(op: Awaitable[T], timeout_s: float, unavailable: type[Exception],
                 outage: RedisOutage | None = None, *, key: KeyT | None = None) -> T:
    """One Redis operation, whole, in `timeout_s`; Redis down or slow raises `unavailable`
    (for stores whose callers must tell "not there" from "cannot tell"). With `outage` (the
    client's, cache/outage.py): not sent at all while its node failed under a second ago or
    is being probed, and an outage's start and end logged once. `key`: the key (any key of
    its slot) the operation is bound for, which names its node on a Redis Cluster; without
    one it is counted under the cluster as a whole (a pipeline across slots)."""
    attempt = None
    if outage is not None:
        attempt = outage.attempt(outage.node_of(key), timeout_s)
        if attempt is None:
            if inspect.iscoroutine(op):
                op.close()  # never sent
            raise unavailable("Redis failed under a second ago: not tried") from Skipped()
    try:
        async with asyncio.timeout(timeout_s):
            result = await keeping_cancel(op)
    except FAILURES as exc:
        if outage is not None and attempt is not None:
            _told(outage, attempt, exc)
        raise unavailable(str(exc) or type(exc).__name__) from exc
    else:
        if outage is not None and attempt is not None:
            _told(outage, attempt, None)
        return result
    finally:
        if outage is not None and attempt is not None:
            # a probe cancelled, or failed with what says nothing of Redis: another probes
            outage.release(attempt)


async def keeping_cancel(op: Awaitable[T]) -> T:
    """`op`, except that a cancellation of this task that arrived while it ran is raised
    even where `op` swallowed it. redis-py's asyncio client (8.2.0 here; earlier ones too:
    redis-py #2028, #2551) now and then returns normally, or fails with its own error, from a
    command whose task was cancelled in flight: 1 in about 120 random cancels of a blocking
    XREAD, GETs too. A loop around such a call then never ends (a gateway stopping hung in
    asyncio's final cancel of its tasks until it was killed), and a timeout around it fails
    to fire."""
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    try:
        result = await op
    except Exception as exc:
        if task is not None and task.cancelling() > before:
            raise asyncio.CancelledError() from exc
        raise
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError()
    return result


class _Pipeline(AsyncPipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        return await keeping_cancel(super().execute(raise_on_error))


class _ClusterPipeline(AsyncClusterPipeline):
    async def execute(self, raise_on_error: bool = True,
                      allow_redirections: bool = True) -> list[Any]:
        return await keeping_cancel(super().execute(raise_on_error, allow_redirections))


class _Redis(aioredis.Redis):
    """The asyncio client, each command and pipeline through `keeping_cancel`."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        return await keeping_cancel(super().execute_command(*args, **options))

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> _Pipeline:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _RedisCluster(AsyncRedisCluster):
    """The asyncio Redis Cluster client, each command and pipeline through `keeping_cancel`."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        return await keeping_cancel(super().execute_command(*args, **kwargs))

    def pipeline(self, transaction: Any | None = None,
                 shard_hint: Any | None = None) -> _ClusterPipeline:
        if shard_hint:  # (as redis-py's)
            raise redis.exceptions.RedisClusterException(
                "shard_hint is deprecated in cluster mode")
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]  # (as redis-py makes it)


def operation_bound(timeout_s: float) -> float:
    """How long one operation may take whole, for a client whose socket timeout is
    `timeout_s` (`redis.timeout_s`): twice it. The client's own timeout must fire first: a
    cluster client then retries and asks for its slot map again (a stalled master whose slots
    moved is found moved); a bound equal to it cancelled the operation first, every time."""
    return 2 * timeout_s


def text(reply: object) -> str:
    """A reply as text. Our clients read bytes (no `decode_responses`); redis-py types
    replies as bytes or str, and scripts' replies as anything."""
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _told(outage: RedisOutage, attempt: Attempt, error: BaseException | None) -> None:
    """The outage view told how an operation went (`error`: None when it succeeded)."""
    node = {} if attempt.node is WHOLE else {"node": attempt.node}
    if isinstance(error, redis.exceptions.MaxConnectionsError):
        return  # this client's own overload: nothing said of Redis
    if isinstance(error, UNREACHABLE):
        if outage.failed(attempt.started, attempt.node):
            log.warning("redis unavailable: going on without it (answer caches miss, calls "
                        "unmetered, responses and conversations not stored) until it answers",
                        error=repr(error), **node)
    # an error the server answered (WRONGTYPE, OOM, NOSCRIPT ...) says it is there: only one
    # that says it is out of reach makes the others skip it
    elif (error is None or isinstance(error, redis.exceptions.ResponseError)) and \
            outage.succeeded(attempt.started, attempt.node):
        log.info("redis back", **node)


def _options(timeout_s: float | None, extra: dict[str, Any]) -> dict[str, Any]:
    if timeout_s is not None:
        extra = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s, **extra}
    return extra


class _WaitingPool(aioredis.BlockingConnectionPool):
    """Waits for a free connection up to its `timeout`; none freed by then is a
    MaxConnectionsError (redis-py's says ConnectionError, as for Redis out of reach)."""

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)
        except redis.exceptions.ConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError):  # (asyncio.TimeoutError is it)
                raise redis.exceptions.MaxConnectionsError(
                    f"no free connection to Redis in {self.timeout} s "
                    f"({self.max_connections} in use)") from exc
            raise


def connect(url: str, *, cluster: bool = False, timeout_s: float | None = None,
            wait_s: float | None = None, **options: Any) -> AsyncClient:
    """An asyncio client for `url` (every socket operation bounded by `timeout_s`), with at
    most `max_connections` (MAX_CONNECTIONS) to a server or each cluster node; a command
    waits at most `wait_s` for a free one to a server (a cluster's node fails at once).
    Its default, half of `timeout_s` (else 5 s), leaves the wait shorter than the bound
    its callers put on an operation (`within`, `timeout_s` or more): a pool still full then
    is MaxConnectionsError, not a timeout taken for Redis out of reach (diff review
    2026-12-08)."""
    kwargs = _options(timeout_s, {"max_connections": MAX_CONNECTIONS, **options})
    if cluster:
        return _RedisCluster.from_url(url, **kwargs)
    wait = wait_s if wait_s is not None else timeout_s / 2 if timeout_s is not None else 5.0
    pool = _WaitingPool.from_url(url, timeout=wait, **kwargs)
    client = _Redis(connection_pool=pool)
    client.auto_close_connection_pool = True  # (as from_url makes it: aclose closes the pool)
    return client


def from_config(cfg: RedisConfig) -> AsyncClient:
    """The services' client: `redis.url`, `redis.cluster`, each operation within `timeout_s`."""
    return connect(cfg.url, cluster=cfg.cluster, timeout_s=cfg.timeout_s)


def connect_sync(url: str, *, cluster: bool = False, timeout_s: float | None = None,
                 **options: Any) -> SyncClient:
    """The blocking counterpart of `connect` (tools and tests)."""
    kwargs = _options(timeout_s, options)
    if cluster:
        return RedisCluster.from_url(url, **kwargs)
    return redis.Redis.from_url(url, **kwargs)


class KeptInRedis:
    """Base of the stores whose callers must tell "not there" from "cannot tell" (stored
    responses, conversations): one TTL for what they keep, and every operation whole within
    `operation_bound` of the Redis timeout, Redis down raising `unavailable`."""

    unavailable: type[Exception] = ConnectionError

    def __init__(self, client: AsyncClient, ttl_s: float, timeout_s: float) -> None:
        self._redis = client
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._timeout = operation_bound(timeout_s)

    async def _do(self, op: Awaitable[T], key: KeyT | None = None) -> T:
        """`op` on `key` (any key of its slot: its Redis Cluster node), bounded."""
        return await within(op, self._timeout, self.unavailable, outage_of(self._redis),
                            key=key)
