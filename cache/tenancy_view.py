"""A gateway's view of the tenancy data in Redis (cache/tenant_directory.py): the snapshot
it authenticates and meters with, kept current by polling the data's version, and its
configured keys written there (and served until they are).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping

import structlog

from cache.redis_client import FAILURES
from cache.tenancy import Tenancy, key_digest
from cache.tenant_directory import InvalidTenancy, TenantDirectory

log = structlog.get_logger(__name__)



class TenancyView:
    """The gateway's current snapshot: reloaded when the data's version changes (polled
    every `poll_s`), and every `every_s` whatever it says, while Redis answers.

    `seed`, the gateway's configured keys, is written to Redis at the start, and tried again
    at every full reload until written; meanwhile the snapshot is what Redis holds with the
    configured keys it lacks on top (but those revoked there). A gateway whose one write
    failed (Redis slow for a moment at its start) kept its configured keys in its first
    snapshot only, and its first reload took them away for good (CI: every call with a
    configured key refused, "invalid API key")."""

    def __init__(self, directory: TenantDirectory | None, initial: Tenancy,
                 seed: Mapping[str, str] | None = None) -> None:
        self._directory = directory
        self.current = initial
        self.stale = False
        self._version: int | None = None  # the version the current snapshot was read at
        self._seed = dict(seed or {})  # configured keys not yet written to Redis
        self._seed_failing = False

    async def seed(self) -> None:
        """Writes the configured keys (TenantDirectory.seed); raises as it does (a key of
        another tenant: InvalidTenancy, once the others are written). Once done, not again."""
        if self._directory is not None and self._seed:
            try:
                await self._directory.seed(self._seed)
            except InvalidTenancy:
                self._seed = {}
                raise
        self._seed = {}

    async def _try_seed(self) -> None:
        if not self._seed:
            return
        try:
            await self.seed()
        except FAILURES as exc:
            if not self._seed_failing:
                log.warning("tenancy: configured keys not yet written to redis (served by "
                            "this gateway meanwhile)", error=str(exc) or type(exc).__name__)
            self._seed_failing = True
            return
        except ValueError as exc:  # InvalidTenancy (a key another tenant holds), bad data
            log.error("tenancy: a configured key not written to redis", error=str(exc))
        if self._seed_failing:
            log.info("tenancy: configured keys written to redis")
        self._seed_failing = False

    def _with_seed(self, loaded: Tenancy) -> Tenancy:
        """What Redis holds, with the configured keys not written yet on top."""
        if not self._seed:
            return loaded
        extra = {d: t for k, t in self._seed.items()
                 if (d := key_digest(k)) not in loaded.keys and d not in loaded.revoked}
        return dataclasses.replace(loaded, keys={**extra, **loaded.keys})

    async def refresh(self) -> bool:
        """Reloads when the version moved since the last load; whether it reloaded."""
        if self._directory is None:
            return False
        try:
            version = await self._directory.version()
        except FAILURES:
            return False  # the next full reload says it (and marks the snapshot stale)
        return version != self._version and await self.reload(version, seed=False)

    async def reload(self, version: int | None = None, *, seed: bool = True) -> bool:
        """Reads the snapshot; first (`seed`) writes the configured keys if they are not
        yet. Whether it was read."""
        if self._directory is None:
            return False
        if seed:
            await self._try_seed()
        try:
            if version is None:
                version = await self._directory.version()
            self.current = self._with_seed(await self._directory.load())
            self._version = version
        except FAILURES as exc:
            if not self.stale:
                log.warning("tenancy: redis unreachable, serving the last snapshot",
                            error=str(exc) or type(exc).__name__)
            self.stale = True
            return False
        except ValueError as exc:  # (a name or key digest written by hand, not UTF-8)
            if not self.stale:
                log.error("tenancy: the data in redis cannot be read, serving the last "
                          "snapshot", error=str(exc) or type(exc).__name__)
            self.stale = True
            return False
        self.stale = False
        return True

    async def run(self, every_s: float = 2.0, poll_s: float = 0.1) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(poll_s)
            if time.monotonic() - last >= every_s:
                await self.reload()
                last = time.monotonic()
            else:
                await self.refresh()
