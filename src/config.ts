import { readFileSync } from 'node:fs'
import { parseEnv } from 'node:util'
import { Type, type Static } from '@sinclair/typebox'
import envSchema from 'env-schema'
import { corsOrigins, trustProxy } from './config-meaning.js'
import { StringEnum } from './lib/schema.js'

/**
 * Every setting the service and its command-line tools read, in one schema. This file is
 * the only place that reads `process.env`; everything else receives a `Config`.
 */
export const ConfigSchema = Type.Object({
  NODE_ENV: StringEnum(['development', 'test', 'production'], { default: 'development' }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  LOG_LEVEL: StringEnum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { default: 'info' }),
  LOG_PRETTY: Type.Boolean({ default: false }),
  PUBLIC_BASE_URL: Type.Optional(Type.String({ minLength: 1 })),
  TRUST_PROXY: Type.String({ default: 'false' }),
  CORS_ORIGINS: Type.Optional(Type.String()),
  REQUEST_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 600_000, default: 30_000 }),
  METRICS_HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  METRICS_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 9464 }),
  SERVER_TIMING: Type.Boolean({ default: false }),

  DATABASE_URL: Type.Optional(Type.String({ minLength: 1 })),
  MIGRATION_DATABASE_URL: Type.Optional(Type.String({ minLength: 1 })),
  POSTGRES_HOST: Type.Optional(Type.String({ minLength: 1 })),
  POSTGRES_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 5432 }),
  POSTGRES_USER: Type.Optional(Type.String({ minLength: 1 })),
  POSTGRES_PASSWORD: Type.Optional(Type.String()),
  POSTGRES_DB: Type.Optional(Type.String({ minLength: 1 })),
  DATABASE_POOL_MAX: Type.Integer({ minimum: 1, maximum: 500, default: 10 }),
  DATABASE_MAX_QUEUE: Type.Integer({ minimum: 0, maximum: 100_000, default: 50 }),
  DATABASE_MAX_WAIT_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 500 }),
  SHED_MAX_IN_FLIGHT: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 1000 }),
  SHED_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, maximum: 60_000, default: 500 }),
  DATABASE_CONNECT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 120_000, default: 5000 }),
  DATABASE_POOL_IDLE_TIMEOUT_MS: Type.Integer({ minimum: 0, maximum: 86_400_000, default: 600_000 }),
  DATABASE_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 10_000 }),
  DATABASE_WAIT_SECONDS: Type.Integer({ minimum: 0, maximum: 3600, default: 30 }),
  DATABASE_PREPARED_STATEMENTS: Type.Boolean({ default: true }),
  DATABASE_BATCHING: Type.Boolean({ default: true }),

  AUTH_MODE: StringEnum(['required', 'local'], { default: 'required' }),
  SIGNUP: Type.Optional(StringEnum(['open', 'closed'])),
  PASSWORD_HASH_COST: Type.Integer({ minimum: 10, maximum: 16, default: 14 }),
  AUTH_RATE_LIMIT: Type.Integer({ minimum: 1, maximum: 100_000, default: 10 }),
  RATE_LIMIT_PER_MINUTE: Type.Integer({ minimum: 0, maximum: 100_000_000, default: 60_000 }),
  RATE_LIMIT_IPV6_PREFIX: Type.Integer({ minimum: 32, maximum: 128, default: 64 }),
  SYNC_RETENTION_DAYS: Type.Number({ exclusiveMinimum: 0, maximum: 3650, default: 30 }),
  EVENTS_HEARTBEAT_MS: Type.Integer({ minimum: 1000, maximum: 300_000, default: 15_000 }),
  EVENTS_BUFFER_BYTES: Type.Integer({ minimum: 16_384, maximum: 64 * 1024 * 1024, default: 1024 * 1024 }),
  EVENTS_MAX_STREAMS: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10_000 }),
  IDEMPOTENCY_KEY_TTL_HOURS: Type.Integer({ minimum: 1, maximum: 24 * 30, default: 24 }),

  MIGRATE_ON_START: Type.Boolean({ default: true }),
  MIGRATION_LOCK_TIMEOUT_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 5000 }),
  MIGRATION_LOCK_RETRIES: Type.Integer({ minimum: 0, maximum: 20, default: 4 }),
  MIGRATION_STATEMENT_TIMEOUT_MS: Type.Integer({ minimum: 1000, maximum: 24 * 3_600_000, default: 15 * 60_000 }),
  MIGRATION_LOCK_WAIT_SECONDS: Type.Integer({ minimum: 0, maximum: 3600, default: 120 }),
  SEED_ON_START: StringEnum(['false', 'true', 'if-empty'], { default: 'false' }),
  SHUTDOWN_DELAY_MS: Type.Integer({ minimum: 0, maximum: 600_000, default: 0 }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000 }),
  WEB_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 1 }),

  EMBEDDED_POSTGRES_DIR: Type.String({ minLength: 1, default: '.data/postgres' }),
  EMBEDDED_POSTGRES_PORT: Type.Integer({ minimum: 1, maximum: 65535, default: 54329 })
})

export type Config = Static<typeof ConfigSchema>

/** Raised when the environment cannot produce a valid `Config`; lists every problem. */
export class ConfigError extends Error {
  constructor(readonly issues: string[]) {
    super(`Invalid configuration:\n${issues.map((issue) => `  - ${issue}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

export interface LoadConfigOptions {
  /** Variables to read instead of `process.env` (tests pass their own). */
  env?: Record<string, string | undefined>
  /** The dotenv file to read under the environment, or `false` for none. */
  envFile?: string | false
}

/**
 * Reads the `.env` file, then the process environment on top of it, validates the result
 * against `ConfigSchema` and checks the rules that span several variables. Throws a
 * `ConfigError` naming every bad variable; never includes a value in the message, so a
 * password or connection string cannot leak through a typo.
 */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const { env = process.env, envFile = '.env' } = options
  const merged: Record<string, string> = {}
  for (const source of [envFile ? readEnvFile(envFile) : {}, env]) {
    for (const [key, value] of Object.entries(source)) {
      // An empty assignment (`DATABASE_URL=`) means "not set", not "set to nothing",
      // which would otherwise coerce to 0 or false.
      if (value !== undefined && value !== '' && key in ConfigSchema.properties) merged[key] = value
    }
  }

  let config: Config | undefined
  let issues: string[] = []
  try {
    config = envSchema<Config>({ schema: structuredClone(ConfigSchema), data: merged, env: false, dotenv: false })
  } catch (error) {
    issues = schemaIssues(error)
  }
  // The rules across variables run even when the schema failed (on the raw text), so one
  // attempt shows every problem; a variable already reported is not reported twice.
  const reported = new Set(issues.map((issue) => issue.split(' ')[0]))
  issues.push(...crossFieldIssues(config ?? (merged as unknown as Config)).filter((issue) => !reported.has(issue.split(' ')[0])))
  if (issues.length > 0 || config === undefined) throw new ConfigError(issues)
  if (config.PUBLIC_BASE_URL) config.PUBLIC_BASE_URL = config.PUBLIC_BASE_URL.replace(/\/+$/, '')
  return config
}

/**
 * `loadConfig` for an entry point: on a bad configuration, prints every problem and
 * exits 1 (the server, `make dev` and every command-line tool start this way).
 */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig()
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    process.stderr.write(`${error.message}\nSee README.md (Configuration) for every variable.\n`)
    process.exit(1)
  }
}

function readEnvFile(path: string): Record<string, string> {
  try {
    return parseEnv(readFileSync(path, 'utf8')) as Record<string, string>
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw new ConfigError([`${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`])
  }
}

interface AjvIssue {
  instancePath: string
  keyword: string
  message?: string
  params: Record<string, unknown>
}

function schemaIssues(error: unknown): string[] {
  const errors = (error as { errors?: AjvIssue[] }).errors
  if (!Array.isArray(errors)) return [String((error as Error).message)]
  const byVariable = new Map<string, string>()
  for (const issue of errors) {
    const name = issue.keyword === 'required' ? String(issue.params.missingProperty) : issue.instancePath.slice(1)
    if (byVariable.has(name)) continue
    byVariable.set(name, `${name} ${describeIssue(issue)}`)
  }
  return [...byVariable.values()]
}

function describeIssue(issue: AjvIssue): string {
  switch (issue.keyword) {
    case 'required':
      return 'is required'
    case 'type':
      return issue.params.type === 'boolean' ? 'must be true or false' : `must be ${String(issue.params.type)}`
    case 'enum':
      return `must be one of: ${(issue.params.allowedValues as string[]).join(', ')}`
    case 'minimum':
    case 'maximum':
      return `${issue.message ?? 'is out of range'}`
    default:
      return issue.message ?? 'is invalid'
  }
}

function crossFieldIssues(config: Config): string[] {
  const issues: string[] = []
  if (config.DATABASE_URL !== undefined && !isPostgresUrl(config.DATABASE_URL)) {
    issues.push('DATABASE_URL must be a URL of the form postgres://user:password@host:5432/database')
  }
  if (config.MIGRATION_DATABASE_URL !== undefined) {
    if (!isPostgresUrl(config.MIGRATION_DATABASE_URL)) {
      issues.push('MIGRATION_DATABASE_URL must be a URL of the form postgres://user:password@host:5432/database')
    } else if (config.DATABASE_URL === undefined && config.POSTGRES_HOST === undefined) {
      issues.push('MIGRATION_DATABASE_URL needs DATABASE_URL (or POSTGRES_HOST): it is the direct way to the database requests reach through a pooler')
    }
  }
  if (config.DATABASE_URL === undefined && config.POSTGRES_HOST !== undefined) {
    for (const name of ['POSTGRES_USER', 'POSTGRES_DB'] as const) {
      if (config[name] === undefined) issues.push(`${name} is required when POSTGRES_HOST is set`)
    }
  }
  if (config.NODE_ENV === 'production' && config.DATABASE_URL === undefined && config.POSTGRES_HOST === undefined) {
    issues.push(
      'DATABASE_URL is required when NODE_ENV=production (or set POSTGRES_HOST, POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB)'
    )
  }
  if (config.NODE_ENV === 'production' && config.AUTH_MODE === 'local') {
    issues.push('AUTH_MODE=local is refused when NODE_ENV=production: every request there must carry a token')
  }
  if (config.NODE_ENV !== 'test' && Number(config.PASSWORD_HASH_COST) < 14) {
    issues.push('PASSWORD_HASH_COST below 14 (scrypt N=2^14) is for tests only (NODE_ENV=test): a cheaper hash is a cheaper guess')
  }
  if (config.PUBLIC_BASE_URL !== undefined && !isHttpUrl(config.PUBLIC_BASE_URL)) {
    issues.push('PUBLIC_BASE_URL must be an absolute http:// or https:// URL without query or fragment')
  }
  if (trustProxy(config) === undefined) {
    issues.push('TRUST_PROXY must be true, false, a number of proxies in front (1 behind the bundled nginx), or a comma-separated list of proxy addresses and CIDRs (10.0.0.0/8, loopback)')
  }
  // Numbers, or the raw text when the schema failed: unset is the default, and text the schema already reported.
  const { DATABASE_MAX_WAIT_MS: waitSetting, DATABASE_CONNECT_TIMEOUT_MS: timeoutSetting } = ConfigSchema.properties
  const [maxWait, connectTimeout] = [Number(config.DATABASE_MAX_WAIT_MS ?? waitSetting.default), Number(config.DATABASE_CONNECT_TIMEOUT_MS ?? timeoutSetting.default)]
  if (maxWait > 0 && maxWait >= connectTimeout) {
    issues.push('DATABASE_MAX_WAIT_MS must be below DATABASE_CONNECT_TIMEOUT_MS (or 0 for no limit): a wait for a connection ends at the connect timeout first, so the limit would never shed')
  }
  if (config.METRICS_PORT !== 0 && config.METRICS_PORT === config.PORT) {
    issues.push('METRICS_PORT must differ from PORT: metrics are for operators, on a listener of their own (0 turns it off)')
  }
  const origins = corsOrigins(config)
  if (Array.isArray(origins) && origins.some((origin) => !isHttpUrl(origin) || new URL(origin).origin !== origin)) {
    issues.push('CORS_ORIGINS must be *, none, or a comma-separated list of origins such as https://app.example.com')
  }
  return issues
}

function isPostgresUrl(value: string): boolean {
  try {
    const url = new URL(value)
    return (url.protocol === 'postgres:' || url.protocol === 'postgresql:') && url.hostname !== ''
  } catch {
    return false
  }
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value)
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.search === '' && url.hash === ''
  } catch {
    return false
  }
}

/** The environment for a child process: ours plus `extra` (this file is the one reader of process.env). */
export const childProcessEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => ({ ...process.env, ...extra })
