// A small Prometheus text-format (0.0.4) writer: counters, gauges and histograms with labels, in a
// registry that prints them in registration order. It writes byte for byte what prom-client 15
// wrote for the same metrics (test/observe/golden/), which it replaces (docs/performance.md).

/** Label values of one series, in the order they are printed. */
export type Labels = Readonly<Record<string, string>>;

/** One printed line of a family; `suffix` follows the name (a histogram's `_bucket`, `_sum`, `_count`). */
export interface Sample {
  readonly labels: Labels;
  readonly value: number;
  readonly suffix?: string;
}

/** A metric family: HELP, TYPE and the samples `samples()` returns at each scrape (it may read the process). */
export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  samples(): readonly Sample[] | Promise<readonly Sample[]>;
}

/** The exposition's content type, as prom-client served it. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const escapeText = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (s: string): string => escapeText(s).replace(/"/g, '\\"');

/** A sample value as Prometheus reads it (prom-client's spelling, `Nan` included). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'Nan';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  return `${v}`;
}

function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

function formatFamily(f: MetricFamily, samples: readonly Sample[]): string {
  const head = [`# HELP ${escapeText(f.name)} ${escapeText(f.help)}`, `# TYPE ${escapeText(f.name)} ${f.type}`];
  return [...head, ...samples.map((s) => `${f.name}${s.suffix ?? ''}${formatLabels(s.labels)} ${formatValue(s.value)}`)].join('\n');
}

/** Creates an empty registry: families in registration order; metrics with the same name cannot be registered twice. */
export function createRegistry() {
  const families = new Map<string, MetricFamily>();
  return {
    register(f: MetricFamily): void {
      if (families.has(f.name)) throw new Error(`A metric with the name ${f.name} has already been registered.`);
      families.set(f.name, f);
    },
    /** The whole exposition text, every family's samples read first (side by side). */
    async metrics(): Promise<string> {
      const all = [...families.values()];
      const samples = await Promise.all(all.map(async (f) => f.samples()));
      return `${all.map((f, i) => formatFamily(f, samples[i] ?? [])).join('\n\n')}\n`;
    },
  };
}

/** Metric families in registration order; `metrics()` reads and prints them all. */
export type Registry = ReturnType<typeof createRegistry>;

/** Series by label set, each made by `fresh` on first use; label names are sorted, so `{a,b}` and `{b,a}` are one series. */
function seriesMap<S>(fresh: (labels: Labels) => S): { readonly series: Map<string, S>; at(labels: Labels): S } {
  const series = new Map<string, S>();
  const at = (labels: Labels): S => {
    const key = JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1)));
    let s = series.get(key);
    if (s === undefined) series.set(key, (s = fresh(labels)));
    return s;
  };
  return { series, at };
}

/** What a metric is declared with; without label names it has one series, printed as 0 until set. */
export interface MetricOptions {
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly string[];
}

/** Creates a counter or gauge in `registry`: a value per label set. */
export function createMetric(registry: Registry, type: 'counter' | 'gauge', opts: MetricOptions) {
  const { series, at } = seriesMap((labels) => ({ labels, value: 0 }));
  if ((opts.labelNames ?? []).length === 0) at({});
  const metric = {
    ...opts,
    type,
    /** Adds `by` (default 1) to the series of `labels`, creating it at 0 first. */
    inc(labels: Labels = {}, by = 1): void {
      if (type === 'counter' && by < 0) throw new Error('It is not possible to decrease a counter');
      at(labels).value += by;
    },
    /** Sets the series of `labels` (default: the unlabelled one). */
    set(value: number, labels: Labels = {}): void {
      at(labels).value = value;
    },
    /** Removes every series of a labelled metric (what only the next values bring back). */
    reset: (): void => series.clear(),
    samples: () => [...series.values()],
  };
  registry.register(metric);
  return metric;
}

/** Creates a histogram with fixed upper bounds in `registry`; an unlabelled one prints its zero buckets before any observation. */
export function createHistogram(registry: Registry, opts: MetricOptions & { readonly buckets: readonly number[] }) {
  const bounds = [...opts.buckets].sort((a, b) => a - b);
  const { series, at } = seriesMap((labels) => ({ labels, counts: bounds.map(() => 0), sum: 0, count: 0 }));
  if ((opts.labelNames ?? []).length === 0) at({});
  const metric = {
    ...opts,
    type: 'histogram' as const,
    observe(value: number, labels: Labels = {}): void {
      const s = at(labels);
      const i = bounds.findIndex((b) => value <= b);
      if (i >= 0) s.counts[i] = (s.counts[i] ?? 0) + 1;
      s.sum += value;
      s.count += 1;
    },
    samples: () =>
      [...series.values()].flatMap((s) => {
        // As prom-client: `le` first, then the series' own labels.
        let acc = 0;
        const buckets = bounds.map((b, i) => ({ suffix: '_bucket', labels: { le: `${b}`, ...s.labels }, value: (acc += s.counts[i] ?? 0) }));
        const inf = { suffix: '_bucket', labels: { le: '+Inf', ...s.labels }, value: s.count };
        return [...buckets, inf, { suffix: '_sum', labels: s.labels, value: s.sum }, { suffix: '_count', labels: s.labels, value: s.count }];
      }),
  };
  registry.register(metric);
  return metric;
}

/** A family of one unlabelled series, read at each scrape; a read that gives undefined keeps the last value (0 at first). */
export function createReadMetric(registry: Registry, type: 'counter' | 'gauge', opts: MetricOptions & { readonly read: () => number | undefined | Promise<number | undefined> }): void {
  let last = 0;
  registry.register({ ...opts, type, samples: async () => [{ labels: {}, value: (last = (await opts.read()) ?? last) }] });
}
