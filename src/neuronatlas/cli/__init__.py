"""The `neuronatlas` command: one thin sub-command per stage.

Each module below registers its commands on `app`; a command parses flags and calls one public
function of its stage package. Typed errors become one-line messages and their `exit_code`:
1, or 2 for a --db file that is not a usable atlas (`errors.AtlasUnusable`).
"""

from __future__ import annotations

import sys

# Registering modules (import for their side effect of adding commands to `app`); the
# order here is the order of `neuronatlas --help`.
from neuronatlas.cli import build as _build  # noqa: F401
from neuronatlas.cli import embed as _embed  # noqa: F401
from neuronatlas.cli import importing as _importing  # noqa: F401
from neuronatlas.cli import index as _index  # noqa: F401
from neuronatlas.cli import inspect as _inspect  # noqa: F401
from neuronatlas.cli import llm as _llm  # noqa: F401
from neuronatlas.cli import map as _map  # noqa: F401
from neuronatlas.cli import migrate as _migrate  # noqa: F401
from neuronatlas.cli import n2g as _n2g  # noqa: F401
from neuronatlas.cli import scrape as _scrape  # noqa: F401
from neuronatlas.cli import search as _search  # noqa: F401
from neuronatlas.cli import serve as _serve  # noqa: F401
from neuronatlas.cli import steer as _steer  # noqa: F401
from neuronatlas.cli import trace as _trace  # noqa: F401
from neuronatlas.cli.app import app, console_err
from neuronatlas.errors import NeuronAtlasError


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except NeuronAtlasError as exc:
        console_err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


__all__ = ["app", "main"]
