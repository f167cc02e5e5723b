"""A finished scrape state → the atlas: one `NeuronData` per neuron (records 'top', 'random',
'quantile_i', moments, quantile boundaries; source 'scrape'), plus the atlas's provenance.

Neurons are prepared in chunks and each chunk is written in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from neuronatlas.scrape.readout import neuron_results
from neuronatlas.scrape.state import ScrapeState
from neuronatlas.store import AtlasWriter, NeuronData, Record, prepare
from neuronatlas.store.search import rebuild_token_index
from neuronatlas.version import __version__

if TYPE_CHECKING:
    from neuronatlas.corpus import BosPolicy
    from neuronatlas.models import LoadedModel
    from neuronatlas.scrape.settings import ScrapeSettings

SOURCE = "scrape"


def neuron_data(
    state: ScrapeState, layer: int, token_strings: Callable[[list[int]], list[str]]
) -> Iterator[NeuronData]:
    """The store's view of every neuron of `layer` in the state."""
    for r in neuron_results(state, layer, token_strings):
        yield NeuronData(
            layer=layer,
            neuron=r["neuron"],
            source=SOURCE,
            records={
                cat: [Record(tokens, acts) for tokens, acts in recs]
                for cat, recs in r["records"].items()
            },
            mean=r["mean"],
            variance=r["variance"],
            skewness=r["skewness"],
            kurtosis=r["kurtosis"],
            quantile_boundaries=r["quantile_boundaries"],
        )


def provenance(
    settings: ScrapeSettings,
    model: LoadedModel,
    corpus: dict,
    policy: BosPolicy,
    layers: list[int],
    state: ScrapeState,
) -> dict:
    """Atlas-wide facts of a scrape (stored in `meta`)."""
    from pathlib import Path as _P

    spec = settings.model
    if spec != "default" and _P(spec).expanduser().is_dir():
        spec = str(_P(spec).expanduser().resolve())
    return {
        "model_id": model.name,
        "model_path": spec,
        "model_revision": model.revision or "",
        "architecture": model.architecture,
        "n_layers": model.n_layers,
        "d_mlp": model.d_mlp,
        "scraped_layers": layers,
        "hook_points": [model.hook_name(L) for L in layers],
        "hook_module": f"{model.arch.blocks}.{{L}}.{model.arch.projection} (input)",
        "data_source": SOURCE,
        "corpus": corpus,
        "tokens": state.windows_seen * state.config.context,
        "windows": state.windows_seen,
        "context": state.config.context,
        "dtype": settings.dtype,
        "bos_policy": policy.describe(),
        "stats": state.config.to_dict(),
        "moments_note": "population variance and skewness, excess kurtosis, over all scored "
        "tokens (BOS positions excluded)",
        "code_version": __version__,
    }


def write_atlas(
    state: ScrapeState,
    model: LoadedModel,
    db: str | Path,
    meta: dict,
    run_config: dict,
    on_progress: Callable[[int, int], None] | None = None,
    chunk: int = 1024,
) -> int:
    """Write every neuron of the state into `db`; returns the number of neurons written."""
    from neuronatlas.store.writer import now

    total = sum(ls.d_mlp for ls in state.layers.values())
    done = 0
    with AtlasWriter(db) as writer:
        if "created_at" not in writer.meta():
            meta = {**meta, "created_at": now()}
        writer.set_meta(meta)
        run = writer.begin_run("scrape", run_config)
        try:
            for layer in sorted(state.layers):
                buf = []
                for data in neuron_data(state, layer, model.record_strings):
                    buf.append(prepare(data))
                    if len(buf) == chunk:
                        done += writer.write_neurons(buf)
                        buf = []
                        if on_progress:
                            on_progress(done, total)
                if buf:
                    done += writer.write_neurons(buf)
                    if on_progress:
                        on_progress(done, total)
            rebuild_token_index(writer.conn)  # `neuronatlas tokens` answers from it
        except BaseException:
            writer.end_run(run, "failed")
            raise
        writer.end_run(run, "done")
    return done
