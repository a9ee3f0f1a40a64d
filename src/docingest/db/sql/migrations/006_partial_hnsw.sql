-- docingest schema v6: the HNSW index holds only the chunks of users searched through it.
--
-- A user with at most SEARCH_EXACT_MAX_CHUNKS chunks is searched exactly (through the user_id
-- index), never through HNSW, yet every chunk paid an HNSW insert (m 32, ef_construction 200: the
-- dominant PostgreSQL cost of an ingest). Each chunk now says whether it is in the index
-- (hnsw_indexed); the index is partial on it. finalize_document sets it for the chunks of a user
-- who has more chunks than the threshold once the document is in; a large user's search ranks
-- the indexed chunks through HNSW and the rest of theirs (those stored while they were small, a
-- bounded number) exactly, through a partial index on (user_id) of the chunks left out.
-- Rows stored before this migration were all in the index and stay so (DEFAULT true: no rewrite).
ALTER TABLE upload_pipeline.document_chunks ADD COLUMN hnsw_indexed boolean NOT NULL DEFAULT true;

DROP INDEX upload_pipeline.document_chunks_embedding_hnsw;
CREATE INDEX document_chunks_embedding_hnsw
    ON upload_pipeline.document_chunks USING hnsw (embedding vector_cosine_ops)
    WITH (m = 32, ef_construction = 200) WHERE hnsw_indexed;
CREATE INDEX document_chunks_unindexed
    ON upload_pipeline.document_chunks (user_id) WHERE NOT hnsw_indexed;
