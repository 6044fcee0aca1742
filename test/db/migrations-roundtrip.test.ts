/**
 * Every migration file, whatever files exist: for each N in order, apply it, record the
 * schema, revert it and check the schema is exactly what it was after N-1, then apply it
 * again and check it is what N made. A new migration is covered without a new test; a
 * down part that forgets an index, a default or a trigger fails here.
 */
import t from 'tap'
import { migrationFiles, runMigrations } from '../../src/db/migrate.js'
import { freshDatabase, sql } from '../helper.js'

/** The schema as the catalog describes it (no pg_dump in the embedded server's binaries), migration bookkeeping left out. */
async function schemaOf(db: string): Promise<Record<string, string[]>> {
  const rows = async (text: string) => (await sql<{ item: string }>(db, text)).map((row) => row.item)
  const ours = `n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')`
  return {
    extensions: await rows(`SELECT extname AS item FROM pg_extension ORDER BY 1`),
    columns: await rows(
      `SELECT format('%s.%s %s%s%s%s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
              coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), ''), CASE WHEN a.attidentity <> '' THEN ' IDENTITY ' || a.attidentity::text ELSE '' END) AS item
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE ${ours} AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped AND c.relname NOT LIKE 'pgmigrations%'
        ORDER BY c.relname, a.attnum`
    ),
    indexes: await rows(`SELECT indexdef AS item FROM pg_indexes WHERE schemaname = 'public' AND tablename NOT LIKE 'pgmigrations%' ORDER BY 1`),
    constraints: await rows(
      `SELECT format('%s %s %s', c.relname, k.conname, pg_get_constraintdef(k.oid)) AS item
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE ${ours} AND c.relname NOT LIKE 'pgmigrations%' ORDER BY 1`
    ),
    triggers: await rows(`SELECT pg_get_triggerdef(t.oid) AS item FROM pg_trigger t WHERE NOT t.tgisinternal ORDER BY 1`),
    functions: await rows(
      `SELECT pg_get_functiondef(p.oid) AS item FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') ORDER BY 1`
    ),
    types: await rows(
      `SELECT format('%s %s', t.typname, t.typtype) AS item FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c') AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid) ORDER BY 1`
    ),
    sequences: await rows(`SELECT sequencename AS item FROM pg_sequences WHERE schemaname = 'public' AND sequencename NOT LIKE 'pgmigrations%' ORDER BY 1`)
  }
}

t.test('every migration: up, down back to exactly the schema before, up again to exactly the same schema', async (t) => {
  const db = await freshDatabase(t, { migrated: false })
  const files = await migrationFiles()
  t.ok(files.length >= 5, `${files.length} migrations`)
  let before = await schemaOf(db)
  for (const file of files) {
    t.same(await runMigrations(db, { count: 1 }), [file.name], `${file.name}: up`)
    const after = await schemaOf(db)
    t.notSame(after, before, `${file.name}: changes the schema`)
    t.same(await runMigrations(db, { direction: 'down' }), [file.name], `${file.name}: down`)
    t.same(await schemaOf(db), before, `${file.name}: down restores exactly the schema before it`)
    t.same(await runMigrations(db, { count: 1 }), [file.name], `${file.name}: up again`)
    t.same(await schemaOf(db), after, `${file.name}: up again gives exactly the same schema`)
    before = after
  }
})
