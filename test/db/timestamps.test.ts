import t from 'tap'
import { timestampAsIso } from '../../src/db/timestamps.js'
import { buildTestApp } from '../helper.js'

t.test('PostgreSQL timestamptz text becomes ISO 8601 with milliseconds', async (t) => {
  t.equal(timestampAsIso('2026-12-24 17:00:00+00'), '2026-12-24T17:00:00.000Z')
  t.equal(timestampAsIso('2026-12-24 17:00:00.1+00'), '2026-12-24T17:00:00.100Z')
  t.equal(timestampAsIso('2026-12-24 17:00:00.12+00'), '2026-12-24T17:00:00.120Z')
  t.equal(timestampAsIso('2026-12-24 17:00:00.123+00'), '2026-12-24T17:00:00.123Z')
  t.equal(timestampAsIso('2026-12-24 17:00:00.123456+00'), '2026-12-24T17:00:00.123Z')
  t.equal(timestampAsIso('2026-12-24 18:00:00+01'), '2026-12-24T17:00:00.000Z', 'another zone falls back to a Date round trip')
  t.equal(timestampAsIso('10000-01-01 00:00:00+00'), '+010000-01-01T00:00:00.000Z')
  t.equal(timestampAsIso('infinity'), 'infinity')
})

t.test('dates go through the API unchanged to the millisecond', async (t) => {
  const { api } = await buildTestApp(t)
  for (const due of ['2026-01-01T00:00:00.100Z', '2026-06-30T23:59:59.999Z', '1999-12-31T23:59:59.000Z']) {
    const created = await api.create('/todos', { title: due, due_date: due })
    t.equal(created.due_date, due)
    t.equal((await api.get(`/todos/${created.id}`)).json().due_date, due)
  }
})
