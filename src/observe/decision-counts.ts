// Connections per decision for /metrics, read from the rules' own counters at scrape time. Reads
// are cached for a short while, so scrapes cannot drive iptables or nft, and concurrent scrapes
// share one read. The kernel's counters start at 0 whenever the agent rewrites its chain or table
// (a config change); the totals stay monotonic by adding what each counter grew by since the last
// read, or its whole value when it dropped. Lost: the connections counted between the last read
// and a rewrite, and a drop hidden because more connections than before were counted again by the
// next read.
import type { DecisionCount } from '../policy/types.js';
import { createReadMetric, type Registry } from './prometheus.js';

/** One series: a family, an action and the deciding list, with its connections since start (never decreasing). */
export type DecisionTotal = Omit<DecisionCount, 'cidr' | 'packets' | 'bytes'> & { readonly connections: number };

/** Scrapes within 5 s of a read share it (Prometheus scrapes every 15-60 s; an HA pair doubles that). */
export const DECISION_COUNTS_MAX_AGE_MS = 5_000;

/** Creates the cached, monotonic reader of decision counts: totals by {family, action, list}, read at most once per max age. */
export function createDecisionCounts(opts: {
  /** Reads every family's decision counts (one command per family, or one for nft). */
  readonly read: () => Promise<readonly DecisionCount[]>;
  /** Milliseconds now; injected so tests drive time. */
  readonly now: () => number;
}) {
  // Per counter (a row, an element): its last value. Per series: the connections counted so far.
  let last = new Map<string, number>();
  const totals = new Map<string, DecisionTotal>();
  let [readAt, failed] = [Number.NEGATIVE_INFINITY, 0];
  let pending: Promise<DecisionTotal[]> | undefined;

  const fold = (counts: readonly DecisionCount[]): void => {
    const next = new Map<string, number>();
    for (const c of counts) {
      const series = `${c.family} ${c.action} ${c.list}`;
      // The same CIDR twice is two rules, each with its own counter.
      let key = `${series} ${c.cidr ?? ''}`;
      for (let i = 1; next.has(key); i++) key = `${series} ${c.cidr ?? ''} #${i}`;
      next.set(key, c.packets);
      // A value below the last was reset by a rewrite: all of it is new. A counter gone with a
      // config change leaves what it counted counted.
      const was = last.get(key) ?? 0;
      const t = totals.get(series) ?? { family: c.family, action: c.action, list: c.list, connections: 0 };
      totals.set(series, { ...t, connections: t.connections + (c.packets >= was ? c.packets - was : c.packets) });
    }
    last = next;
  };
  const current = (): DecisionTotal[] => [...totals.values()];

  const refresh = async (): Promise<DecisionTotal[]> => {
    try {
      fold(await opts.read());
    } catch {
      failed += 1;
    }
    // A failure is cached too: a broken tool is not retried at every scrape.
    readAt = opts.now();
    return current();
  };

  return {
    totals: async (): Promise<DecisionTotal[]> => {
      if (opts.now() - readAt < DECISION_COUNTS_MAX_AGE_MS) return current();
      return (pending ??= refresh().finally(() => (pending = undefined)));
    },
    /** Reads that failed (the last totals were served instead). */
    failures: (): number => failed,
  };
}

/** The reader createDecisionCounts makes. */
export type DecisionCounts = ReturnType<typeof createDecisionCounts>;

/** Registers `ip_masq_agent_decision_connections_total` and its read failures in `registry`. */
export function registerDecisionMetrics(registry: Registry, counts: DecisionCounts): void {
  registry.register({
    name: 'ip_masq_agent_decision_connections_total',
    help: 'New connections by the decision that took them (action masquerade, snat or keep; list: the config list, link-local, or default), read from the counters of the rules themselves.',
    type: 'counter',
    samples: async () => (await counts.totals()).map((t) => ({ labels: { family: t.family, action: t.action, list: t.list }, value: t.connections })),
  });
  createReadMetric(registry, 'counter', {
    name: 'ip_masq_agent_decision_counter_read_failures_total',
    help: 'Reads of the rule counters that failed; the connection totals kept their last values.',
    // Families are read side by side: wait for the (shared) read this scrape may have started.
    read: async () => {
      await counts.totals();
      return counts.failures();
    },
  });
}
