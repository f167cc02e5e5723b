"""The health surface (`/healthz`): the atlas's size, its finished stages, the live model."""

from __future__ import annotations

import sqlite3

from neuronatlas.read.views import Health, LiveStatus
from neuronatlas.store import browse, reader


def health(conn: sqlite3.Connection, version: str, live: LiveStatus) -> Health:
    """The atlas's size, which stages have finished and the live model's state."""
    return Health(
        ok=True,
        **browse.counts(conn),
        stages=browse.finished_stages(conn),
        model_id=reader.meta(conn).get("model_id"),
        version=version,
        live_model=live,
    )
