-- Every query docingest runs, under "-- name: NAME" headers; run only by db/repository.py.

-- name: claim_job
-- Claim one job in one statement: a working job whose lease expired (taken over first), else
-- the queued or retryable job due the longest. Each kind is read in order from its partial
-- index (upload_jobs_leased, upload_jobs_claimable) and the first row that no other claim
-- holds is locked (FOR UPDATE SKIP LOCKED): the cost does not grow with the backlog (one
-- OR-ed scan sorted every claimable row: 2.8 ms a claim with 20,000 queued, 0.3 ms now). The
-- queued branch runs only when no expired lease was found. The claimed job's document comes
-- back in the same row (columns doc_*), so a worker needs no second round trip before
-- running the first stage. previous_worker is the worker whose lease expired (a takeover).
WITH expired AS (
    SELECT job_id, state AS previous_state, claimed_by AS previous_worker
    FROM upload_pipeline.upload_jobs
    WHERE state = 'working' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), due AS (
    SELECT job_id, state AS previous_state, NULL::text AS previous_worker
    FROM upload_pipeline.upload_jobs
    WHERE state IN ('queued', 'retryable') AND next_attempt_at <= now()
    ORDER BY next_attempt_at
    LIMIT 1
    FOR UPDATE SKIP LOCKED
), candidate AS (
    (SELECT * FROM expired) UNION ALL (SELECT * FROM due) LIMIT 1
)
UPDATE upload_pipeline.upload_jobs j
SET state = 'working',
    attempt_id = gen_random_uuid(),
    claimed_by = %(worker_id)s,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s),
    attempts = j.attempts + 1,
    lost_leases = j.lost_leases + (candidate.previous_state = 'working')::int,
    updated_at = now()
FROM candidate, upload_pipeline.documents d
WHERE j.job_id = candidate.job_id AND d.document_id = j.document_id
RETURNING j.*, candidate.previous_state, candidate.previous_worker,
          d.document_id AS doc_document_id, d.user_id AS doc_user_id, d.filename AS doc_filename,
          d.mime AS doc_mime, d.bytes_len AS doc_bytes_len, d.file_sha256 AS doc_file_sha256,
          d.raw_path AS doc_raw_path, d.parsed_path AS doc_parsed_path,
          d.parsed_sha256 AS doc_parsed_sha256, d.page_count AS doc_page_count,
          d.created_at AS doc_created_at, d.updated_at AS doc_updated_at,
          d.source AS doc_source, d.meta AS doc_meta, d.origin AS doc_origin,
          d.source_mtime_ns AS doc_source_mtime_ns, d.version_seq AS doc_version_seq;

-- name: fence
-- Lock the job row and check this attempt still holds it; inside the handler's transaction.
SELECT job_id FROM upload_pipeline.upload_jobs
WHERE job_id = %(job_id)s AND attempt_id = %(attempt_id)s AND state = 'working'
FOR UPDATE;

-- name: renew_leases
-- The heartbeat: extend the leases of the attempts listed, and name the jobs they still hold.
-- It never waits for a row lock: a job row locked by its own attempt's fenced transaction (a
-- long finalize holds it for its HNSW inserts, tens of seconds on a slow machine) is skipped,
-- not waited for. Waiting stalled the heartbeat of every job the worker held, and their leases
-- expired under a live worker. A skipped job still counts as held when its committed row names
-- the attempt; claims skip locked rows too, and the holder's own writes extend the lease (a
-- checkpoint, update_progress; a transition, complete_stage) when its transaction ends.
WITH held AS (
    SELECT * FROM unnest(%(job_ids)s::uuid[], %(attempt_ids)s::uuid[]) AS h(job_id, attempt_id)
), ours AS (
    SELECT j.job_id FROM upload_pipeline.upload_jobs j JOIN held ON held.job_id = j.job_id
    WHERE j.attempt_id = held.attempt_id AND j.state = 'working'
), renewed AS (
    UPDATE upload_pipeline.upload_jobs j
    SET lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
    FROM (SELECT j2.job_id FROM upload_pipeline.upload_jobs j2
          WHERE j2.job_id IN (SELECT job_id FROM ours)
          FOR UPDATE OF j2 SKIP LOCKED) AS free
    WHERE j.job_id = free.job_id
    RETURNING j.job_id
)
SELECT job_id FROM ours;

-- name: complete_stage
-- A stage's transition in one statement, fenced by the attempt: the job moves from
-- from_stage to stage (or is rescheduled at its stage: state 'queued' after delay_seconds),
-- the progress and control objects given are merged into the job's, and the events (a jsonb array of {stage, type, payload}, written in order) are inserted.
-- When the attempt no longer holds the job at from_stage, no row comes back and nothing is
-- written: the UPDATE matches nothing, so the INSERT selects nothing. Alone on an autocommit
-- connection this is the whole transaction (one round trip); after a handler's writes it
-- runs in their fenced transaction.
WITH j AS (
    UPDATE upload_pipeline.upload_jobs
    SET stage = %(stage)s,
        state = %(state)s,
        progress = progress || %(progress)s::jsonb,
        control = control || %(control)s::jsonb,
        retry_count = CASE WHEN %(stage)s::text <> stage THEN 0 ELSE retry_count END,
        -- A job that stays working keeps next_attempt_at, and its lease unless less than half
        -- of it is left (the heartbeat renews it anyway): with no indexed column changed the
        -- update can be HOT: no new entry in any of the table's six indexes.
        next_attempt_at = CASE WHEN %(state)s::text = 'working' THEN next_attempt_at
                               ELSE now() + make_interval(secs => %(delay_seconds)s) END,
        lease_expires_at = CASE
            WHEN %(state)s::text <> 'working' THEN NULL
            WHEN lease_expires_at > now() + make_interval(secs => %(lease_seconds)s / 2)
                THEN lease_expires_at
            ELSE now() + make_interval(secs => %(lease_seconds)s) END,
        attempt_id = CASE WHEN %(state)s::text = 'working' THEN attempt_id END,
        claimed_by = CASE WHEN %(state)s::text = 'working' THEN claimed_by END,
        finished_at = CASE WHEN %(state)s::text = 'done' THEN now() END,
        updated_at = now()
    WHERE job_id = %(job_id)s AND attempt_id = %(attempt_id)s AND state = 'working'
      AND stage = %(from_stage)s
    RETURNING *
), ev AS (
    INSERT INTO upload_pipeline.events (job_id, document_id, stage, type, payload)
    SELECT j.job_id, j.document_id, e.event->>'stage', e.event->>'type',
           coalesce(e.event->'payload', '{}'::jsonb)
    FROM j, jsonb_array_elements(%(events)s::jsonb) WITH ORDINALITY AS e(event, n)
    ORDER BY e.n
)
SELECT * FROM j;

-- name: update_progress
-- A checkpoint, inside the attempt's fenced transaction: it also extends the lease, as the
-- heartbeat does, since the heartbeat skips a row its attempt holds locked (renew_leases).
UPDATE upload_pipeline.upload_jobs
SET progress = progress || %(progress)s::jsonb, control = control || %(control)s::jsonb,
    updated_at = now(), lease_expires_at = now() + make_interval(secs => %(lease_seconds)s)
WHERE job_id = %(job_id)s
RETURNING progress;

-- name: retry_job_later
UPDATE upload_pipeline.upload_jobs
SET state = 'retryable',
    retry_count = retry_count + 1,
    next_attempt_at = now() + make_interval(secs => %(delay_seconds)s),
    attempt_id = NULL, claimed_by = NULL, lease_expires_at = NULL,
    error_message = %(error_message)s,
    control = control || jsonb_build_object('last_error_code', %(error_code)s::text),
    updated_at = now()
WHERE job_id = %(job_id)s AND attempt_id = %(attempt_id)s AND state = 'working'
RETURNING *;

-- name: fail_job
UPDATE upload_pipeline.upload_jobs
SET state = 'failed', error_code = %(error_code)s, error_message = %(error_message)s,
    attempt_id = NULL, claimed_by = NULL, lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE job_id = %(job_id)s AND attempt_id = %(attempt_id)s AND state = 'working'
RETURNING *;

-- name: release_job
-- Give a held job back (graceful shutdown): claimable again at once, no retry counted.
UPDATE upload_pipeline.upload_jobs
SET state = 'queued', attempt_id = NULL, claimed_by = NULL, lease_expires_at = NULL,
    next_attempt_at = now(), updated_at = now()
WHERE job_id = %(job_id)s AND attempt_id = %(attempt_id)s AND state = 'working'
RETURNING job_id;

-- name: requeue_failed_job
-- A failed job back to work at its stage: queued now, or, with upload_deadline_seconds (only
-- for a job that failed at 'uploaded', before its bytes were verified), waiting for a new
-- upload until that deadline.
UPDATE upload_pipeline.upload_jobs
SET state = CASE WHEN %(upload_deadline_seconds)s::float8 IS NULL THEN 'queued' ELSE 'waiting' END,
    error_code = NULL, error_message = NULL, retry_count = 0, lost_leases = 0,
    next_attempt_at = now() + make_interval(secs => coalesce(%(upload_deadline_seconds)s::float8, 0)),
    finished_at = NULL, updated_at = now()
WHERE job_id = %(job_id)s AND state = 'failed'
  AND (%(upload_deadline_seconds)s::float8 IS NULL OR stage = 'uploaded')
RETURNING *;

-- name: redeclare_document
-- The declaration of bytes registered or requested again after a failed or pending upload:
-- their size and type, and (when given) the display name and the storage key.
UPDATE upload_pipeline.documents
SET bytes_len = %(bytes_len)s, mime = %(mime)s, filename = coalesce(%(filename)s, filename),
    raw_path = coalesce(%(raw_path)s, raw_path), updated_at = now()
WHERE document_id = %(document_id)s
RETURNING *;

-- name: insert_event
INSERT INTO upload_pipeline.events (job_id, document_id, stage, type, payload)
VALUES (%(job_id)s, %(document_id)s, %(stage)s, %(type)s, %(payload)s::jsonb);

-- name: get_job
-- A job, of user_id's documents only unless user_id is NULL.
SELECT j.* FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE j.job_id = %(job_id)s AND (%(user_id)s::text IS NULL OR d.user_id = %(user_id)s);

-- name: get_document
SELECT * FROM upload_pipeline.documents WHERE document_id = %(document_id)s;

-- name: find_version
-- The version of a source with these bytes, if the user has one.
SELECT * FROM upload_pipeline.documents
WHERE user_id = %(user_id)s AND source = %(source)s AND file_sha256 = %(file_sha256)s;

-- name: lock_source
-- Registrations of one source run one at a time (until the transaction ends), so of two
-- updates sent together the later one (by version_seq) is the one left in flight.
SELECT pg_advisory_xact_lock(hashtextextended(%(user_id)s || E'\x1f' || %(source)s, 8)) IS NULL AS locked;

-- name: lock_stale_versions
-- Before deleting the versions of a source that serve nothing (in flight or failed), other
-- than keep: their jobs locked in the worker's order (job row, then the document through
-- foreign keys), as lock_document_jobs does for a delete.
SELECT j.job_id FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE d.user_id = %(user_id)s AND d.source = %(source)s AND d.document_id <> %(keep)s
  AND NOT EXISTS (SELECT 1 FROM upload_pipeline.upload_jobs s
                  WHERE s.document_id = d.document_id AND s.state = 'done')
ORDER BY j.job_id
FOR UPDATE OF j;

-- name: delete_stale_versions
-- The versions lock_stale_versions locked (re-read: one that completed meanwhile now serves,
-- and stays). Jobs, events, buffers go with them (cascade).
DELETE FROM upload_pipeline.documents d
WHERE d.user_id = %(user_id)s AND d.source = %(source)s AND d.document_id <> %(keep)s
  AND NOT EXISTS (SELECT 1 FROM upload_pipeline.upload_jobs s
                  WHERE s.document_id = d.document_id AND s.state = 'done')
RETURNING *;

-- name: lock_source_jobs
-- Before deleting every version of a source (sync: the file is gone): their jobs, locked in
-- the worker's order.
SELECT j.job_id FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE d.user_id = %(user_id)s AND d.source = %(source)s
ORDER BY j.job_id
FOR UPDATE OF j;

-- name: delete_source
DELETE FROM upload_pipeline.documents WHERE user_id = %(user_id)s AND source = %(source)s
RETURNING *;

-- name: lock_attachment_jobs
-- Before deleting the documents attached to messages (012): their jobs, locked in the worker's
-- order, as lock_document_jobs does for a delete.
SELECT j.job_id FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE d.user_id = %(user_id)s AND d.meta ? 'attached_to'
  AND d.meta->>'attached_to' = ANY(%(document_ids)s::text[])
ORDER BY j.job_id
FOR UPDATE OF j;

-- name: delete_attachments
-- The documents attached to these messages (meta.attached_to, 012); jobs, events, buffers and
-- chunks go with them (cascade). After lock_attachment_jobs.
DELETE FROM upload_pipeline.documents d
WHERE d.user_id = %(user_id)s AND d.meta ? 'attached_to'
  AND d.meta->>'attached_to' = ANY(%(document_ids)s::text[])
RETURNING *;

-- name: attached_documents
-- The documents attached to these messages (012), in registration order.
SELECT document_id FROM upload_pipeline.documents
WHERE meta ? 'attached_to' AND meta->>'attached_to' = ANY(%(document_ids)s::text[])
ORDER BY version_seq;

-- name: attach_document
-- An attachment's document (the same bytes under the same source: a message's earlier version
-- had it too) now belongs to this message.
UPDATE upload_pipeline.documents
SET meta = meta || jsonb_build_object('attached_to', %(attached_to)s::text), updated_at = now()
WHERE document_id = %(document_id)s
RETURNING *;

-- name: queue_object_deletions
-- Objects of rows just deleted, to delete once the transaction commits (the outbox of 008).
-- A key with `retain_until` (a signed upload URL may still write it, 011) stays queued until then.
INSERT INTO upload_pipeline.object_deletions (object_key, retain_until)
SELECT k, r FROM unnest(%(keys)s::text[], %(retain_until)s::timestamptz[]) AS t(k, r)
ON CONFLICT DO NOTHING;

-- name: pending_object_deletions
-- Keys whose upload window (if any) has ended.
SELECT object_key FROM upload_pipeline.object_deletions
WHERE queued_at < now() - make_interval(secs => %(min_age_seconds)s)
  AND (retain_until IS NULL OR retain_until < now())
ORDER BY queued_at, object_key
LIMIT %(limit)s;

-- name: forget_object_deletions
-- Their objects are deleted; a key a signed upload URL may still write stays (011).
DELETE FROM upload_pipeline.object_deletions
WHERE object_key = ANY(%(keys)s::text[]) AND (retain_until IS NULL OR retain_until < now());

-- name: upload_deadlines
-- The upload deadlines (URL lifetime + grace) of the user's waiting jobs of one document or of
-- every version of one source, before they are deleted.
SELECT d.document_id, max(j.next_attempt_at) AS deadline
FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE d.user_id = %(user_id)s AND j.state = 'waiting'
  AND (d.document_id = %(document_id)s OR d.source = %(source)s)
GROUP BY d.document_id;

-- name: document_by_raw_key
SELECT document_id FROM upload_pipeline.documents WHERE raw_path = %(raw_path)s LIMIT 1;

-- name: source_versions
-- Every version of one source of the user's, newest first, with its latest job.
SELECT d.*, j.job_id, j.stage, j.state, j.error_code
FROM upload_pipeline.documents d
LEFT JOIN LATERAL (
    SELECT * FROM upload_pipeline.upload_jobs j WHERE j.document_id = d.document_id
    ORDER BY j.created_at DESC LIMIT 1
) j ON true
WHERE d.user_id = %(user_id)s AND d.source = %(source)s
ORDER BY d.version_seq DESC;

-- name: sources_under
-- The user's sources starting with prefix, one row per version, with its latest job's state
-- (sync's plan reads the newest version of each source); origin NULL: every origin.
SELECT d.document_id, d.source, d.file_sha256, d.bytes_len, d.source_mtime_ns, d.origin,
       d.version_seq, d.filename, j.state, j.error_code
FROM upload_pipeline.documents d
LEFT JOIN LATERAL (
    SELECT state, error_code FROM upload_pipeline.upload_jobs j WHERE j.document_id = d.document_id
    ORDER BY j.created_at DESC LIMIT 1
) j ON true
WHERE d.user_id = %(user_id)s AND d.source LIKE %(pattern)s
  AND (%(origin)s::text IS NULL OR d.origin = %(origin)s)
ORDER BY d.source, d.version_seq;

-- name: merge_document_meta
-- meta's keys set on the document (theirs win), unless it has them all already; the row when it
-- changed.
UPDATE upload_pipeline.documents SET meta = meta || %(meta)s::jsonb, updated_at = now()
WHERE document_id = %(document_id)s AND NOT meta @> %(meta)s::jsonb
RETURNING document_id;

-- name: add_document_meta_defaults
-- Keys the document's metadata lacks (a Markdown file's front matter): its own keys win.
UPDATE upload_pipeline.documents SET meta = %(meta)s::jsonb || meta, updated_at = now()
WHERE document_id = %(document_id)s;

-- name: set_source_mtime
UPDATE upload_pipeline.documents SET source_mtime_ns = %(source_mtime_ns)s
WHERE document_id = %(document_id)s;

-- name: reusable_chunks
-- A complete document of the same user with the same bytes whose chunks the new one can take
-- (clone_chunks), the most recent first; none: it is parsed, chunked and embedded as usual.
SELECT d.document_id, d.page_count, d.parsed_sha256,
       (SELECT count(*) FROM upload_pipeline.document_chunks c WHERE c.document_id = d.document_id) AS chunks
FROM upload_pipeline.documents d
WHERE d.user_id = %(user_id)s AND d.file_sha256 = %(file_sha256)s AND d.document_id <> %(document_id)s
  AND EXISTS (SELECT 1 FROM upload_pipeline.document_chunks c WHERE c.document_id = d.document_id)
ORDER BY d.version_seq DESC
LIMIT 1;

-- name: clone_chunks
-- The chunks and vectors of from_document, buffered as the new document's (new chunk ids),
-- for finalize_document to store and switch in as if they had been parsed and embedded here.
-- The page count and parsed hash come along (the parsed artifact itself is not copied).
WITH src AS (
    SELECT c.*, gen_random_uuid() AS new_chunk_id FROM upload_pipeline.document_chunks c
    WHERE c.document_id = %(from_document_id)s
), chunks AS (
    INSERT INTO upload_pipeline.document_chunk_buffer
        (chunk_id, document_id, ordinal, text, meta, token_count, text_sha256)
    SELECT new_chunk_id, %(document_id)s, ordinal, text, meta, token_count,
           sha256(convert_to(COALESCE(meta->>'embedded_context' || E'\n\n', '') || text, 'UTF8'))
    FROM src
    RETURNING chunk_id
), doc AS (
    UPDATE upload_pipeline.documents n
    SET page_count = f.page_count, parsed_sha256 = f.parsed_sha256, updated_at = now()
    FROM upload_pipeline.documents f
    WHERE n.document_id = %(document_id)s AND f.document_id = %(from_document_id)s
)
SELECT (SELECT count(*) FROM chunks) AS chunks;

-- name: clone_vectors
-- After clone_chunks (a statement of its own: the vector buffer references the chunk buffer).
INSERT INTO upload_pipeline.document_vector_buffer (chunk_id, document_id, embedding, embed_model)
SELECT b.chunk_id, b.document_id, c.embedding, c.embed_model
FROM upload_pipeline.document_chunk_buffer b
JOIN upload_pipeline.document_chunks c
  ON c.document_id = %(from_document_id)s AND c.ordinal = b.ordinal
WHERE b.document_id = %(document_id)s;

-- name: insert_document
-- Insert a document unless the user already has these bytes under this source (no document
-- columns then; source NULL: the document's id, a source of its own (migration 008's trigger)), or,
-- with max_active, has that many unfinished jobs. active_jobs: the user's unfinished jobs,
-- counted up to max_active only (the cost stays bounded; 0 without a limit).
WITH active AS (
    SELECT count(*) AS n FROM (
        SELECT 1
        FROM upload_pipeline.documents d
        JOIN upload_pipeline.upload_jobs j
          ON j.document_id = d.document_id AND j.state NOT IN ('done', 'failed')
        WHERE d.user_id = %(user_id)s
        LIMIT coalesce(%(max_active)s::int, 0)
    ) a
), doc AS (
    INSERT INTO upload_pipeline.documents
        (document_id, user_id, filename, mime, bytes_len, file_sha256, raw_path, source, meta,
         origin, source_mtime_ns)
    SELECT %(document_id)s, %(user_id)s, %(filename)s, %(mime)s, %(bytes_len)s, %(file_sha256)s,
           %(raw_path)s, %(source)s, %(meta)s::jsonb, %(origin)s,
           %(source_mtime_ns)s
    FROM active WHERE %(max_active)s::int IS NULL OR active.n < %(max_active)s::int
    ON CONFLICT (user_id, source, file_sha256) DO NOTHING
    RETURNING *
)
SELECT active.n AS active_jobs, doc.* FROM active LEFT JOIN doc ON true;

-- name: insert_job
-- A document's new job at 'uploaded' and its job_created event, in one statement: queued,
-- waiting for its upload until now + wait_seconds, or failed at once (error_code set: refused
-- at registration). No row when the document does not exist (an insert_document that
-- inserted nothing, in the same pipeline).
WITH job AS (
    INSERT INTO upload_pipeline.upload_jobs
        (job_id, document_id, stage, state, next_attempt_at, error_code, error_message, finished_at)
    SELECT %(job_id)s, d.document_id, 'uploaded', %(state)s,
           now() + make_interval(secs => %(wait_seconds)s::float8), %(error_code)s, %(error_message)s,
           CASE WHEN %(state)s::text = 'failed' THEN now() END
    FROM upload_pipeline.documents d WHERE d.document_id = %(document_id)s
    RETURNING *
), ev AS (
    INSERT INTO upload_pipeline.events (job_id, document_id, stage, type, payload)
    SELECT job.job_id, job.document_id, 'uploaded', 'job_created',
           jsonb_build_object('via', %(via)s::text, 'state', job.state, 'bytes_len', d.bytes_len,
                              'mime', d.mime)
    FROM job JOIN upload_pipeline.documents d ON d.document_id = job.document_id
)
SELECT * FROM job;

-- name: latest_job_for_document
SELECT * FROM upload_pipeline.upload_jobs WHERE document_id = %(document_id)s
ORDER BY created_at DESC LIMIT 1;

-- name: update_document_parsed
UPDATE upload_pipeline.documents
SET parsed_path = %(parsed_path)s, page_count = %(page_count)s, updated_at = now()
WHERE document_id = %(document_id)s;

-- name: update_document_parsed_sha
UPDATE upload_pipeline.documents SET parsed_sha256 = %(parsed_sha256)s, updated_at = now()
WHERE document_id = %(document_id)s;

-- name: delete_chunk_buffer
DELETE FROM upload_pipeline.document_chunk_buffer WHERE document_id = %(document_id)s;

-- name: embedding_plan
-- Every buffered chunk of a document in order: whether it has a vector yet, the SHA-256 of its
-- text (the embedding cache's key, written with the chunk; hashed here only for a chunk buffered
-- before migration 004) and, with the cache on, the vector the cache holds for that text and
-- model. No text is sent back: the embedding stage reads the texts it sends a block at a time
-- (chunk_texts), while its first requests are in flight. The cache is
-- probed by a correlated subquery on its whole primary key, one index lookup per chunk whatever
-- the statistics say (a join was planned as a nested loop over the whole cache when they were
-- stale), and not at all when the cache is off or the chunk has its vector. Each chunk's vector is
-- looked for only when the document has any (a first run has none: a third of the plan's time).
-- One page by ordinal: the chunks after %(after_ordinal)s (NULL: from the first), at most
-- %(limit)s of them (NULL: all), so the stage can start sending the first page's texts while
-- it reads the rest.
WITH started AS (
    SELECT EXISTS (SELECT 1 FROM upload_pipeline.document_vector_buffer
                   WHERE document_id = %(document_id)s) AS any_vector
)
SELECT c.chunk_id, c.ordinal, c.token_count, v.has_vector, h.text_sha256,
       CASE WHEN %(use_cache)s AND NOT v.has_vector THEN
           (SELECT e.embedding FROM upload_pipeline.embedding_cache e
            WHERE e.model = %(model)s AND e.dimensions = %(dimensions)s
              AND e.text_sha256 = h.text_sha256)
       END AS cached
FROM upload_pipeline.document_chunk_buffer c
CROSS JOIN started
CROSS JOIN LATERAL (SELECT started.any_vector AND EXISTS (
    SELECT 1 FROM upload_pipeline.document_vector_buffer b WHERE b.chunk_id = c.chunk_id) AS has_vector) v
CROSS JOIN LATERAL (SELECT COALESCE(c.text_sha256, sha256(convert_to(
    COALESCE(c.meta->>'embedded_context' || E'\n\n', '') || c.text, 'UTF8'))) AS text_sha256) h
WHERE c.document_id = %(document_id)s
  AND (%(after_ordinal)s::int IS NULL OR c.ordinal > %(after_ordinal)s::int)
ORDER BY c.ordinal
LIMIT %(limit)s::bigint;

-- name: chunk_texts
SELECT chunk_id, text, meta->>'embedded_context' AS context FROM upload_pipeline.document_chunk_buffer
WHERE document_id = %(document_id)s AND chunk_id = ANY(%(chunk_ids)s::uuid[]);

-- name: buffer_counts
SELECT (SELECT count(*) FROM upload_pipeline.document_chunk_buffer WHERE document_id = %(document_id)s) AS chunks,
       (SELECT count(*) FROM upload_pipeline.document_vector_buffer WHERE document_id = %(document_id)s) AS vectors,
       (SELECT count(*) FROM upload_pipeline.document_chunks WHERE document_id = %(document_id)s) AS final;

-- name: finalize_delete_old
DELETE FROM upload_pipeline.document_chunks WHERE document_id = %(document_id)s;

-- name: finalize_replace
-- The switch, in finalize's transaction after the new chunks are in: the source's older
-- versions go (their chunks, jobs and events with them), so a search sees the old version's
-- chunks or the new one's, never both and never none.
DELETE FROM upload_pipeline.documents o
USING upload_pipeline.documents n
WHERE n.document_id = %(document_id)s AND o.user_id = n.user_id AND o.source = n.source
  AND o.version_seq < n.version_seq
RETURNING o.*;

-- name: finalize_insert
-- hnsw_indexed: whether the user, with this document's chunks, has more than
-- %(hnsw_min_chunks)s chunks (they are then searched through the HNSW index, which these rows
-- join; below it they are searched exactly and skip the index's costly inserts). The user's
-- other chunks are counted once (up to that cap), not once per inserted row.
WITH owner AS (
    SELECT user_id FROM upload_pipeline.documents WHERE document_id = %(document_id)s
), others AS (
    SELECT count(*) AS n FROM (
        SELECT 1 FROM upload_pipeline.document_chunks o, owner
        WHERE o.user_id = owner.user_id AND o.document_id <> %(document_id)s
        LIMIT %(hnsw_min_chunks)s + 1) s
)
INSERT INTO upload_pipeline.document_chunks
    (chunk_id, document_id, user_id, ordinal, text, meta, token_count, embedding, embed_model,
     hnsw_indexed, generation_id)
SELECT c.chunk_id, c.document_id, owner.user_id, c.ordinal, c.text, c.meta, c.token_count,
       v.embedding, v.embed_model, %(buffered)s + others.n > %(hnsw_min_chunks)s, g.generation_id
FROM upload_pipeline.document_chunk_buffer c
JOIN upload_pipeline.document_vector_buffer v ON v.chunk_id = c.chunk_id
LEFT JOIN upload_pipeline.embedding_generations g
  ON g.model = v.embed_model AND g.dimensions = vector_dims(v.embedding)
CROSS JOIN owner
CROSS JOIN others
WHERE c.document_id = %(document_id)s;

-- name: settle_user_generation
-- After a finalize: a user without a serving generation gets the one of the chunks just stored;
-- a user all of whose chunks are now of that generation is switched to it (e.g. every older
-- chunk was replaced or deleted). Returns the user's serving generation.
WITH owner AS (
    SELECT d.user_id, c.generation_id FROM upload_pipeline.documents d
    JOIN upload_pipeline.document_chunks c ON c.document_id = d.document_id
    WHERE d.document_id = %(document_id)s LIMIT 1
), ins AS (
    INSERT INTO upload_pipeline.user_generations (user_id, generation_id)
    SELECT user_id, generation_id FROM owner
    ON CONFLICT (user_id) DO UPDATE SET generation_id = EXCLUDED.generation_id, switched_at = now()
    WHERE upload_pipeline.user_generations.generation_id <> EXCLUDED.generation_id
      AND NOT EXISTS (SELECT 1 FROM upload_pipeline.document_chunks o
                      WHERE o.user_id = EXCLUDED.user_id AND o.generation_id <> EXCLUDED.generation_id)
    RETURNING generation_id
)
SELECT generation_id FROM ins;

-- name: search_vector
-- The user's nearest chunks among those in the (partial) HNSW index, through it.
-- {dims} and {generation} are literals (Repository.search_vector formats them in): the partial
-- expression index of the generation (migration 009) matches only the same cast and predicate.
SELECT c.chunk_id, c.document_id, d.filename, d.source, c.ordinal, c.text, c.meta,
       1 - (c.embedding::vector({dims}) <=> %(embedding)s) AS score
FROM upload_pipeline.document_chunks c
JOIN upload_pipeline.documents d ON d.document_id = c.document_id
WHERE c.user_id = %(user_id)s AND c.hnsw_indexed AND c.generation_id = {generation}
ORDER BY c.embedding::vector({dims}) <=> %(embedding)s
LIMIT %(limit)s;

-- name: search_vector_unindexed
-- The user's nearest chunks among those left out of the HNSW index (stored while the user had
-- few chunks: a bounded number), exactly, through the partial index document_chunks_unindexed.
SELECT c.chunk_id, c.document_id, d.filename, d.source, c.ordinal, c.text, c.meta, 1 - c.distance AS score
FROM (
    SELECT chunk_id, document_id, ordinal, text, meta, (embedding <=> %(embedding)s) + 0 AS distance
    FROM upload_pipeline.document_chunks
    WHERE user_id = %(user_id)s AND NOT hnsw_indexed AND generation_id = %(generation_id)s
    ORDER BY distance, chunk_id
    LIMIT %(limit)s
) c
JOIN upload_pipeline.documents d ON d.document_id = c.document_id
ORDER BY c.distance, c.chunk_id;

-- name: search_vector_exact
-- The user's chunks read through the user_id index and ranked by exact cosine distance (the
-- "+ 0" keeps the planner off the HNSW index, which would filter its candidates by user after
-- the fact and miss a small tenant's chunks); the distance is computed once per chunk.
SELECT c.chunk_id, c.document_id, d.filename, d.source, c.ordinal, c.text, c.meta, 1 - c.distance AS score
FROM (
    SELECT chunk_id, document_id, ordinal, text, meta, (embedding <=> %(embedding)s) + 0 AS distance
    FROM upload_pipeline.document_chunks
    WHERE user_id = %(user_id)s AND generation_id = %(generation_id)s
    ORDER BY distance, chunk_id
    LIMIT %(limit)s
) c
JOIN upload_pipeline.documents d ON d.document_id = c.document_id
ORDER BY c.distance, c.chunk_id;

-- name: user_chunk_count
-- The user's chunks of one generation, counted up to a cap (an index-only scan of at most cap + 1 entries).
SELECT count(*) AS n FROM (
    SELECT 1 FROM upload_pipeline.document_chunks
    WHERE user_id = %(user_id)s AND generation_id = %(generation_id)s LIMIT %(cap)s + 1
) s;

-- name: search_fulltext
-- Chunks holding any word of the query (its English lexemes, stop words dropped, OR-ed: an AND
-- of every word matched almost no chunk for a question in natural language), ranked by cover
-- density (ts_rank_cd), where more of the words close together, or in the chunk's context
-- (weight A, migration 007), rank higher.
-- score: the chunk's cosine similarity to the query's embedding (what every hit shows);
-- text_rank: the full-text rank the rows are ordered by.
SELECT c.chunk_id, c.document_id, d.filename, d.source, c.ordinal, c.text, c.meta,
       1 - (c.embedding <=> %(embedding)s) AS score, ts_rank_cd(c.tsv, t.q) AS text_rank
FROM upload_pipeline.document_chunks c
JOIN upload_pipeline.documents d ON d.document_id = c.document_id
CROSS JOIN (
    SELECT to_tsquery('simple', array_to_string(ARRAY(
        SELECT quote_literal(lexeme)
        FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS lexeme), ' | ')) AS q
) t
WHERE c.user_id = %(user_id)s AND c.generation_id = %(generation_id)s AND c.tsv @@ t.q
ORDER BY text_rank DESC, c.chunk_id
LIMIT %(limit)s;

-- name: matching_documents
-- The user's documents a search filter lets through (services/filters.py: SearchFilter): every
-- condition given holds; a NULL parameter (or an empty filter_meta object) does not restrict.
-- Not run alone: the *_filtered queries below are sent as "WITH matching AS (this) <query>"
-- (Repository._filtered). Source prefix: a LIKE pattern (its wildcards escaped), which the
-- documents_user_source index (text_pattern_ops) serves. Metadata: for each key of filter_meta
-- (a JSON object of lists of text forms), the document's value under it (or an element of it,
-- when it is a list) has one of the key's text forms (a number's: trim_scale, so 2026.0 is
-- "2026", as filters.number_text writes it); a missing key or a null matches nothing.
SELECT d.document_id
FROM upload_pipeline.documents d
WHERE d.user_id = %(user_id)s
  AND (%(source_like)s::text IS NULL OR d.source LIKE %(source_like)s::text)
  AND (%(filter_document_ids)s::uuid[] IS NULL OR d.document_id = ANY(%(filter_document_ids)s::uuid[]))
  AND (%(filter_mime)s::text[] IS NULL OR d.mime = ANY(%(filter_mime)s::text[]))
  AND (%(created_after)s::timestamptz IS NULL OR d.created_at >= %(created_after)s::timestamptz)
  AND (%(created_before)s::timestamptz IS NULL OR d.created_at < %(created_before)s::timestamptz)
  AND (%(updated_after)s::timestamptz IS NULL OR d.updated_at >= %(updated_after)s::timestamptz)
  AND (%(updated_before)s::timestamptz IS NULL OR d.updated_at < %(updated_before)s::timestamptz)
  AND NOT EXISTS (
      SELECT 1 FROM jsonb_each(%(filter_meta)s::jsonb) AS f(key, wanted)
      WHERE NOT EXISTS (
          SELECT 1
          FROM jsonb_array_elements(CASE jsonb_typeof(d.meta -> f.key)
                   WHEN 'array' THEN d.meta -> f.key ELSE jsonb_build_array(d.meta -> f.key) END) AS have(j)
          JOIN jsonb_array_elements_text(f.wanted) AS w(v)
            ON w.v = CASE jsonb_typeof(have.j) WHEN 'number' THEN trim_scale(have.j::numeric)::text
                          ELSE have.j #>> ARRAY[]::text[] END))

-- name: filtered_chunk_count
-- The matching documents' chunks, counted up to a cap (through UNIQUE (document_id, ordinal)).
SELECT count(*) AS n FROM (
    SELECT 1 FROM matching m
    JOIN upload_pipeline.document_chunks c ON c.document_id = m.document_id
    WHERE c.user_id = %(user_id)s AND c.generation_id = %(generation_id)s
    LIMIT %(cap)s + 1
) s;

-- name: search_vector_exact_filtered
-- search_vector_exact over the matching documents' chunks only (read through UNIQUE
-- (document_id, ordinal)); "+ 0" keeps the planner off the HNSW index.
SELECT c.chunk_id, c.document_id, d.filename, d.source, c.ordinal, c.text, c.meta, 1 - c.distance AS score
FROM (
    SELECT c.chunk_id, c.document_id, c.ordinal, c.text, c.meta, (c.embedding <=> %(embedding)s) + 0 AS distance
    FROM matching m
    JOIN upload_pipeline.document_chunks c ON c.document_id = m.document_id
    WHERE c.user_id = %(user_id)s AND c.generation_id = %(generation_id)s
    ORDER BY distance, c.chunk_id
    LIMIT %(limit)s
) c
JOIN upload_pipeline.documents d ON d.document_id = c.document_id
ORDER BY c.distance, c.chunk_id;

-- name: search_vector_filtered
-- search_vector with the filter applied to HNSW's candidates (ef_search raised by the caller);
-- {dims} and {generation} are literals, as in search_vector.
SELECT c.chunk_id, c.document_id, d.filename, d.source, c.ordinal, c.text, c.meta,
       1 - (c.embedding::vector({dims}) <=> %(embedding)s) AS score
FROM upload_pipeline.document_chunks c
JOIN upload_pipeline.documents d ON d.document_id = c.document_id
WHERE c.user_id = %(user_id)s AND c.hnsw_indexed AND c.generation_id = {generation}
  AND c.document_id IN (SELECT document_id FROM matching)
ORDER BY c.embedding::vector({dims}) <=> %(embedding)s
LIMIT %(limit)s;

-- name: search_vector_unindexed_filtered
-- search_vector_unindexed over the matching documents' chunks only.
SELECT c.chunk_id, c.document_id, d.filename, d.source, c.ordinal, c.text, c.meta, 1 - c.distance AS score
FROM (
    SELECT chunk_id, document_id, ordinal, text, meta, (embedding <=> %(embedding)s) + 0 AS distance
    FROM upload_pipeline.document_chunks
    WHERE user_id = %(user_id)s AND NOT hnsw_indexed AND generation_id = %(generation_id)s
      AND document_id IN (SELECT document_id FROM matching)
    ORDER BY distance, chunk_id
    LIMIT %(limit)s
) c
JOIN upload_pipeline.documents d ON d.document_id = c.document_id
ORDER BY c.distance, c.chunk_id;

-- name: search_fulltext_filtered
-- search_fulltext over the matching documents' chunks only.
SELECT c.chunk_id, c.document_id, d.filename, d.source, c.ordinal, c.text, c.meta,
       1 - (c.embedding <=> %(embedding)s) AS score, ts_rank_cd(c.tsv, t.q) AS text_rank
FROM upload_pipeline.document_chunks c
JOIN upload_pipeline.documents d ON d.document_id = c.document_id
CROSS JOIN (
    SELECT to_tsquery('simple', array_to_string(ARRAY(
        SELECT quote_literal(lexeme)
        FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS lexeme), ' | ')) AS q
) t
WHERE c.user_id = %(user_id)s AND c.generation_id = %(generation_id)s AND c.tsv @@ t.q
  AND c.document_id IN (SELECT document_id FROM matching)
ORDER BY text_rank DESC, c.chunk_id
LIMIT %(limit)s;

-- name: chunk_windows
-- The chunks of ordinals first..last of each window (document_id[i], first[i], last[i]), one
-- statement for all of a search's hits (through UNIQUE (document_id, ordinal)); the user filter
-- keeps another user's document out even where row security does not apply (the CLI).
SELECT c.chunk_id, c.document_id, c.ordinal, c.text, c.meta
FROM unnest(%(document_ids)s::uuid[], %(firsts)s::int[], %(lasts)s::int[]) AS w(document_id, first, last)
JOIN upload_pipeline.document_chunks c
  ON c.document_id = w.document_id AND c.ordinal BETWEEN w.first AND w.last
WHERE c.user_id = %(user_id)s
ORDER BY c.document_id, c.ordinal;

-- name: list_jobs
-- stalled: working under a lease that expired (its holder died or hung; the next claim takes
-- it over); lease_left_s: seconds until the lease expires (negative once it has). Both by the
-- database's clock, which set the lease. serving_document_id: the version of the job's source
-- that answers searches (another one while this version is in flight or failed).
SELECT j.job_id, j.document_id, j.kind, d.filename, d.source, d.user_id, d.bytes_len, j.stage, j.state, j.attempts,
       j.retry_count, j.error_code, j.error_message, j.progress, j.control, j.created_at, j.updated_at,
       j.finished_at, j.claimed_by, j.lease_expires_at, j.lost_leases,
       coalesce(j.state = 'working' AND j.lease_expires_at < now(), false) AS stalled,
       extract(epoch FROM j.lease_expires_at - now())::float8 AS lease_left_s,
       (SELECT v.document_id FROM upload_pipeline.documents v
        WHERE v.user_id = d.user_id AND v.source = d.source
          AND EXISTS (SELECT 1 FROM upload_pipeline.upload_jobs vj
                      WHERE vj.document_id = v.document_id AND vj.state = 'done')
        ORDER BY v.version_seq DESC LIMIT 1) AS serving_document_id
FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE (%(user_id)s::text IS NULL OR d.user_id = %(user_id)s)
  AND (%(document_ids)s::uuid[] IS NULL OR j.document_id = ANY(%(document_ids)s::uuid[]))
ORDER BY j.created_at, j.job_id;

-- name: document_stats
SELECT d.document_id, d.page_count,
       (SELECT count(*) FROM upload_pipeline.document_chunks c WHERE c.document_id = d.document_id) AS chunks
FROM upload_pipeline.documents d
WHERE d.document_id = ANY(%(document_ids)s::uuid[]);

-- ---------------------------------------------------------------------------
-- The API. User-facing queries run after scope_to_user, under row security.

-- name: scope_to_user
-- For the rest of this transaction: role docingest_api, rows of this user only (002 policies).
SELECT set_config('role', 'docingest_api', true), set_config('docingest.user_id', %(user_id)s, true);

-- name: document_views
-- The user's documents (those of document_ids, when given; limit NULL: all) each with its latest job (NULLs when it has
-- none), newest first: stalled (that job is working under an expired lease), its chunks, and
-- the version of its source that serves searches (serving_document_id).
SELECT d.*, j.job_id, j.stage, j.state, j.progress, j.control, j.attempts, j.retry_count, j.error_code,
       j.error_message, j.created_at AS job_created_at, j.updated_at AS job_updated_at,
       j.finished_at, j.next_attempt_at, j.lease_expires_at,
       coalesce(j.state = 'working' AND j.lease_expires_at < now(), false) AS stalled,
       (SELECT count(*) FROM upload_pipeline.document_chunks c
        WHERE c.document_id = d.document_id) AS chunks,
       (SELECT v.document_id FROM upload_pipeline.documents v
        WHERE v.user_id = d.user_id AND v.source = d.source
          AND EXISTS (SELECT 1 FROM upload_pipeline.upload_jobs vj
                      WHERE vj.document_id = v.document_id AND vj.state = 'done')
        ORDER BY v.version_seq DESC LIMIT 1) AS serving_document_id
FROM upload_pipeline.documents d
LEFT JOIN LATERAL (
    SELECT * FROM upload_pipeline.upload_jobs j WHERE j.document_id = d.document_id
    ORDER BY j.created_at DESC LIMIT 1
) j ON true
WHERE d.user_id = %(user_id)s AND (%(document_ids)s::uuid[] IS NULL OR d.document_id = ANY(%(document_ids)s::uuid[]))
  AND (%(states)s::text[] IS NULL OR j.state = ANY(%(states)s::text[]))
  AND (%(pattern)s::text IS NULL OR d.filename ILIKE %(pattern)s ESCAPE '\' OR d.source ILIKE %(pattern)s ESCAPE '\')
ORDER BY d.created_at DESC, d.document_id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: count_document_views
-- How many of the user's documents document_views' filters match (states: of the latest job;
-- pattern: an ILIKE pattern of filename or source).
SELECT count(*) AS n
FROM upload_pipeline.documents d
LEFT JOIN LATERAL (
    SELECT j.state FROM upload_pipeline.upload_jobs j WHERE j.document_id = d.document_id
    ORDER BY j.created_at DESC LIMIT 1
) j ON true
WHERE d.user_id = %(user_id)s
  AND (%(states)s::text[] IS NULL OR j.state = ANY(%(states)s::text[]))
  AND (%(pattern)s::text IS NULL OR d.filename ILIKE %(pattern)s ESCAPE '\' OR d.source ILIKE %(pattern)s ESCAPE '\');

-- name: lock_document_jobs
-- Before deleting a document: lock its jobs first, in the worker's order (job row, then the
-- document through foreign keys), so a delete and a running stage never deadlock.
SELECT j.job_id FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE j.document_id = %(document_id)s AND d.user_id = %(user_id)s
ORDER BY j.job_id
FOR UPDATE OF j;

-- name: delete_user_document
-- Jobs, events, buffers and chunks go with it (ON DELETE CASCADE). After lock_document_jobs.
DELETE FROM upload_pipeline.documents
WHERE document_id = %(document_id)s AND user_id = %(user_id)s
RETURNING *;

-- name: queue_uploaded_job
-- The upload arrived: waiting -> queued (wakes the workers through the notify trigger).
WITH j AS (
    UPDATE upload_pipeline.upload_jobs
    SET state = 'queued', next_attempt_at = now(), updated_at = now()
    WHERE job_id = %(job_id)s AND state = 'waiting'
    RETURNING *
), ev AS (
    INSERT INTO upload_pipeline.events (job_id, document_id, stage, type, payload)
    SELECT j.job_id, j.document_id, j.stage, 'upload_received',
           jsonb_build_object('via', %(via)s::text) FROM j
)
SELECT * FROM j;

-- name: waiting_job_by_key
SELECT j.job_id FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE d.raw_path = %(raw_path)s AND j.state = 'waiting';

-- name: waiting_jobs
-- Jobs still waiting for their upload, the oldest deadline first, with their keys.
SELECT j.job_id, j.document_id, d.raw_path, d.bytes_len, j.next_attempt_at < now() AS expired
FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE j.state = 'waiting' AND j.created_at < now() - make_interval(secs => %(min_age_seconds)s)
ORDER BY j.next_attempt_at
LIMIT %(limit)s;

-- name: expire_upload
WITH j AS (
    UPDATE upload_pipeline.upload_jobs
    SET state = 'failed', error_code = 'upload_expired', error_message = %(error_message)s,
        finished_at = now(), updated_at = now()
    WHERE job_id = %(job_id)s AND state = 'waiting' AND next_attempt_at < now()
    RETURNING *
), ev AS (
    INSERT INTO upload_pipeline.events (job_id, document_id, stage, type, payload)
    SELECT j.job_id, j.document_id, j.stage, 'failed',
           jsonb_build_object('error_code', 'upload_expired', 'message', %(error_message)s::text)
    FROM j
)
SELECT * FROM j;

-- name: lock_latest_job
-- The document's latest job, locked (FOR UPDATE): a re-request of its upload decides under the lock.
SELECT * FROM upload_pipeline.upload_jobs WHERE document_id = %(document_id)s
ORDER BY created_at DESC LIMIT 1
FOR UPDATE;

-- name: extend_upload_deadline
-- A fresh signed URL for a waiting job: its deadline covers the URL's lifetime (never shortened).
UPDATE upload_pipeline.upload_jobs
SET next_attempt_at = greatest(next_attempt_at, now() + make_interval(secs => %(deadline_seconds)s)),
    updated_at = now()
WHERE job_id = %(job_id)s AND state = 'waiting'
RETURNING *;

-- name: rate_limit_configure
-- Create a bucket (full), or adopt the configured capacity and rate of an existing one.
INSERT INTO upload_pipeline.rate_limits (bucket, capacity, refill_per_second, tokens)
VALUES (%(bucket)s, %(capacity)s, %(refill_per_second)s, %(capacity)s)
ON CONFLICT (bucket) DO UPDATE
SET capacity = EXCLUDED.capacity, refill_per_second = EXCLUDED.refill_per_second,
    tokens = LEAST(upload_pipeline.rate_limits.tokens, EXCLUDED.capacity);

-- name: rate_limit_acquire
-- Take `cost` from every named bucket atomically, or nothing; says how long to wait otherwise.
WITH wanted AS (
    SELECT * FROM unnest(%(buckets)s::text[], %(costs)s::float8[]) AS w(bucket, cost)
), cur AS (
    SELECT r.bucket, w.cost, r.refill_per_second,
           LEAST(r.capacity, r.tokens + r.refill_per_second
                 * GREATEST(0, EXTRACT(epoch FROM clock_timestamp() - r.updated_at))) AS avail,
           GREATEST(0, COALESCE(EXTRACT(epoch FROM r.blocked_until - clock_timestamp()), 0)) AS blocked_s
    FROM upload_pipeline.rate_limits r JOIN wanted w ON w.bucket = r.bucket
    ORDER BY r.bucket
    FOR UPDATE OF r
), verdict AS (
    SELECT COALESCE(bool_and(avail >= cost AND blocked_s = 0), true) AS granted,
           COALESCE(max(GREATEST(blocked_s,
                    CASE WHEN avail >= cost THEN 0 ELSE (cost - avail) / refill_per_second END)), 0)
               AS wait_seconds
    FROM cur
), taken AS (
    UPDATE upload_pipeline.rate_limits r
    SET tokens = cur.avail - CASE WHEN verdict.granted THEN cur.cost ELSE 0 END,
        updated_at = clock_timestamp()
    FROM cur, verdict
    WHERE r.bucket = cur.bucket
    RETURNING r.bucket
)
SELECT verdict.granted, verdict.wait_seconds::float8 AS wait_seconds,
       (SELECT count(*) FROM taken) AS buckets
FROM verdict;

-- name: rate_limit_wait
-- Seconds left of the shared backoff (after a 429) of the named buckets; 0 when none. The
-- acquire of a limiter without limits: read-only, so no row lock, no WAL, no commit to flush.
SELECT COALESCE(max(GREATEST(0, EXTRACT(epoch FROM blocked_until - clock_timestamp()))), 0)::float8
           AS wait_seconds
FROM upload_pipeline.rate_limits
WHERE bucket = ANY(%(buckets)s::text[]);

-- name: rate_limit_block
-- A 429 arrived: every worker waits until now + seconds (never shortens an existing block),
-- and hears of it at once through NOTIFY (ratelimit.py: BACKOFF_CHANNEL, "<bucket> <seconds>").
WITH blocked AS (
    UPDATE upload_pipeline.rate_limits
    SET blocked_until = GREATEST(COALESCE(blocked_until, '-infinity'),
                                 clock_timestamp() + make_interval(secs => %(seconds)s))
    WHERE bucket = ANY(%(buckets)s::text[])
    RETURNING bucket, blocked_until
)
SELECT bucket, blocked_until,
       pg_notify('upload_pipeline_rate_limits',
                 bucket || ' ' || EXTRACT(epoch FROM blocked_until - clock_timestamp())::text) IS NOT NULL
           AS notified
FROM blocked;

-- name: embedding_cache_put
-- Vectors just buffered, remembered by the SHA-256 of their text (first writer wins). The arrays
-- are sent in binary (%%(...)b): psycopg's text form escapes each bytea element through a regex.
INSERT INTO upload_pipeline.embedding_cache (model, dimensions, text_sha256, embedding)
SELECT %(model)s, %(dimensions)s, t.text_sha256, v.embedding
FROM unnest(%(chunk_ids)b::uuid[], %(hashes)b::bytea[]) AS t(chunk_id, text_sha256)
JOIN upload_pipeline.document_vector_buffer v ON v.chunk_id = t.chunk_id
ON CONFLICT DO NOTHING;

-- name: wake_parse_job
-- The LlamaParse webhook: make a job that waits on this remote parse claimable now.
UPDATE upload_pipeline.upload_jobs
SET next_attempt_at = now(), updated_at = now()
WHERE job_id = %(job_id)s AND stage = 'parse_queued' AND state IN ('queued', 'retryable')
  AND control->>'llamaparse_job_id' = %(remote_job_id)s
RETURNING job_id, pg_notify('upload_pipeline_jobs', job_id::text) IS NOT NULL AS notified;
-- name: job_counts
-- Queue depth for docingest_jobs{stage,state}.
SELECT stage, state, count(*) AS n FROM upload_pipeline.upload_jobs GROUP BY stage, state;

-- name: events_after
-- A document's events after a given event id, oldest first (the SSE stream's source).
SELECT event_id, job_id, document_id, stage, type, payload, created_at
FROM upload_pipeline.events
WHERE document_id = %(document_id)s AND event_id > %(after_event_id)s
ORDER BY event_id
LIMIT %(limit)s;

-- name: latest_event_id
-- The newest event's id, every user's (a new user-wide stream starts after it): the primary
-- key's last entry, read as the owner (under row security the scan would skip others' rows).
SELECT coalesce(max(event_id), 0) AS event_id FROM upload_pipeline.events;

-- name: user_events_after
-- The user's events after a given event id, oldest first (GET /events): a range of the primary
-- key, so one poll reads the events written since the last one, whoever's they are.
SELECT e.event_id, e.job_id, e.document_id, e.stage, e.type, e.payload, e.created_at
FROM upload_pipeline.events e
JOIN upload_pipeline.documents d ON d.document_id = e.document_id
WHERE d.user_id = %(user_id)s AND e.event_id > %(after_event_id)s
ORDER BY e.event_id
LIMIT %(limit)s;

-- name: working_document_ids
-- The user's documents whose job is working now (a claim writes no event, progress checkpoints
-- neither: the user stream reads their views each poll and compares each with the one it sent),
-- through the partial index upload_jobs_leased.
SELECT j.document_id FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE j.state = 'working' AND d.user_id = %(user_id)s;

-- name: existing_documents
-- Which of the listed documents of the user still exist (primary key lookups).
SELECT document_id FROM upload_pipeline.documents
WHERE document_id = ANY(%(document_ids)s::uuid[]) AND user_id = %(user_id)s;

-- name: user_document_tally
-- How many documents the user has and the largest version_seq among them (0: none): a change
-- of either tells the user's stream the list changed (a deletion, a new document or version).
SELECT count(*) AS n, coalesce(max(version_seq), 0) AS max_version_seq
FROM upload_pipeline.documents WHERE user_id = %(user_id)s;

-- name: document_chunk_page
-- A page of a document's stored chunks in ordinal order (through UNIQUE (document_id, ordinal)).
SELECT chunk_id, ordinal, text, token_count, meta->'page' AS page, meta->'page_end' AS page_end,
       meta->'heading_path' AS heading_path
FROM upload_pipeline.document_chunks
WHERE document_id = %(document_id)s AND user_id = %(user_id)s
ORDER BY ordinal
LIMIT %(limit)s OFFSET %(offset)s;

-- name: summary_jobs
-- The user's jobs by stage and state (GET /summary's queue).
SELECT j.stage, j.state, count(*) AS n
FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE d.user_id = %(user_id)s
GROUP BY j.stage, j.state
ORDER BY j.stage, j.state;

-- name: summary_failures
-- The user's failed jobs by error code: how many, the last failure's time and message.
SELECT j.error_code, count(*) AS n, max(coalesce(j.finished_at, j.updated_at)) AS last_at,
       (array_agg(j.error_message ORDER BY coalesce(j.finished_at, j.updated_at) DESC))[1] AS message
FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE d.user_id = %(user_id)s AND j.state = 'failed'
GROUP BY j.error_code
ORDER BY n DESC, j.error_code;

-- name: summary_workers
-- Workers seen, every user's jobs (an installation fact): those holding working jobs (seen at
-- their last lease renewal or write) and those that completed a stage in the last hour (the
-- stage_completed events' worker, through the partial index events_stage_completed_created).
WITH seen AS (
    SELECT claimed_by AS worker_id, count(*) AS jobs_working,
           count(*) FILTER (WHERE lease_expires_at < now()) AS jobs_stalled,
           max(greatest(updated_at, lease_expires_at - make_interval(secs => %(lease_seconds)s))) AS last_seen
    FROM upload_pipeline.upload_jobs
    WHERE state = 'working' AND claimed_by IS NOT NULL
    GROUP BY claimed_by
    UNION ALL
    SELECT payload->>'worker', 0, 0, max(created_at)
    FROM upload_pipeline.events
    WHERE type = 'stage_completed' AND created_at > now() - interval '1 hour' AND payload ? 'worker'
    GROUP BY payload->>'worker'
)
SELECT worker_id, sum(jobs_working)::int AS jobs_working, sum(jobs_stalled)::int AS jobs_stalled,
       max(last_seen) AS last_seen
FROM seen
GROUP BY worker_id
ORDER BY max(last_seen) DESC, worker_id
LIMIT %(limit)s;

-- name: rate_limit_buckets
-- The shared rate-limit buckets now: tokens left (refilled since the last take), and the end of
-- a backoff after a 429 (NULL: none).
SELECT bucket, capacity, refill_per_second,
       LEAST(capacity, tokens + refill_per_second
             * GREATEST(0, EXTRACT(epoch FROM clock_timestamp() - updated_at)))::float8 AS tokens,
       CASE WHEN blocked_until > clock_timestamp() THEN blocked_until END AS blocked_until
FROM upload_pipeline.rate_limits
ORDER BY bucket;

-- name: inventory
-- docingest info: documents (and those with chunks: searchable), chunks and users of one user,
-- or of everyone when user_id is NULL.
SELECT
    (SELECT count(*) FROM upload_pipeline.documents
     WHERE %(user_id)s::text IS NULL OR user_id = %(user_id)s) AS documents,
    (SELECT count(*) FROM upload_pipeline.document_chunks
     WHERE %(user_id)s::text IS NULL OR user_id = %(user_id)s) AS chunks,
    (SELECT count(DISTINCT document_id) FROM upload_pipeline.document_chunks
     WHERE %(user_id)s::text IS NULL OR user_id = %(user_id)s) AS searchable,
    (SELECT count(DISTINCT user_id) FROM upload_pipeline.documents) AS users;

-- name: jobs_by_state
-- Jobs by state of one user, or of everyone when user_id is NULL.
SELECT j.state, count(*) AS n
FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE %(user_id)s::text IS NULL OR d.user_id = %(user_id)s
GROUP BY j.state;

-- ---------------------------------------------------------------------------
-- Embedding generations (migration 009).

-- name: ensure_generation
-- The generation of (model, dimensions), inserted if new. DO UPDATE (a no-op) rather than DO
-- NOTHING: it returns the row when another process inserted it concurrently, which a SELECT in
-- the same statement cannot see (its snapshot predates that commit).
INSERT INTO upload_pipeline.embedding_generations (provider, model, dimensions)
VALUES (%(provider)s, %(model)s, %(dimensions)s)
ON CONFLICT (model, dimensions) DO UPDATE SET provider = upload_pipeline.embedding_generations.provider
RETURNING *;

-- name: try_advisory_lock
SELECT pg_try_advisory_lock(%(key)s) AS locked;

-- name: generation_index_state
-- Whether the generation's HNSW index exists, and is valid (a CREATE INDEX CONCURRENTLY cut
-- short leaves an invalid one, which is dropped and built again).
SELECT i.indisvalid AS valid
FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid
WHERE c.relname = %(name)s AND c.relnamespace = 'upload_pipeline'::regnamespace;

-- name: get_generation
SELECT * FROM upload_pipeline.embedding_generations WHERE generation_id = %(generation_id)s;

-- name: serving_generation
SELECT g.* FROM upload_pipeline.user_generations u
JOIN upload_pipeline.embedding_generations g ON g.generation_id = u.generation_id
WHERE u.user_id = %(user_id)s;

-- name: queue_reembed_jobs
-- A re-embedding job (kind reembed, at embedding_in_progress, queued) for each complete document
-- (of user_id; NULL: of every user) with a chunk of another generation than generation_id and no
-- vector of it yet (one re-embedded by an earlier run waits for its user's switch), and no
-- unfinished job; with a job_created event. Returns the jobs queued.
WITH docs AS (
    SELECT d.document_id FROM upload_pipeline.documents d
    WHERE (%(user_id)s::text IS NULL OR d.user_id = %(user_id)s)
      AND EXISTS (SELECT 1 FROM upload_pipeline.document_chunks c
                  WHERE c.document_id = d.document_id AND c.generation_id <> %(generation_id)s
                    AND NOT EXISTS (SELECT 1 FROM upload_pipeline.chunk_embeddings_next n
                                    WHERE n.chunk_id = c.chunk_id AND n.generation_id = %(generation_id)s))
      AND NOT EXISTS (SELECT 1 FROM upload_pipeline.upload_jobs j
                      WHERE j.document_id = d.document_id AND j.state NOT IN ('done', 'failed'))
), job AS (
    INSERT INTO upload_pipeline.upload_jobs (job_id, document_id, stage, state, kind, control)
    SELECT gen_random_uuid(), docs.document_id, 'embedding_in_progress', 'queued', 'reembed',
           jsonb_build_object('reembed_generation', %(generation_id)s::int)
    FROM docs
    ON CONFLICT (document_id) WHERE state NOT IN ('done', 'failed') DO NOTHING
    RETURNING *
), ev AS (
    INSERT INTO upload_pipeline.events (job_id, document_id, stage, type, payload)
    SELECT job.job_id, job.document_id, job.stage, 'job_created',
           jsonb_build_object('via', 'reembed', 'generation_id', %(generation_id)s::int)
    FROM job
)
SELECT job_id, document_id FROM job;

-- name: reembed_plan
-- The document's stored chunks whose vector is of another generation than generation_id and
-- that have no vector of it yet, by ordinal: text, context, the SHA-256 of what is embedded
-- (the embedding cache's key) and, with the cache on, the cache's vector for the generation.
SELECT c.chunk_id, c.ordinal, c.text, c.meta->>'embedded_context' AS context, h.text_sha256,
       CASE WHEN %(use_cache)s THEN
           (SELECT e.embedding FROM upload_pipeline.embedding_cache e
            WHERE e.model = %(model)s AND e.dimensions = %(dimensions)s AND e.text_sha256 = h.text_sha256)
       END AS cached
FROM upload_pipeline.document_chunks c
CROSS JOIN LATERAL (SELECT sha256(convert_to(
    COALESCE(c.meta->>'embedded_context' || E'\n\n', '') || c.text, 'UTF8')) AS text_sha256) h
WHERE c.document_id = %(document_id)s AND c.generation_id <> %(generation_id)s
  AND NOT EXISTS (SELECT 1 FROM upload_pipeline.chunk_embeddings_next n
                  WHERE n.chunk_id = c.chunk_id AND n.generation_id = %(generation_id)s)
ORDER BY c.ordinal;

-- name: document_chunk_count
SELECT count(*) AS n FROM upload_pipeline.document_chunks WHERE document_id = %(document_id)s;

-- name: embedding_cache_put_vectors
-- Vectors of a generation remembered by their text's SHA-256 (first writer wins).
INSERT INTO upload_pipeline.embedding_cache (model, dimensions, text_sha256, embedding)
SELECT %(model)s, %(dimensions)s, t.text_sha256, n.embedding
FROM unnest(%(chunk_ids)b::uuid[], %(hashes)b::bytea[]) AS t(chunk_id, text_sha256)
JOIN upload_pipeline.chunk_embeddings_next n
  ON n.chunk_id = t.chunk_id AND n.generation_id = %(generation_id)s
ON CONFLICT DO NOTHING;

-- name: lock_user_generation
-- Switches of one user's generation run one at a time (until the transaction ends).
SELECT pg_advisory_xact_lock(hashtextextended('generation' || E'\x1f' || %(user_id)s, 9)) IS NULL AS locked;

-- name: generation_remaining
-- The user's stored chunks that generation_id does not cover yet: of another generation and
-- without a vector of it waiting in chunk_embeddings_next.
SELECT count(*) AS n FROM upload_pipeline.document_chunks c
WHERE c.user_id = %(user_id)s AND c.generation_id <> %(generation_id)s
  AND NOT EXISTS (SELECT 1 FROM upload_pipeline.chunk_embeddings_next n
                  WHERE n.chunk_id = c.chunk_id AND n.generation_id = %(generation_id)s);

-- name: switch_generation
-- The switch, in one transaction: every chunk of the user takes its vector of generation_id,
-- the waiting vectors go, and the user is served by generation_id. The old vectors are gone
-- with the rows' old versions. Returns the chunks switched.
WITH moved AS (
    UPDATE upload_pipeline.document_chunks c
    SET embedding = n.embedding, generation_id = n.generation_id, embed_model = g.model
    FROM upload_pipeline.chunk_embeddings_next n
    JOIN upload_pipeline.embedding_generations g ON g.generation_id = n.generation_id
    WHERE n.chunk_id = c.chunk_id AND n.generation_id = %(generation_id)s AND c.user_id = %(user_id)s
    RETURNING c.chunk_id
), cleared AS (
    DELETE FROM upload_pipeline.chunk_embeddings_next
    WHERE user_id = %(user_id)s AND chunk_id IN (SELECT chunk_id FROM moved)
), served AS (
    INSERT INTO upload_pipeline.user_generations (user_id, generation_id)
    VALUES (%(user_id)s, %(generation_id)s)
    ON CONFLICT (user_id) DO UPDATE SET generation_id = EXCLUDED.generation_id, switched_at = now()
)
SELECT count(*) AS n FROM moved;

-- name: generation_coverage
-- Per generation: the user's (NULL: everyone's) chunks stored with its vectors, those with a
-- vector of it waiting (a re-embedding in progress), and the users it serves.
SELECT g.generation_id, g.provider, g.model, g.dimensions,
       (SELECT count(*) FROM upload_pipeline.document_chunks c
        WHERE c.generation_id = g.generation_id AND (%(user_id)s::text IS NULL OR c.user_id = %(user_id)s)) AS chunks,
       (SELECT count(*) FROM upload_pipeline.chunk_embeddings_next n
        WHERE n.generation_id = g.generation_id AND (%(user_id)s::text IS NULL OR n.user_id = %(user_id)s)) AS waiting,
       (SELECT count(*) FROM upload_pipeline.user_generations u
        WHERE u.generation_id = g.generation_id AND (%(user_id)s::text IS NULL OR u.user_id = %(user_id)s)) AS serving_users
FROM upload_pipeline.embedding_generations g
ORDER BY g.generation_id;

-- name: users_not_served_by
SELECT user_id FROM upload_pipeline.user_generations
WHERE generation_id <> %(generation_id)s AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
ORDER BY user_id;

-- name: unfinished_reembed_jobs
-- Re-embedding jobs into generation_id not terminal yet (of user_id; NULL: every user's): those an
-- interrupted run released, or that other workers hold.
SELECT j.job_id, j.document_id FROM upload_pipeline.upload_jobs j
JOIN upload_pipeline.documents d ON d.document_id = j.document_id
WHERE j.kind = 'reembed' AND j.state NOT IN ('done', 'failed')
  AND (j.control->>'reembed_generation')::int = %(generation_id)s
  AND (%(user_id)s::text IS NULL OR d.user_id = %(user_id)s);

-- name: generation_remaining_all
-- Chunks generation_id does not cover yet, of user_id (NULL: every user's).
SELECT count(*) AS n FROM upload_pipeline.document_chunks c
WHERE (%(user_id)s::text IS NULL OR c.user_id = %(user_id)s) AND c.generation_id <> %(generation_id)s
  AND NOT EXISTS (SELECT 1 FROM upload_pipeline.chunk_embeddings_next n
                  WHERE n.chunk_id = c.chunk_id AND n.generation_id = %(generation_id)s);
