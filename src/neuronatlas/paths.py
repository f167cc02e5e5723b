"""Where neuronatlas keeps its caches: `$NEURONATLAS_HOME`, default `~/.cache/neuronatlas`.

Built models (`models/`), assembled embedders (`embedders/`), search indexes (`indexes/`) and
downloaded OpenAI files (`openai-cache/`) live below it.
"""

from __future__ import annotations

import os
from pathlib import Path


def neuronatlas_home() -> Path:
    """The cache root; set `NEURONATLAS_HOME` to move it (e.g. to a larger disk)."""
    env = os.environ.get("NEURONATLAS_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neuronatlas"
