import type { Database } from '../../plugins/db.js'
import { createTableRepository, type BaseRow } from '../../resource/repository.js'
import { containsPattern } from '../../resource/sql.js'
import type { CatFilters } from './schemas.js'

export interface CatRow extends BaseRow {
  name: string
  breed: string | null
  price: number
}

/** All SQL about cats: the table, its sort keys and its filters. */
export const catsRepository = (db: Database) =>
  createTableRepository<CatRow, CatFilters>(db, {
    table: 'cats',
    columns: ['name', 'breed', 'price'],
    writable: ['name', 'breed', 'price'],
    sorts: {
      name: { column: 'name', type: 'text' },
      price: { column: 'price', type: 'integer' },
      created_at: { column: 'created_at', type: 'timestamptz' }
    },
    defaultSort: 'name',
    filter(filters, parts) {
      if (filters.breed !== undefined) parts.where(`lower(breed) = lower(${parts.param(filters.breed)})`)
      if (filters.min_price !== undefined) parts.where(`price >= ${parts.param(filters.min_price)}`)
      if (filters.max_price !== undefined) parts.where(`price <= ${parts.param(filters.max_price)}`)
      if (filters.q !== undefined) parts.where(`name ILIKE ${parts.param(containsPattern(filters.q))}`)
    }
  })
