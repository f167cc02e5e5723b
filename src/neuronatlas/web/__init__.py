"""The explorer: a FastAPI app (HTML pages + JSON API) over one atlas file, read-only.

`create_app(db)` builds it; `neuronatlas serve --db PATH` runs it with uvicorn. FastAPI is
imported only when an app is created, so importing this package stays cheap.
"""

from __future__ import annotations


def create_app(*args, **kwargs):
    """See `neuronatlas.web.app.create_app`."""
    from neuronatlas.web.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["create_app"]
