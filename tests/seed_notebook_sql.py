"""The SQL statements of the user's seed notebook, character for character, as test data.

The seed notebook (a Jupyter notebook of the user's) loads OpenAI's GPT-2-small explanations and
activation records into SQLite: for every neuron it runs INSERT_NEURON and, per record,
INSERT_ACTIVATION; then it reads each layer's explanations with SELECT_LAYER and writes their
sentence embeddings with UPDATE_EMBEDDING, through plain `sqlite3` cursors. (It creates its
tables with a separate init script, which it does not hold.) An atlas keeps `neurons` and
`activations` as relations these statements can use unchanged (store/sql/006_sql_relations.sql);
tests/test_seed_sql.py runs them against an atlas.

Copied from the notebook with their whitespace (leading newlines, indentation, the space after
`= ?` in UPDATE_EMBEDDING), since "unchanged" is the point; do not reformat them.
"""

INSERT_NEURON = (
    "\n"
    "    INSERT INTO neurons (\n"
    "      id,\n"
    "      layer_index,\n"
    "      neuron_index,\n"
    "      explanation_text,\n"
    "      explanation_ev_correlation_score,\n"
    "      explanation_rsquared_score,\n"
    "      explanation_absolute_dev_explained_score,\n"
    "      activation_mean,\n"
    "      activation_variance,\n"
    "      activation_skewness,\n"
    "      activation_kurtosis\n"
    "    )\n"
    "    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);\n"
    "    "
)

INSERT_ACTIVATION = (
    "\n"
    "    INSERT INTO activations (\n"
    "      neuron_id,\n"
    "      category,\n"
    "      tokens,\n"
    "      activation_values\n"
    "    )\n"
    "    VALUES (?, ?, ?, ?);\n"
    "    "
)

UPDATE_EMBEDDING = (
    "\n    UPDATE neurons\n    SET explanation_embedding = ? \n    WHERE id = ?;\n    "
)

SELECT_LAYER = "SELECT id, explanation_text FROM neurons WHERE layer_index = ?"
