"""Every `docs/NAME.md` the code or the docs point to is in the repository (users never get
the team's shared notes, so a reference must resolve here)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"docs/[A-Za-z0-9_./-]+\.md")


def _sources() -> list[Path]:
    files = [*sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "docs").glob("*.md"))]
    return files + [ROOT / name for name in ("README.md", "CONTRIBUTING.md")]


def test_every_docs_reference_resolves():
    refs = {
        (path.relative_to(ROOT), ref)
        for path in _sources()
        for ref in REFERENCE.findall(path.read_text(encoding="utf-8"))
    }
    assert any(str(p).startswith("src") for p, _ in refs)  # the scan reads the code
    missing = sorted(f"{p} → {ref}" for p, ref in refs if not (ROOT / ref).is_file())
    assert not missing, "references to docs that are not in the repository:\n" + "\n".join(missing)
