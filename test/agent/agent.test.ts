import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent, type AgentDeps } from '../../src/agent/agent.js';
import type { SyncReport } from '../../src/observe/agent-status.js';
import { createFakeBackend } from '../backends/fake.js';
import type { FakeObserved } from '../backends/fake.js';
import type { ShadowingRule } from '../../src/backends/shadow-owner.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import type { ConfigOptions } from '../../src/config/config.js';
import { defaultConfig } from '../../src/config/merge.js';
import { parseConfigText } from '../../src/config/parse.js';
import type { LoadedConfig } from '../../src/config/load.js';
import { CommandError, ConfigError } from '../../src/errors.js';
import { createMemoryLogger } from '../observe/memory-logger.js';
import { createFakeClock } from './fake-clock.js';
import { MAX_LOGGED_ISSUES } from '../../src/limits.js';

const OPTS: ConfigOptions = { enableIPv6: true, nomasqAllReservedRanges: false };

/** A config source the test can rewrite: YAML text, `null` for a missing file. */
function harness(initial: string | null, extra: Partial<AgentDeps> = {}) {
  let text: string | null = initial;
  const backend = createFakeBackend();
  const clock = createFakeClock();
  const log = createMemoryLogger();
  /** Every timer the agent armed, in ms, and every sync report, in order. */
  const delays: number[] = [];
  const reports: SyncReport[] = [];
  const loadConfig = async (): Promise<LoadedConfig> => {
    if (text === null) {
      return { config: defaultConfig(OPTS), warnings: [], files: [], usingDefaults: true, hash: 'defaults' };
    }
    const parsed = parseConfigText(text, '/etc/config/ip-masq-agent', OPTS);
    return { config: parsed.config, warnings: parsed.warnings, files: ['/etc/config/ip-masq-agent'], usingDefaults: false, hash: text };
  };
  const agent = createAgent({
    loadConfig,
    defaultConfig: () => defaultConfig(OPTS),
    backend,
    policyOptions: { enableIPv6: true, randomFully: true, toPorts: [] },
    log,
    clock: { now: clock.now, setTimer: (ms, fn) => (delays.push(ms), clock.setTimer(ms, fn)) },
    onSync: (r) => void reports.push(r),
    ...extra,
  });
  return {
    agent,
    backend,
    clock,
    log,
    delays,
    reports,
    /** Fires the armed timer and waits until the sync it started has ended and armed the next one. */
    async fireTimer(): Promise<SyncReport> {
      const n = reports.length;
      const armed = delays.length;
      clock.advance(delays[delays.length - 1] ?? 0);
      for (let i = 0; i < 1000 && (reports.length === n || delays.length === armed); i++) await new Promise((r) => setImmediate(r));
      const r = reports[n];
      assert.ok(r && delays.length > armed, 'the timer started a sync that armed the next timer');
      return r;
    },
    setText: (t: string | null) => {
      text = t;
    },
  };
}

const ipv4Rules = (h: ReturnType<typeof harness>) => h.backend.tables.get('ipv4') ?? [];

test('start applies the config to both families and reports success', async () => {
  const h = harness('nonMasqueradeCIDRs: [10.0.0.0/8, "2001:db8::/32"]\n');
  const r = await h.agent.start();
  assert.deepEqual(
    r.families.map((f) => [f.family, f.result]),
    [
      ['ipv4', 'applied'],
      ['ipv6', 'applied'],
    ],
  );
  assert.deepEqual(ipv4Rules(h), ['jump', 'return 169.254.0.0/16', 'return 10.0.0.0/8', 'masquerade random-fully']);
  assert.deepEqual(h.backend.tables.get('ipv6'), ['jump', 'return fe80::/10', 'return 2001:db8::/32', 'masquerade random-fully']);
  const st = h.agent.status();
  assert.equal(st.configValid, true);
  assert.ok(st.families.get('ipv4')?.lastSuccessAt !== undefined);
  await h.agent.stop();
});

test('1,000 quiet resyncs rewrite nothing and log nothing new', async () => {
  const h = harness('nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  await h.agent.start();
  const logged = h.log.entries.filter((e) => e.level !== 'debug').length;
  for (let i = 0; i < 1000; i++) await h.agent.sync('resync');
  assert.equal(h.backend.writes.get('ipv4'), 1);
  assert.equal(h.backend.writes.get('ipv6'), 1);
  assert.equal(h.log.entries.filter((e) => e.level !== 'debug').length, logged);
  await h.agent.stop();
});

test('--postrouting-position=first: a rule inserted above our jump is repaired at the next resync and counted; with append it is left alone', async () => {
  const first = harness(null, { policyOptions: { enableIPv6: false, randomFully: true, toPorts: [], postroutingPosition: 'first' } });
  await first.agent.start();
  assert.deepEqual(ipv4Rules(first).slice(0, 2), ['jump first', 'return mark 0x4000']);
  first.backend.insertAbove('ipv4');
  const r = await first.agent.sync('resync');
  assert.equal(r.families.find((f) => f.family === 'ipv4')?.result, 'repaired');
  assert.equal(first.agent.status().families.get('ipv4')?.driftRepairs, 1);
  assert.equal(ipv4Rules(first)[0], 'jump first');
  await first.agent.stop();

  const append = harness(null, { policyOptions: { enableIPv6: false, randomFully: true, toPorts: [] } });
  await append.agent.start();
  append.backend.insertAbove('ipv4');
  assert.equal((await append.agent.sync('resync')).families.find((f) => f.family === 'ipv4')?.result, 'unchanged');
  await append.agent.stop();
});

test('damage by a third party is repaired at the next resync, counted and logged', async () => {
  const h = harness(null);
  await h.agent.start();
  const good = ipv4Rules(h);
  h.backend.tables.set('ipv4', []);
  const r = await h.agent.sync('resync');
  assert.equal(r.families.find((f) => f.family === 'ipv4')?.result, 'repaired');
  assert.deepEqual(ipv4Rules(h), good);
  assert.equal(h.agent.status().families.get('ipv4')?.driftRepairs, 1);
  assert.ok(h.log.entries.some((e) => e.level === 'warn' && /drifted/.test(e.msg)));
  await h.agent.stop();
});

test('an invalid config keeps the last good rules, keeps healing them, and reports the error once', async () => {
  const h = harness('nonMasqueradeCIDRs: [192.0.2.0/24]\n');
  await h.agent.start();
  const good = ipv4Rules(h);
  h.setText('nonMasqueradeCIDRs: [192.0.2.0/33]\n');
  for (let i = 0; i < 5; i++) {
    const r = await h.agent.sync('resync');
    assert.equal(r.configValid, false);
  }
  assert.deepEqual(ipv4Rules(h), good);
  const st = h.agent.status();
  assert.equal(st.configValid, false);
  assert.match(st.configErrors.join('\n'), /192\.0\.2\.0\/33/);
  assert.equal(h.log.entries.filter((e) => e.level === 'error' && /config rejected/.test(e.msg)).length, 1);
  // Rule decay while the config is bad is still healed with the last good config.
  h.backend.tables.set('ipv4', ['jump']);
  await h.agent.sync('resync');
  assert.deepEqual(ipv4Rules(h), good);
  // Fixing the file applies it.
  h.setText('nonMasqueradeCIDRs: [198.51.100.0/24]\n');
  await h.agent.sync('resync');
  assert.equal(h.agent.status().configValid, true);
  assert.ok(ipv4Rules(h).includes('return 198.51.100.0/24'));
  await h.agent.stop();
});

test('an invalid config on first start applies the built-in defaults and says so loudly', async () => {
  const h = harness('nonMasqueradeCIDR: [10.0.0.0/8]\n');
  await h.agent.start();
  assert.deepEqual(ipv4Rules(h), ['jump', 'return 169.254.0.0/16', 'return 10.0.0.0/8', 'return 172.16.0.0/12', 'return 192.168.0.0/16', 'masquerade random-fully']);
  const err = h.log.entries.find((e) => e.level === 'error');
  assert.ok(err && /first start/.test(err.msg), JSON.stringify(h.log.entries));
  assert.equal(h.agent.status().configValid, false);
  assert.equal(h.agent.status().usingDefaults, true);
  await h.agent.stop();
});

test('a missing file means defaults, and removing the file brings the defaults back', async () => {
  const h = harness('nonMasqueradeCIDRs: []\n');
  await h.agent.start();
  assert.deepEqual(ipv4Rules(h), ['jump', 'return 169.254.0.0/16', 'masquerade random-fully']);
  h.setText(null);
  await h.agent.sync('resync');
  assert.ok(ipv4Rules(h).includes('return 172.16.0.0/12'));
  assert.equal(h.agent.status().usingDefaults, true);
  assert.ok(h.log.entries.some((e) => /defaults in use/.test(e.msg)));
  await h.agent.stop();
});

test('"defaults in use (no config file)" only when there is none; a file that sets no key says so', async () => {
  let files: string[] = ['/etc/config/ip-masq-agent'];
  const h = harness(null, {
    loadConfig: async () => ({ config: defaultConfig(OPTS), warnings: [], files, usingDefaults: true, hash: `d${files.length}` }),
  });
  await h.agent.start();
  files = [];
  await h.agent.sync('resync');
  assert.deepEqual(
    h.log.entries.filter((e) => e.msg.startsWith('config applied')).map((e) => e.msg),
    ['config applied: defaults in use (the config sets no key)', 'config applied: defaults in use (no config file)'],
  );
  await h.agent.stop();
});

test('an IPv4 failure does not block IPv6, and the failure is reported until it recovers', async () => {
  const h = harness(null);
  h.backend.failNextApplies(2, new CommandError(['iptables-restore'], 4, 'lock', 'lock-busy', 'iptables-restore: lock busy'), 'ipv4');
  const r = await h.agent.start();
  assert.deepEqual(
    r.families.map((f) => [f.family, f.result]),
    [
      ['ipv4', 'error'],
      ['ipv6', 'applied'],
    ],
  );
  assert.equal(h.agent.status().families.get('ipv4')?.consecutiveFailures, 1);
  await h.agent.sync('resync');
  assert.equal(h.agent.status().families.get('ipv4')?.consecutiveFailures, 2);
  const ok = await h.agent.sync('resync');
  assert.equal(ok.families[0]?.result, 'applied');
  assert.equal(h.agent.status().families.get('ipv4')?.consecutiveFailures, 0);
  assert.ok(h.log.entries.some((e) => e.msg === 'sync recovered'));
  await h.agent.stop();
});

test('the resync timer follows resyncInterval from the config and stops on stop()', async () => {
  const h = harness('resyncInterval: 30s\n');
  await h.agent.start();
  h.backend.tables.set('ipv4', []);
  h.clock.advance(29_999);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(ipv4Rules(h), []);
  h.clock.advance(1);
  await h.agent.sync('probe'); // waits for the timer's sync to finish
  assert.ok(ipv4Rules(h).length > 0);
  await h.agent.stop();
  assert.equal(h.clock.pending(), 0);
});

test('concurrent triggers fold into at most one more run', async () => {
  const h = harness(null);
  let loads = 0;
  const slow = createAgent({
    loadConfig: async () => {
      loads++;
      await new Promise((r) => setImmediate(r));
      return { config: defaultConfig(OPTS), warnings: [], files: [], usingDefaults: true, hash: 'd' };
    },
    defaultConfig: () => defaultConfig(OPTS),
    backend: h.backend,
    policyOptions: { enableIPv6: false, randomFully: false, toPorts: [] },
    log: h.log,
    clock: h.clock,
  });
  const runs = [slow.sync('a'), slow.sync('b'), slow.sync('c'), slow.sync('d')];
  await Promise.all(runs);
  assert.equal(loads, 2);
  await slow.stop();
});

test('ConfigError messages reach the status with file, line and key path', async () => {
  const h = harness('nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - abcdefg\n');
  await h.agent.start();
  const text = h.agent.status().configErrors.join('\n');
  assert.match(text, /\/etc\/config\/ip-masq-agent:3:\d+/);
  assert.match(text, /nonMasqueradeCIDRs\[1\]/);
  assert.ok(new ConfigError([]) instanceof Error);
  await h.agent.stop();
});

test('rules that masquerade before our jump are checked every sync and reported once while unchanged', async () => {
  const h = harness(null);
  let shadowing: ShadowingRule[] = [{ rule: '-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE', owner: 'unknown' }];
  let plans = 0;
  const backend = { ...h.backend, plan: (o: FakeObserved, p: FamilyPolicy) => (plans++, { ...h.backend.plan(o, p), shadowing }) };
  const agent = createAgent({
    loadConfig: async () => ({ config: defaultConfig(OPTS), warnings: [], files: [], usingDefaults: true, hash: 'd' }),
    defaultConfig: () => defaultConfig(OPTS),
    backend,
    policyOptions: { enableIPv6: false, randomFully: false, toPorts: [] },
    log: h.log,
    clock: h.clock,
  });
  const warned = () => h.log.entries.filter((e) => e.level === 'warn' && /before our jump/.test(e.msg));
  await agent.start();
  await agent.sync('resync');
  assert.deepEqual(agent.status().families.get('ipv4')?.shadowingRules, shadowing);
  assert.equal(plans, 2, 'checked on every sync: another program may insert such a rule at any time');
  assert.equal(warned().length, 1);
  // Another rule is news; none left clears the status without a warning.
  shadowing = [...shadowing, { rule: '-A POSTROUTING -j cali-nat-outgoing', owner: 'calico' }];
  await agent.sync('resync');
  assert.deepEqual(
    warned().at(-1)?.fields['rules'],
    shadowing.map((s) => s.rule),
  );
  assert.deepEqual(warned().at(-1)?.fields['owners'], ['unknown', 'calico'], 'the owners are named once each');
  shadowing = [];
  await agent.sync('resync');
  assert.deepEqual(agent.status().families.get('ipv4')?.shadowingRules, []);
  assert.equal(warned().length, 2);
  await agent.stop();
});

test('redundant ranges (duplicates, contained in another or in link-local) are reported once per config', async () => {
  const h = harness('nonMasqueradeCIDRs: [10.0.0.0/8, 10.1.0.0/16, 169.254.169.0/24]\n');
  await h.agent.start();
  await h.agent.sync('resync');
  const warned = h.log.entries.filter((e) => e.msg === 'redundant non-masquerade range').map((e) => String(e.fields['detail']));
  assert.equal(warned.length, 2, warned.join('\n'));
  assert.ok(
    warned.some((w) => w.startsWith('10.1.0.0/16') && w.includes('10.0.0.0/8')),
    warned.join('\n'),
  );
  assert.ok(
    warned.some((w) => w.startsWith('169.254.169.0/24') && w.includes('169.254.0.0/16')),
    warned.join('\n'),
  );
  // The iptables chain keeps config order and every entry, for drop-in parity.
  assert.deepEqual(ipv4Rules(h).slice(1, 5), ['return 169.254.0.0/16', 'return 10.0.0.0/8', 'return 10.1.0.0/16', 'return 169.254.169.0/24']);
  await h.agent.stop();
});

test('warnings of an unchanged config are logged once over 10 syncs, the first 20 in full and one line counting the rest', async () => {
  // 100 copies of one CIDR: 99 "listed twice" warnings from the loader at every read.
  const text = `nonMasqueradeCIDRs:\n${'  - 10.0.0.0/8\n'.repeat(100)}`;
  const h = harness(text);
  await h.agent.start();
  for (let i = 0; i < 10; i++) {
    h.clock.advance(60_000);
    await h.agent.sync('resync');
  }
  const warned = h.log.entries.filter((e) => e.level === 'warn');
  assert.equal(warned.filter((e) => e.msg === 'config warning').length, MAX_LOGGED_ISSUES);
  const rest = warned.filter((e) => e.msg === 'more config warnings not shown');
  assert.equal(rest.length, 1);
  assert.equal(rest[0]?.fields['count'], 99 - MAX_LOGGED_ISSUES);
  assert.equal(warned.length, MAX_LOGGED_ISSUES + 1);
  // A changed config is news: its warnings are logged again, once.
  h.setText(`${text}  - 192.0.2.0/24\n  - 192.0.2.0/24\n`);
  await h.agent.sync('config changed');
  await h.agent.sync('resync');
  assert.equal(h.log.entries.filter((e) => e.msg === 'config warning').length, 2 * MAX_LOGGED_ISSUES);
  assert.equal(h.log.entries.filter((e) => e.msg === 'more config warnings not shown').length, 2);
  await h.agent.stop();
});

test('"config applied" shows every list as CIDR texts, each summarised when long (masqueradeCIDRs, snat, masqueradeSourceCIDRs too)', async () => {
  const list = Array.from({ length: 100 }, (_, i) => `10.9.${i}.0/24`);
  const h = harness(
    `cidrLimit: 500\nnonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [${list.join(', ')}]\nsnat: [{cidrs: [198.51.100.0/24], toSource: 192.0.2.9}]\nmasqueradeSourceCIDRs: [10.244.0.0/16]\n`,
  );
  await h.agent.start();
  const applied = h.log.entries.filter((e) => e.msg === 'config applied');
  assert.equal(applied.length, 1);
  const config = applied[0]?.fields['config'] as Record<string, unknown>;
  assert.deepEqual(config['nonMasqueradeCIDRs'], ['10.0.0.0/8']);
  assert.deepEqual(config['masqueradeCIDRs'], list.slice(0, 10));
  assert.equal(config['masqueradeCIDRCount'], 100);
  assert.deepEqual(config['snat'], [{ cidr: '198.51.100.0/24', toSource: '192.0.2.9' }]);
  assert.deepEqual(config['masqueradeSourceCIDRs'], ['10.244.0.0/16']);
  await h.agent.stop();
});

test('"config applied" summarises a long CIDR list: the first few and the count', async () => {
  const list = Array.from({ length: 5000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const h = harness(`cidrLimit: 5000\nnonMasqueradeCIDRs: [${list.join(', ')}]\n`);
  await h.agent.start();
  const applied = h.log.entries.filter((e) => e.msg === 'config applied');
  assert.equal(applied.length, 1);
  const config = applied[0]?.fields['config'] as { nonMasqueradeCIDRs: string[]; nonMasqueradeCIDRCount: number };
  assert.deepEqual(config.nonMasqueradeCIDRs, list.slice(0, 10));
  assert.equal(config.nonMasqueradeCIDRCount, 5000);
  assert.ok(JSON.stringify(applied[0]?.fields).length < 2000, 'one short line');
  const rules = h.log.entries.find((e) => e.msg === 'rules applied');
  assert.equal(rules?.fields['rules'], '5003 lines', 'jump, link-local, 5,000 returns, masquerade, summarised too');
  await h.agent.stop();
});

test('redundant ranges are warned about once per config and capped', async () => {
  // 10.0.0.0/8 covers all 50 /24s: each is dropped from the nft set, and each was a warning per config.
  const list = Array.from({ length: 50 }, (_, i) => `10.1.${i}.0/24`);
  const h = harness(`nonMasqueradeCIDRs: [10.0.0.0/8, ${list.join(', ')}]\n`);
  await h.agent.start();
  for (let i = 0; i < 5; i++) await h.agent.sync('resync');
  assert.equal(h.log.entries.filter((e) => e.msg === 'redundant non-masquerade range').length, MAX_LOGGED_ISSUES);
  const rest = h.log.entries.filter((e) => e.msg === 'more redundant non-masquerade ranges not shown');
  assert.deepEqual(
    rest.map((e) => e.fields['count']),
    [50 - MAX_LOGGED_ISSUES],
  );
  await h.agent.stop();
});

test('a config with very many errors is reported with the first 20 and a count, in the log and the status', async () => {
  const h = harness('nonMasqueradeCIDRs: [192.0.2.0/24]\n');
  await h.agent.start();
  h.setText(`nonMasqueradeCIDRs: [${Array.from({ length: 500 }, (_, i) => `192.0.${i % 250}.1/24`).join(', ')}]\ncidrLimit: 1000\n`);
  await h.agent.sync('config changed');
  const st = h.agent.status();
  assert.equal(st.configValid, false);
  assert.equal(st.configErrors.length, MAX_LOGGED_ISSUES + 1);
  assert.match(st.configErrors.at(-1) ?? '', /and 480 more errors not shown/);
  const rejected = h.log.entries.filter((e) => e.msg.startsWith('config rejected'));
  assert.equal(rejected.length, 1);
  assert.equal((rejected[0]?.fields['errors'] as string[]).length, MAX_LOGGED_ISSUES + 1);
  await h.agent.stop();
});

test('resyncInterval: 1ns resyncs once a second, not in a busy loop, and warns once for that config', async () => {
  const h = harness('resyncInterval: 1ns\n');
  await h.agent.start();
  let reads = 0;
  const read = h.backend.read.bind(h.backend);
  h.backend.read = async (f) => {
    reads++;
    return read(f);
  };
  // 999 ms of timer time: no resync yet (1ns would have fired ~70 times a second before).
  h.clock.advance(999);
  await new Promise((r) => setImmediate(r));
  assert.equal(reads, 0);
  h.clock.advance(1);
  await h.agent.sync('probe'); // waits for the timer's sync to finish
  assert.ok(reads >= 2, `one resync read both families, got ${reads} reads`);
  for (let i = 0; i < 10; i++) await h.agent.sync('resync');
  const floorWarnings = h.log.entries.filter((e) => e.level === 'warn' && String(e.fields['message']).includes('shorter than 1s'));
  assert.equal(floorWarnings.length, 1, JSON.stringify(floorWarnings));
  assert.deepEqual([floorWarnings[0]!.fields['source'], floorWarnings[0]!.fields['line']], ['/etc/config/ip-masq-agent', 1]);
  // A changed config that is still too short warns again: it is a new config.
  h.setText('resyncInterval: 0s\n');
  await h.agent.sync('config changed');
  assert.equal(h.log.entries.filter((e) => e.level === 'warn' && String(e.fields['message']).includes('shorter than 1s')).length, 2);
  await h.agent.stop();
});

const restoreFailed = (): CommandError =>
  new CommandError(['iptables-nft-restore', '-w', '5', '--noflush'], 1, 'iptables-nft-restore: line 3 failed', 'other', 'iptables-nft-restore -w 5 --noflush: exit code 1: line 3 failed');

test('a failed sync is retried after 1 s, 2 s, 4 s, ... capped at resyncInterval, and the error is logged once', async () => {
  const h = harness('resyncInterval: 30s\n');
  h.backend.failNextApplies(100, restoreFailed(), 'ipv4');
  const first = await h.agent.start();
  assert.equal(first.retryAfterMs, 1000);
  const reasons: string[] = [];
  for (let i = 0; i < 7; i++) reasons.push((await h.fireTimer()).reason);
  assert.deepEqual(h.delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
  assert.deepEqual(reasons, Array(7).fill('retry'));
  assert.equal(h.agent.status().retryAfterMs, 30_000);
  assert.equal(h.agent.status().families.get('ipv4')?.consecutiveFailures, 8);
  const logged = h.log.entries.filter((e) => e.level === 'error' && e.msg.startsWith('sync failed'));
  assert.equal(logged.length, 1, 'the same error is not logged again at every retry');
  assert.match(String(logged[0]?.fields['error']), /line 3 failed/);
  // Families are independent: IPv6 was written once and is only re-checked by the retries.
  assert.equal(h.backend.writes.get('ipv6'), 1);
  assert.deepEqual(
    h.reports.map((r) => r.families.find((f) => f.family === 'ipv6')?.result),
    ['applied', ...Array(7).fill('unchanged')],
  );
  await h.agent.stop();
  assert.equal(h.clock.pending(), 0);
});

test('a success resets the backoff: back to the resync interval, and the next failure retries after 1 s again', async () => {
  const h = harness('resyncInterval: 30s\n');
  h.backend.failNextApplies(3, restoreFailed(), 'ipv4');
  await h.agent.start();
  await h.fireTimer();
  await h.fireTimer();
  const ok = await h.fireTimer();
  assert.equal(ok.families[0]?.result, 'applied');
  assert.equal(ok.retryAfterMs, undefined);
  assert.deepEqual(h.delays, [1000, 2000, 4000, 30_000]);
  assert.equal(h.agent.status().retryAfterMs, undefined);
  assert.ok(h.log.entries.some((e) => e.msg === 'sync recovered'));
  const regular = await h.fireTimer();
  assert.equal(regular.reason, 'resync');
  h.backend.failNextReads(1, restoreFailed(), 'ipv4');
  await h.fireTimer();
  assert.deepEqual(h.delays.slice(4), [30_000, 1000]);
  await h.agent.stop();
});

test('a huge error message is cut before it reaches the status and the log', async () => {
  const h = harness(null);
  const flood = 'x'.repeat(1_000_000);
  h.backend.failNextApplies(1, new CommandError(['nft', '-f', '-'], 1, flood, 'other', `nft -f -: exit code 1: ${flood}`), 'ipv4');
  await h.agent.start();
  const err = h.agent.status().families.get('ipv4')?.lastError ?? '';
  assert.ok(Buffer.byteLength(err) < 1100, `lastError: ${Buffer.byteLength(err)} bytes`);
  assert.match(err, /… \(cut, \d+ bytes\)$/);
  const logged = h.log.entries.find((e) => e.msg.startsWith('sync failed'));
  assert.equal(logged?.fields['error'], err);
  await h.agent.stop();
});

test('a start with an invalid config keeps rules of ours found in the kernel untouched, reports it, and applies the first valid config', async () => {
  const h = harness('nonMasqueradeCIDRs: [192.0.2.0/33]\n');
  // What a previous run wrote from a config that was good then.
  const found4 = ['jump', 'return 169.254.0.0/16', 'return 198.51.100.0/24', 'masquerade random-fully'];
  const found6 = ['jump', 'return fe80::/10', 'return 2001:db8::/32', 'masquerade random-fully'];
  h.backend.tables.set('ipv4', found4);
  h.backend.tables.set('ipv6', found6);
  const r = await h.agent.start();
  assert.equal(r.configValid, false);
  assert.deepEqual(
    r.families.map((f) => f.result),
    ['unchanged', 'unchanged'],
  );
  for (let i = 0; i < 3; i++) await h.agent.sync('resync');
  assert.deepEqual(ipv4Rules(h), found4, 'not replaced by the defaults');
  assert.deepEqual(h.backend.tables.get('ipv6'), found6);
  assert.equal(h.backend.writes.get('ipv4'), undefined, 'nothing written');
  assert.equal(h.backend.writes.get('ipv6'), undefined);
  const st = h.agent.status();
  assert.equal(st.configValid, false);
  assert.deepEqual(st.rulesKeptFromKernel, ['ipv4', 'ipv6']);
  assert.match(st.configErrors.join('\n'), /192\.0\.2\.0\/33/);
  assert.ok(st.families.get('ipv4')?.lastSuccessAt !== undefined, 'the rules in force count as a good state (ready)');
  const kept = h.log.entries.filter((e) => e.level === 'warn' && /config invalid at start; keeping the rules found in the kernel/.test(e.msg));
  assert.deepEqual(
    kept.map((e) => e.fields['family']),
    ['ipv4', 'ipv6'],
    'said once per family',
  );

  h.setText('nonMasqueradeCIDRs: [203.0.113.0/24]\n');
  const fixed = await h.agent.sync('config changed');
  assert.deepEqual(
    fixed.families.map((f) => f.result),
    ['applied', 'applied'],
  );
  assert.deepEqual(ipv4Rules(h), ['jump', 'return 169.254.0.0/16', 'return 203.0.113.0/24', 'masquerade random-fully']);
  assert.equal(h.agent.status().rulesKeptFromKernel, undefined);
  await h.agent.stop();
});

test('a start with an invalid config: a family with nothing of ours gets the defaults, and keeps them on later syncs', async () => {
  const h = harness('nonMasqueradeCIDRs: [192.0.2.0/33]\n');
  const found6 = ['jump', 'return fe80::/10', 'masquerade random-fully'];
  h.backend.tables.set('ipv6', found6);
  await h.agent.start();
  await h.agent.sync('resync');
  assert.ok(ipv4Rules(h).includes('return 172.16.0.0/12'), 'defaults for the empty family');
  assert.equal(h.backend.writes.get('ipv4'), 1);
  assert.deepEqual(h.backend.tables.get('ipv6'), found6);
  assert.deepEqual(h.agent.status().rulesKeptFromKernel, ['ipv6']);
  // The defaults it wrote itself are healed as usual, not mistaken for rules found at start.
  h.backend.tables.set('ipv4', ['jump']);
  const r = await h.agent.sync('resync');
  assert.equal(r.families[0]?.result, 'repaired');
  assert.ok(ipv4Rules(h).includes('return 172.16.0.0/12'));
  await h.agent.stop();
});

test('a start with an invalid config whose first read fails decides at the first read that works', async () => {
  const h = harness('nonMasqueradeCIDR: [10.0.0.0/8]\n');
  const found = ['jump', 'return 169.254.0.0/16', 'masquerade random-fully'];
  h.backend.tables.set('ipv4', found);
  h.backend.failNextReads(1, new CommandError(['iptables'], 4, 'lock', 'lock-busy', 'iptables: lock busy'), 'ipv4');
  const first = await h.agent.start();
  assert.equal(first.families[0]?.result, 'error');
  await h.agent.sync('resync');
  assert.deepEqual(ipv4Rules(h), found);
  assert.equal(h.backend.writes.get('ipv4'), undefined);
  await h.agent.stop();
});

/** An agent whose loader hands back the same LoadedConfig while the text is unchanged (as loadConfig with a cache does), over a fake backend that counts calls. */
function countingHarness(initial: string) {
  let text = initial;
  let loaded: LoadedConfig | undefined;
  const fake = createFakeBackend();
  /** read: reads that list our rules; blindReads: reads told not to (`owned: false`). */
  const counts = { expected: 0, read: 0, blindReads: 0, apply: 0 };
  const backend = {
    ...fake,
    expected: (p: Parameters<typeof fake.expected>[0]) => (counts.expected++, fake.expected(p)),
    read: (...a: Parameters<typeof fake.read>) => (a[1]?.owned === false ? counts.blindReads++ : counts.read++, fake.read(...a)),
    apply: (p: Parameters<typeof fake.apply>[0]) => (counts.apply++, fake.apply(p)),
  };
  const log = createMemoryLogger();
  const agent = createAgent({
    loadConfig: async () => {
      if (loaded?.hash !== text) {
        const parsed = parseConfigText(text, '/etc/config/ip-masq-agent', OPTS);
        loaded = { config: parsed.config, warnings: parsed.warnings, files: ['/etc/config/ip-masq-agent'], usingDefaults: false, hash: text };
      }
      return loaded;
    },
    defaultConfig: () => defaultConfig(OPTS),
    backend,
    policyOptions: { enableIPv6: false, randomFully: true, toPorts: [] },
    log,
    clock: createFakeClock(),
  });
  return { agent, fake, backend, counts, log, setText: (t: string) => void (text = t) };
}

test('an unchanged config is built and rendered once, however many resyncs; a changed one once more', async () => {
  const h = countingHarness('nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  await h.agent.start();
  for (let i = 0; i < 20; i++) assert.equal((await h.agent.sync('resync')).families[0]?.result, 'unchanged');
  assert.equal(h.counts.expected, 1);
  assert.equal(h.counts.read, 21, 'every resync still reads the kernel back');
  h.setText('nonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24]\n');
  await h.agent.sync('config changed');
  await h.agent.sync('resync');
  assert.equal(h.counts.expected, 2);
  await h.agent.stop();
});

test('a config change is applied without reading the rules first; the next resync reads them, and drift is still repaired', async () => {
  const h = countingHarness('nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  await h.agent.start();
  const reads = h.counts.read;
  h.setText('nonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24]\n');
  assert.equal((await h.agent.sync('config changed')).families[0]?.result, 'applied');
  assert.equal(h.counts.read, reads, 'our rules are not listed before the apply of a changed config');
  assert.equal(h.counts.blindReads, 1, 'what decides beside them is still read');
  assert.ok(h.fake.tables.get('ipv4')?.includes('return 192.0.2.0/24'));
  assert.equal((await h.agent.sync('resync')).families[0]?.result, 'unchanged');
  assert.equal(h.counts.read, reads + 1);
  h.fake.tables.set('ipv4', ['jump']);
  assert.equal((await h.agent.sync('resync')).families[0]?.result, 'repaired');
  assert.equal(h.agent.status().families.get('ipv4')?.driftRepairs, 1);
  assert.equal((await h.agent.sync('resync')).families[0]?.result, 'unchanged');
  await h.agent.stop();
});

test('afterConfigChange runs once after the first sync of each new config, never on a quiet resync', async () => {
  let calls = 0;
  const h = harness('nonMasqueradeCIDRs: [10.0.0.0/8]\n', { afterConfigChange: () => void calls++ });
  await h.agent.start();
  assert.equal(calls, 1, 'the first config');
  for (let i = 0; i < 5; i++) await h.agent.sync('resync');
  assert.equal(calls, 1, 'quiet resyncs');
  h.setText('nonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24]\n');
  await h.agent.sync('config changed');
  await h.agent.sync('resync');
  assert.equal(calls, 2, 'a new config, once');
  await h.agent.stop();
});

test("a new config's sync is reported (log and onSync) before its redundancy warnings and the collection after it", async () => {
  const order: string[] = [];
  const h = harness('nonMasqueradeCIDRs: [10.0.0.0/8, 10.1.0.0/16]\n', { afterConfigChange: () => void order.push('collect') });
  const log = h.log;
  await h.agent.start();
  const msgs = log.entries.map((e) => e.msg);
  const done = msgs.indexOf('sync done');
  assert.ok(done >= 0 && msgs.indexOf('redundant non-masquerade range') > done, msgs.join('\n'));
  assert.deepEqual(order, ['collect']);
  assert.equal(h.reports.length, 1, 'onSync ran');
  // Still part of the sync: done when the sync's promise is.
  h.setText('nonMasqueradeCIDRs: [10.0.0.0/8, 10.2.0.0/16, 10.2.1.0/24]\n');
  await h.agent.sync('config changed');
  assert.deepEqual(order, ['collect', 'collect']);
  const later = log.entries.map((e) => e.msg);
  assert.ok(later.lastIndexOf('redundant non-masquerade range') > later.lastIndexOf('sync done'), later.join('\n'));
  await h.agent.stop();
});

test('after a family rules change from one config to another, afterRulesChange gets both policies once; not at start, not for a quiet resync, and after a failed apply only once it took', async () => {
  const calls: [string, string, string][] = [];
  const cidrs = (p: FamilyPolicy): string => p.exempt.map((e) => e.text).join(',');
  const h = harness('nonMasqueradeCIDRs: [10.0.0.0/8]\n', {
    // Called per family whose config changed; IPv6's policy is the same here, the cleaner finds nothing in it.
    afterRulesChange: async (old, next) => void (next.family === 'ipv4' && calls.push([next.family, cidrs(old), cidrs(next)])),
  });
  await h.agent.start();
  await h.agent.sync('resync');
  assert.deepEqual(calls, [], 'the first write and a quiet resync change nothing the agent knew before');
  h.setText('nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n');
  h.backend.failNextApplies(1, new CommandError(['iptables-restore'], 1, 'refused', 'other', 'refused'), 'ipv4');
  await h.agent.sync('config changed');
  assert.deepEqual(calls, [], 'the kernel still holds the old rules');
  await h.agent.sync('retry');
  assert.deepEqual(calls, [['ipv4', '169.254.0.0/16,10.0.0.0/8', '169.254.0.0/16,10.0.0.0/8,198.51.100.0/24']]);
  await h.agent.sync('resync');
  assert.equal(calls.length, 1);
  await h.agent.stop();
});

test('a rejected afterRulesChange is logged and fails no sync', async () => {
  const h = harness('nonMasqueradeCIDRs: [10.0.0.0/8]\n', { afterRulesChange: async () => Promise.reject(new Error('conntrack exploded')) });
  await h.agent.start();
  h.setText('nonMasqueradeCIDRs: [10.0.0.0/16]\n');
  const r = await h.agent.sync('config changed');
  assert.deepEqual(
    r.families.map((f) => f.result),
    ['applied', 'unchanged'],
  );
  assert.ok(h.log.entries.some((e) => e.level === 'warn' && /conntrack exploded/.test(String(e.fields['error']))));
  await h.agent.stop();
});
