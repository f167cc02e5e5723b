"""neuronatlas: an atlas of every MLP neuron in a transformer language model.

The stages (scrape, import, n2g, embed, web) live in sub-packages; this top level stays light so
that `import neuronatlas` and `neuronatlas --help` start fast.
"""

from neuronatlas.version import __version__

__all__ = ["Atlas", "__version__"]


def __getattr__(name: str):
    """`neuronatlas.Atlas` without importing the store and web layers at `import neuronatlas`."""
    if name == "Atlas":
        from neuronatlas.atlas import Atlas

        return Atlas
    raise AttributeError(f"module 'neuronatlas' has no attribute {name!r}")
