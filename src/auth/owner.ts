import type { QueryParts } from '../crud/sql.js'

/**
 * Who a request acts for, as every repository read and write requires it: a user id
 * (the local user, or a user already looked up), or the hash of the bearer token the
 * request carries. A token is not looked up on its own round trip: its user is found
 * inside the statement that reads or writes the rows (`ownerIdSql`), so a valid token
 * costs one index lookup in the same query, and a revoked or expired one matches no
 * owner, and so no row, from the very next statement on, on every instance.
 */
export type Owner = { readonly userId: number; readonly tokenHash?: undefined } | { readonly tokenHash: Buffer; readonly userId?: undefined }

/** Which kind of owner: each kind has statements of its own (a user id is `int`, a token's hash `bytea`). */
export type OwnerKind = 'user' | 'token'
export const ownerKind = (owner: Owner): OwnerKind => (owner.tokenHash === undefined ? 'user' : 'token')
/** The owner's parameter value: the user id, or the token's hash. */
export const ownerValue = (owner: Owner): number | Buffer => owner.tokenHash ?? owner.userId

/** The user of a token that is valid now, as a scalar subquery on the token's hash. */
export const validTokenUserSql = (hashPlaceholder: string) => `(SELECT user_id ${validTokenSql(hashPlaceholder)})`

const validTokenSql = (hashPlaceholder: string) =>
  `FROM api_tokens WHERE token_hash = ${hashPlaceholder} AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`

/**
 * The owner as a table of one row (its `id`) to select from, with no row for a token that
 * is not valid: `INSERT … SELECT … FROM <this> o` inserts nothing then. Cheaper for
 * PostgreSQL than a scalar subquery tested for NULL, which is an InitPlan and a filter.
 */
export const ownerRowSql = (owner: Owner, parts: QueryParts): string =>
  owner.tokenHash === undefined ? `(SELECT ${parts.param(owner.userId)}::int AS id)` : `(SELECT user_id AS id ${validTokenSql(parts.param(owner.tokenHash))})`

/** The owner's id as SQL, with its value added to `parts`: NULL for a token that is not valid. */
export const ownerIdSql = (owner: Owner, parts: QueryParts): string =>
  owner.tokenHash === undefined ? `${parts.param(owner.userId)}::int` : validTokenUserSql(parts.param(owner.tokenHash))
