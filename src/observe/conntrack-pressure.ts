// Conntrack pressure, read cheaply from /proc at scrape time: entries against the limit, and the
// kernel's counts of entries it could not insert. A full table drops new flows, NAT or not, so an
// operator watching the masquerade wants it beside the agent's own metrics. All of it is of the
// network namespace the agent runs in (the node's: it runs with hostNetwork).
import { readFileSync } from 'node:fs';
import type { Family } from '../net/cidr.js';
import { createCounter, createGauge, type Registry } from './prometheus.js';

/** The kernel's conntrack counts; a field is absent when its file is missing (no nf_conntrack loaded). */
export interface ConntrackPressure {
  readonly entries?: number;
  readonly limit?: number;
  /** Per-CPU counters of /proc/net/stat/nf_conntrack summed: insert_failed, drop, early_drop. */
  readonly failures?: Readonly<Record<FailureColumn, number>>;
}

/** The /proc/net/stat/nf_conntrack columns counted as insert failures (the `reason` label). */
export const FAILURE_COLUMNS = ['insert_failed', 'drop', 'early_drop'] as const;

/** One of FAILURE_COLUMNS. */
export type FailureColumn = (typeof FAILURE_COLUMNS)[number];

/** Reads a file's text; throws when it cannot. */
export type ReadText = (path: string) => string;

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

/** Reads the pressure; a file that cannot be read leaves its fields out. */
export function readConntrackPressure(readText: ReadText = (p) => readFileSync(p, 'utf8')): ConntrackPressure {
  const read = (path: string): string | undefined => {
    try {
      return readText(path);
    } catch {
      return undefined;
    }
  };
  const num = (path: string): number | undefined => {
    const n = Number.parseInt(read(path) ?? '', 10);
    return Number.isNaN(n) ? undefined : n;
  };
  const entries = num('/proc/sys/net/netfilter/nf_conntrack_count');
  const limit = num('/proc/sys/net/netfilter/nf_conntrack_max');
  const stat = read('/proc/net/stat/nf_conntrack');
  const failures = stat === undefined ? undefined : parseConntrackStat(stat);
  return { ...(entries === undefined ? {} : { entries }), ...(limit === undefined ? {} : { limit }), ...(failures === undefined ? {} : { failures }) };
}

/** Counts deleted stale-flow entries (deleteStaleFlows' result), for the agent to call after each deletion. */
export type CountDeleted = (family: Family, deleted: number) => void;

/**
 * Registers the conntrack metrics in `registry`: the pressure, read at each scrape (0 where the
 * kernel has no figure), and the entries deleted per family, counted through the returned function.
 */
export function registerConntrackMetrics(registry: Registry, read: () => ConntrackPressure = readConntrackPressure): CountDeleted {
  let last: ConntrackPressure = {};
  // Collected in registration order, so the first gauge's read serves all three.
  const entries = createGauge(registry, {
    name: 'ip_masq_agent_conntrack_entries',
    help: 'Conntrack entries in the node network namespace (nf_conntrack_count).',
    collect: () => {
      last = read();
      entries.set(last.entries ?? 0);
    },
  });
  const limit = createGauge(registry, {
    name: 'ip_masq_agent_conntrack_entries_limit',
    help: 'Most conntrack entries the kernel keeps (nf_conntrack_max); new flows are dropped beyond it.',
    collect: () => limit.set(last.limit ?? 0),
  });
  const failures = createCounter(registry, {
    name: 'ip_masq_agent_conntrack_insert_failures_total',
    help: 'Conntrack entries not inserted, by reason (insert_failed, drop, early_drop of /proc/net/stat/nf_conntrack, summed over CPUs).',
    labelNames: ['reason'],
    collect: () => {
      for (const reason of FAILURE_COLUMNS) failures.set({ reason }, last.failures?.[reason] ?? 0);
    },
  });
  const deleted = createCounter(registry, {
    name: 'ip_masq_agent_conntrack_entries_deleted_total',
    help: 'Conntrack entries of flows deleted because a config change re-decided their translation.',
    labelNames: ['family'],
  });
  return (family, n) => deleted.inc({ family }, n);
}
