// Conntrack pressure, read cheaply from /proc at scrape time: entries against the limit, and the
// kernel's counts of entries it could not insert. A full table drops new flows, NAT or not, so an
// operator watching the masquerade wants it beside the agent's own metrics. All of it is of the
// network namespace the agent runs in (the node's: it runs with hostNetwork).
import type { Family } from '../net/cidr.js';
import { createMetric, createReadMetric, type Registry } from './prometheus.js';

/** The /proc/net/stat/nf_conntrack columns counted as insert failures (the `reason` label). */
export const FAILURE_COLUMNS = ['insert_failed', 'drop', 'early_drop'] as const;

/** One of FAILURE_COLUMNS. */
export type FailureColumn = (typeof FAILURE_COLUMNS)[number];

/**
 * Sums FAILURE_COLUMNS over the per-CPU rows of /proc/net/stat/nf_conntrack (a header of column
 * names, then one row of hex numbers per CPU). Undefined when a column is missing.
 */
export function parseConntrackStat(text: string): Record<FailureColumn, number> | undefined {
  const [header, ...rows] = text.split('\n').filter((l) => l.trim() !== '');
  const names = header?.trim().split(/\s+/) ?? [];
  const sums = {} as Record<FailureColumn, number>;
  for (const column of FAILURE_COLUMNS) {
    const at = names.indexOf(column);
    if (at < 0) return undefined;
    sums[column] = rows.reduce((n, row) => n + (Number.parseInt(row.trim().split(/\s+/)[at] ?? '0', 16) || 0), 0);
  }
  return sums;
}

/** The kernel's conntrack counts; 0 where it has no figure (nf_conntrack not loaded). */
export type ConntrackPressure = ReturnType<typeof readConntrackPressure>;

/** The pressure of a kernel without conntrack. */
export const NO_PRESSURE = { entries: 0, limit: 0, failures: { insert_failed: 0, drop: 0, early_drop: 0 } };

/** Reads the pressure through `readText` (main passes a file read; it throws for a missing file). */
export function readConntrackPressure(readText: (path: string) => string) {
  const read = (path: string): string => {
    try {
      return readText(path);
    } catch {
      return '';
    }
  };
  const num = (path: string): number => Number.parseInt(read(path), 10) || 0;
  const failures = parseConntrackStat(read('/proc/net/stat/nf_conntrack')) ?? NO_PRESSURE.failures;
  return { entries: num('/proc/sys/net/netfilter/nf_conntrack_count'), limit: num('/proc/sys/net/netfilter/nf_conntrack_max'), failures };
}

/**
 * Registers the conntrack metrics in `registry`: the pressure, read at each scrape, and the entries
 * of stale flows deleted per family, which the agent counts through the returned function.
 */
export function registerConntrackMetrics(registry: Registry, read: () => ConntrackPressure): (family: Family, deleted: number) => void {
  let last = NO_PRESSURE;
  // Read side by side in registration order, so the first family's read serves all three.
  createReadMetric(registry, 'gauge', {
    name: 'ip_masq_agent_conntrack_entries',
    help: 'Conntrack entries in the node network namespace (nf_conntrack_count).',
    read: () => (last = read()).entries,
  });
  createReadMetric(registry, 'gauge', {
    name: 'ip_masq_agent_conntrack_entries_limit',
    help: 'Most conntrack entries the kernel keeps (nf_conntrack_max); new flows are dropped beyond it.',
    read: () => last.limit,
  });
  registry.register({
    name: 'ip_masq_agent_conntrack_insert_failures_total',
    help: 'Conntrack entries not inserted, by reason (insert_failed, drop, early_drop of /proc/net/stat/nf_conntrack, summed over CPUs).',
    type: 'counter',
    samples: () => FAILURE_COLUMNS.map((reason) => ({ labels: { reason }, value: last.failures[reason] })),
  });
  const deleted = createMetric(registry, 'counter', {
    name: 'ip_masq_agent_conntrack_entries_deleted_total',
    help: 'Conntrack entries of flows deleted because a config change re-decided their translation.',
    labelNames: ['family'],
  });
  return (family, n) => deleted.inc({ family }, n);
}
