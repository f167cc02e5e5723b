"""One streaming pass over a corpus → every neuron's top-k windows, random and quantile
samples, and moments, as a mergeable state (`state`) that becomes the atlas (`output`).

Public API (the local runner and a distributed one share it):

- `StatsConfig`; `new_state(config, layers, d_mlp)`; `update(state, window_ids, tokens, acts)`
  and its parts `update_layer` / `add_windows`; `merge(a, b)`; `save(state, path)` /
  `load(path)`; `canonical(layer_state)` for equality checks;
- `scrape_shard(model, batches, config, policy, layers, state=None)`;
- `run_scrape(ScrapeSettings, db, progress)` the local end-to-end run;
- `neuron_data(state, layer, token_strings)` and `write_atlas(...)` for the store.
"""

from neuronatlas.scrape.config import OPENAI_QUANTILES, StatsConfig
from neuronatlas.scrape.readout import canonical
from neuronatlas.scrape.runner import (
    Progress,
    ScrapeResult,
    checkpoint_path,
    run_scrape,
    scrape_shard,
)
from neuronatlas.scrape.settings import ScrapeSettings
from neuronatlas.scrape.state import (
    LayerState,
    ScrapeState,
    WindowTable,
    add_windows,
    load,
    merge,
    new_state,
    save,
    update,
    update_layer,
)

__all__ = [
    "OPENAI_QUANTILES",
    "LayerState",
    "Progress",
    "ScrapeResult",
    "ScrapeSettings",
    "ScrapeState",
    "StatsConfig",
    "WindowTable",
    "add_windows",
    "canonical",
    "checkpoint_path",
    "load",
    "merge",
    "new_state",
    "run_scrape",
    "save",
    "scrape_shard",
    "update",
    "update_layer",
]
