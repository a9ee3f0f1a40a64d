-- docingest schema v8: a document is a version of a source.
--
-- documents.source names what a document is a version of, unique per user among the versions
-- that serve: for `ingest`/`sync` the file's path relative to the root named on the command
-- line (after --source-prefix), for the API the client's `source` (default: the document's
-- id). Identity moves from the bytes (UNIQUE (user_id, file_sha256)) to the source and its
-- bytes: the same bytes under one source are one version; new bytes under a known source are a
-- new version, which replaces the old one when it completes (queries.sql: finalize_replace).
-- Identical bytes under two sources are two documents; the second reuses the first's chunks
-- and vectors (queries.sql: clone_chunks), so content dedupe is a saving, not an identity.
--
-- meta: the user's metadata object (the upload request, `--meta key=value`, Markdown front
-- matter), which search filters on. origin: 'file' for a document registered from the file
-- system (`ingest`, `sync`, `watch`: the only ones `sync` may delete), 'api' for an upload.
-- source_mtime_ns: the file's modification time when it was registered, which lets `sync`
-- skip an unchanged file by (size, mtime) without reading it.
ALTER TABLE upload_pipeline.documents
    ADD COLUMN source text,
    ADD COLUMN meta jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(meta) = 'object'),
    ADD COLUMN origin text NOT NULL DEFAULT 'api' CHECK (origin IN ('api', 'file')),
    ADD COLUMN source_mtime_ns bigint,
    -- The order versions were registered in (taken after the source's advisory lock, so a later
    -- registration of a source always has a larger one): finalize replaces only older versions.
    ADD COLUMN version_seq bigint GENERATED ALWAYS AS IDENTITY;

-- Rows from before: each its own source (its id), as every upload was; registered from files
-- when its first job said so.
UPDATE upload_pipeline.documents d
SET source = d.document_id::text,
    origin = CASE WHEN EXISTS (
        SELECT 1 FROM upload_pipeline.events e
        WHERE e.document_id = d.document_id AND e.type = 'job_created' AND e.payload->>'via' = 'ingest')
        THEN 'file' ELSE 'api' END;

ALTER TABLE upload_pipeline.documents
    ALTER COLUMN source SET NOT NULL,
    ADD CONSTRAINT documents_source_check CHECK (source <> '' AND length(source) <= 4096),  -- 1,024 before NFC
    DROP CONSTRAINT documents_user_sha_key,
    ADD CONSTRAINT documents_user_source_sha_key UNIQUE (user_id, source, file_sha256);
-- A document inserted without a source is a source of its own: its id.
CREATE FUNCTION upload_pipeline.default_source() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.source := coalesce(NEW.source, NEW.document_id::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER documents_default_source
    BEFORE INSERT ON upload_pipeline.documents
    FOR EACH ROW EXECUTE FUNCTION upload_pipeline.default_source();

-- Bytes seen before under another source (clone_chunks' lookup).
CREATE INDEX documents_user_sha ON upload_pipeline.documents (user_id, file_sha256);
-- A user's sources by prefix (sync's plan, the source_prefix filter).
CREATE INDEX documents_user_source ON upload_pipeline.documents (user_id, source text_pattern_ops);

-- Objects of deleted versions, written in the transaction that deletes their rows and removed
-- once the objects are (a transactional outbox): a crash between the commit and the deletes
-- leaves the keys here for the next sweep, not orphan objects no row names.
CREATE TABLE upload_pipeline.object_deletions (
    object_key text PRIMARY KEY,
    queued_at  timestamptz NOT NULL DEFAULT now()
);
GRANT INSERT ON upload_pipeline.object_deletions TO docingest_api;
