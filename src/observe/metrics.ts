import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { RETRY_REASON, type AgentStatus, type FamilyResult, type SyncReport } from '../agent/agent.js';
import type { Family } from '../net/cidr.js';

/** Every result a family sync can have, so each series exists (at 0) before it first happens. */
const RESULTS: readonly FamilyResult[] = ['unchanged', 'applied', 'repaired', 'error'];

/** From a fast nft/iptables-restore (about 1 ms) to a sync that waited on the xtables lock (10 s). */
export const SYNC_DURATION_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The agent's Prometheus metrics: events counted as they happen, state read from a status snapshot. */
export interface Metrics {
  /** A registry of our own (not prom-client's global one), with the process defaults in it. */
  readonly registry: Registry;
  /** Counts one sync: pass it as the agent's `onSync`. */
  onSync(report: SyncReport): void;
  /** Sets the state gauges from a status snapshot; call it just before each scrape. */
  update(status: AgentStatus): void;
}

/** Options of createMetrics. */
export interface MetricsOptions {
  /** Include prom-client's process and Node.js metrics (default true). */
  readonly defaultMetrics?: boolean;
}

/**
 * How often the event-loop delay histogram (nodejs_eventloop_lag_*) samples, in ms. prom-client's
 * default of 10 ms wakes the process 100 times a second: about 0.4 s of CPU a minute, as much as
 * all the resyncs of a 64-CIDR agent at a 1 s resync. Once a second still catches every stall.
 */
export const EVENT_LOOP_SAMPLE_MS = 1000;

/** Creates the metrics in a fresh registry; nothing global is touched, so tests can make many. */
export function createMetrics(opts: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const registers = [registry];

  const configValid = new Gauge({
    name: 'ip_masq_agent_config_valid',
    help: '1 when the last config read was valid, 0 when it was rejected (the last good config stays in force).',
    registers,
  });
  const configInfo = new Gauge({
    name: 'ip_masq_agent_config_info',
    help: 'The config in force: its hash and source files (comma-joined, or "defaults"); always 1.',
    labelNames: ['hash', 'source'] as const,
    registers,
  });
  const syncTotal = new Counter({
    name: 'ip_masq_agent_sync_total',
    help: 'Family syncs by result: unchanged, applied (config change or first write), repaired (drift undone), error.',
    labelNames: ['family', 'result'] as const,
    registers,
  });
  const syncDuration = new Histogram({
    name: 'ip_masq_agent_sync_duration_seconds',
    help: 'Duration of one family sync (read back, compare, write if needed), in seconds.',
    buckets: [...SYNC_DURATION_BUCKETS],
    registers,
  });
  const lastSuccess = new Gauge({
    name: 'ip_masq_agent_last_sync_success_timestamp_seconds',
    help: 'Unix time of the last successful sync of the family; 0 when it has never succeeded.',
    labelNames: ['family'] as const,
    registers,
  });
  const driftRepairs = new Counter({
    name: 'ip_masq_agent_drift_repairs_total',
    help: 'Times the rules of the family were found changed by someone else and restored.',
    labelNames: ['family'] as const,
    registers,
  });
  const rules = new Gauge({
    name: 'ip_masq_agent_rules',
    help: 'Rule lines the agent owns for the family, as last written or verified.',
    labelNames: ['family'] as const,
    registers,
  });

  const shadowing = new Gauge({
    name: 'ip_masq_agent_shadowing_rules',
    help: 'MASQUERADE/SNAT rules earlier in nat POSTROUTING than our jump, which may override our non-masquerade ranges.',
    labelNames: ['family'] as const,
    registers,
  });

  const retries = new Counter({
    name: 'ip_masq_agent_sync_retries_total',
    help: 'Syncs run as a retry after a failed sync (sooner than the resync interval, with backoff).',
    registers,
  });
  const retryBackoff = new Gauge({
    name: 'ip_masq_agent_sync_retry_backoff_seconds',
    help: 'Delay before the pending retry of a failed sync; 0 when the last sync succeeded.',
    registers,
  });

  const known = new Set<Family>();
  /** Creates every series of a family at 0, so rate() and alerts see them from the start. */
  const ensureFamily = (family: Family): void => {
    if (known.has(family)) return;
    known.add(family);
    for (const result of RESULTS) syncTotal.inc({ family, result }, 0);
    driftRepairs.inc({ family }, 0);
  };

  return {
    registry,
    onSync(report) {
      if (report.reason === RETRY_REASON) retries.inc();
      retryBackoff.set((report.retryAfterMs ?? 0) / 1000);
      for (const f of report.families) {
        ensureFamily(f.family);
        syncTotal.inc({ family: f.family, result: f.result });
        if (f.result === 'repaired') driftRepairs.inc({ family: f.family });
        syncDuration.observe(f.durationMs / 1000);
      }
    },
    update(status) {
      configValid.set(status.configValid ? 1 : 0);
      // One series only: the previous hash must disappear when the config changes.
      configInfo.reset();
      if (status.configHash !== '') {
        const source = status.configFiles.length > 0 ? status.configFiles.join(',') : 'defaults';
        configInfo.set({ hash: status.configHash, source }, 1);
      }
      for (const [family, s] of status.families) {
        ensureFamily(family);
        rules.set({ family }, s.rules);
        shadowing.set({ family }, s.shadowingRules?.length ?? 0);
        lastSuccess.set({ family }, s.lastSuccessAt === undefined ? 0 : s.lastSuccessAt / 1000);
      }
    },
  };
}
