-- docingest schema v11: an outbox key a signed upload URL may still write is kept until then.
--
-- A document deleted while its upload can still arrive (a signed PUT URL not yet expired: the
-- client PUTs straight to S3/Supabase, or to the local storage service) would get its bytes
-- stored after the delete, an object no row names. Its raw key stays in object_deletions until
-- `retain_until` (the end of the upload window): the delete removes what is there at once, and
-- the sweep deletes the key once more after the window, then forgets it.
ALTER TABLE upload_pipeline.object_deletions ADD COLUMN retain_until timestamptz;
