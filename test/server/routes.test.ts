import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentStatus } from '../../src/observe/agent-status.js';
import { createMetrics } from '../../src/observe/metrics.js';
import { healthRoutes, metricsRoutes, type Routes } from '../../src/server/routes.js';
import { createFakeClock } from '../agent/fake-clock.js';
import { makeStatus, okFamily } from '../observe/status-fixture.js';

async function call(routes: Routes, path: string) {
  const route = routes[path];
  assert.ok(route, `route ${path}`);
  const r = await route();
  return { ...r, json: r.contentType.startsWith('application/json') ? (JSON.parse(r.body) as Record<string, unknown>) : undefined };
}

test('health routes follow the agent through start, first sync, staleness and recovery', async () => {
  const clock = createFakeClock();
  let status: AgentStatus = makeStatus();
  const routes = healthRoutes(() => status, clock);
  assert.deepEqual(Object.keys(routes).sort(), ['/healthz', '/readyz']);

  // Starting: alive, not ready.
  assert.equal((await call(routes, '/healthz')).status, 200);
  const starting = await call(routes, '/readyz');
  assert.equal(starting.status, 503);
  assert.equal(starting.contentType, 'application/json; charset=utf-8');
  assert.deepEqual(starting.json?.['readyReasons'], ['no sync has run yet']);

  // First sync done.
  status = makeStatus({ ipv4: okFamily(clock.now()), ipv6: okFamily(clock.now()) });
  assert.equal((await call(routes, '/healthz')).status, 200);
  assert.equal((await call(routes, '/readyz')).status, 200);

  // Ten minutes without any sync: both red.
  clock.advance(10 * 60_000);
  const stale = await call(routes, '/healthz');
  assert.equal(stale.status, 503);
  assert.equal(stale.json?.['healthy'], false);
  assert.equal((await call(routes, '/readyz')).status, 503);

  // A sync happens again.
  status = makeStatus({ ipv4: okFamily(clock.now()), ipv6: okFamily(clock.now()) });
  assert.equal((await call(routes, '/healthz')).status, 200);
  assert.equal((await call(routes, '/readyz')).status, 200);
});

test('health routes: a first sync that never starts turns /healthz red after 2 minutes from route creation', async () => {
  const clock = createFakeClock();
  const routes = healthRoutes(() => makeStatus(), clock);
  clock.advance(120_000);
  assert.equal((await call(routes, '/healthz')).status, 200);
  clock.advance(1);
  assert.equal((await call(routes, '/healthz')).status, 503);
});

test('metrics route reads the status at scrape time and serves the Prometheus text format', async () => {
  const clock = createFakeClock();
  const metrics = createMetrics({ defaultMetrics: false });
  let status = makeStatus({ ipv4: okFamily(clock.now(), 4) });
  const routes = metricsRoutes(metrics, () => status);
  const first = await call(routes, '/metrics');
  assert.equal(first.status, 200);
  assert.match(first.contentType, /^text\/plain; version=0\.0\.4/);
  assert.match(first.body, /^ip_masq_agent_rules\{family="ipv4"\} 4$/m);
  status = makeStatus({ ipv4: okFamily(clock.now(), 7) }, { configValid: false, configErrors: ['bad'] });
  const second = await call(routes, '/metrics');
  assert.match(second.body, /^ip_masq_agent_rules\{family="ipv4"\} 7$/m);
  assert.match(second.body, /^ip_masq_agent_config_valid 0$/m);
});
