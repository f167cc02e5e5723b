"""Write docs/cli.md from the commands' own `--help` (run by `make docs`; checked by a test)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def render() -> str:
    """The CLI reference: `neuronatlas --help`, then each command's help, at 100 columns."""
    os.environ.update({"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"})
    from typer.testing import CliRunner

    from neuronatlas.cli import app

    runner = CliRunner()
    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    parts = [
        "# CLI reference\n",
        ("Generated from `--help` by `scripts/gen_cli_docs.py`; do not edit by hand.\n"),
    ]
    for args in [[]] + [[name] for name in names]:
        result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "100"})
        title = "neuronatlas " + " ".join(args)
        body = "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())
        parts.append(f"## `{title.strip()}`\n\n```text\n{body}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {OUT}\n")
