-- docingest schema v4: the SHA-256 of each buffered chunk's text, written with the chunk.
--
-- It is the embedding cache's key (embedding_cache.text_sha256). The chunking stage computes
-- it while it writes the buffer, so the embedding stage plans its work (which chunks to send,
-- which the cache already holds) without reading the texts back first (queries.sql:
-- embedding_plan). Rows buffered before this migration have none; the plan hashes their text.
ALTER TABLE upload_pipeline.document_chunk_buffer
    ADD COLUMN text_sha256 bytea CHECK (length(text_sha256) = 32);
