-- Up Migration

-- The constraints 0007 and 0008 added NOT VALID, checked against the rows that existed
-- before them: scans under SHARE UPDATE EXCLUSIVE, so reads and writes go on (only
-- autovacuum and other DDL on todos wait for the run).
ALTER TABLE todos VALIDATE CONSTRAINT todos_parent_fk;
ALTER TABLE todos VALIDATE CONSTRAINT todos_list_fk;
ALTER TABLE todos VALIDATE CONSTRAINT todos_priority_check;
ALTER TABLE todos VALIDATE CONSTRAINT todos_labels_check;
ALTER TABLE todos VALIDATE CONSTRAINT todos_metadata_check;

-- Down Migration

-- A validated constraint cannot be marked NOT VALID again: each is dropped and added back
-- as 0007 and 0008 left it (NOT VALID adds no scan), so reverting gives exactly their schema.
ALTER TABLE todos DROP CONSTRAINT todos_metadata_check,
  ADD CONSTRAINT todos_metadata_check CHECK (todo_metadata_valid(metadata)) NOT VALID;
ALTER TABLE todos DROP CONSTRAINT todos_labels_check,
  ADD CONSTRAINT todos_labels_check CHECK (todo_labels_valid(labels)) NOT VALID;
ALTER TABLE todos DROP CONSTRAINT todos_priority_check,
  ADD CONSTRAINT todos_priority_check CHECK (priority BETWEEN 1 AND 4) NOT VALID;
ALTER TABLE todos DROP CONSTRAINT todos_list_fk,
  ADD CONSTRAINT todos_list_fk FOREIGN KEY (owner_id, list_id) REFERENCES lists (owner_id, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE todos DROP CONSTRAINT todos_parent_fk,
  ADD CONSTRAINT todos_parent_fk FOREIGN KEY (owner_id, parent_id) REFERENCES todos (owner_id, id) ON DELETE CASCADE NOT VALID;
