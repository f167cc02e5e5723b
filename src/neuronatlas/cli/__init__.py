"""The `neuronatlas` command: one thin sub-command per stage.

`make_app` adds each command module's commands to a new application, explicitly and in the
order of `neuronatlas --help`; a command parses flags and calls its stage's `run` (through
`cli.app.run_stage`) or one public function of its package. Typed errors become one-line
messages and their `exit_code`: 1, or 2 for a --db file that is not a usable atlas
(`errors.AtlasUnusable`).
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from neuronatlas.cli import (
    build,
    embed,
    importing,
    index,
    inspect,
    llm,
    map,
    migrate,
    n2g,
    scrape,
    search,
    serve,
    steer,
    trace,
)
from neuronatlas.cli.app import console_err, new_app
from neuronatlas.errors import NeuronAtlasError
from neuronatlas.stage import Stage

#: The command modules, in the order of `neuronatlas --help`.
MODULES = (
    serve,
    build,
    embed,
    importing,
    index,
    inspect,
    llm,
    map,
    migrate,
    n2g,
    scrape,
    search,
    steer,
    trace,
)


def make_app(stages: tuple[Stage[Any], ...] | None = None) -> typer.Typer:
    """The `neuronatlas` application over this stage registry (`build --stages` knows these;
    None: `neuronatlas.stages.STAGES`, imported only by the commands that run stages, so
    that `neuronatlas --help` stays fast)."""
    app = new_app(stages)
    for module in MODULES:
        module.register(app)
    return app


app = make_app()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except NeuronAtlasError as exc:
        console_err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


__all__ = ["app", "main", "make_app"]
