"""The `neuronatlas` command: one thin sub-command per stage.

Each module below registers its commands on `app`; a command parses flags and calls one public
function of its stage package. Typed errors become one-line messages and exit code 1.
"""

from __future__ import annotations

import sys

from neuronatlas.cli.app import app, console_err
from neuronatlas.errors import NeuronAtlasError

# Registering modules (import for their side effect of adding commands to `app`).
from neuronatlas.cli import inspect as _inspect  # noqa: E402,F401
from neuronatlas.cli import scrape as _scrape  # noqa: E402,F401
from neuronatlas.cli import n2g as _n2g  # noqa: E402,F401
from neuronatlas.cli import serve as _serve  # noqa: E402,F401
from neuronatlas.cli import importing as _importing  # noqa: E402,F401
from neuronatlas.cli import search as _search  # noqa: E402,F401
from neuronatlas.cli import build as _build  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except NeuronAtlasError as exc:
        console_err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)


__all__ = ["app", "main"]
