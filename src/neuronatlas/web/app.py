"""`create_app`: the FastAPI application over one atlas file, opened read-only.

Every asset is served from the installed packages (our static folder, plotly's bundled
plotly.min.js, swagger-ui from `swagger-ui-bundle-v2`): no CDN, so it works offline.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from neuronatlas.read.live import LiveModel, default_spec
from neuronatlas.stage import Stage
from neuronatlas.store import browse, reader
from neuronatlas.version import __version__

log = logging.getLogger(__name__)


@dataclass
class Settings:
    """How the server reads its atlas.

    db: the atlas file. model: the model spec for live features (overrides meta model_id).
    time_limit_s: the most one request's reads may take. map_time_limit_s: the same for
    /api/map, which reads every neuron once and is then cached. search_time_limit_s: the same
    for search, whose first call may load the vector index and the query encoder.
    live_time_limit_s: the same
    for /api/activate, whose deadline also spans the model's forward pass. pool_size: read
    connections.
    """

    db: Path
    model: str | None = None
    time_limit_s: float = 2.0
    map_time_limit_s: float = 30.0
    search_time_limit_s: float = 30.0
    live_time_limit_s: float = 60.0
    pool_size: int = 8
    title: str = "neuronatlas"
    model_id: str | None = None

    def db_stamp(self) -> tuple[float, float]:
        """Changes when the file (or its WAL) is written: the key of cached whole-atlas reads."""
        wal = Path(str(self.db) + "-wal")
        return (os.stat(self.db).st_mtime, wal.stat().st_mtime if wal.exists() else 0.0)


def plotly_js() -> Path:
    """plotly.min.js as bundled in the `plotly` Python package."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def swagger_dir() -> Path | None:
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    return Path(swagger_ui_bundle.swagger_ui_path)


def _lifespan(settings: Settings, has_embeddings: bool, has_map: bool, *pools):
    """Preload the vector index and the map's first answers in the background at start;
    close the connections at stop."""
    import gc
    import threading
    from contextlib import asynccontextmanager

    from neuronatlas.read import stages

    @asynccontextmanager
    async def lifespan(_app):
        # what start-up made (modules, routes, schemas: ~70,000 objects) lives as long as the
        # server: out of the collector's reach, a full collection no longer walks it all
        # while every request on the loop waits
        gc.freeze()
        threading.Thread(
            target=stages.warm,
            args=(str(settings.db), has_embeddings),
            name="neuronatlas-warm",
            daemon=True,
        ).start()
        if has_map:
            from neuronatlas.web.api import warm_map

            threading.Thread(
                target=warm_map, args=(_app.state,), name="neuronatlas-warm-map", daemon=True
            ).start()
        yield
        for pool in pools:
            pool.close()

    return lifespan


def create_app(
    db: str | Path,
    model: str | None = None,
    time_limit_s: float = 2.0,
    pool_size: int = 8,
    device: str = "auto",
    compress: bool = True,
    stages: tuple[Stage[Any], ...] | None = None,
):
    """The explorer app for one atlas. `model` overrides the atlas's meta `model_id`; live
    activations run on `device`. `compress`: gzip large bodies (worth it across a network;
    on loopback it only costs CPU, a quarter of the server's time on the demo's pages).
    `stages`: the stage registry whose missing stages `/healthz` names (default `STAGES`)."""
    from fastapi import FastAPI
    from fastapi.middleware.gzip import GZipMiddleware
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, Response
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates

    from neuronatlas.read.first_view import record_tabs_html, trace_url
    from neuronatlas.read.render import (
        HEATMAP_CSS,
        histogram_svg,
        with_code,
    )
    from neuronatlas.web import api, errors, openapi, pages, steer_api, trace_api
    from neuronatlas.web.pool import ReaderPool

    settings = Settings(db=Path(db), model=model, time_limit_s=time_limit_s, pool_size=pool_size)
    pool = ReaderPool(settings.db, size=pool_size)
    loop_pool = ReaderPool(settings.db, size=1)
    with pool.borrow(settings.time_limit_s) as conn:
        meta = reader.meta(conn)
        has_embeddings = browse.has_embeddings(conn)
        similar = browse.similar_built(conn)
        has_map = browse.has_map(conn)
    settings.model_id = meta.get("model_id")
    settings.title = f"neuronatlas · {settings.model_id}" if settings.model_id else "neuronatlas"

    app = FastAPI(
        title="neuronatlas",
        version=__version__,
        summary="Explore every MLP neuron of one language model: explanations, activations, "
        "N2G graphs, semantic map and search.",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan(settings, has_embeddings, has_map, pool, loop_pool),
    )
    app.state.settings = settings
    app.state.pool = pool
    app.state.loop_pool = loop_pool
    app.state.live = LiveModel(model or default_spec(meta), meta, device)
    app.state.map_cache = {}
    app.state.trace_cache = trace_api.GraphCache()
    # similar neurons (and full neuron views) run on the event loop when none of their reads
    # can be slow: up to this k, every kind is precomputed
    app.state.similar_k = min(similar.get(kind, 0) for kind in browse.SIMILAR_KINDS)
    app.state.health_cache = None
    if stages is None:
        from neuronatlas.stages import STAGES as stages
    app.state.stages = stages
    pkg = files("neuronatlas.web")
    templates = Jinja2Templates(directory=str(pkg / "templates"))
    # the installed templates do not change under a running server: no stat() per page
    templates.env.auto_reload = False
    templates.env.globals["heatmap_css"] = HEATMAP_CSS
    templates.env.globals["version"] = __version__
    templates.env.globals["record_tabs_html"] = record_tabs_html
    templates.env.globals["trace_url"] = trace_url
    templates.env.globals["histogram_svg"] = histogram_svg
    templates.env.filters["code"] = with_code
    templates.env.globals["steer_limits"] = steer_api.LIMITS
    templates.env.globals["trace_limits"] = trace_api.LIMITS
    app.state.templates = templates

    errors.install(app)
    if compress:
        # level 1: a neuron's JSON still shrinks 3.2x (level 9: 3.9x) for far less CPU
        app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=1)
    app.mount("/static", StaticFiles(directory=str(pkg / "static")), name="static")
    swagger = swagger_dir()
    if swagger is not None:
        app.mount("/vendor/swagger", StaticFiles(directory=str(swagger)), name="swagger")

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def _plotly() -> Response:
        return FileResponse(
            plotly_js(),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/docs", include_in_schema=False)
    def _docs() -> Response:
        if swagger is None:
            from neuronatlas.errors import StageNotBuilt

            raise StageNotBuilt(
                "the API docs page needs `pip install swagger-ui-bundle-v2`; "
                "the schema itself is at /openapi.json"
            )
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="neuronatlas API",
            swagger_js_url="/vendor/swagger/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    # routes are tried in order, ~3 µs each: the page people open first (its path overlaps
    # none of the API's), not after the ~30 routes of the API (bench/README.md); its common
    # case without FastAPI's parameter machinery, ahead of every route and mount
    app.router.routes.insert(0, pages.FirstViewRoute())
    app.include_router(pages.neuron_router)
    app.include_router(api.router)
    app.include_router(steer_api.router)
    app.include_router(trace_api.router)
    app.include_router(pages.router)
    app.include_router(trace_api.page_router)
    openapi.install(app)

    return app


ENV_PREFIX = "NEURONATLAS_SERVE_"


def app_from_env():
    """`create_app` configured by environment variables, for uvicorn's multi-process mode
    (`serve --workers N`): each worker process imports this factory and builds its own app
    with its own read connections, so N workers use N cores."""
    env = os.environ
    return create_app(
        env[ENV_PREFIX + "DB"],
        model=env.get(ENV_PREFIX + "MODEL") or None,
        time_limit_s=float(env.get(ENV_PREFIX + "TIME_LIMIT", "2.0")),
        device=env.get(ENV_PREFIX + "DEVICE") or "auto",
        compress=env.get(ENV_PREFIX + "GZIP", "1") == "1",
    )
