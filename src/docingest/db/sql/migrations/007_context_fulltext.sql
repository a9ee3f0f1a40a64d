-- docingest schema v7: full-text search sees each chunk's context (title > heading path).
--
-- The embedding stage embeds a chunk after its context line (meta->>'embedded_context'); the
-- full-text vector now holds it too, at weight A (ts_rank_cd counts an A match 10 times a D
-- match, the body's default), so a question naming a document's title or section finds its
-- chunks even where the chunk's own words do not repeat them. The generated column is
-- replaced (PostgreSQL before 17 cannot change a generation expression): the table is
-- rewritten once and the GIN index rebuilt. Rows without a context get the body's vector alone.
DROP INDEX IF EXISTS upload_pipeline.document_chunks_tsv;
ALTER TABLE upload_pipeline.document_chunks DROP COLUMN tsv;
ALTER TABLE upload_pipeline.document_chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english', coalesce(meta->>'embedded_context', '')), 'A')
    || to_tsvector('english', text)
) STORED;
CREATE INDEX document_chunks_tsv ON upload_pipeline.document_chunks USING gin (tsv);
