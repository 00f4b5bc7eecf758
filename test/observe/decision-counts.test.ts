// The scrape-time reader of decision counts: one read per max age however many scrapes, failures
// served from the last values, totals that never decrease when a rewrite resets the counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDecisionCounts, type DecisionTotal } from '../../src/observe/decision-counts.js';
import { createMetrics } from '../../src/observe/metrics.js';
import type { DecisionCount } from '../../src/policy/types.js';
import { createFakeClock } from '../agent/fake-clock.js';

const keep = (cidr: string, packets: number): DecisionCount => ({ family: 'ipv4', action: 'keep', list: 'nonMasqueradeCIDRs', cidr, packets, bytes: packets * 29 });
const masq = (packets: number): DecisionCount => ({ family: 'ipv4', action: 'masquerade', list: 'default', packets, bytes: packets * 29 });
const brief = (ts: readonly DecisionTotal[]): string[] => ts.map((t) => `${t.family} ${t.action} ${t.list} ${t.connections}`);

/** A reader that returns the queued reads in turn (an Error is thrown) and counts its calls. */
function scripted(...reads: (readonly DecisionCount[] | Error)[]) {
  let calls = 0;
  return {
    calls: () => calls,
    read: async (): Promise<readonly DecisionCount[]> => {
      const r = reads[Math.min(calls++, reads.length - 1)]!;
      if (r instanceof Error) throw r;
      return r;
    },
  };
}

test('sums the counters of a series (bounded: no CIDR in the series) and reads once per max age, however many scrapes', async () => {
  const clock = createFakeClock();
  const r = scripted([keep('10.0.0.0/8', 3), keep('172.16.0.0/12', 4), masq(5)], [keep('10.0.0.0/8', 6), keep('172.16.0.0/12', 4), masq(9)]);
  const counts = createDecisionCounts({ read: r.read, now: clock.now });
  const [a, b] = await Promise.all([counts.totals(), counts.totals()]);
  assert.equal(r.calls(), 1, 'concurrent scrapes share one read');
  assert.deepEqual(brief(a), ['ipv4 keep nonMasqueradeCIDRs 7', 'ipv4 masquerade default 5']);
  assert.deepEqual(b, a);
  clock.advance(4999);
  await counts.totals();
  assert.equal(r.calls(), 1, 'a scrape within the max age is served from the last read');
  clock.advance(1);
  assert.deepEqual(brief(await counts.totals()), ['ipv4 keep nonMasqueradeCIDRs 10', 'ipv4 masquerade default 9']);
  assert.equal(r.calls(), 2);
});

test('never decreases: a counter reset by a rewrite, or gone with a config change, keeps what it counted', async () => {
  const clock = createFakeClock();
  const r = scripted(
    [keep('10.0.0.0/8', 30), keep('172.16.0.0/12', 4), masq(40)],
    // Rewritten (config change): 172.16.0.0/12 removed, every counter from 0 again.
    [keep('10.0.0.0/8', 2), masq(1)],
    [keep('10.0.0.0/8', 5), masq(1)],
  );
  const counts = createDecisionCounts({ read: r.read, now: clock.now });
  assert.deepEqual(brief(await counts.totals()), ['ipv4 keep nonMasqueradeCIDRs 34', 'ipv4 masquerade default 40']);
  clock.advance(60_000);
  assert.deepEqual(brief(await counts.totals()), ['ipv4 keep nonMasqueradeCIDRs 36', 'ipv4 masquerade default 41']);
  clock.advance(60_000);
  assert.deepEqual(brief(await counts.totals()), ['ipv4 keep nonMasqueradeCIDRs 39', 'ipv4 masquerade default 41']);
});

test('a failed read serves the last totals, is counted, and is not retried before the max age', async () => {
  const clock = createFakeClock();
  const r = scripted([masq(5)], new Error('iptables: lock busy'), [masq(8)]);
  const counts = createDecisionCounts({ read: r.read, now: clock.now });
  await counts.totals();
  clock.advance(5000);
  assert.deepEqual(brief(await counts.totals()), ['ipv4 masquerade default 5']);
  assert.equal(counts.failures(), 1);
  await counts.totals();
  assert.equal(r.calls(), 2);
  clock.advance(5000);
  assert.deepEqual(brief(await counts.totals()), ['ipv4 masquerade default 8']);
  assert.equal(counts.failures(), 1);
});

test('/metrics shows the totals by family, action and list, and the read failures', async () => {
  const clock = createFakeClock();
  const r = scripted([keep('10.0.0.0/8', 30), masq(40)], new Error('nft: gone'));
  const counts = createDecisionCounts({ read: r.read, now: clock.now });
  const { registry } = createMetrics({ defaultMetrics: false, decisionCounts: counts });
  assert.doesNotMatch(await createMetrics({ defaultMetrics: false }).registry.metrics(), /decision/, 'registered only when given');
  const lines = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('ip_masq_agent_decision'));
  assert.deepEqual(lines(await registry.metrics()), [
    'ip_masq_agent_decision_connections_total{family="ipv4",action="keep",list="nonMasqueradeCIDRs"} 30',
    'ip_masq_agent_decision_connections_total{family="ipv4",action="masquerade",list="default"} 40',
    'ip_masq_agent_decision_counter_read_failures_total 0',
  ]);
  clock.advance(5000);
  assert.deepEqual(lines(await registry.metrics()).slice(-1), ['ip_masq_agent_decision_counter_read_failures_total 1']);
});
