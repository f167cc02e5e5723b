"""`load_model`: a causal LM and its tokenizer from "default", a hub id or a local folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from neuronatlas.errors import BadInput, ModelUnavailable
from neuronatlas.models.architectures import architecture_for, d_mlp_of
from neuronatlas.models.gguf_cache import IDENTITY_FILE
from neuronatlas.models.loaded import LoadedModel

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")
# A local folder may carry IDENTITY_FILE to name the model it holds (the default cache does).


def _torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise BadInput(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def _source(spec: str) -> tuple[str, str, str | None]:
    """(what to pass to from_pretrained, display name, revision) for a spec."""
    if spec == "default":
        from neuronatlas.models.default import ensure_default_model

        folder = ensure_default_model()
        ident = json.loads((folder / IDENTITY_FILE).read_text())
        return str(folder), ident["name"], ident.get("revision")
    path = Path(spec).expanduser()
    if path.is_dir():
        ident_file = path / IDENTITY_FILE
        if ident_file.exists():
            ident = json.loads(ident_file.read_text())
            return str(path), ident["name"], ident.get("revision")
        return str(path), str(path.resolve()), None
    if spec.startswith((".", "/", "~")) or path.is_file():
        raise BadInput(f"--model {spec!r}: not a folder holding a saved model")
    return spec, spec, None


def load_model(spec: str, dtype: str = "float32", device: str = "cpu") -> LoadedModel:
    """Load a causal LM for neuron reading: eval mode, no grad, on `device` in `dtype`.

    spec: "default" (the offline Gemma-3-270M, built and cached on first use), a Hugging Face
    hub id such as "gpt2" (needs the network or a filled HF cache), or a local folder written
    by `save_pretrained`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our CLI draws its own; theirs floods logs and pipes
    torch_dtype = _torch_dtype(dtype)
    source, name, revision = _source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"cannot load model {spec!r}: {exc}. Offline, use --model default or a local folder."
        ) from exc
    return wrap_model(model, tokenizer, name, revision, dtype=dtype, device=device)


def wrap_model(
    model,
    tokenizer,
    name: str,
    revision: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
) -> LoadedModel:
    """A `LoadedModel` around an already built causal LM and tokenizer (benchmarks, workers
    that build their model themselves). Puts the model in eval mode on `device`."""
    model.eval()
    model.to(device)
    config = model.config
    text_config = getattr(config, "text_config", None) or config
    arch = architecture_for(config.model_type)
    if revision is None:
        revision = getattr(config, "_commit_hash", None)
    n_layers = int(getattr(text_config, "num_hidden_layers", None) or text_config.n_layer)
    d_mlp = d_mlp_of(arch, text_config)
    bos = tokenizer.bos_token_id
    log.info("loaded %s (%s, %d layers × %d neurons, %s)", name, arch.name, n_layers, d_mlp, dtype)
    return LoadedModel(
        name=name,
        revision=revision,
        model=model,
        tokenizer=tokenizer,
        n_layers=n_layers,
        d_mlp=d_mlp,
        architecture=arch.name,
        bos_token_id=None if bos is None else int(bos),
        arch=arch,
        dtype=dtype,
        device=device,
    )
