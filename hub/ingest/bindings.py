"""Device → resident bindings, cached in memory and refreshed from the database on a miss."""

from __future__ import annotations

import sys
import time
from typing import Any

from psycopg_pool import AsyncConnectionPool

from alerts.model import Binding
from devices.provisioning import BINDING_SQL as _QUERY


def _shared(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return (row[0], *(sys.intern(v) if isinstance(v, str) else v for v in row[1:]))


_NEGATIVE_TTL_S = 5.0  # an unknown device is looked up again at most this often


class Bindings:
    """Answers "whose device is this?" without a query per message."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._known: dict[str, Binding] = {}
        self._unknown: dict[str, float] = {}
        self._z2m: dict[str, str] = {}

    async def load_all(self) -> int:
        """Fill the cache with every device; returns the count."""
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_QUERY)).fetchall()
        # Types, rooms, regions, households and residents repeat across devices: keep one copy of each.
        self._known = {row[0]: Binding(*_shared(row)) for row in rows}
        self._z2m = {b.z2m_name: b.device_id for b in self._known.values() if b.z2m_name}
        self._unknown.clear()
        return len(self._known)

    def cached(self, device_id: str) -> Binding | None:
        """The binding if it is in memory (no await on the hot path)."""
        return self._known.get(device_id)

    async def get(self, device_id: str) -> Binding | None:
        """The binding, or None for a device the database does not know."""
        binding = self._known.get(device_id)
        if binding is not None:
            return binding
        if time.monotonic() - self._unknown.get(device_id, -1e9) < _NEGATIVE_TTL_S:
            return None
        async with self._pool.connection() as conn:
            row = await (await conn.execute(_QUERY + " WHERE d.id = %s", (device_id,))).fetchone()
        if row is None:
            self._unknown[device_id] = time.monotonic()
            if len(self._unknown) > 100_000:  # bounded even under a flood of bogus ids
                self._unknown.clear()
            return None
        binding = Binding(*row)
        self.put(binding)
        return binding

    def put(self, binding: Binding) -> None:
        """Record a binding the hub itself just changed (provisioning, revocation)."""
        self._known[binding.device_id] = binding
        if binding.z2m_name:
            self._z2m[binding.z2m_name] = binding.device_id
        self._unknown.pop(binding.device_id, None)

    async def by_z2m_name(self, name: str) -> Binding | None:
        """The device behind a zigbee2mqtt friendly name."""
        device_id = self._z2m.get(name)
        if device_id is not None:
            return await self.get(device_id)
        key = "z2m:" + name
        if time.monotonic() - self._unknown.get(key, -1e9) < _NEGATIVE_TTL_S:
            return None
        async with self._pool.connection() as conn:
            row = await (await conn.execute(_QUERY + " WHERE d.meta->>'z2m_name' = %s", (name,))).fetchone()
        if row is None:
            self._unknown[key] = time.monotonic()
            return None
        binding = Binding(*row)
        self.put(binding)
        return binding

    def __len__(self) -> int:
        return len(self._known)
