import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { SyncReport } from '../../src/observe/agent-status.js';
import { createMetrics } from '../../src/observe/metrics.js';
import { createMetric, createHistogram, createRegistry, formatValue } from '../../src/observe/prometheus.js';
import { makeStatus, okFamily, T0 } from './status-fixture.js';

// The goldens were written by prom-client 15.1.3 from these same calls, before our own writer
// replaced it (ip_masq_agent_log_lines_dropped_total was added since, in the same format): scrapers
// and dashboards must see the same bytes.
const GOLDEN_DIR = fileURLToPath(new URL('../../../test/golden/observe/', import.meta.url));
const golden = (name: string): string => readFileSync(`${GOLDEN_DIR}${name}`, 'utf8');

const report = (families: SyncReport['families'], reason = 'resync', retryAfterMs?: number): SyncReport => ({
  reason,
  at: T0,
  configValid: true,
  families,
  ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
});

test('prometheus: the agent metrics before any sync are the bytes prom-client wrote', async () => {
  const m = createMetrics({ defaultMetrics: false });
  m.update(makeStatus({}, { configHash: '' }));
  assert.equal(await m.registry.metrics(), golden('metrics-before-sync.prom'));
});

test('prometheus: after syncs, a retry and escaped label values, the bytes are the ones prom-client wrote', async () => {
  const m = createMetrics({ defaultMetrics: false });
  m.onSync(
    report(
      [
        { family: 'ipv4', result: 'applied', durationMs: 3, rules: 4 },
        { family: 'ipv6', result: 'applied', durationMs: 4, rules: 4 },
      ],
      'start',
    ),
  );
  m.onSync(
    report(
      [
        { family: 'ipv4', result: 'unchanged', durationMs: 0.4, rules: 4 },
        { family: 'ipv6', result: 'error', durationMs: 12000, rules: 4, error: 'x' },
      ],
      'resync',
      2000,
    ),
  );
  m.onSync(report([{ family: 'ipv4', result: 'repaired', durationMs: 26.5, rules: 4 }], 'retry'));
  m.update(
    makeStatus(
      {
        ipv4: {
          ...okFamily(T0 + 120_500, 4),
          shadowingRules: [
            { rule: 'a', owner: 'calico' },
            { rule: 'b', owner: 'calico' },
            { rule: 'c', owner: 'unknown' },
          ],
        },
        ipv6: { lastAttemptAt: T0, lastSuccessAt: undefined, lastError: 'x', consecutiveFailures: 1, rules: 3, driftRepairs: 0 },
      },
      { configHash: 'h"a\\s\nh', configFiles: ['/etc/config/a b', '/etc/"c"'] },
    ),
  );
  assert.equal(await m.registry.metrics(), golden('metrics-after-syncs.prom'));
});

test("prometheus: the process and Node.js metrics keep prom-client's names, help and types, less the event-loop percentiles", async () => {
  const dropped = ['min', 'max', 'mean', 'stddev', 'p50', 'p90', 'p99'].map((s) => `nodejs_eventloop_lag_${s}_seconds`);
  const want = golden('process-metrics-prom-client.txt')
    .split('\n')
    .filter((l) => l !== '' && !dropped.some((d) => l.startsWith(`# HELP ${d} `) || l.startsWith(`# TYPE ${d} `)));
  const text = await createMetrics().registry.metrics();
  const got = text.split('\n').filter((l) => l.startsWith('# ') && !/^# (HELP|TYPE) ip_masq_agent_/.test(l));
  assert.deepEqual(got, want);
  const value = (name: string): number => Number(/^(\S+) (\S+)$/m.exec(text.split('\n').find((l) => l.startsWith(`${name} `)) ?? '')?.[2]);
  assert.ok(value('process_resident_memory_bytes') > 1 << 20, 'resident memory read from /proc');
  assert.ok(value('process_open_fds') > 0);
  assert.ok(value('nodejs_heap_size_used_bytes') > 0);
  assert.match(text, /^nodejs_heap_space_size_used_bytes\{space="old"\} \d+$/m);
  assert.match(text, new RegExp(`^nodejs_version_info\\{version="${process.version}",major="\\d+",minor="\\d+",patch="\\d+"\\} 1$`, 'm'));
});

test('prometheus: values, label order and series identity', async () => {
  const r = createRegistry();
  const c = createMetric(r, 'counter', { name: 'c_total', help: 'a\\b\nc', labelNames: ['a', 'b'] });
  c.inc({ a: 'x', b: 'y' });
  c.inc({ b: 'y', a: 'x' }, 2);
  assert.throws(() => c.inc({ a: 'x', b: 'y' }, -1), /not possible to decrease/);
  const g = createMetric(r, 'gauge', { name: 'g', help: 'g' });
  g.set(Number.NaN);
  const h = createHistogram(r, { name: 'h', help: 'h', labelNames: ['k'], buckets: [1, 0.5] });
  h.observe(0.5, { k: 'v' });
  assert.throws(() => createMetric(r, 'gauge', { name: 'g', help: 'again' }), /already been registered/);
  assert.equal(
    await r.metrics(),
    [
      '# HELP c_total a\\\\b\\nc',
      '# TYPE c_total counter',
      'c_total{a="x",b="y"} 3',
      '',
      '# HELP g g',
      '# TYPE g gauge',
      'g Nan',
      '',
      '# HELP h h',
      '# TYPE h histogram',
      'h_bucket{le="0.5",k="v"} 1',
      'h_bucket{le="1",k="v"} 1',
      'h_bucket{le="+Inf",k="v"} 1',
      'h_sum{k="v"} 0.5',
      'h_count{k="v"} 1',
      '',
    ].join('\n'),
  );
  assert.deepEqual([Infinity, -Infinity, 0.1].map(formatValue), ['+Inf', '-Inf', '0.1']);
});
