"""The health surface (`/healthz`): the atlas's size, its finished stages, the live model."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from neuronatlas.read.stages import not_built, stage_states
from neuronatlas.read.views import Health, LiveStatus
from neuronatlas.stage import Stage
from neuronatlas.store import browse, reader


def health(
    conn: sqlite3.Connection,
    version: str,
    live: LiveStatus,
    stages: Sequence[Stage[Any]] = (),
) -> Health:
    """The atlas's size, which stages have finished, what `stages` are not built (with the
    command that builds each) and the live model's state."""
    return Health(
        ok=True,
        **browse.counts(conn),
        stages=browse.finished_stages(conn),
        model_id=reader.meta(conn).get("model_id"),
        version=version,
        live_model=live,
        not_built=[
            not_built(stage, conn) for stage, built in stage_states(conn, stages) if not built
        ],
    )
