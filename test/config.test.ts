import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { corsOrigins } from '../src/config-meaning.js'
import { ConfigError, loadConfig } from '../src/config.js'
import { startServer, tempDir } from './helper.js'

const load = (env: Record<string, string>) => loadConfig({ env, envFile: false })

function issuesOf(env: Record<string, string>): string[] {
  try {
    load(env)
  } catch (error) {
    if (error instanceof ConfigError) return error.issues
    throw error
  }
  throw new Error('expected the configuration to be rejected')
}

t.test('defaults apply when nothing is set', async (t) => {
  const config = load({})
  t.equal(config.NODE_ENV, 'development')
  t.equal(config.PORT, 3000)
  t.equal(config.HOST, '127.0.0.1')
  t.equal(config.MIGRATE_ON_START, true)
  t.equal(config.DATABASE_WAIT_SECONDS, 30)
  t.equal(config.DATABASE_URL, undefined)
})

t.test('values are read from the environment and coerced', async (t) => {
  const config = load({ PORT: '8080', MIGRATE_ON_START: 'false', DATABASE_POOL_MAX: '3', LOG_LEVEL: 'debug' })
  t.equal(config.PORT, 8080)
  t.equal(config.MIGRATE_ON_START, false)
  t.equal(config.DATABASE_POOL_MAX, 3)
  t.equal(config.LOG_LEVEL, 'debug')
})

t.test('the .env file is read and the process environment wins over it', async (t) => {
  const dir = await tempDir(t)
  const envFile = join(dir, '.env')
  await writeFile(envFile, 'PORT=4000\nLOG_LEVEL=warn\n# a comment\nPOSTGRES_DB=fromfile\n')
  const config = loadConfig({ env: { PORT: '5000' }, envFile })
  t.equal(config.PORT, 5000, 'environment beats .env')
  t.equal(config.LOG_LEVEL, 'warn', '.env fills what the environment does not set')
  t.equal(config.POSTGRES_DB, 'fromfile')
  t.equal(loadConfig({ env: {}, envFile: join(dir, 'missing.env') }).PORT, 3000, 'a missing .env file is fine')
})

t.test('an empty value means unset, not zero or false', async (t) => {
  const config = load({ PORT: '', DATABASE_URL: '', MIGRATE_ON_START: '' })
  t.equal(config.PORT, 3000)
  t.equal(config.DATABASE_URL, undefined)
  t.equal(config.MIGRATE_ON_START, true)
})

t.test('every bad variable is reported at once, by name, with what was expected', async (t) => {
  const issues = issuesOf({ PORT: 'abc', NODE_ENV: 'staging', MIGRATE_ON_START: 'yes', DATABASE_POOL_MAX: '0', LOG_LEVEL: 'loud' })
  t.equal(issues.length, 5, issues.join('\n'))
  t.match(issues.join('\n'), /PORT must be integer/)
  t.match(issues.join('\n'), /NODE_ENV must be one of: development, test, production/)
  t.match(issues.join('\n'), /MIGRATE_ON_START must be true or false/)
  t.match(issues.join('\n'), /DATABASE_POOL_MAX must be >= 1/)
  t.match(issues.join('\n'), /LOG_LEVEL must be one of: fatal, error, warn, info, debug, trace, silent/)
})

t.test('out-of-range numbers are rejected', async (t) => {
  t.match(issuesOf({ PORT: '70000' }), [/PORT must be <= 65535/])
  t.match(issuesOf({ DATABASE_WAIT_SECONDS: '-1' }), [/DATABASE_WAIT_SECONDS must be >= 0/])
})

t.test('a database is required in production', async (t) => {
  t.match(issuesOf({ NODE_ENV: 'production' }), [/DATABASE_URL is required when NODE_ENV=production/])
  t.equal(load({ NODE_ENV: 'production', DATABASE_URL: 'postgres://u:p@db:5432/app' }).NODE_ENV, 'production')
  t.equal(load({ NODE_ENV: 'production', POSTGRES_HOST: 'db', POSTGRES_USER: 'u', POSTGRES_DB: 'app' }).POSTGRES_HOST, 'db')
})

t.test('password hashes cost scrypt N=2^14 unless the tests ask for less', async (t) => {
  t.equal(load({}).PASSWORD_HASH_COST, 14)
  t.equal(load({ NODE_ENV: 'test', PASSWORD_HASH_COST: '10' }).PASSWORD_HASH_COST, 10)
  for (const NODE_ENV of ['development', 'production']) {
    t.match(issuesOf({ NODE_ENV, DATABASE_URL: 'postgres://u:p@db:5432/app', PASSWORD_HASH_COST: '13' }), [/PASSWORD_HASH_COST below 14 .* is for tests only/], NODE_ENV)
  }
  t.match(issuesOf({ NODE_ENV: 'test', PASSWORD_HASH_COST: '9' }), [/PASSWORD_HASH_COST must be >= 10/])
})

t.test('a limit on the wait for a connection that the connect timeout would always cut first is refused', async (t) => {
  t.match(issuesOf({ DATABASE_CONNECT_TIMEOUT_MS: '500' }), [/DATABASE_MAX_WAIT_MS must be below DATABASE_CONNECT_TIMEOUT_MS/], 'the default wait (500 ms) against a 500 ms timeout')
  t.match(issuesOf({ DATABASE_MAX_WAIT_MS: '6000' }), [/DATABASE_MAX_WAIT_MS must be below DATABASE_CONNECT_TIMEOUT_MS \(or 0 for no limit\)/])
  t.equal(load({ DATABASE_MAX_WAIT_MS: '0', DATABASE_CONNECT_TIMEOUT_MS: '500' }).DATABASE_MAX_WAIT_MS, 0, '0: no limit, whatever the timeout')
  t.equal(load({ DATABASE_MAX_WAIT_MS: '499', DATABASE_CONNECT_TIMEOUT_MS: '500' }).DATABASE_MAX_WAIT_MS, 499)
  // Also when another variable fails the schema, and the rule sees their text.
  t.same(issuesOf({ PORT: 'x', DATABASE_MAX_WAIT_MS: '60', DATABASE_CONNECT_TIMEOUT_MS: '500' }), ['PORT must be integer'])
  t.match(issuesOf({ PORT: 'x', DATABASE_MAX_WAIT_MS: '1000', DATABASE_CONNECT_TIMEOUT_MS: '500' }), ['PORT must be integer', /DATABASE_MAX_WAIT_MS must be below/])
  t.match(issuesOf({ PORT: 'x', DATABASE_CONNECT_TIMEOUT_MS: '400' }), ['PORT must be integer', /DATABASE_MAX_WAIT_MS must be below/], 'an unset wait is its default (500 ms)')
})

t.test('POSTGRES_HOST needs the user and database to go with it', async (t) => {
  t.same(issuesOf({ POSTGRES_HOST: 'db' }), ['POSTGRES_USER is required when POSTGRES_HOST is set', 'POSTGRES_DB is required when POSTGRES_HOST is set'])
})

t.test('a password never appears in an error, even in the invalid value itself', async (t) => {
  const secret = 'hunter2-s3cret'
  const cases: Record<string, string>[] = [
    { DATABASE_URL: `postgres://app:${secret}@` },
    { DATABASE_URL: `mysql://app:${secret}@db/app` },
    { DATABASE_URL: `not a url ${secret}` },
    { POSTGRES_PASSWORD: secret, POSTGRES_HOST: 'db', PORT: secret }
  ]
  for (const env of cases) {
    const message = (() => {
      try {
        load(env)
        return ''
      } catch (error) {
        return (error as Error).message
      }
    })()
    t.not(message, '', `rejected: ${Object.keys(env).join(', ')}`)
    t.notMatch(message, secret)
  }
  t.match(issuesOf({ DATABASE_URL: `mysql://app:${secret}@db/app` }), [/DATABASE_URL must be a URL of the form postgres:\/\//])
})

t.test('URLs and origins are checked', async (t) => {
  t.match(issuesOf({ PUBLIC_BASE_URL: 'example.com' }), [/PUBLIC_BASE_URL must be an absolute http/])
  t.equal(load({ PUBLIC_BASE_URL: 'https://api.example.com/v1/' }).PUBLIC_BASE_URL, 'https://api.example.com/v1', 'trailing slash dropped')
  t.match(issuesOf({ CORS_ORIGINS: 'https://ok.example, not-an-origin' }), [/CORS_ORIGINS must be/])
  t.equal(corsOrigins(load({})), true, 'any origin outside production by default')
  t.equal(corsOrigins(load({ NODE_ENV: 'production', DATABASE_URL: 'postgres://h/db' })), false, 'none in production by default')
  t.same(corsOrigins(load({ CORS_ORIGINS: 'https://a.example, https://b.example:8443' })), ['https://a.example', 'https://b.example:8443'])
  t.equal(corsOrigins(load({ CORS_ORIGINS: 'none' })), false)
})

t.test('the server refuses to start on bad config: exit code 1, every variable named, no secret printed', async (t) => {
  const server = await startServer(t, { PORT: 'abc', DATABASE_URL: 'postgres://app:topsecret@', DATABASE_POOL_MAX: 'many' })
  const { code } = await server.exited
  const output = server.output.join('\n')
  t.equal(code, 1)
  t.match(output, /PORT must be integer/)
  t.match(output, /DATABASE_POOL_MAX must be integer/)
  t.match(output, /DATABASE_URL must be a URL/)
  t.notMatch(output, 'topsecret')
  t.notMatch(output, /listening/i)
})
