"""The local scrape: one process folds the corpus's window batches into a `ScrapeState`,
checkpointing it, then writes the atlas.

`scrape_shard` is the unit a distributed runner calls remotely (model + batches → state);
`run_scrape` adds what a single machine needs around it: corpus, resume from checkpoint,
progress events and the store.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from neuronatlas.errors import BadInput, StateFormatError
from neuronatlas.scrape.config import StatsConfig
from neuronatlas.scrape.settings import ScrapeSettings
from neuronatlas.scrape.state import (
    ScrapeState,
    add_windows,
    load,
    new_state,
    save,
    update_layer,
    window_id_tensor,
)
from neuronatlas.version import __version__

if TYPE_CHECKING:
    from neuronatlas.corpus import BosPolicy, WindowBatch
    from neuronatlas.models import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """A progress event: `phase` is 'scrape' or 'write'; totals may be None (unknown)."""

    phase: str
    done: int
    total: int | None
    tokens: int = 0


@dataclass
class ScrapeResult:
    db: Path
    neurons: int
    windows: int
    tokens: int
    resumed_from: int
    meta: dict = field(default_factory=dict)


def scrape_shard(
    model: LoadedModel,
    batches: Iterable[WindowBatch],
    config: StatsConfig,
    policy: BosPolicy,
    layers: list[int] | None = None,
    state: ScrapeState | None = None,
    on_batch: Callable[[ScrapeState, WindowBatch], None] | None = None,
) -> ScrapeState:
    """Fold window batches into a state (a new one, on the model's device, unless given): one
    forward pass per batch, statistics taken inside the hooks where the activations are (the
    state's device), the pass stopped after the last scraped layer."""
    layers = model.check_layers(layers)
    if state is None:
        state = new_state(config, layers, model.d_mlp, model.device)
    skip = 1 if policy.mode == "prepend" else 0
    for batch in batches:
        ids = window_id_tensor(batch.ids, state.device)

        def consume(layer: int, acts, ids=ids) -> None:
            update_layer(state, layer, ids, acts[:, skip:, :])

        model.stream_activations(batch.model_input(policy), consume, layers)
        add_windows(state, batch.ids, batch.tokens)
        if on_batch is not None:
            on_batch(state, batch)
    return state


def checkpoint_path(db: Path) -> Path:
    """Where a scrape into `db` keeps its checkpoint (deleted once the atlas is written)."""
    return db.with_name(db.name + ".scrape-checkpoint.npz")


def fingerprint(
    settings: ScrapeSettings, model: LoadedModel, corpus: dict, policy: BosPolicy, layers: list[int]
) -> dict:
    """What must match for a checkpoint to be resumed."""
    s = asdict(settings)
    for key in ("checkpoint_every", "engine", "model", "device"):  # device: same result
        s.pop(key)
    s["layers"] = layers
    return {
        "settings": s,
        "model": model.name,
        "revision": model.revision,
        "corpus": corpus,
        "bos": policy.describe(),
    }


def run_scrape(
    settings: ScrapeSettings, db: str | Path, progress: Callable[[Progress], None] | None = None
) -> ScrapeResult:
    """Scrape `settings.model` over `settings.corpus` into the atlas `db`, resuming from a
    checkpoint left by an interrupted run with the same settings."""
    from neuronatlas.corpus import batch_windows, iter_windows, open_source, resolve_bos
    from neuronatlas.models import load_model
    from neuronatlas.scrape.output import provenance, write_atlas

    db = Path(db)
    notify = progress or (lambda _e: None)
    source = open_source(settings.corpus, settings.text_field)
    model = load_model(settings.model, dtype=settings.dtype, device=settings.device)
    policy = resolve_bos(model.tokenizer, settings.bos)
    layers = settings.layers_on(model)
    config = settings.stats_config()
    corpus = source.describe()
    fp = fingerprint(settings, model, corpus, policy, layers)
    ckpt = checkpoint_path(db)
    state, start = _resume(ckpt, fp, model.device)
    if state is None:
        state = new_state(config, layers, model.d_mlp, model.device)
        state.meta = {"fingerprint": fp, "next_window": 0}

    total = settings.max_windows
    if total is None and corpus["kind"] != "hf":
        total = sum(
            1 for _ in iter_windows(source.documents(), model.tokenizer, config.context, policy)
        )
    n_batches = 0
    done = start

    def on_batch(st: ScrapeState, batch: WindowBatch) -> None:
        nonlocal n_batches, done
        n_batches += 1
        done = int(batch.ids[-1]) + 1
        st.meta["next_window"] = done
        if settings.checkpoint_every and n_batches % settings.checkpoint_every == 0:
            save(st, ckpt)
        notify(Progress("scrape", done, total, (done - start) * config.context))

    notify(Progress("scrape", start, total, 0))
    windows = iter_windows(
        source.documents(),
        model.tokenizer,
        config.context,
        policy,
        start=start,
        stop=settings.max_windows,
    )
    scrape_shard(
        model, batch_windows(windows, settings.batch_size), config, policy, layers, state, on_batch
    )
    if state.windows_seen == 0:
        raise BadInput(f"--corpus {settings.corpus}: no full window of {config.context} tokens")
    prov = provenance(settings, model, corpus, policy, layers, state)
    written = write_atlas(
        state,
        model,
        db,
        prov,
        settings_json(settings),
        lambda d, t: notify(Progress("write", d, t)),
    )
    ckpt.unlink(missing_ok=True)
    return ScrapeResult(
        db, written, state.windows_seen, state.windows_seen * config.context, start, prov
    )


def settings_json(settings: ScrapeSettings) -> dict:
    return {**asdict(settings), "code_version": __version__}


def _resume(ckpt: Path, fp: dict, device) -> tuple[ScrapeState | None, int]:
    if not ckpt.exists():
        return None, 0
    try:
        state = load(ckpt, device)
    except StateFormatError:
        raise  # the message says what to do; silently starting afresh would discard the work
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring unreadable checkpoint %s (%s)", ckpt, exc)
        return None, 0
    if json.loads(json.dumps(state.meta.get("fingerprint"))) != json.loads(json.dumps(fp)):
        log.warning("checkpoint %s is of another scrape (settings differ): starting afresh", ckpt)
        return None, 0
    start = int(state.meta["next_window"])
    log.info("resuming from %s at window %d", ckpt, start)
    return state, start
