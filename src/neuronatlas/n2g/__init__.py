"""Neuron2Graph (N2G): graphs of token patterns that explain and predict single neurons.

One module per step: `examples` (records from the store, de-duplicated train/test split),
`forward` (batched counted passes that stop at the layer), `prune`, `saliency`, `augment`
(pluggable substitute sources; `casings`), `trie`, `predict`, `evaluate`, `explain`, `draw`;
`build` runs the model steps for many neurons of a layer together, `run` drives a whole atlas,
`reference` reproduces the reference code's pass schedule (for the benchmark), `api` is the
read side for the web layer. See docs/N2G.md for the algorithm and what we changed.
"""

from neuronatlas.n2g.settings import N2GSettings, reference_settings

__all__ = ["N2GSettings", "reference_settings"]
