import pg from 'pg'

/**
 * Demo data: a few hundred todos and cats that look like real use (varied completion,
 * due dates in the past and the future, orders, breeds and prices). The rows are the
 * same on every run (a fixed pseudo-random sequence), and a row is only added when
 * nothing with its title (todos) or name (cats) exists, so seeding twice adds nothing and
 * never touches rows people made.
 */
export interface SeedResult {
  todos: { added: number; total: number }
  cats: { added: number; total: number }
}

export const SEED_TODOS = 300
export const SEED_CATS = 200

/** Serialises concurrent seeders (two instances starting with SEED_ON_START). */
const SEED_LOCK = 7_241_865_325_823_965

export async function seedDatabase(connectionString: string): Promise<SeedResult> {
  const client = new pg.Client({ connectionString })
  client.on('error', () => {})
  await client.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1)', [SEED_LOCK])
    const todos = demoTodos()
    const addedTodos = await client.query(
      `INSERT INTO todos (title, description, completed, "order", due_date)
       SELECT s.title, s.description, s.completed, s.ord, now() + s.due_in_days * interval '1 day'
       FROM unnest($1::text[], $2::text[], $3::boolean[], $4::int[], $5::int[]) AS s(title, description, completed, ord, due_in_days)
       WHERE NOT EXISTS (SELECT 1 FROM todos t WHERE t.title = s.title)`,
      [todos.map((t) => t.title), todos.map((t) => t.description), todos.map((t) => t.completed), todos.map((t) => t.order), todos.map((t) => t.dueInDays)]
    )
    const cats = demoCats()
    const addedCats = await client.query(
      `INSERT INTO cats (name, breed, price)
       SELECT s.name, s.breed, s.price FROM unnest($1::text[], $2::text[], $3::int[]) AS s(name, breed, price)
       WHERE NOT EXISTS (SELECT 1 FROM cats c WHERE c.name = s.name)`,
      [cats.map((c) => c.name), cats.map((c) => c.breed), cats.map((c) => c.price)]
    )
    const { rows } = await client.query<{ todos: number; cats: number }>(
      'SELECT (SELECT count(*) FROM todos)::int AS todos, (SELECT count(*) FROM cats)::int AS cats'
    )
    await client.query('COMMIT')
    return {
      todos: { added: addedTodos.rowCount ?? 0, total: rows[0]?.todos ?? 0 },
      cats: { added: addedCats.rowCount ?? 0, total: rows[0]?.cats ?? 0 }
    }
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {})
    throw error
  } finally {
    await client.end().catch(() => {})
  }
}

/** True when there are neither todos nor cats (SEED_ON_START=if-empty). */
export async function isEmpty(connectionString: string): Promise<boolean> {
  const client = new pg.Client({ connectionString })
  await client.connect()
  try {
    const { rows } = await client.query<{ empty: boolean }>('SELECT NOT EXISTS (SELECT 1 FROM todos) AND NOT EXISTS (SELECT 1 FROM cats) AS empty')
    return rows[0]?.empty ?? false
  } finally {
    await client.end()
  }
}

/** A small deterministic generator (mulberry32), so the demo data is the same everywhere. */
function random(seed: number) {
  let state = seed
  return () => {
    state = (state + 0x6d2b79f5) | 0
    let x = Math.imul(state ^ (state >>> 15), 1 | state)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const pick = <T>(next: () => number, items: readonly T[]): T => items[Math.floor(next() * items.length)] as T

const ACTIONS = ['Buy', 'Call', 'Fix', 'Book', 'Clean', 'Email', 'Renew', 'Return', 'Schedule', 'Review', 'Plan', 'Pay', 'Order', 'Cancel', 'Water', 'Paint', 'Sort', 'Update', 'Back up', 'Read']
const THINGS = ['the dentist', 'groceries', 'the bike tyre', 'train tickets', 'the garage', 'the landlord', 'passport', 'library books', 'a haircut', 'the quarterly report', 'the electricity bill', 'birthday present for Sam', 'the gym membership', 'the plants', 'the fence', 'old photos', 'the laptop', 'the insurance papers', 'the team offsite', 'holiday flights']
const NOTES = ['before the weekend', 'ask for a discount', 'the receipt is in the drawer', 'see email from Tuesday', 'needs two people', 'compare three quotes first', null, null, null]

function demoTodos() {
  const next = random(20240501)
  const combos = ACTIONS.flatMap((action) => THINGS.map((thing) => `${action} ${thing}`))
  // A fixed shuffle of every combination, then the first SEED_TODOS: unique titles.
  for (let i = combos.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[combos[i], combos[j]] = [combos[j] as string, combos[i] as string]
  }
  return combos.slice(0, SEED_TODOS).map((title, index) => ({
    title,
    description: pick(next, NOTES),
    completed: next() < 0.35,
    order: next() < 0.15 ? null : index + 1,
    dueInDays: next() < 0.25 ? null : Math.floor(next() * 120) - 30
  }))
}

const CAT_NAMES = ['Mittens', 'Whiskers', 'Luna', 'Oliver', 'Milo', 'Nala', 'Simba', 'Cleo', 'Tigger', 'Smokey', 'Pepper', 'Ginger', 'Shadow', 'Pumpkin', 'Biscuit', 'Mochi', 'Pixel', 'Noodle', 'Waffles', 'Ziggy']
const CAT_TITLES = ['', 'Sir ', 'Lady ', 'Captain ', 'Professor ', 'Little ', 'Big ', 'Duchess ', 'Doctor ', 'Agent ']
const CAT_SUFFIXES = ['', ' the Great', ' Junior', ' McFluff', ' of the Sofa']
const BREEDS = ['bengal', 'siamese', 'persian', 'maine coon', 'ragdoll', 'british shorthair', 'sphynx', 'abyssinian', 'scottish fold', 'burmese', 'norwegian forest', 'russian blue']

function demoCats() {
  const next = random(19700101)
  const names = CAT_TITLES.flatMap((title) => CAT_NAMES.flatMap((name) => CAT_SUFFIXES.map((suffix) => `${title}${name}${suffix}`)))
  for (let i = names.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1))
    ;[names[i], names[j]] = [names[j] as string, names[i] as string]
  }
  return names.slice(0, SEED_CATS).map((name) => ({
    name,
    breed: next() < 0.1 ? null : pick(next, BREEDS),
    // Whole euros mostly, from adoption fees to pedigree prices, a few free.
    price: next() < 0.05 ? 0 : Math.round(next() ** 2 * 2500) * 100 + (next() < 0.2 ? 99 : 0)
  }))
}
