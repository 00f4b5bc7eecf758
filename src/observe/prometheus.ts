// A small Prometheus text-format (0.0.4) writer: counters, gauges and histograms with labels, in a
// registry that prints them in registration order. It writes byte for byte what prom-client 15
// wrote for the same metrics (test/observe/golden/), which it replaces: prom-client and its default
// metrics cost 5.6 MiB resident, loaded cluster, https, zlib and perf_hooks, and woke the process
// 100 times a second to sample the event loop (docs/performance.md).

/** Label values of one series, in the order they are printed. */
export type Labels = Readonly<Record<string, string>>;

/** A metric family that can print itself; `collect` runs first at each scrape (may read the process). */
export interface MetricFamily {
  readonly name: string;
  /** Sets values from the world just before they are printed. */
  collect?(): void | Promise<void>;
  /** The family's lines: HELP, TYPE and one line per sample. */
  lines(): string[];
}

/** The exposition's content type, as prom-client served it. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Metrics in registration order; `metrics()` collects and prints them all. */
export interface Registry {
  register(family: MetricFamily): void;
  /** The whole exposition text, each family's `collect` run first. */
  metrics(): Promise<string>;
}

/** Creates an empty registry; metrics with the same name cannot be registered twice. */
export function createRegistry(): Registry {
  const families = new Map<string, MetricFamily>();
  return {
    register(family) {
      if (families.has(family.name)) throw new Error(`A metric with the name ${family.name} has already been registered.`);
      families.set(family.name, family);
    },
    async metrics() {
      const all = [...families.values()];
      // A collect may be sync or async: each is awaited as a promise.
      await Promise.all(all.map(async (f) => f.collect?.()));
      return `${all.map((f) => f.lines().join('\n')).join('\n\n')}\n`;
    },
  };
}

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

/** Series by label set, each made by `fresh` on first use; label names are sorted, so `{a,b}` and `{b,a}` are one series. */
function seriesMap<S>(fresh: (labels: Labels) => S): { readonly series: Map<string, S>; at(labels: Labels): S } {
  const series = new Map<string, S>();
  const at = (labels: Labels): S => {
    const key = Object.keys(labels)
      .sort()
      .map((k) => `${k}:${labels[k] ?? ''}`)
      .join(',');
    let s = series.get(key);
    if (s === undefined) series.set(key, (s = fresh(labels)));
    return s;
  };
  return { series, at };
}

function header(name: string, help: string, type: string): string[] {
  return [`# HELP ${escapeText(name)} ${escapeText(help)}`, `# TYPE ${escapeText(name)} ${type}`];
}

/** What a counter or gauge is declared with. */
export interface MetricOptions {
  readonly name: string;
  readonly help: string;
  /** Without label names the metric has one series, printed as 0 until set. */
  readonly labelNames?: readonly string[];
  /** Sets values at scrape time (for process figures). */
  readonly collect?: () => void | Promise<void>;
}

/** A counter or gauge: a value per label set. */
export interface ValueMetric extends MetricFamily {
  /** Adds `by` (default 1) to the series of `labels`, creating it at 0 first. */
  inc(labels?: Labels, by?: number): void;
  /** Sets the unlabelled series, or the series of `labels`. */
  set(value: number): void;
  set(labels: Labels, value: number): void;
  /** Removes every series (an unlabelled metric goes back to one series at 0). */
  reset(): void;
}

function valueMetric(type: 'counter' | 'gauge', registry: Registry, opts: MetricOptions): ValueMetric {
  const { series, at } = seriesMap((labels) => ({ labels, value: 0 }));
  const unlabelled = (opts.labelNames ?? []).length === 0;
  const reset = (): void => {
    series.clear();
    if (unlabelled) at({});
  };
  reset();
  const metric: ValueMetric = {
    name: opts.name,
    ...(opts.collect ? { collect: opts.collect } : {}),
    inc(labels = {}, by = 1) {
      if (type === 'counter' && by < 0) throw new Error('It is not possible to decrease a counter');
      at(labels).value += by;
    },
    set(labelsOrValue: Labels | number, value?: number) {
      if (typeof labelsOrValue === 'number') at({}).value = labelsOrValue;
      else at(labelsOrValue).value = value ?? 0;
    },
    reset,
    lines: () => [...header(opts.name, opts.help, type), ...[...series.values()].map((s) => `${opts.name}${formatLabels(s.labels)} ${formatValue(s.value)}`)],
  };
  registry.register(metric);
  return metric;
}

/** Creates a counter in `registry`. */
export const createCounter = (registry: Registry, opts: MetricOptions): ValueMetric => valueMetric('counter', registry, opts);

/** Creates a gauge in `registry`. */
export const createGauge = (registry: Registry, opts: MetricOptions): ValueMetric => valueMetric('gauge', registry, opts);

/** A histogram with fixed upper bounds; series per label set. */
export interface HistogramMetric extends MetricFamily {
  observe(value: number, labels?: Labels): void;
}

/** Creates a histogram in `registry`; an unlabelled one prints its zero buckets before any observation. */
export function createHistogram(registry: Registry, opts: MetricOptions & { readonly buckets: readonly number[] }): HistogramMetric {
  const bounds = [...opts.buckets].sort((a, b) => a - b);
  const { series, at } = seriesMap((labels) => ({ labels, counts: bounds.map(() => 0), sum: 0, count: 0 }));
  if ((opts.labelNames ?? []).length === 0) at({});
  const metric: HistogramMetric = {
    name: opts.name,
    ...(opts.collect ? { collect: opts.collect } : {}),
    observe(value, labels = {}) {
      const s = at(labels);
      const i = bounds.findIndex((b) => value <= b);
      if (i >= 0) s.counts[i] = (s.counts[i] ?? 0) + 1;
      s.sum += value;
      s.count += 1;
    },
    lines() {
      const out = header(opts.name, opts.help, 'histogram');
      for (const s of series.values()) {
        // As prom-client: `le` first, then the series' own labels.
        const withLe = (le: string): string => formatLabels({ le, ...s.labels });
        let acc = 0;
        bounds.forEach((b, i) => {
          acc += s.counts[i] ?? 0;
          out.push(`${opts.name}_bucket${withLe(`${b}`)} ${acc}`);
        });
        out.push(`${opts.name}_bucket${withLe('+Inf')} ${s.count}`);
        out.push(`${opts.name}_sum${formatLabels(s.labels)} ${formatValue(s.sum)}`);
        out.push(`${opts.name}_count${formatLabels(s.labels)} ${s.count}`);
      }
      return out;
    },
  };
  registry.register(metric);
  return metric;
}
