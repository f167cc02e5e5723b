"""The read side of an atlas: what the explorer, the CLI's `--json` and `neuronatlas.Atlas`
show, as typed records (`read.views`), assembled from the store's bounded reads and the
optional stages (`read.stages`), plus the live model (`read.live`).

One module per surface: `neuron` (the neuron page and its parts), `search`, `map`, `graph`
(N2G), `relations` (similar neurons, logit effects), `activate` (the live model on a text),
`health`. Both the web layer and the library import this package; it imports nothing of
`web/`.
"""
