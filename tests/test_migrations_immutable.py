"""Shipped migrations never change: every store/sql file must match the checksum recorded here.

An atlas that already ran migration NNN never runs it again, so editing a shipped file would
leave old and new atlases with different schemas under the same version number. A schema change
is a new migration file; after adding one, record its checksum below (the failure message prints
the line to add).
"""

from __future__ import annotations

import hashlib
from importlib import resources

#: sha256 of each shipped migration, line endings normalised to LF.
SHIPPED = {
    "001_foundation.sql": "6e25d40a6a0e835df9cad36f561b53c209377a79d4ed846e0d25c1f4b6766276",
    "003_n2g.sql": "cda6a0b270cb410ae0298ea05f160404022ed018170df9a35a5015236b4f3281",
    "004_embed.sql": "b5b50f74f325e31ec8eac79f0e0292a942ec9e167aa48cf27c2a75572e5bf629",
    "005_float32_values.sql": "063026fbbdffdb74acb135341d802b66c43e281cbe70647ae5a2b54a44767b57",
    "006_sql_relations.sql": "45fb9d93e10f12edfd511d9db7b79da22cae3c295aec6d4de9d77ebd5cbf1b91",
    "007_llm_scores.sql": "62989397d01d59c4ebd6a52335f28710c4632c5ad3d3a95961c29248f727b7b0",
    "009_similar_neurons.sql": "218c423f4cd3af1520f32bd259d51a98061b49dfcc4841fcb6e7505a1b6e7969",
    "010_map_hierarchy.sql": "8e544693350d90db7b1f76c612789d03e72f6ea1e2b1a6da667bc72c6044533b",
    "011_primary_by_key.sql": "c648ccae817bea6af2d411427b25745c183daafef8d88c3a4176c95d405e4fe5",
    "012_trace_graphs.sql": "41ba8d17e8e75fd502ee64c4a8586ea9be2f243b26c1b272ea564becae3f3c22",
    "013_embedder_index.sql": "67c50f744d3a63241a3be7aa9c8053d4444d3ad1c9b6bafd01e08356c442b2c5",
}


def _checksums() -> dict[str, str]:
    folder = resources.files("neuronatlas.store") / "sql"
    return {
        f.name: hashlib.sha256(f.read_bytes().replace(b"\r\n", b"\n")).hexdigest()
        for f in folder.iterdir()
        if f.name.endswith(".sql")
    }


def test_no_shipped_migration_changed_or_vanished():
    found = _checksums()
    for name, digest in SHIPPED.items():
        assert name in found, f"shipped migration store/sql/{name} was removed; restore it"
        assert found[name] == digest, (
            f"shipped migration store/sql/{name} was edited; revert it and put the change in a "
            "new migration file (an atlas never re-runs a version it already has)"
        )


def test_every_migration_has_a_recorded_checksum():
    new = {n: d for n, d in sorted(_checksums().items()) if n not in SHIPPED}
    lines = "\n".join(f'    "{n}": "{d}",' for n, d in new.items())
    assert not new, (
        "new migration without a recorded checksum: add to SHIPPED in "
        f"tests/test_migrations_immutable.py:\n{lines}"
    )
