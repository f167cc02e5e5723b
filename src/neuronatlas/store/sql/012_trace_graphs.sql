-- Attribution graphs saved by `neuronatlas trace --save` (issue 23). The graph itself is the
-- msgspec JSON of neuronatlas.trace.TraceGraph (pruned nodes and links, settings, timings);
-- the other columns are what a listing shows without decoding it.
CREATE TABLE trace_graphs (
  id         INTEGER PRIMARY KEY,
  created_at TEXT NOT NULL,
  model      TEXT NOT NULL,
  prompt     TEXT NOT NULL,
  target     TEXT NOT NULL,
  n_nodes    INTEGER NOT NULL,
  n_links    INTEGER NOT NULL,
  graph      BLOB NOT NULL
);
