"""Fuzz the JSON API against its own OpenAPI schema (schemathesis): no input gives a 5xx.

Wide: a few hundred generated requests per operation, valid ones and (schemathesis's negative
mode) ones that break the schema, about a minute on two cores, on a tiny
atlas with no model, so the live routes (activation, logit effects, steering) answer 503 by
design (model unavailable); that answer is checked for its shape rather than counted as a
server error. The seed changes every run, so runs together cover more than one could; it is
printed, and `NEURONATLAS_FUZZ_SEED=N` replays a run (`NEURONATLAS_FUZZ_EXAMPLES=N` sets the
count). (schemathesis's pytest plugin does not run on pytest 9, so the operations are driven
through hypothesis directly.)
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from neuronatlas.web import create_app


@pytest.fixture(scope="module", params=["bare", "embedded"])
def api_schema(request, synthetic_atlas, tmp_path_factory):
    """The API over a bare atlas (every optional stage answers 409) and over one with
    embeddings and search indexes (semantic, token and full-text search answer)."""
    import schemathesis  # a second of imports: only when this slow-tier module runs

    if request.param == "bare":
        path = synthetic_atlas("fuzz", layers=2, per_layer=4, n_top=2, length=6)
    else:
        from embed_fixtures import build_atlas
        from neuronatlas.embed.embed import EmbedConfig, embed_atlas
        from neuronatlas.store import AtlasWriter
        from neuronatlas.store.search import rebuild_search_indexes

        path = build_atlas(tmp_path_factory.mktemp("fuzz") / "atlas.db")
        embed_atlas(path, EmbedConfig(embedder="test-hashing"))
        with AtlasWriter(path) as w:
            rebuild_search_indexes(w.conn)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(path))


SEED_ENV = "NEURONATLAS_FUZZ_SEED"
EXAMPLES_ENV = "NEURONATLAS_FUZZ_EXAMPLES"
#: generated requests per operation and atlas: about a minute in all on two cores
EXAMPLES = 250


def fuzz_seed() -> int:
    """The replayed seed, or a new one each run."""
    raw = os.environ.get(SEED_ENV)
    return int(raw) if raw else random.SystemRandom().randrange(2**32)


RUN_SEED = fuzz_seed()  # one per run, for both atlases

# need the model
LIVE = {
    "/api/activate",
    "/api/neurons/{neuron_id}/logit_effects",
    "/api/steer",
    "/api/trace",
    "/api/trace/neuronpedia",
}


def check(case, seen: list) -> None:
    response = case.call()
    seen.append(response.status_code)
    kind = response.headers.get("content-type") or ""
    kind = " ".join(kind) if isinstance(kind, list) else kind  # schemathesis: lists of values
    body = response.json() if "json" in kind else None
    if response.status_code == 503 and case.path in LIVE:
        assert body["error"]["code"] == "model_unavailable"
        return
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}


@pytest.mark.slow
def test_every_operation_survives_generated_input(api_schema, capsys):
    from schemathesis.generation import GenerationMode

    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 10
    run_seed, examples = RUN_SEED, int(os.environ.get(EXAMPLES_ENV, EXAMPLES))
    with capsys.disabled():
        print(
            f"\nweb fuzz: seed {run_seed}, {examples} examples per operation "
            f"(replay with {SEED_ENV}={run_seed})"
        )
    seen: list[int] = []
    for op in operations:

        @seed(run_seed)
        @given(case=st.one_of(*(op.as_strategy(mode) for mode in GenerationMode)))
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case):
            check(case, seen)

        try:
            fuzz()
        except Exception as exc:
            raise AssertionError(
                f"{op.method.upper()} {op.path} failed; replay with {SEED_ENV}={run_seed}"
            ) from exc
    # Generated input reached the handlers: successes and typed 4xx answers both occurred.
    assert len(seen) > min(100, 5 * examples) and 200 in seen and {400, 404, 422} & set(seen)
