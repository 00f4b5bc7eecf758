// The conntrack pressure reader: the /proc/net/stat/nf_conntrack parser on text captured in a test
// namespace (kernel 6.18, 2 CPUs), the reader with files missing, and the metrics it feeds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NO_PRESSURE, parseConntrackStat, readConntrackPressure, registerConntrackMetrics, type ConntrackPressure } from '../../src/observe/conntrack-pressure.js';
import { createRegistry } from '../../src/observe/prometheus.js';

// Captured after three `conntrack -I` and one `-D` in a fresh namespace: insert counts on CPU 0.
const CAPTURED = `entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000002  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000003 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000
00000002  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000000
`;

// The same layout with failures on both CPUs (edited: a namespace cannot lower nf_conntrack_max to provoke them).
const FAILING = `entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000002  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000003 0000000a 00000001 000000ff 00000000  00000000 00000000 00000000 00000000
00000002  00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000010 00000000 00000000  00000000 00000000 00000000 00000000
`;

test('parseConntrackStat sums the failure columns over CPUs, in hex', () => {
  assert.deepEqual(parseConntrackStat(CAPTURED), { insert_failed: 0, drop: 0, early_drop: 0 });
  assert.deepEqual(parseConntrackStat(FAILING), { insert_failed: 10, drop: 1 + 16, early_drop: 255 });
});

test('parseConntrackStat: a layout without the columns is no answer', () => {
  assert.equal(parseConntrackStat('entries searched found\n00000001 00000002 00000003\n'), undefined);
  assert.equal(parseConntrackStat(''), undefined);
});

test('readConntrackPressure reads count, max and stat; a missing file reads as 0', () => {
  const files: Record<string, string> = {
    '/proc/sys/net/netfilter/nf_conntrack_count': '2\n',
    '/proc/sys/net/netfilter/nf_conntrack_max': '262144\n',
    '/proc/net/stat/nf_conntrack': FAILING,
  };
  const reader = (only: readonly string[]) => (path: string) => {
    if (!only.includes(path)) throw new Error(`ENOENT: ${path}`);
    return files[path]!;
  };
  assert.deepEqual(readConntrackPressure(reader(Object.keys(files))), { entries: 2, limit: 262144, failures: { insert_failed: 10, drop: 17, early_drop: 255 } });
  assert.deepEqual(readConntrackPressure(reader([])), NO_PRESSURE);
});

test('the conntrack metrics: pressure read once per scrape, deletions counted per family', async () => {
  const registry = createRegistry();
  let reads = 0;
  let now: ConntrackPressure = { entries: 7, limit: 100, failures: { insert_failed: 1, drop: 2, early_drop: 3 } };
  const countDeleted = registerConntrackMetrics(registry, () => {
    reads++;
    return now;
  });
  countDeleted('ipv4', 3);
  countDeleted('ipv4', 2);
  const text = await registry.metrics();
  for (const line of [
    'ip_masq_agent_conntrack_entries 7',
    'ip_masq_agent_conntrack_entries_limit 100',
    'ip_masq_agent_conntrack_insert_failures_total{reason="insert_failed"} 1',
    'ip_masq_agent_conntrack_insert_failures_total{reason="drop"} 2',
    'ip_masq_agent_conntrack_insert_failures_total{reason="early_drop"} 3',
    'ip_masq_agent_conntrack_entries_deleted_total{family="ipv4"} 5',
  ]) {
    assert.ok(text.split('\n').includes(line), `missing ${line} in\n${text}`);
  }
  assert.equal(reads, 1, 'once per scrape');
  now = NO_PRESSURE;
  const after = await registry.metrics();
  assert.ok(after.split('\n').includes('ip_masq_agent_conntrack_entries 0'));
  assert.ok(after.split('\n').includes('ip_masq_agent_conntrack_insert_failures_total{reason="drop"} 0'));
});
