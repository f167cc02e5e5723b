"""OpenAI's neuron-explainer data: file schemas, downloads, import into an atlas, export.

`import_openai(ImportConfig(source), db)` loads a local folder, an https base URL or the public
blob (`openai:gpt2-small`, `openai:gpt2-xl`); `export_openai` / `export_parquet` write an atlas
back out. Schemas live in `neuronatlas.openai.schemas`.
"""

from neuronatlas.openai.importer import (
    ImportConfig,
    ImportPlan,
    ImportResult,
    import_openai,
    plan_import,
    run_import,
)

__all__ = [
    "ImportConfig",
    "ImportPlan",
    "ImportResult",
    "import_openai",
    "plan_import",
    "run_import",
]
