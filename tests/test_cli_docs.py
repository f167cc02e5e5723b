"""docs/cli.md is the CLI's own help text: regenerate it when a command changes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current():
    spec = importlib.util.spec_from_file_location(
        "gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py"
    )
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == gen.render(), (
        "docs/cli.md is stale: run `.venv/bin/python scripts/gen_cli_docs.py`"
    )


def test_every_command_has_help_with_an_example():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = text.split("## `neuronatlas ")[1:]
    assert len(sections) >= 15
    for section in sections:
        assert "Example:" in section, section.splitlines()[0]
