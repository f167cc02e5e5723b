"""Typed errors, in one place. The CLI turns them into one-line messages (exit code
`exit_code`: 1, or 2 for a --db file that is not a usable atlas) and the web layer into one
JSON error shape; library code never swallows them."""


class NeuronAtlasError(Exception):
    """Base class: an error a user can act on. The message says what to do."""

    #: The CLI's exit status for this error.
    exit_code = 1


class AtlasUnusable(NeuronAtlasError):
    """The atlas file cannot be used by this command (missing, not an atlas, damaged, of
    another version, locked, read-only). Raised by `store.open_reader` / `open_writer` before
    anything is read or written; the CLI exits with 2, like a usage error, since the fix is a
    different file or a command to run first."""

    exit_code = 2


class NotAnAtlas(AtlasUnusable):
    """A directory, an empty file, random bytes, a damaged (e.g. truncated) SQLite file or
    another application's database."""


class AtlasLocked(AtlasUnusable):
    """Another process holds the atlas's write lock for longer than this one waits."""


class AtlasReadOnly(AtlasUnusable):
    """A writer was given a file, or a folder, that is marked read-only."""


class BadNeuronId(NeuronAtlasError, ValueError):
    """A neuron id that does not parse."""


class NeuronNotFound(NeuronAtlasError, KeyError):
    """A well-formed id that is not in this atlas."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else "neuron not found"


class AtlasNotFound(AtlasUnusable, FileNotFoundError):
    """The database file does not exist."""


class SchemaTooNew(AtlasUnusable):
    """The database was written by a newer neuronatlas."""


class SchemaTooOld(AtlasUnusable):
    """The atlas was written by an older neuronatlas; a writer migrates it in place."""


class BadInput(NeuronAtlasError, ValueError):
    """An input file or value that cannot be used; the message names it and the fix."""


class NotASeedDatabase(BadInput):
    """A file given as the seed notebook's database that lacks its tables or columns (the CLI
    exits with code 2: the argument is wrong, not the run)."""


class MixedEmbedders(NeuronAtlasError):
    """Embeddings from a different embedder than the one already stored."""


class ModelUnavailable(NeuronAtlasError):
    """The model needed for a live feature cannot be loaded here."""


class StageNotBuilt(NeuronAtlasError):
    """The atlas lacks a stage a feature needs (e.g. a map before `neuronatlas map` ran)."""


class QueryTimeout(NeuronAtlasError):
    """A bounded read ran past its time limit and was interrupted."""


class StateFormatError(BadInput):
    """A scrape state or checkpoint file in a format this version cannot read."""


class LLMError(NeuronAtlasError):
    """An LLM call that failed for good (after its retries) or answered something unusable."""


class LLMRefused(LLMError):
    """The endpoint rejected the request itself (a 4xx other than 429): asking the same again
    cannot help, asking differently (e.g. without logprobs) may."""


class ScoringFailed(NeuronAtlasError):
    """A score that cannot be computed honestly (too few records, answers that did not
    parse, a constant prediction). It is reported, never stored."""
