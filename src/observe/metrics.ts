import { registerProcessMetrics } from './process-metrics.js';
import { createMetric, createHistogram, createReadMetric, createRegistry } from './prometheus.js';
import { FAMILY_RESULTS, RETRY_REASON, type AgentStatus, type SyncReport } from './agent-status.js';
import type { Family } from '../net/cidr.js';
import { registerDecisionMetrics, type DecisionCounts } from './decision-counts.js';
import { registerConntrackMetrics, type ConntrackPressure } from './conntrack-pressure.js';

/** Options of createMetrics. */
export interface MetricsOptions {
  /** Include the process and Node.js metrics (`process_*`, `nodejs_*`; default true). */
  readonly defaultMetrics?: boolean;
  /** Log lines dropped so far (the LineWriter's count), read at each scrape; without it the counter stays 0. */
  readonly logLinesDropped?: () => number;
  /** Connections per decision, read at scrape time; without it the metric is not registered. */
  readonly decisionCounts?: DecisionCounts;
  /** Reads the conntrack table's pressure at scrape time; with it the conntrack metrics are registered. */
  readonly conntrackPressure?: () => ConntrackPressure;
}

/**
 * Creates the agent's Prometheus metrics in a fresh registry (nothing global is touched, so tests
 * can make many): events counted as they happen, state read from a status snapshot.
 */
export function createMetrics(opts: MetricsOptions = {}) {
  const registry = createRegistry();
  if (opts.defaultMetrics ?? true) registerProcessMetrics(registry);

  const configValid = createMetric(registry, 'gauge', {
    name: 'ip_masq_agent_config_valid',
    help: '1 when the last config read was valid, 0 when it was rejected (the last good config stays in force).',
  });
  const configInfo = createMetric(registry, 'gauge', {
    name: 'ip_masq_agent_config_info',
    help: 'The config in force: its hash and source files (comma-joined, or "defaults"); always 1.',
    labelNames: ['hash', 'source'],
  });
  const syncTotal = createMetric(registry, 'counter', {
    name: 'ip_masq_agent_sync_total',
    help: 'Family syncs by result: unchanged, applied (config change or first write), repaired (drift undone), error.',
    labelNames: ['family', 'result'],
  });
  const syncDuration = createHistogram(registry, {
    name: 'ip_masq_agent_sync_duration_seconds',
    help: 'Duration of one family sync (read back, compare, write if needed), in seconds.',
    // From a fast nft/iptables-restore (about 1 ms) to a sync that waited on the xtables lock (10 s).
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const lastSuccess = createMetric(registry, 'gauge', {
    name: 'ip_masq_agent_last_sync_success_timestamp_seconds',
    help: 'Unix time of the last successful sync of the family; 0 when it has never succeeded.',
    labelNames: ['family'],
  });
  const driftRepairs = createMetric(registry, 'counter', {
    name: 'ip_masq_agent_drift_repairs_total',
    help: 'Times the rules of the family were found changed by someone else and restored.',
    labelNames: ['family'],
  });
  const rules = createMetric(registry, 'gauge', {
    name: 'ip_masq_agent_rules',
    help: 'Rule lines the agent owns for the family, as last written or verified.',
    labelNames: ['family'],
  });

  const shadowing = createMetric(registry, 'gauge', {
    name: 'ip_masq_agent_shadowing_rules',
    help: 'MASQUERADE/SNAT rules earlier in nat POSTROUTING than our jump (nftables: other tables translating at our hook first), which may override our non-masquerade ranges, by owner.',
    labelNames: ['family', 'owner'],
  });

  const retries = createMetric(registry, 'counter', {
    name: 'ip_masq_agent_sync_retries_total',
    help: 'Syncs run as a retry after a failed sync (sooner than the resync interval, with backoff).',
  });
  const retryBackoff = createMetric(registry, 'gauge', {
    name: 'ip_masq_agent_sync_retry_backoff_seconds',
    help: 'Delay before the pending retry of a failed sync; 0 when the last sync succeeded.',
  });

  createReadMetric(registry, 'counter', {
    name: 'ip_masq_agent_log_lines_dropped_total',
    help: 'Log lines dropped because stdout was blocked (a full or slow pipe) with the log buffer full, or closed.',
    read: () => opts.logLinesDropped?.() ?? 0,
  });

  if (opts.decisionCounts) registerDecisionMetrics(registry, opts.decisionCounts);
  const countDeletedFlows = opts.conntrackPressure ? registerConntrackMetrics(registry, opts.conntrackPressure) : () => {};

  /** Creates every series of a family at 0 (adding 0 to those that exist), so rate() and alerts see them from the start. */
  const ensureFamily = (family: Family): void => {
    for (const result of FAMILY_RESULTS) syncTotal.inc({ family, result }, 0);
    driftRepairs.inc({ family }, 0);
  };

  return {
    /** A registry of our own, with the process and Node.js metrics in it. */
    registry,
    /** Counts the conntrack entries of stale flows deleted (a no-op without `conntrackPressure`). */
    countDeletedFlows,
    /** Counts one sync: pass it as the agent's `onSync`. */
    onSync(report: SyncReport): void {
      if (report.reason === RETRY_REASON) retries.inc();
      retryBackoff.set((report.retryAfterMs ?? 0) / 1000);
      for (const f of report.families) {
        ensureFamily(f.family);
        syncTotal.inc({ family: f.family, result: f.result });
        if (f.result === 'repaired') driftRepairs.inc({ family: f.family });
        syncDuration.observe(f.durationMs / 1000);
      }
    },
    /** Sets the state gauges from a status snapshot; call it just before each scrape. */
    update(status: AgentStatus): void {
      configValid.set(status.configValid ? 1 : 0);
      // One series only: the previous hash must disappear when the config changes.
      configInfo.reset();
      if (status.configHash !== '') {
        const source = status.configFiles.length > 0 ? status.configFiles.join(',') : 'defaults';
        configInfo.set(1, { hash: status.configHash, source });
      }
      // An owner whose rules went must leave no series behind.
      shadowing.reset();
      for (const [family, s] of status.families) {
        ensureFamily(family);
        rules.set(s.rules, { family });
        for (const r of s.shadowingRules ?? []) shadowing.inc({ family, owner: r.owner });
        lastSuccess.set(s.lastSuccessAt === undefined ? 0 : s.lastSuccessAt / 1000, { family });
      }
    },
  };
}

/** The agent's metrics, as createMetrics makes them. */
export type Metrics = ReturnType<typeof createMetrics>;
