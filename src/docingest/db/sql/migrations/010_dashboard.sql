-- docingest schema v10: the indexes the dashboard's reads use.
--
-- GET /documents pages a user's documents newest first (document_views: ORDER BY created_at
-- DESC, document_id) and counts them: an index in that order reads one page, not every row of
-- the user sorted. GET /summary lists the workers seen in the last hour from the stage_completed
-- events' `worker` (installation-wide): a partial index on their time reads that hour only.
CREATE INDEX documents_user_created
    ON upload_pipeline.documents (user_id, created_at DESC, document_id);
CREATE INDEX events_stage_completed_created
    ON upload_pipeline.events (created_at) WHERE type = 'stage_completed';
