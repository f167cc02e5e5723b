-- 013: every chunk that `embed` writes first checks that no other embedder's vectors are
-- stored. Without an index that check read every stored vector's row, so writing n vectors
-- cost O(n²): at GPT-2 XL's 307,200 neurons it took most of the 20 minutes of `embed`.
-- With this index the check is two seeks (store.embed.check_embedder).
CREATE INDEX IF NOT EXISTS embeddings_by_embedder ON embeddings(embedder);
