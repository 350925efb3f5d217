"""Device → resident bindings, cached in memory and refreshed from the database on a miss."""

from __future__ import annotations

import time
from typing import Any

from psycopg_pool import AsyncConnectionPool

from alerts.model import Binding

_QUERY = """
SELECT d.id, d.type, d.resident_id, COALESCE(d.household_id, r.household_id), h.region_path, d.room,
       d.status = 'active'
FROM devices d
LEFT JOIN residents r ON r.id = d.resident_id
LEFT JOIN households h ON h.id = COALESCE(d.household_id, r.household_id)
"""
_NEGATIVE_TTL_S = 5.0  # an unknown device is looked up again at most this often


class Bindings:
    """Answers "whose device is this?" without a query per message."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool
        self._known: dict[str, Binding] = {}
        self._unknown: dict[str, float] = {}

    async def load_all(self) -> int:
        """Fill the cache with every device; returns the count."""
        async with self._pool.connection() as conn:
            rows = await (await conn.execute(_QUERY)).fetchall()
        self._known = {row[0]: Binding(*row) for row in rows}
        self._unknown.clear()
        return len(self._known)

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
        self._known[device_id] = binding
        return binding

    def put(self, binding: Binding) -> None:
        """Record a binding the hub itself just changed (provisioning, revocation)."""
        self._known[binding.device_id] = binding
        self._unknown.pop(binding.device_id, None)

    def __len__(self) -> int:
        return len(self._known)
