import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SyncReport } from '../../src/observe/agent-status.js';
import { createMetrics } from '../../src/observe/metrics.js';
import { makeStatus, okFamily, T0 } from './status-fixture.js';

/** The value of one exact sample line (`name{labels}`), or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const report = (families: SyncReport['families'], configValid = true): SyncReport => ({ reason: 'resync', at: T0, configValid, families });

test('metrics: before any sync only the config gauges and no family series exist', async () => {
  const m = createMetrics({ defaultMetrics: false });
  m.update(makeStatus({}, { configHash: '' }));
  const text = await m.registry.metrics();
  assert.equal(sample(text, 'ip_masq_agent_config_valid'), 1);
  assert.equal(sample(text, 'ip_masq_agent_sync_duration_seconds_count'), 0);
  assert.doesNotMatch(text, /family="/);
  assert.doesNotMatch(text, /^ip_masq_agent_config_info\{/m);
});

test('metrics: counters, histogram and gauges after start, quiet resyncs, a repair and a failure', async () => {
  const m = createMetrics({ defaultMetrics: false });
  m.onSync(
    report([
      { family: 'ipv4', result: 'applied', durationMs: 3, rules: 4 },
      { family: 'ipv6', result: 'applied', durationMs: 4, rules: 4 },
    ]),
  );
  m.onSync(
    report([
      { family: 'ipv4', result: 'unchanged', durationMs: 1, rules: 4 },
      { family: 'ipv6', result: 'unchanged', durationMs: 1, rules: 4 },
    ]),
  );
  m.onSync(
    report([
      { family: 'ipv4', result: 'repaired', durationMs: 2, rules: 4 },
      { family: 'ipv6', result: 'error', durationMs: 7000, rules: 4, error: 'ip6tables-restore: exit status 4' },
    ]),
  );
  m.update(
    makeStatus({
      ipv4: { ...okFamily(T0 + 120_500, 4), driftRepairs: 1, shadowingRules: [{ rule: '-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE', owner: 'unknown' }] },
      ipv6: { lastAttemptAt: T0 + 120_500, lastSuccessAt: T0 + 60_000, lastError: 'x', consecutiveFailures: 1, rules: 3, driftRepairs: 0 },
    }),
  );
  const text = await m.registry.metrics();
  const want: Record<string, number> = {
    'ip_masq_agent_sync_total{family="ipv4",result="unchanged"}': 1,
    'ip_masq_agent_sync_total{family="ipv4",result="applied"}': 1,
    'ip_masq_agent_sync_total{family="ipv4",result="repaired"}': 1,
    'ip_masq_agent_sync_total{family="ipv4",result="error"}': 0,
    'ip_masq_agent_sync_total{family="ipv6",result="unchanged"}': 1,
    'ip_masq_agent_sync_total{family="ipv6",result="applied"}': 1,
    'ip_masq_agent_sync_total{family="ipv6",result="repaired"}': 0,
    'ip_masq_agent_sync_total{family="ipv6",result="error"}': 1,
    'ip_masq_agent_drift_repairs_total{family="ipv4"}': 1,
    'ip_masq_agent_drift_repairs_total{family="ipv6"}': 0,
    ip_masq_agent_sync_duration_seconds_count: 6,
    'ip_masq_agent_sync_duration_seconds_bucket{le="0.001"}': 2,
    'ip_masq_agent_sync_duration_seconds_bucket{le="0.0025"}': 3,
    'ip_masq_agent_sync_duration_seconds_bucket{le="0.005"}': 5,
    'ip_masq_agent_sync_duration_seconds_bucket{le="5"}': 5,
    'ip_masq_agent_sync_duration_seconds_bucket{le="10"}': 6,
    'ip_masq_agent_sync_duration_seconds_bucket{le="+Inf"}': 6,
    'ip_masq_agent_rules{family="ipv4"}': 4,
    'ip_masq_agent_rules{family="ipv6"}': 3,
    'ip_masq_agent_shadowing_rules{family="ipv4",owner="unknown"}': 1,
    'ip_masq_agent_last_sync_success_timestamp_seconds{family="ipv4"}': (T0 + 120_500) / 1000,
    'ip_masq_agent_last_sync_success_timestamp_seconds{family="ipv6"}': (T0 + 60_000) / 1000,
    ip_masq_agent_config_valid: 1,
    'ip_masq_agent_config_info{hash="abc123",source="/etc/config/ip-masq-agent"}': 1,
  };
  for (const [series, value] of Object.entries(want)) assert.equal(sample(text, series), value, series);
  assert.doesNotMatch(text, /ip_masq_agent_shadowing_rules\{family="ipv6"/, 'nothing shadows IPv6: no series');
  const sum = sample(text, 'ip_masq_agent_sync_duration_seconds_sum') ?? Number.NaN;
  assert.ok(Math.abs(sum - 7.011) < 1e-9, `sum ${sum}`);
  assert.match(text, /^# TYPE ip_masq_agent_sync_duration_seconds histogram$/m);
  assert.match(text, /^# TYPE ip_masq_agent_sync_total counter$/m);
  assert.match(text, /^# TYPE ip_masq_agent_rules gauge$/m);
});

test('metrics: an invalid config shows as config_valid 0 while the config in force stays in config_info', async () => {
  const m = createMetrics({ defaultMetrics: false });
  m.update(makeStatus({ ipv4: okFamily(T0) }, { configValid: false, configErrors: ['bad CIDR'] }));
  const text = await m.registry.metrics();
  assert.equal(sample(text, 'ip_masq_agent_config_valid'), 0);
  assert.equal(sample(text, 'ip_masq_agent_config_info{hash="abc123",source="/etc/config/ip-masq-agent"}'), 1);
});

test('metrics: config_info keeps one series: a new hash replaces the old; no file means source="defaults"', async () => {
  const m = createMetrics({ defaultMetrics: false });
  m.update(makeStatus({}, { configHash: 'old', configFiles: ['/etc/config/a', '/etc/config/b'] }));
  let text = await m.registry.metrics();
  assert.equal(sample(text, 'ip_masq_agent_config_info{hash="old",source="/etc/config/a,/etc/config/b"}'), 1);
  m.update(makeStatus({}, { configHash: 'new', configFiles: [], usingDefaults: true }));
  text = await m.registry.metrics();
  assert.equal(sample(text, 'ip_masq_agent_config_info{hash="new",source="defaults"}'), 1);
  assert.equal(text.split('\n').filter((l) => l.startsWith('ip_masq_agent_config_info{')).length, 1);
});

test('metrics: a family that never succeeded reports last success 0, not a missing series', async () => {
  const m = createMetrics({ defaultMetrics: false });
  m.update(makeStatus({ ipv6: { lastAttemptAt: T0, lastSuccessAt: undefined, lastError: 'x', consecutiveFailures: 3, rules: 0, driftRepairs: 0 } }));
  const text = await m.registry.metrics();
  assert.equal(sample(text, 'ip_masq_agent_last_sync_success_timestamp_seconds{family="ipv6"}'), 0);
  assert.equal(sample(text, 'ip_masq_agent_sync_total{family="ipv6",result="error"}'), 0);
});

test('metrics: the process defaults are in the registry, and two instances do not collide', async () => {
  const a = createMetrics();
  const b = createMetrics();
  const text = await b.registry.metrics();
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  assert.match(await a.registry.metrics(), /^# TYPE ip_masq_agent_sync_total counter$/m);
});

test('metrics: retries are counted, the pending backoff is a gauge, and both reset to 0 backoff after a success', async () => {
  const m = createMetrics({ defaultMetrics: false });
  const failed = (reason: string, retryAfterMs: number): SyncReport => ({
    reason,
    at: T0,
    configValid: true,
    families: [{ family: 'ipv4', result: 'error', durationMs: 3, rules: 0, error: 'boom' }],
    retryAfterMs,
  });
  m.onSync(failed('start', 1000));
  let text = await m.registry.metrics();
  assert.equal(sample(text, 'ip_masq_agent_sync_retries_total'), 0);
  assert.equal(sample(text, 'ip_masq_agent_sync_retry_backoff_seconds'), 1);
  m.onSync(failed('retry', 2000));
  m.onSync(failed('retry', 4000));
  text = await m.registry.metrics();
  assert.equal(sample(text, 'ip_masq_agent_sync_retries_total'), 2);
  assert.equal(sample(text, 'ip_masq_agent_sync_retry_backoff_seconds'), 4);
  m.onSync({ ...report([{ family: 'ipv4', result: 'applied', durationMs: 3, rules: 4 }]), reason: 'retry' });
  text = await m.registry.metrics();
  assert.equal(sample(text, 'ip_masq_agent_sync_retries_total'), 3);
  assert.equal(sample(text, 'ip_masq_agent_sync_retry_backoff_seconds'), 0);
});

test("metrics: ip_masq_agent_log_lines_dropped_total is the log writer's count at each scrape, 0 without one", async () => {
  let dropped = 0;
  const m = createMetrics({ defaultMetrics: false, logLinesDropped: () => dropped });
  m.update(makeStatus({}));
  assert.equal(sample(await m.registry.metrics(), 'ip_masq_agent_log_lines_dropped_total'), 0);
  dropped = 42;
  m.update(makeStatus({}));
  assert.equal(sample(await m.registry.metrics(), 'ip_masq_agent_log_lines_dropped_total'), 42);
  const bare = createMetrics({ defaultMetrics: false });
  bare.update(makeStatus({}));
  assert.equal(sample(await bare.registry.metrics(), 'ip_masq_agent_log_lines_dropped_total'), 0);
});
