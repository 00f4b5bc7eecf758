import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent } from '../../src/agent/agent.js';
import { createFakeBackend } from '../backends/fake.js';
import type { ConfigOptions } from '../../src/config/config.js';
import { defaultConfig } from '../../src/config/merge.js';
import type { LoadedConfig } from '../../src/config/load.js';
import { parseConfigText } from '../../src/config/parse.js';
import { CommandError } from '../../src/errors.js';
import { createMemoryLogger } from './memory-logger.js';
import { createMetrics } from '../../src/observe/metrics.js';
import { healthRoutes, metricsRoutes } from '../../src/server/routes.js';
import { createFakeClock } from '../agent/fake-clock.js';

// The real agent (fake backend, fake clock) wired to metrics and health as main wires them.

const OPTS: ConfigOptions = { enableIPv6: true, nomasqAllReservedRanges: false };
const FILE = '/etc/config/ip-masq-agent';

function wire(initial: string) {
  let text = initial;
  const clock = createFakeClock();
  const backend = createFakeBackend();
  const metrics = createMetrics({ defaultMetrics: false });
  const agent = createAgent({
    loadConfig: async (): Promise<LoadedConfig> => {
      const parsed = parseConfigText(text, FILE, OPTS);
      return { config: parsed.config, warnings: parsed.warnings, files: [FILE], usingDefaults: false, hash: 'h' };
    },
    defaultConfig: () => defaultConfig(OPTS),
    backend,
    policyOptions: { enableIPv6: true, randomFully: false, toPorts: [] },
    log: createMemoryLogger(),
    clock,
    onSync: metrics.onSync,
  });
  const routes = { ...healthRoutes(() => agent.status(), clock), ...metricsRoutes(metrics, () => agent.status()) };
  const probe = async () => {
    const [h, r, m] = await Promise.all(['/healthz', '/readyz', '/metrics'].map((p) => routes[p]!()));
    const value = (series: string): number | undefined => {
      const line = m!.body.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    return { healthz: h!.status, readyz: r!.status, value, body: JSON.parse(h!.body) as { configValid: boolean; healthReasons: string[] } };
  };
  /** One resync a minute later, as the timer would run it. */
  const resync = async () => {
    clock.advance(60_000);
    return agent.sync('resync');
  };
  return { agent, backend, clock, probe, resync, setText: (t: string) => void (text = t) };
}

const lockBusy = () => new CommandError(['ip6tables-restore'], 4, 'Another app is currently holding the xtables lock', 'lock-busy', 'ip6tables-restore: lock busy');

test('agent + metrics + health: starting, first sync, drift repair', async () => {
  const w = wire('nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  let p = await w.probe();
  assert.deepEqual([p.healthz, p.readyz], [200, 503]);
  assert.equal(p.value('ip_masq_agent_sync_total{family="ipv4",result="applied"}'), undefined);

  await w.agent.sync('start');
  p = await w.probe();
  assert.deepEqual([p.healthz, p.readyz], [200, 200]);
  assert.equal(p.value('ip_masq_agent_sync_total{family="ipv4",result="applied"}'), 1);
  assert.equal(p.value('ip_masq_agent_sync_total{family="ipv6",result="applied"}'), 1);
  assert.equal(p.value('ip_masq_agent_last_sync_success_timestamp_seconds{family="ipv4"}'), w.clock.now() / 1000);
  assert.equal(p.value('ip_masq_agent_rules{family="ipv4"}'), w.backend.tables.get('ipv4')?.length);
  assert.equal(p.value('ip_masq_agent_config_valid'), 1);

  w.backend.tables.set('ipv4', []);
  await w.resync();
  p = await w.probe();
  assert.equal(p.value('ip_masq_agent_sync_total{family="ipv4",result="repaired"}'), 1);
  assert.equal(p.value('ip_masq_agent_drift_repairs_total{family="ipv4"}'), 1);
  assert.equal(p.value('ip_masq_agent_sync_total{family="ipv6",result="unchanged"}'), 1);
  assert.equal(p.value('ip_masq_agent_sync_duration_seconds_count'), 4);
});

test('agent + metrics + health: repeated IPv6 failures turn /healthz red without stopping IPv4 or the agent', async () => {
  const w = wire('nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  w.backend.failNextApplies(6, lockBusy(), 'ipv6');
  await w.agent.sync('start');
  let p = await w.probe();
  // IPv6 never succeeded: alive, not ready.
  assert.deepEqual([p.healthz, p.readyz], [200, 503]);
  for (let i = 0; i < 3; i++) await w.resync();
  p = await w.probe();
  assert.equal(p.healthz, 200, '4 failures are tolerated');
  await w.resync();
  p = await w.probe();
  assert.deepEqual([p.healthz, p.readyz], [503, 503]);
  assert.match(p.body.healthReasons.join('\n'), /ipv6: 5 syncs in a row failed .*lock busy/);
  assert.equal(p.value('ip_masq_agent_sync_total{family="ipv6",result="error"}'), 5);
  assert.equal(p.value('ip_masq_agent_last_sync_success_timestamp_seconds{family="ipv6"}'), 0);
  assert.equal(p.value('ip_masq_agent_sync_total{family="ipv4",result="unchanged"}'), 4);
  // The lock frees up: the agent, never stopped, recovers on its own.
  await w.resync(); // 6th failure
  await w.resync();
  p = await w.probe();
  assert.deepEqual([p.healthz, p.readyz], [200, 200]);
  assert.equal(p.value('ip_masq_agent_sync_total{family="ipv6",result="applied"}'), 1);
});

test('agent + metrics + health: an invalid config keeps the agent healthy and ready, visible as config_valid 0', async () => {
  const w = wire('nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  await w.agent.sync('start');
  const before = (await w.probe()).value;
  w.setText('nonMasqueradeCIDRs: [10.0.0.0/33]\n');
  for (let i = 0; i < 10; i++) await w.resync();
  const p = await w.probe();
  assert.deepEqual([p.healthz, p.readyz], [200, 200]);
  assert.equal(p.body.configValid, false);
  assert.equal(p.value('ip_masq_agent_config_valid'), 0);
  assert.equal(p.value('ip_masq_agent_sync_total{family="ipv4",result="unchanged"}'), 10);
  assert.equal(p.value('ip_masq_agent_rules{family="ipv4"}'), before('ip_masq_agent_rules{family="ipv4"}'));
});

test('agent + health: no sync for longer than 2 resync intervals is unhealthy, then unready', async () => {
  const w = wire('nonMasqueradeCIDRs: [10.0.0.0/8]\nresyncInterval: 2m\n');
  await w.agent.sync('start');
  w.clock.advance(4 * 60_000);
  assert.deepEqual(Object.values(await w.probe()).slice(0, 2), [200, 200]);
  w.clock.advance(1);
  assert.deepEqual(Object.values(await w.probe()).slice(0, 2), [503, 200]);
  w.clock.advance(2 * 60_000);
  assert.deepEqual(Object.values(await w.probe()).slice(0, 2), [503, 503]);
});
