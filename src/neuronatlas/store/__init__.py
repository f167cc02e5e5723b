"""The one-file store: SQLite schema, migrations and every SQL statement of neuronatlas.

Only this package runs SQL. Writers go through `AtlasWriter`; readers open the file read-only
with `open_reader` and call the functions of `neuronatlas.store.reader`.
"""

from neuronatlas.store.connection import check_writer, open_reader, open_writer, probe_atlas
from neuronatlas.store.rows import Explanation, NeuronData, PreparedNeuron, Record, prepare
from neuronatlas.store.writer import AtlasWriter

__all__ = [
    "AtlasWriter",
    "Explanation",
    "NeuronData",
    "PreparedNeuron",
    "Record",
    "check_writer",
    "open_reader",
    "open_writer",
    "prepare",
    "probe_atlas",
]
