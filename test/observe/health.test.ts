import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentStatus } from '../../src/observe/agent-status.js';
import { evaluateHealth } from '../../src/observe/health.js';
import { makeStatus, okFamily, T0 } from './status-fixture.js';

const SEC = 1000;
const MIN = 60 * SEC;

interface Case {
  readonly name: string;
  readonly status: AgentStatus;
  readonly now: number;
  readonly startedAt?: number;
  readonly healthy: boolean;
  readonly ready: boolean;
  /** Substrings that must appear, in order, one per reason. */
  readonly healthReasons?: readonly string[];
  readonly readyReasons?: readonly string[];
}

const failing = (lastSuccessAt: number | undefined, failures: number, at: number, error = 'iptables-restore: exit status 4') => ({
  lastAttemptAt: at,
  lastSuccessAt,
  lastError: error,
  consecutiveFailures: failures,
  rules: 4,
  driftRepairs: 0,
});

const CASES: readonly Case[] = [
  {
    name: 'starting: no sync yet is healthy but not ready',
    status: makeStatus(),
    now: T0,
    startedAt: T0,
    healthy: true,
    ready: false,
    readyReasons: ['no sync has run yet'],
  },
  {
    name: 'starting without a start time: healthy, not ready',
    status: makeStatus(),
    now: T0 + 60 * MIN,
    healthy: true,
    ready: false,
    readyReasons: ['no sync has run yet'],
  },
  {
    name: 'a first sync that never happens turns unhealthy after the liveness window',
    status: makeStatus(),
    now: T0 + 2 * MIN + 1,
    startedAt: T0,
    healthy: false,
    ready: false,
    healthReasons: ['no sync attempted in the 2m0s since start (limit 2m0s)'],
    readyReasons: ['no sync has run yet'],
  },
  {
    name: 'first sync ok on both families: healthy and ready',
    status: makeStatus({ ipv4: okFamily(T0), ipv6: okFamily(T0) }),
    now: T0 + SEC,
    healthy: true,
    ready: true,
  },
  {
    name: 'last attempt exactly at the liveness limit (2 x 60s) is still healthy',
    status: makeStatus({ ipv4: okFamily(T0) }),
    now: T0 + 2 * MIN,
    healthy: true,
    ready: true,
  },
  {
    name: 'last attempt just past the liveness limit: the loop is stuck',
    status: makeStatus({ ipv4: okFamily(T0) }),
    now: T0 + 2 * MIN + 1,
    healthy: false,
    ready: true,
    healthReasons: ['last sync attempt was 2m0s ago (limit 2m0s); the sync loop is stuck'],
  },
  {
    name: 'stale: nothing for 10 minutes is unhealthy and unready',
    status: makeStatus({ ipv4: okFamily(T0), ipv6: okFamily(T0) }),
    now: T0 + 10 * MIN,
    healthy: false,
    ready: false,
    healthReasons: ['last sync attempt was 10m0s ago (limit 2m0s)'],
    readyReasons: ['ipv4: last successful sync was 10m0s ago (limit 3m0s)', 'ipv6: last successful sync was 10m0s ago (limit 3m0s)'],
  },
  {
    name: 'a short resync interval still gets the 2 minute liveness floor',
    status: makeStatus({ ipv4: okFamily(T0) }, { resyncIntervalMs: 5 * SEC }),
    now: T0 + 110 * SEC,
    healthy: true,
    ready: true,
  },
  {
    name: 'a long resync interval (1h) widens both windows',
    status: makeStatus({ ipv4: okFamily(T0) }, { resyncIntervalMs: 60 * MIN }),
    now: T0 + 119 * MIN,
    healthy: true,
    ready: true,
  },
  {
    name: 'a long resync interval still goes stale past 2 intervals',
    status: makeStatus({ ipv4: okFamily(T0) }, { resyncIntervalMs: 60 * MIN }),
    now: T0 + 121 * MIN,
    healthy: false,
    ready: true,
    healthReasons: ['last sync attempt was 2h1m0s ago (limit 2h0m0s)'],
  },
  {
    name: '4 failures in a row (threshold 5) with attempts on time: healthy; last success 4 min ago: unready',
    status: makeStatus({ ipv4: failing(T0, 4, T0 + 4 * MIN) }),
    now: T0 + 4 * MIN,
    healthy: true,
    ready: false,
    readyReasons: ['ipv4: last successful sync was 4m0s ago (limit 3m0s); last error: iptables-restore: exit status 4'],
  },
  {
    name: '5 failures in a row turn unhealthy, naming the family and the error',
    status: makeStatus({ ipv4: failing(T0, 5, T0 + 5 * MIN), ipv6: okFamily(T0 + 5 * MIN) }),
    now: T0 + 5 * MIN,
    healthy: false,
    ready: false,
    healthReasons: ['ipv4: 5 syncs in a row failed (limit 5); last error: iptables-restore: exit status 4'],
    readyReasons: ['ipv4: last successful sync was 5m0s ago'],
  },
  {
    name: '5 failures within 15 s (retries with backoff, 60 s resync): still healthy, as 5 resyncs would take 4 minutes',
    status: makeStatus({ ipv4: { ...failing(T0, 5, T0 + 15 * SEC), failingSince: T0 } }),
    now: T0 + 15 * SEC,
    healthy: true,
    ready: true,
  },
  {
    name: 'failures by retries that span 4 resync intervals turn unhealthy',
    status: makeStatus({ ipv4: { ...failing(T0, 9, T0 + 4 * MIN), failingSince: T0 } }),
    now: T0 + 4 * MIN,
    healthy: false,
    ready: false,
    healthReasons: ['ipv4: 9 syncs in a row failed (limit 5)'],
    readyReasons: ['ipv4: last successful sync was 4m0s ago'],
  },
  {
    name: 'config invalid but rules fine: healthy and ready (the last good rules are in force)',
    status: makeStatus({ ipv4: okFamily(T0), ipv6: okFamily(T0) }, { configValid: false, configErrors: ['/etc/config/ip-masq-agent:2:5: nonMasqueradeCIDRs[0]: not a CIDR: "10.0.0.0/33"'] }),
    now: T0 + SEC,
    healthy: true,
    ready: true,
  },
  {
    name: 'IPv6 failing from the start while IPv4 is fine: healthy, not ready because of IPv6 only',
    status: makeStatus({ ipv4: okFamily(T0), ipv6: failing(undefined, 2, T0, 'ip6tables-restore: table does not exist') }),
    now: T0 + SEC,
    healthy: true,
    ready: false,
    readyReasons: ['ipv6: no successful sync yet; last error: ip6tables-restore: table does not exist'],
  },
  {
    name: 'IPv6 failing after an earlier success, still within the readiness window: ready',
    status: makeStatus({ ipv4: okFamily(T0 + 2 * MIN), ipv6: failing(T0, 2, T0 + 2 * MIN) }),
    now: T0 + 2 * MIN,
    healthy: true,
    ready: true,
  },
];

for (const c of CASES) {
  test(`health: ${c.name}`, () => {
    const h = evaluateHealth(c.status, c.now, c.startedAt);
    assert.equal(h.healthy, c.healthy, `healthy; reasons: ${h.healthReasons.join(' | ')}`);
    assert.equal(h.ready, c.ready, `ready; reasons: ${h.readyReasons.join(' | ')}`);
    const check = (got: readonly string[], want: readonly string[] = []): void => {
      assert.equal(got.length, want.length, `reasons: ${got.join(' | ')}`);
      want.forEach((w, i) => assert.ok(got[i]?.includes(w), `reason ${i}: ${got[i]} should include ${w}`));
    };
    check(h.healthReasons, c.healthReasons);
    check(h.readyReasons, c.readyReasons);
  });
}

test('health body: per-family ISO times, errors and the config in force', () => {
  const status = makeStatus(
    { ipv4: okFamily(T0, 5), ipv6: failing(undefined, 1, T0 + 500, 'ip6tables-restore: boom') },
    {
      configValid: false,
      configErrors: ['bad CIDR'],
      usingDefaults: true,
      configHash: 'deadbeef',
      configFiles: [],
      resyncIntervalMs: 90_000,
    },
  );
  const h = evaluateHealth(status, T0 + 2 * SEC);
  assert.deepEqual(JSON.parse(JSON.stringify(h)), {
    healthy: true,
    ready: false,
    healthReasons: [],
    readyReasons: ['ipv6: no successful sync yet; last error: ip6tables-restore: boom'],
    currentTime: '2024-01-01T00:00:02.000Z',
    lastUpdated: '2024-01-01T00:00:00.000Z',
    lastSync: '2024-01-01T00:00:00.500Z',
    resyncInterval: '1m30s',
    configValid: false,
    configErrors: ['bad CIDR'],
    usingDefaults: true,
    configHash: 'deadbeef',
    configFiles: [],
    families: {
      ipv4: {
        lastAttempt: '2024-01-01T00:00:00.000Z',
        lastSuccess: '2024-01-01T00:00:00.000Z',
        lastError: null,
        consecutiveFailures: 0,
        rules: 5,
        driftRepairs: 0,
      },
      ipv6: {
        lastAttempt: '2024-01-01T00:00:00.500Z',
        lastSuccess: null,
        lastError: 'ip6tables-restore: boom',
        consecutiveFailures: 1,
        rules: 4,
        driftRepairs: 0,
      },
    },
  });
});

test('health: a sync hanging since its start counts from the attempt, not the last success', () => {
  // The attempt began (lastAttemptAt) but never finished; the loop is stuck once the window passes.
  const stuck = makeStatus({ ipv4: { ...okFamily(T0), lastAttemptAt: T0 + MIN } }, { lastSyncAt: T0 });
  assert.equal(evaluateHealth(stuck, T0 + 3 * MIN).healthy, true);
  assert.equal(evaluateHealth(stuck, T0 + 3 * MIN + 1).healthy, false);
});

test('health body: a flood of error text is cut, and at most 20 config errors are listed', () => {
  const flood = 'x'.repeat(2_000_000);
  const status = makeStatus(
    { ipv4: { ...failing(undefined, 9, T0, flood), failingSince: T0 - 10 * MIN } },
    { configValid: false, configErrors: Array.from({ length: 5000 }, (_, i) => `/etc/config/ip-masq-agent:${i + 1}:1: ${flood}`) },
  );
  const h = evaluateHealth(status, T0);
  const body = JSON.stringify(h);
  assert.ok(body.length < 40_000, `body: ${body.length} bytes`);
  assert.equal(h.configErrors.length, 21);
  assert.equal(h.configErrors[20], '... and 4980 more');
  assert.match(h.families['ipv4']?.lastError ?? '', /^x+… \(cut, \d+ bytes\)$/);
  assert.ok(h.healthReasons.every((r) => r.length < 1200));
});

test('health body: families whose rules were kept from the kernel at an invalid start are listed; absent otherwise', () => {
  const kept = makeStatus({ ipv4: okFamily(T0) }, { configValid: false, configErrors: ['bad CIDR'], rulesKeptFromKernel: ['ipv4'] });
  const h = evaluateHealth(kept, T0 + SEC);
  assert.deepEqual(h.rulesKeptFromKernel, ['ipv4']);
  assert.equal(h.configValid, false);
  assert.equal(h.ready, true, 'the rules in force are good ones');
  assert.equal('rulesKeptFromKernel' in evaluateHealth(makeStatus({ ipv4: okFamily(T0) }), T0 + SEC), false);
});
