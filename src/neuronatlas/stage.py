"""The one contract every stage of an atlas build keeps.

A stage (scrape, import, index, explain, score, N2G, embed, map, ...) is one package that
exports one `Stage` object, `STAGE`, from its `stage.py`. Everything that used to name stages
on its own — the build pipeline, the CLI commands, the `runs.stage` column, the explorer's
"not built yet" panels — reads these objects instead, so adding a stage means writing one
package (and one migration for its tables) and listing its `STAGE` in `neuronatlas.stages`.

The contract is deliberately small:

- `name` is the single name of the stage everywhere: `build --stages NAME`, `runs.stage`, the
  explorer's messages.
- `settings` is a dataclass with a default for every field, so that the pipeline can build one
  from its own settings (see `settings_for`) and the CLI from its flags.
- `run(db, settings, progress)` does the work, skipping what is already done (every stage is
  resumable: a rerun after a crash finishes the rest), and returns a `Report`.
- `writes` names the tables the stage fills: the explorer calls a stage built when the first
  of them has a row, and `needs` names the stages whose tables must exist first.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from neuronatlas.store.reader import RunRow

S = TypeVar("S")


class Progress(Protocol):
    """How every stage reports progress: `done` of `total` units, with a short detail.

    One shape for all stages, so that one adapter draws the CLI's bars and one the build's
    overall bar. `total` may change (a stage that learns its size late calls with the new
    total); `total == 0` means the size is not known yet.
    """

    def __call__(self, done: int, total: int, detail: str = "") -> None: ...


def no_progress(done: int, total: int, detail: str = "") -> None:
    """A `Progress` that draws nothing (library callers that want none)."""


@dataclass(frozen=True)
class Report:
    """What one run of a stage did, for the CLI's summary line and the build's table."""

    stage: str
    skipped: bool
    """True when there was nothing to do (the stage's data was already current)."""
    detail: str
    """One line a person reads: counts written, counts already there, what is left."""
    failed: tuple[tuple[str, str], ...] = ()
    """(item, why) for each unit that failed and stays to do; the CLI exits non-zero."""
    result: object = None
    """The stage's own typed result (`ScrapeResult`, `MapResult`, ...), for a CLI command
    that prints more than `detail` (the map's coherence lines, the index's counts)."""

    @property
    def partial(self) -> bool:
        return bool(self.failed)


@dataclass(frozen=True)
class Stage(Generic[S]):
    """One stage of an atlas: its name, settings, tables and the function that runs it."""

    name: str
    settings: type[S]
    run: Callable[[Path, S, Progress], Report]
    writes: tuple[str, ...]
    """Tables this stage fills (the first one tells whether the stage has run)."""
    command: str
    """The command a person runs to build it, with `--db ATLAS` as the placeholder."""
    needs: tuple[str, ...] = ()
    """Names of the stages that must have run before this one."""
    weight: float = 0.0
    """Its share of a fresh demo build's time, for the build's overall progress bar."""
    in_build: Callable[[Any], bool] = field(default=lambda build: True)
    """Whether `build_atlas` runs it for these build settings (the LLM stages need --llm)."""
    summary: str = ""
    """One line on what the stage makes, for `--help` and the docs."""
    former_names: tuple[str, ...] = ()
    """Names its `runs` rows had in atlases written before the stage contract
    (`explain-top-tokens` for `explain`), so that `last_run` finds those too."""
    migrations: tuple[str, ...] = ()
    """SQL scripts creating the stage's own tables, in order, for a stage that lives outside
    the core schema (`store/sql/`): `apply_stage_migrations` runs each once per atlas."""

    def built(self, conn: sqlite3.Connection) -> bool:
        """Whether this atlas holds the stage's data (its first table exists and has a row)."""
        if not self.writes:
            return True
        try:
            row = conn.execute(f'SELECT 1 FROM "{self.writes[0]}" LIMIT 1').fetchone()
        except sqlite3.OperationalError:
            return False  # the table does not exist: an atlas from before this stage
        return row is not None

    def run_names(self) -> tuple[str, ...]:
        """Every name its `runs` rows may carry: its name, then its former names."""
        return (self.name, *self.former_names)


def settings_for(stage: Stage[S], values: Mapping[str, object] | object) -> S:
    """The stage's settings, with each field taken from `values` when it has it.

    `values` is a mapping or an object with attributes (the build's settings). A field `x` of
    stage `s` reads `s_x` first, then `x`, so the build can hold `n2g_seconds` next to the
    scrape's `tokens` without the stages agreeing on one flat namespace.
    """
    get: Callable[[str], object]
    if isinstance(values, Mapping):
        get = values.__getitem__
        has: Callable[[str], bool] = values.__contains__
    else:
        get = lambda key: getattr(values, key)  # noqa: E731
        has = lambda key: hasattr(values, key)  # noqa: E731
    chosen: dict[str, object] = {}
    for f in dataclasses.fields(stage.settings):  # type: ignore[arg-type]
        for key in (f"{stage.name}_{f.name}", f.name):
            if has(key):
                chosen[f.name] = get(key)
                break
    return stage.settings(**chosen)


def with_atlas(command: str, db: str | Path | None) -> str:
    """`command` with its `--db ATLAS` placeholder replaced by this atlas's (quoted) path."""
    if db is None:
        return command
    import shlex

    return command.replace("--db ATLAS", f"--db {shlex.quote(str(db))}")


def last_run(conn: sqlite3.Connection, stage: Stage[Any]) -> RunRow | None:
    """The stage's most recent run in this atlas, under its name or a former one."""
    from neuronatlas.store import reader

    found = [run for name in stage.run_names() if (run := reader.last_run(conn, name))]
    return max(found, key=lambda run: run.id, default=None)


def ensure_tables(stage: Stage[Any], db: Path) -> None:
    """Create the stage's own tables (`Stage.migrations`) in `db` when it lacks them; the
    pipeline and the CLI call it before `run`, so a stage outside the core schema needs no
    other file to have its tables."""
    if not stage.migrations:
        return
    from neuronatlas.store import open_writer
    from neuronatlas.store.migrations import apply_stage_migrations

    conn = open_writer(db, create=False)
    try:
        apply_stage_migrations(conn, stage.name, stage.migrations)
    finally:
        conn.close()
