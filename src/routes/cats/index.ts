import { resourceRoutes } from '../../resource/routes.js'
import { catsRepository, type CatRow } from './repository.js'
import { CatCreateSchema, CatFilters, CatPatchSchema, CatSchema, type CatFilters as Filters } from './schemas.js'

/** The cats API: the shared resource routes with cats' schemas and repository. */
export default resourceRoutes<CatRow, Filters>({
  singular: 'cat',
  plural: 'cats',
  path: '/cats',
  schemas: { item: CatSchema, create: CatCreateSchema, patch: CatPatchSchema, filters: CatFilters },
  sorts: ['name', 'price', 'created_at'],
  defaultSort: 'name',
  trim: ['name', 'breed'],
  repository: (app) => catsRepository(app.db)
})
