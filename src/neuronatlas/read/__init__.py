"""The read side of an atlas: what the explorer, the CLI's `--json` and `neuronatlas.Atlas`
show, as typed records (`read.views`), assembled from the store's bounded reads and the
optional stages (`read.stages`), plus the live model (`read.live`).

Both the web layer and the library import this package; it imports nothing of `web/`.
"""
