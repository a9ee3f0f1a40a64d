-- docingest schema v9: embedding generations, so the embedding model can change without a rebuild.
--
-- A generation is the (model, dimensions) that made a set of vectors, with the provider that
-- serves it. Every stored chunk says which generation its vector is of
-- (document_chunks.generation_id), and each user's searches are served by one generation
-- (user_generations). `docingest reembed` (or `docingest worker --reembed`) queues a job per
-- document whose chunks are of another generation than the process's own; each job embeds the
-- stored chunks again, without parsing, into chunk_embeddings_next, and the job that finds every
-- chunk of its user covered switches that user in one transaction: the new vectors replace the
-- old in document_chunks and user_generations names the new generation (queries.sql:
-- switch_generation). Until then searches keep using the old generation's vectors.
--
-- The vector columns lose their fixed dimension (a new generation may have another); the HNSW
-- index becomes one partial expression index per generation,
-- ((embedding::vector(D)) vector_cosine_ops) WHERE hnsw_indexed AND generation_id = G, which the
-- search queries name with the same literal cast and predicate (Repository.ensure_generation
-- creates it for a new generation, CONCURRENTLY). Existing rows get a generation named by their
-- embed_model and the column's dimension; this rewrites document_chunks and rebuilds its HNSW
-- index once.
CREATE TABLE upload_pipeline.embedding_generations (
    generation_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    provider      text NOT NULL CHECK (provider <> ''),
    model         text NOT NULL CHECK (model <> ''),
    dimensions    integer NOT NULL CHECK (dimensions BETWEEN 1 AND 2000),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model, dimensions)
);

CREATE TABLE upload_pipeline.user_generations (
    user_id       text PRIMARY KEY,
    generation_id integer NOT NULL REFERENCES upload_pipeline.embedding_generations,
    switched_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE upload_pipeline.chunk_embeddings_next (
    chunk_id      uuid NOT NULL REFERENCES upload_pipeline.document_chunks ON DELETE CASCADE,
    generation_id integer NOT NULL REFERENCES upload_pipeline.embedding_generations,
    user_id       text NOT NULL,
    embedding     vector NOT NULL,
    PRIMARY KEY (chunk_id, generation_id)
);
CREATE INDEX chunk_embeddings_next_user ON upload_pipeline.chunk_embeddings_next (user_id, generation_id);

-- Re-embedding jobs run through the same queue as ingest jobs.
ALTER TABLE upload_pipeline.upload_jobs
    ADD COLUMN kind text NOT NULL DEFAULT 'ingest' CHECK (kind IN ('ingest', 'reembed'));

-- The provider of a model name docingest wrote before generations were recorded (and of a
-- vector finalized by a worker that did not record its generation first).
CREATE FUNCTION upload_pipeline.provider_of(model text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN model = 'all-MiniLM-L6-v2' THEN 'local'
                WHEN model LIKE 'hashing%' THEN 'hashing'
                ELSE 'openai' END
$$;

INSERT INTO upload_pipeline.embedding_generations (provider, model, dimensions)
SELECT upload_pipeline.provider_of(m.embed_model), m.embed_model, ${embedding_dimensions}
FROM (SELECT embed_model FROM upload_pipeline.document_chunks
      UNION SELECT embed_model FROM upload_pipeline.document_vector_buffer) m;

DROP INDEX upload_pipeline.document_chunks_embedding_hnsw;
ALTER TABLE upload_pipeline.document_chunks
    ADD COLUMN generation_id integer REFERENCES upload_pipeline.embedding_generations;
UPDATE upload_pipeline.document_chunks c SET generation_id = g.generation_id
FROM upload_pipeline.embedding_generations g WHERE g.model = c.embed_model;
ALTER TABLE upload_pipeline.document_chunks
    ALTER COLUMN generation_id SET NOT NULL,
    ALTER COLUMN embedding TYPE vector;
ALTER TABLE upload_pipeline.document_vector_buffer ALTER COLUMN embedding TYPE vector;
CREATE INDEX document_chunks_user_generation
    ON upload_pipeline.document_chunks (user_id, generation_id);

INSERT INTO upload_pipeline.user_generations (user_id, generation_id)
SELECT DISTINCT ON (user_id) user_id, generation_id
FROM (SELECT user_id, generation_id, count(*) AS n FROM upload_pipeline.document_chunks
      GROUP BY user_id, generation_id) s
ORDER BY user_id, n DESC, generation_id;

DO $$
DECLARE g record;
BEGIN
    FOR g IN SELECT generation_id, dimensions FROM upload_pipeline.embedding_generations LOOP
        EXECUTE format(
            'CREATE INDEX document_chunks_hnsw_g%s ON upload_pipeline.document_chunks '
            'USING hnsw ((embedding::vector(%s)) vector_cosine_ops) WITH (m = 32, ef_construction = 200) '
            'WHERE hnsw_indexed AND generation_id = %s',
            g.generation_id, g.dimensions, g.generation_id);
    END LOOP;
END;
$$;

GRANT SELECT ON upload_pipeline.embedding_generations, upload_pipeline.user_generations TO docingest_api;
GRANT SELECT, DELETE ON upload_pipeline.chunk_embeddings_next TO docingest_api;
ALTER TABLE upload_pipeline.chunk_embeddings_next ENABLE ROW LEVEL SECURITY;
CREATE POLICY chunk_embeddings_next_owner ON upload_pipeline.chunk_embeddings_next TO docingest_api
    USING (user_id = upload_pipeline.request_user());
ALTER TABLE upload_pipeline.user_generations ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_generations_owner ON upload_pipeline.user_generations TO docingest_api
    USING (user_id = upload_pipeline.request_user());

-- A chunk stored without a generation (a caller that did not name it) is of the generation of
-- its model and vector length, recorded if new, and its user is served by it if by none yet.
-- finalize_insert names it, and settle_user_generation serves it: the trigger does not fire.
CREATE FUNCTION upload_pipeline.chunk_generation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO upload_pipeline.embedding_generations (provider, model, dimensions)
    VALUES (upload_pipeline.provider_of(NEW.embed_model), NEW.embed_model, vector_dims(NEW.embedding))
    ON CONFLICT (model, dimensions) DO NOTHING;
    SELECT generation_id INTO NEW.generation_id FROM upload_pipeline.embedding_generations
    WHERE model = NEW.embed_model AND dimensions = vector_dims(NEW.embedding);
    INSERT INTO upload_pipeline.user_generations (user_id, generation_id)
    VALUES (NEW.user_id, NEW.generation_id) ON CONFLICT (user_id) DO NOTHING;
    RETURN NEW;
END;
$$;
CREATE TRIGGER document_chunks_generation
    BEFORE INSERT ON upload_pipeline.document_chunks
    FOR EACH ROW WHEN (NEW.generation_id IS NULL)
    EXECUTE FUNCTION upload_pipeline.chunk_generation();
