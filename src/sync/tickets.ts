import { createHash, randomBytes } from 'node:crypto'
import type { Owner } from '../accounts/owner.js'
import type { Database } from '../db/client.js'

/**
 * Tickets for GET /events: a browser's EventSource cannot send an Authorization header,
 * and a token in a URL ends up in logs and history. A ticket is `tev_` and 43 base64url
 * characters (256 random bits), valid for TICKET_SECONDS and good once: redeeming it
 * deletes it in the same statement, so two requests with one ticket cannot both pass.
 * Only its SHA-256 is stored (migrations/0011).
 */
const TICKET_PATTERN = /^tev_[A-Za-z0-9_-]{43}$/
export const TICKET_SECONDS = 60
/** Tickets a token may have at once. */
export const LIVE_TICKETS = 10

const hashTicket = (ticket: string) => createHash('sha256').update(ticket).digest()

export function createTicketStore(db: Database) {
  return {
    /** A new ticket for a user, bound to the token they asked with (null for the local user). */
    async issue(userId: number, tokenId: number | null): Promise<{ ticket: string; expiresAt: string }> {
      const ticket = `tev_${randomBytes(32).toString('base64url')}`
      // At most LIVE_TICKETS per token (or local user): asking for more drops the oldest, so the table cannot be filled.
      const { rows } = await db.write<{ expires_at: string }>(
        `WITH dropped AS (
           DELETE FROM event_tickets WHERE ticket_hash IN (
             SELECT ticket_hash FROM event_tickets WHERE user_id = $2 AND token_id IS NOT DISTINCT FROM $3 ORDER BY expires_at DESC OFFSET $5 - 1
           )
         )
         INSERT INTO event_tickets (ticket_hash, user_id, token_id, expires_at) VALUES ($1, $2, $3, now() + $4 * interval '1 second') RETURNING expires_at`,
        [hashTicket(ticket), userId, tokenId, TICKET_SECONDS, LIVE_TICKETS]
      )
      return { ticket, expiresAt: rows[0]?.expires_at as string }
    },

    /**
     * Uses up a ticket: the owner it acts for (the token it was made with, so that revoking
     * the token ends the stream too), or undefined for a ticket unknown, used or expired.
     */
    async redeem(ticket: string): Promise<Owner | undefined> {
      if (!TICKET_PATTERN.test(ticket)) return undefined
      const { rows } = await db.write<{ user_id: number; token_hash: Buffer | null }>(
        `DELETE FROM event_tickets t WHERE ticket_hash = $1 AND expires_at > now()
         RETURNING user_id, (SELECT k.token_hash FROM api_tokens k WHERE k.id = t.token_id) AS token_hash`,
        [hashTicket(ticket)]
      )
      const row = rows[0]
      if (row === undefined) return undefined
      return row.token_hash === null ? { userId: row.user_id } : { tokenHash: row.token_hash }
    },

    /** Deletes expired tickets, a batch at a time; how many. */
    async reap(): Promise<number> {
      let deleted = 0
      for (let batch = 0; batch < 50; batch++) {
        const { rowCount } = await db.write(
          'DELETE FROM event_tickets WHERE ticket_hash IN (SELECT ticket_hash FROM event_tickets WHERE expires_at < now() LIMIT 1000 FOR UPDATE SKIP LOCKED)'
        )
        deleted += rowCount ?? 0
        if ((rowCount ?? 0) < 1000) break
      }
      return deleted
    }
  }
}

export type TicketStore = ReturnType<typeof createTicketStore>
