-- docingest schema v5: a job's control state in its own column, apart from its progress.
--
-- upload_jobs.progress keeps the figures shown to users (pages, chunks, ETA, warnings: the
-- model is domain.JobProgress); upload_jobs.control holds what the pipeline branches on (the
-- sniffed kind, the pending LlamaParse job, the last transient error: domain.JobControl).
-- Both are jsonb objects merged key by key (`||`) by the same one-statement writes; their
-- keys and types are checked by the models where rows are read and written. Jobs written
-- before this migration have their control keys moved out of progress here.
ALTER TABLE upload_pipeline.upload_jobs
    ADD COLUMN control jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(control) = 'object');

UPDATE upload_pipeline.upload_jobs j
SET control = moved.control,
    progress = j.progress - ARRAY['detected_kind', 'detected_mime', 'llamaparse_job_id',
                                  'llamaparse_submitted_at', 'llamaparse_deadline',
                                  'llamaparse_polls', 'llamaparse_last_job_id', 'last_error_code']
FROM (
    SELECT job_id, jsonb_object_agg(e.key, e.value) AS control
    FROM upload_pipeline.upload_jobs, jsonb_each(progress) AS e(key, value)
    WHERE e.key IN ('detected_kind', 'detected_mime', 'llamaparse_job_id',
                    'llamaparse_submitted_at', 'llamaparse_deadline', 'llamaparse_polls',
                    'llamaparse_last_job_id', 'last_error_code')
    GROUP BY job_id
) AS moved
WHERE moved.job_id = j.job_id;
