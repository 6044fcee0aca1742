import { containsPattern } from '../../db/sql.js'
import { defineResource } from '../engine/define.js'
import { demoCats } from './demo.js'
import { CatCreateSchema, catFilters, CatPatchSchema, CatSchema } from './schemas.js'

/** Cats: the tutorial's second resource, built from the same parts as todos. */
export default defineResource({
  singular: 'cat',
  plural: 'cats',
  path: '/cats',
  description: 'Cats for sale, priced in cents',
  table: 'cats',
  schemas: { item: CatSchema, create: CatCreateSchema, patch: CatPatchSchema, filters: catFilters },
  sorts: {
    name: { type: 'text' },
    price: { type: 'integer' },
    created_at: { type: 'timestamptz' }
  },
  defaultSort: 'name',
  trim: ['name', 'breed'],
  demo: { key: 'name', rows: demoCats },
  filter(filters, parts) {
    if (filters.breed !== undefined) parts.where(`lower(breed) = lower(${parts.param(filters.breed)})`)
    if (filters.min_price !== undefined) parts.where(`price >= ${parts.param(filters.min_price)}`)
    if (filters.max_price !== undefined) parts.where(`price <= ${parts.param(filters.max_price)}`)
    if (filters.q !== undefined) parts.where(`name ILIKE ${parts.param(containsPattern(filters.q))}`)
  }
})
