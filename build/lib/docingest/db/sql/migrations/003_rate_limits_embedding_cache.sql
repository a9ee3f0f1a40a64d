-- docingest schema v2 (issue 4): one rate limit for all workers, and the embedding cache.

-- Token buckets shared by every worker process on every host. A bucket holds at most
-- `capacity` tokens and gains `refill_per_second`; a request takes its cost from every
-- bucket it needs in one UPDATE (db/sql/queries.sql: rate_limit_acquire). After a 429,
-- `blocked_until` makes every worker wait, not only the one that got it.
CREATE TABLE upload_pipeline.rate_limits (
    bucket            text PRIMARY KEY,
    capacity          double precision NOT NULL CHECK (capacity > 0),
    refill_per_second double precision NOT NULL CHECK (refill_per_second > 0),
    tokens            double precision NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    blocked_until     timestamptz
);

-- Vectors already paid for: keyed by (model, dimensions, SHA-256 of the exact chunk text),
-- shared by every document of every user. `embedding` is unconstrained `vector` because
-- the dimension is part of the key.
CREATE TABLE upload_pipeline.embedding_cache (
    model       text NOT NULL,
    dimensions  integer NOT NULL CHECK (dimensions > 0),
    text_sha256 bytea NOT NULL CHECK (length(text_sha256) = 32),
    embedding   vector NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, dimensions, text_sha256)
);
