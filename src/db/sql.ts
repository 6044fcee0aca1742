/**
 * Collects the conditions and parameters of one statement. Values only ever travel as
 * `$n` parameters; the only text spliced into SQL is column names from our own code.
 */
export class QueryParts {
  readonly values: unknown[] = []
  private readonly conditions: string[] = []

  /** Leaves the first `count` placeholders to values added elsewhere (for statement texts built once). */
  skip(count: number): this {
    for (let i = 0; i < count; i++) this.values.push(undefined)
    return this
  }

  /** Adds a value and returns its placeholder. */
  param(value: unknown): string {
    this.values.push(value)
    return `$${this.values.length}`
  }

  where(condition: string): this {
    this.conditions.push(condition)
    return this
  }

  whereClause(): string {
    return this.conditions.length === 0 ? '' : `WHERE ${this.conditions.join(' AND ')}`
  }
}

/** Quotes an identifier from our own code (`order` is a reserved word). */
export const ident = (name: string) => `"${name.replace(/"/g, '""')}"`

/** A `LIKE` pattern matching `text` anywhere, with its wildcards taken literally. */
export const containsPattern = (text: string) => `%${text.replace(/[\\%_]/g, (char) => `\\${char}`)}%`
