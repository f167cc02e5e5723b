"""Names vulture (`make lint`, settings in pyproject's [tool.vulture]) reports as unused that are
used where it cannot see: read by a framework, a serializer or a caller outside Python. Each
group says why; a name that is really dead is deleted instead of being listed here."""

# ruff: noqa
_ = object()

# The package's lazy `neuronatlas.Atlas` (PEP 562 module __getattr__).
__getattr__
# Enum members that Typer turns into option choices (`--bos prepend`, `export --format openai`).
prepend
openai
# Fields of dataclasses, NamedTuples and msgspec Structs that leave the process: JSON answers
# and schemas of the read model, build status, LLM responses, the scrape checkpoint, OpenAI's
# file formats, stored settings.
elapsed_s
expansion
finish_reason
baseline_token_precision
baseline_token_recall
baseline_ngram_precision
baseline_ngram_recall
padded_tokens
_.padded_tokens
prompt_digest
dataclass_name
raw_text
shared_tokens
similarity_measure
_.similarity_measure
has_svg
activation_value
end_activation
substitutes_failed
n2g_prediction
_.n2g_prediction
live_model
_.live_model
rnd_val
shared_mass
model_config  # pydantic's model settings
# Attributes that a library reads: sqlite3's row_factory, uvicorn's auto_reload, pytest's
# report.longrepr, tokenizers' pipeline parts, transformers' model_max_length.
_.row_factory
_.auto_reload
_.longrepr
_.normalizer
_.pre_tokenizer
_.post_processor
_.model_max_length
# uvicorn's `--factory` entry point, named as a string by `neuronatlas serve --workers N`.
app_from_env
# Signatures that pytest or a library calls: a hook's arguments, fixtures requested for their
# effect, a fake tokenizer's keyword, a singleton's __new__.
nextitem
one_torch_thread
writes
add_special_tokens
__new__

# Dead: the store/ rework of issue 24 deletes these four (store/ was out of this change's
# reach); then delete these lines.
embedded_count
score_table
rebuild_explanation_fulltext
neuron_tokens
# Columns of the `runs` table that `store.reader.last_run` returns whole (RunRow), for callers
# and notebooks that show when a stage ran.
started_at
finished_at
# Fields of BuildSettings that `stage.settings_for` reads by name (`<stage>_<field>`).
scrape_batch_size
