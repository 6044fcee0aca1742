import type { QueryParts } from '../db/sql.js'

/**
 * Who a request acts for, as every read and write of a resource requires it: a user id
 * (the local user), or the hash of the bearer token the request carries. A token is not
 * looked up on a round trip of its own: its user is found inside the statement that reads
 * or writes the rows, so a valid token costs one index lookup in the same query, and a
 * revoked or expired one matches no owner, and so no row, from the very next statement
 * on, on every instance.
 */
export type Owner = { readonly userId: number; readonly tokenHash?: undefined } | { readonly tokenHash: Buffer; readonly userId?: undefined }

/** Which kind of owner: each kind has statements of its own (a user id is `int`, a token's hash `bytea`). */
export type OwnerKind = 'user' | 'token'
export const ownerKind = (owner: Owner): OwnerKind => (owner.tokenHash === undefined ? 'user' : 'token')
/** The owner's parameter value: the user id, or the token's hash. */
export const ownerValue = (owner: Owner): number | Buffer => owner.tokenHash ?? owner.userId

/** The condition that a token (the `api_tokens` row `alias`) may be used now: written once, used by every statement. */
export const tokenUsableNow = (alias: string) => `${alias}.revoked_at IS NULL AND (${alias}.expires_at IS NULL OR ${alias}.expires_at > now())`

/** The user of a token that is valid now, as a scalar subquery on the token's hash: NULL for any other. */
export const tokenUserSql = (hashPlaceholder: string) => `(SELECT k.user_id FROM api_tokens k WHERE k.token_hash = ${hashPlaceholder} AND ${tokenUsableNow('k')})`

/** The owner id for a placeholder of the given kind: the user id itself, or the user of the token. */
export const ownerIdFor = (kind: OwnerKind, placeholder: string) => (kind === 'user' ? `${placeholder}::int` : tokenUserSql(placeholder))

/**
 * The owner as a table of one row (its `id`) to select from, with no row for a token that
 * is not valid: `INSERT … SELECT … FROM <this> o` inserts nothing then. Cheaper for
 * PostgreSQL than a scalar subquery tested for NULL, which is an InitPlan and a filter.
 */
export const ownerRowFor = (kind: OwnerKind, placeholder: string) =>
  kind === 'user' ? `(SELECT ${placeholder}::int AS id)` : `(SELECT k.user_id AS id FROM api_tokens k WHERE k.token_hash = ${placeholder} AND ${tokenUsableNow('k')})`

/** The owner's id as SQL, with its value added to `parts`: NULL for a token that is not valid. */
export const ownerIdSql = (owner: Owner, parts: QueryParts): string => ownerIdFor(ownerKind(owner), parts.param(ownerValue(owner)))
