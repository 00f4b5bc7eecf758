import type { AgentStatus } from '../observe/agent-status.js';
import type { Clock } from '../agent/clock.js';
import { evaluateHealth } from '../observe/health.js';
import type { Metrics } from '../observe/metrics.js';
import { PROMETHEUS_CONTENT_TYPE } from '../observe/prometheus.js';

/** One GET endpoint: what it answers; the HTTP adapter adds the headers and handles HEAD. */
export type Route = () => Promise<{ readonly status: number; readonly contentType: string; readonly body: string }>;

/** Endpoints by exact path (query strings are ignored). */
export type Routes = Readonly<Record<string, Route>>;

const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * `/healthz` (liveness) and `/readyz` (readiness): 200 or 503 with the same JSON body.
 * The agent counts as started when the routes are built.
 */
export function healthRoutes(getStatus: () => AgentStatus, clock: Clock): Routes {
  const startedAt = clock.now();
  const answer =
    (pick: 'healthy' | 'ready'): Route =>
    async () => {
      const h = evaluateHealth(getStatus(), clock.now(), startedAt);
      return { status: h[pick] ? 200 : 503, contentType: JSON_TYPE, body: `${JSON.stringify(h, null, 2)}\n` };
    };
  return { '/healthz': answer('healthy'), '/readyz': answer('ready') };
}

/** `/metrics` in the Prometheus text format, with the state gauges read from the status at scrape time. */
export function metricsRoutes(metrics: Metrics, getStatus: () => AgentStatus): Routes {
  return {
    '/metrics': async () => {
      metrics.update(getStatus());
      return { status: 200, contentType: PROMETHEUS_CONTENT_TYPE, body: await metrics.registry.metrics() };
    },
  };
}
