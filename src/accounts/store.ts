import type { Database } from '../db/client.js'
import { tokenUsableNow, tokenUserSql } from './owner.js'
import { newToken } from './tokens.js'

/** A user as the API shows it. */
export interface UserRow {
  id: number
  email: string
  name: string
  builtin: boolean
  created_at: string
  updated_at: string
}

/** A token as its owner sees it in lists: never the token itself. */
export interface TokenRow {
  id: number
  name: string
  prefix: string
  created_at: string
  last_used_at: string | null
  expires_at: string | null
}

const USER_COLUMNS = 'id, email, name, builtin, created_at, updated_at'
const TOKEN_COLUMNS = 'id, name, prefix, created_at, last_used_at, expires_at'

/** The SQL of users and their tokens. Every token statement names the user it is for. */
export function createAccountStore(db: Database) {
  return {
    async localUserId(): Promise<number> {
      const { rows } = await db.query<{ id: number }>('SELECT id FROM users WHERE builtin')
      if (rows[0] === undefined) throw new Error('the built-in local user is missing (migrations/0004 creates it)')
      return rows[0].id
    },

    /** The user of a token that is valid now, and the token's id; undefined otherwise. */
    async tokenUser(hash: Buffer): Promise<{ userId: number; tokenId: number } | undefined> {
      const { rows } = await db.query<{ userId: number; tokenId: number }>(
        `SELECT k.user_id AS "userId", k.id AS "tokenId" FROM api_tokens k WHERE k.token_hash = $1 AND ${tokenUsableNow('k')}`,
        [hash]
      )
      return rows[0]
    },

    /** Whether a token is valid now (after a statement scoped by it found nothing). */
    async tokenIsValid(hash: Buffer): Promise<boolean> {
      const { rows } = await db.query<{ valid: boolean }>(`SELECT ${tokenUserSql('$1')} IS NOT NULL AS valid`, [hash])
      return rows[0]?.valid ?? false
    },

    /** Records use at most about once a minute per token: a write per request would cost more than the request. */
    async touchToken(hash: Buffer): Promise<void> {
      await db.query(
        `UPDATE api_tokens SET last_used_at = now() WHERE token_hash = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
        [hash]
      )
    },

    async createUser(input: { email: string; name: string; passwordHash: string | null }): Promise<UserRow> {
      const { rows } = await db.write<UserRow>(`INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3) RETURNING ${USER_COLUMNS}`, [
        input.email,
        input.name,
        input.passwordHash
      ])
      return rows[0] as UserRow
    },

    async userByEmail(email: string): Promise<{ id: number; password_hash: string | null } | undefined> {
      const { rows } = await db.query<{ id: number; password_hash: string | null }>('SELECT id, password_hash FROM users WHERE lower(email) = lower($1)', [email])
      return rows[0]
    },

    async user(id: number): Promise<(UserRow & { password_hash: string | null; version: number }) | undefined> {
      const { rows } = await db.query<UserRow & { password_hash: string | null; version: number }>(`SELECT ${USER_COLUMNS}, password_hash, version FROM users WHERE id = $1`, [id])
      return rows[0]
    },

    /**
     * Changes a user, only while the caller's token (`tokenId`; null for the local user)
     * is valid and, with `version`, only while the user's row is still the one whose
     * password the change was checked against: both are conditions of the UPDATE, which
     * PostgreSQL checks again on the row it waited for, so of two changes checked against
     * the same row (a new password and a new email, say) only the first to commit applies. With a new password, also revokes
     * every token of theirs but the caller's, in the same transaction. Two statements, not
     * one: the revocation must see every token a sign-in made with the old password. Such
     * a sign-in holds the user's row (`createToken`), so the UPDATE waits for it to
     * commit, and the revocation that follows, a statement of its own, sees its token.
     */
    async updateUser(
      id: number,
      changes: { name?: string; email?: string; passwordHash?: string },
      expected: { tokenId: number | null; version?: number | undefined }
    ): Promise<{ status: 'ok'; user: UserRow } | { status: 'caller-gone' | 'changed-meanwhile' }> {
      return db.transaction(async (tx) => {
        const { rows } = await tx.write<UserRow>(
          `UPDATE users u SET name = coalesce($2, name), email = coalesce($3, email), password_hash = coalesce($4, password_hash)
           WHERE id = $1 AND ($6::int IS NULL OR version = $6::int)
             AND ($5::int IS NULL OR EXISTS (SELECT 1 FROM api_tokens k WHERE k.id = $5::int AND k.user_id = u.id AND ${tokenUsableNow('k')}))
           RETURNING ${USER_COLUMNS}`,
          [id, changes.name ?? null, changes.email ?? null, changes.passwordHash ?? null, expected.tokenId, expected.version ?? null]
        )
        const user = rows[0]
        if (user === undefined) {
          // Why nothing changed, as of now: the caller's token, or the account (changed since its password was checked).
          const { rows: found } = await tx.query<{ caller: boolean }>(
            `SELECT ($2::int IS NULL OR EXISTS (SELECT 1 FROM api_tokens k WHERE k.id = $2::int AND k.user_id = u.id AND ${tokenUsableNow('k')})) AS caller
             FROM users u WHERE id = $1`,
            [id, expected.tokenId]
          )
          return { status: found[0]?.caller ? 'changed-meanwhile' : 'caller-gone' }
        }
        if (changes.passwordHash !== undefined) {
          await tx.write('UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2::int', [id, expected.tokenId])
        }
        return { status: 'ok', user }
      })
    },

    /** Deletes a user and, through the foreign keys, every row and token of theirs. Never the built-in user. */
    async deleteUser(id: number): Promise<boolean> {
      const { rowCount } = await db.write('DELETE FROM users WHERE id = $1 AND NOT builtin', [id])
      return (rowCount ?? 0) > 0
    },

    /**
     * A new token for a user. With `checkedHash` (the password hash a sign-in was checked
     * against), only while that is still the user's password: a password changed during
     * the check (which revokes every other token) must not let a token made with the old
     * one through. Undefined when it changed. The user's row is held (FOR SHARE) until the
     * token is committed: a change already under way is waited for and then seen, and a
     * change that comes later waits for this token and revokes it (`updateUser`).
     */
    async createToken(userId: number, name: string, expiresAt: string | null, checkedHash?: string): Promise<(TokenRow & { token: string }) | undefined> {
      const token = newToken()
      const { rows } = await db.write<TokenRow>(
        `INSERT INTO api_tokens (user_id, name, token_hash, prefix, expires_at)
         SELECT id, $2, $3, $4, $5 FROM users WHERE id = $1 AND ($6::text IS NULL OR password_hash = $6::text) FOR SHARE
         RETURNING ${TOKEN_COLUMNS}`,
        [userId, name, token.hash, token.display, expiresAt, checkedHash ?? null]
      )
      return rows[0] ? { ...rows[0], token: token.secret } : undefined
    },

    /** The user's tokens that are not revoked (expired ones too, so they can be seen and cleaned up). */
    async tokens(userId: number): Promise<TokenRow[]> {
      const { rows } = await db.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id`, [userId])
      return rows
    },

    async revokeToken(userId: number, tokenId: number): Promise<boolean> {
      const { rowCount } = await db.write('UPDATE api_tokens SET revoked_at = now() WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL', [tokenId, userId])
      return (rowCount ?? 0) > 0
    }
  }
}

export type AccountStore = ReturnType<typeof createAccountStore>
