import type { MetricObjectWithValues, MetricValueWithName } from 'prom-client'

/** One label set's counts: what `observe` updates on the request path. */
export interface Series {
  observe(value: number): void
}

interface SeriesState extends Series {
  labels: Record<string, string>
  counts: number[]
  sum: number
  count: number
}

/**
 * A Prometheus histogram for the request path, registered in a prom-client registry like
 * any of its metrics (same text format, same cluster aggregation). Each label set is a
 * plain object the caller keeps, so an observation is a bucket search and three
 * additions: prom-client's own `observe` hashes and validates the labels every time,
 * which costs more than the rest of the metrics of a request together.
 */
export class LabelledHistogram {
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  private readonly series = new Map<string, SeriesState>()

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    readonly buckets: readonly number[],
    /** Label sets past this many share one (`other` in every label), so a bug cannot grow the map without end. */
    readonly maxSeries = 2000
  ) {}

  /** The series of these label values (in `labelNames` order), made on first use. */
  child(...values: string[]): Series {
    const key = values.join('\u0000')
    let found = this.series.get(key)
    if (found === undefined) {
      const overflow = this.labelNames.map(() => 'other')
      if (this.series.size >= this.maxSeries && key !== overflow.join('\u0000')) return this.child(...overflow)
      found = this.create(Object.fromEntries(this.labelNames.map((name, i) => [name, values[i] ?? ''])))
      this.series.set(key, found)
    }
    return found
  }

  private create(labels: Record<string, string>): SeriesState {
    const bounds = this.buckets
    const state: SeriesState = {
      labels,
      counts: new Array<number>(bounds.length).fill(0),
      sum: 0,
      count: 0,
      observe(value: number) {
        // Buckets are few (about a dozen): a forward scan beats a binary search.
        let i = 0
        while (i < bounds.length && value > (bounds[i] as number)) i++
        if (i < bounds.length) state.counts[i] = (state.counts[i] as number) + 1
        state.sum += value
        state.count++
      }
    }
    return state
  }

  get(): MetricObjectWithValues<MetricValueWithName<string>> {
    const values: Array<MetricValueWithName<string>> = []
    for (const { labels, counts, sum, count } of this.series.values()) {
      let cumulative = 0
      this.buckets.forEach((bound, i) => {
        cumulative += counts[i] as number
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: bound }, value: cumulative })
      })
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: count })
      values.push({ metricName: `${this.name}_sum`, labels, value: sum })
      values.push({ metricName: `${this.name}_count`, labels, value: count })
    }
    return { name: this.name, help: this.help, type: 'histogram' as never, values, aggregator: this.aggregator, collect: () => {} }
  }

  reset(): void {
    this.series.clear()
  }
}
