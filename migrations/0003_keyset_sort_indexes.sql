-- Up Migration

-- Listing sorts nullable columns by coalesce(column, <past every value>), so that the
-- keyset condition of every page is a single row comparison: an index range scan, also
-- deep into a long list. These indexes are on exactly those expressions
-- (src/routes/todos/repository.ts); the plain due_date index stays for the due filters.
DROP INDEX todos_order_idx;
DROP INDEX todos_completed_order_idx;
CREATE INDEX todos_order_idx ON todos ((coalesce("order"::bigint, 2147483648)), id);
CREATE INDEX todos_completed_order_idx ON todos (completed, (coalesce("order"::bigint, 2147483648)), id);
CREATE INDEX todos_due_date_sort_idx ON todos ((coalesce(due_date, 'infinity'::timestamptz)), id);

-- Down Migration

DROP INDEX todos_due_date_sort_idx;
DROP INDEX todos_completed_order_idx;
DROP INDEX todos_order_idx;
CREATE INDEX todos_order_idx ON todos ("order", id);
CREATE INDEX todos_completed_order_idx ON todos (completed, "order", id);
