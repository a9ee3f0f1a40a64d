-- docingest schema v2: row-level security for the API (defence in depth behind its own filtering),
-- and the index the API's upload deadline sweep uses.
--
-- The API runs each user's transaction as the role docingest_api with the setting
-- docingest.user_id set for that transaction only (see queries.sql: scope_to_user):
--     SELECT set_config('role', 'docingest_api', true), set_config('docingest.user_id', $1, true)
-- Policies then show that role only the rows of that user. The worker, migrations and the
-- CLI run as the owning role, which row security does not restrict.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'docingest_api') THEN
        CREATE ROLE docingest_api NOLOGIN;
    END IF;
    IF NOT pg_has_role(current_user, 'docingest_api', 'MEMBER') THEN
        EXECUTE format('GRANT docingest_api TO %I', current_user);
    END IF;
END;
$$;

GRANT USAGE ON SCHEMA upload_pipeline TO docingest_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    upload_pipeline.documents, upload_pipeline.upload_jobs, upload_pipeline.events,
    upload_pipeline.document_chunk_buffer, upload_pipeline.document_vector_buffer,
    upload_pipeline.document_chunks
    TO docingest_api;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA upload_pipeline TO docingest_api;

-- The request's user; NULL (no row visible) when the setting is absent.
CREATE FUNCTION upload_pipeline.request_user() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('docingest.user_id', true), '') $$;

-- True when the document belongs to the request's user (used by the per-document tables).
CREATE FUNCTION upload_pipeline.owns_document(doc uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM upload_pipeline.documents d
                   WHERE d.document_id = doc AND d.user_id = upload_pipeline.request_user())
$$;
GRANT EXECUTE ON FUNCTION upload_pipeline.request_user(), upload_pipeline.owns_document(uuid)
    TO docingest_api;

ALTER TABLE upload_pipeline.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE upload_pipeline.upload_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE upload_pipeline.events ENABLE ROW LEVEL SECURITY;
ALTER TABLE upload_pipeline.document_chunk_buffer ENABLE ROW LEVEL SECURITY;
ALTER TABLE upload_pipeline.document_vector_buffer ENABLE ROW LEVEL SECURITY;
ALTER TABLE upload_pipeline.document_chunks ENABLE ROW LEVEL SECURITY;

CREATE POLICY documents_owner ON upload_pipeline.documents TO docingest_api
    USING (user_id = upload_pipeline.request_user())
    WITH CHECK (user_id = upload_pipeline.request_user());
CREATE POLICY upload_jobs_read ON upload_pipeline.upload_jobs FOR SELECT TO docingest_api
    USING (upload_pipeline.owns_document(document_id));
CREATE POLICY upload_jobs_insert ON upload_pipeline.upload_jobs FOR INSERT TO docingest_api
    WITH CHECK (upload_pipeline.owns_document(document_id));
CREATE POLICY upload_jobs_update ON upload_pipeline.upload_jobs FOR UPDATE TO docingest_api
    USING (upload_pipeline.owns_document(document_id))
    WITH CHECK (upload_pipeline.owns_document(document_id));
CREATE POLICY upload_jobs_delete ON upload_pipeline.upload_jobs FOR DELETE TO docingest_api
    USING (upload_pipeline.owns_document(document_id));
CREATE POLICY events_read ON upload_pipeline.events FOR SELECT TO docingest_api
    USING (upload_pipeline.owns_document(document_id));
CREATE POLICY events_insert ON upload_pipeline.events FOR INSERT TO docingest_api
    WITH CHECK (upload_pipeline.owns_document(document_id));
CREATE POLICY events_delete ON upload_pipeline.events FOR DELETE TO docingest_api
    USING (upload_pipeline.owns_document(document_id));
CREATE POLICY chunk_buffer_owner ON upload_pipeline.document_chunk_buffer TO docingest_api
    USING (upload_pipeline.owns_document(document_id));
CREATE POLICY vector_buffer_owner ON upload_pipeline.document_vector_buffer TO docingest_api
    USING (upload_pipeline.owns_document(document_id));
CREATE POLICY document_chunks_owner ON upload_pipeline.document_chunks TO docingest_api
    USING (user_id = upload_pipeline.request_user());

-- Jobs waiting for their upload, by deadline (next_attempt_at holds it while state = 'waiting').
CREATE INDEX upload_jobs_waiting
    ON upload_pipeline.upload_jobs (next_attempt_at) WHERE state = 'waiting';
-- Documents by storage key (the local storage service queues the job of a finished upload).
CREATE INDEX documents_raw_path ON upload_pipeline.documents (raw_path);
