"""`load_model`: a causal LM and its tokenizer from "default", a hub id or a local folder."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import NamedTuple

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


def resolve_device(device: str = "auto") -> str:
    """The torch device for `--device`: "auto" is CUDA (device 0) when torch sees a GPU, else
    the CPU; "cpu", "cuda", "cuda:N" and "mps" are checked to exist here (BadInput naming the
    flag and what is available when they do not)."""
    import torch

    spec = (device or "auto").strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec == "mps":
        if not torch.backends.mps.is_available():
            raise BadInput("--device mps: this torch sees no Apple GPU; use --device cpu")
        return "mps"
    if spec == "cuda" or spec.startswith("cuda:"):
        index = spec.partition(":")[2]
        if index and not index.isdigit():
            raise BadInput(f"--device {device!r}: write cuda or cuda:N with N a GPU index")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise BadInput(f"--device {device}: torch sees no CUDA GPU here; use --device cpu")
        if index and int(index) >= count:
            raise BadInput(f"--device {device}: only GPUs 0-{count - 1} exist here")
        return spec
    raise BadInput(f"--device {device!r}: choose auto, cpu, cuda, cuda:N or mps")


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
    """Load a causal LM for neuron reading: eval mode, no grad, on `device` (see
    `resolve_device`: "auto", "cpu", "cuda[:N]", "mps") in `dtype`.

    spec: "default" (the offline Gemma-3-270M, built and cached on first use), a Hugging Face
    hub id such as "gpt2" (needs the network or a filled HF cache), or a local folder written
    by `save_pretrained`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our CLI draws its own; theirs floods logs and pipes
    torch_dtype = _torch_dtype(dtype)
    device = resolve_device(device)
    source, name, revision = _source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(
            f"cannot load model {spec!r}: {exc}. Offline, use --model default or a local folder."
        ) from exc
    return wrap_model(model, tokenizer, name, revision, dtype=dtype, device=device)


class ModelHeader(NamedTuple):
    """What a model is, without its weights."""

    model: LoadedModel
    """Name, revision, shape and tokenizer; `model.model` is None."""
    source: str
    """The folder or hub id it came from."""


def load_header(spec: str, dtype: str = "float32") -> ModelHeader:
    """A `LoadedModel` without weights, and where it came from.

    Name, revision, shape and tokenizer by the same rules as `load_model`, for a process that
    plans work but never runs the model (a Ray driver: the head node should not hold a model
    that only the workers run)."""
    from transformers import AutoConfig, AutoTokenizer

    _torch_dtype(dtype)  # the same --dtype check as load_model
    source, name, revision = _source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot load model {spec!r}: {exc}") from exc
    return ModelHeader(_describe(None, config, tokenizer, name, revision, dtype, "cpu"), source)


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
    device = resolve_device(device)
    model.eval()
    model.to(device)
    loaded = _describe(model, model.config, tokenizer, name, revision, dtype, device)
    log.info(
        "loaded %s (%s, %d layers × %d neurons, %s)",
        name,
        loaded.architecture,
        loaded.n_layers,
        loaded.d_mlp,
        dtype,
    )
    return loaded


def _describe(
    model, config, tokenizer, name: str, revision: str | None, dtype: str, device: str
) -> LoadedModel:
    """The LoadedModel for a config (and model, or None for a header)."""
    text_config = getattr(config, "text_config", None) or config
    arch = architecture_for(config.model_type)
    if revision is None:
        revision = getattr(config, "_commit_hash", None)
    n_layers = int(getattr(text_config, "num_hidden_layers", None) or text_config.n_layer)
    bos = tokenizer.bos_token_id
    return LoadedModel(
        name=name,
        revision=revision,
        model=model,
        tokenizer=tokenizer,
        n_layers=n_layers,
        d_mlp=d_mlp_of(arch, text_config),
        architecture=arch.name,
        bos_token_id=None if bos is None else int(bos),
        arch=arch,
        dtype=dtype,
        device=device,
    )
