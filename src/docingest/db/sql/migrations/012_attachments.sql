-- docingest schema v12: the files attached to an e-mail message are documents of their own.
--
-- origin 'attachment': a document the parse of a message (eml, msg) registered from one of its
-- attached files. Its meta.attached_to holds the message's document id (text); its source is
-- under the message's (`<message source>/attachments/<n>/<file name>`). `sync` deletes only
-- origin 'file' documents, so never an attachment; deleting a message (or its version being
-- replaced or superseded) deletes its attachments, recursively (queries.sql: delete_attachments).
ALTER TABLE upload_pipeline.documents
    DROP CONSTRAINT documents_origin_check,
    ADD CONSTRAINT documents_origin_check CHECK (origin IN ('api', 'file', 'attachment'));

CREATE INDEX documents_attached_to_idx ON upload_pipeline.documents ((meta->>'attached_to'))
    WHERE meta ? 'attached_to';
