// The agent's decisions without a backend, a clock or a logger: state in, state and log lines out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decideConfig, decideFamily, decideSyncEnd, INITIAL_STATE, keepsFound, rewritesWhole, statusOf, type AgentState, type FamilyOutcome } from '../../src/agent/decide.js';
import type { Plan } from '../../src/backends/backend.js';
import { defaultConfig } from '../../src/config/merge.js';
import { parseConfigText } from '../../src/config/parse.js';
import type { LoadedConfig } from '../../src/config/load.js';
import { CommandError, ConfigError } from '../../src/errors.js';

const OPTS = { enableIPv6: false, nomasqAllReservedRanges: false };
const defaults = () => defaultConfig(OPTS);

function loaded(text: string): LoadedConfig {
  const parsed = parseConfigText(text, 'cfg', OPTS);
  return { config: parsed.config, warnings: parsed.warnings, files: ['cfg'], usingDefaults: false, hash: text };
}

const WANT = ['jump', 'return 10.0.0.0/8', 'masquerade'];
const plan = (upToDate: boolean, shadowing: string[] = []): Plan => ({ family: 'ipv4', upToDate, shadowing: shadowing.map((rule) => ({ rule, owner: 'unknown' })) });
const planned = (upToDate: boolean, owned: readonly string[] | undefined, shadowing: string[] = []): FamilyOutcome => ({
  kind: 'planned',
  want: WANT,
  observed: { family: 'ipv4', owned },
  plan: plan(upToDate, shadowing),
});
const step = (outcome: FamilyOutcome) => ({ family: 'ipv4' as const, backend: 'fake', startedAt: 1000, endedAt: 1005, outcome });
const written = (lines: readonly string[]): AgentState => ({ ...INITIAL_STATE, written: new Map([['ipv4', lines]]) });

test('decideFamily: the result and the log lines of each outcome', () => {
  const cases: [string, AgentState, FamilyOutcome, string, string[]][] = [
    ['first sync, nothing to do', INITIAL_STATE, planned(true, WANT), 'unchanged', ['rules already in place']],
    ['quiet resync', written(WANT), planned(true, WANT), 'unchanged', []],
    ['first write', INITIAL_STATE, planned(false, []), 'applied', ['rules applied']],
    ['drift: what was written is still wanted, the kernel holds something else', written(WANT), planned(false, ['jump']), 'repaired', ['rules drifted from what the agent wrote; restored them']],
    ['config change, our rules not listed', written(['jump', 'masquerade']), planned(false, undefined), 'applied', ['rules applied']],
    ['not listed: no drift can be claimed', written(WANT), planned(false, undefined), 'applied', ['rules applied']],
  ];
  for (const [name, state, outcome, result, msgs] of cases) {
    const d = decideFamily(state, step(outcome));
    assert.equal(d.report.result, result, name);
    assert.deepEqual(
      d.log.map((l) => l.msg),
      msgs,
      name,
    );
    assert.deepEqual(d.state.written.get('ipv4'), WANT, name);
    assert.deepEqual(d.report, { family: 'ipv4', result, durationMs: 5, rules: WANT.length }, name);
    assert.equal(d.state.families.get('ipv4')?.driftRepairs, result === 'repaired' ? 1 : 0, name);
    assert.equal(d.state.families.get('ipv4')?.lastSuccessAt, 1005, name);
  }
});

test('decideFamily: a failure is counted, logged once per message, and a success after it says it recovered', () => {
  const lock = new CommandError(['iptables-restore'], 4, 'lock', 'lock-busy', 'iptables-restore: lock busy');
  let d = decideFamily(written(WANT), step({ kind: 'failed', error: lock, plan: undefined }));
  assert.equal(d.report.result, 'error');
  assert.deepEqual(d.log[0]?.fields, { family: 'ipv4', backend: 'fake', error: 'iptables-restore: lock busy', failure: 'lock-busy', exitCode: 4 });
  d = decideFamily(d.state, { ...step({ kind: 'failed', error: lock, plan: undefined }), startedAt: 2000 });
  assert.deepEqual(d.log, [], 'the same error is not logged again');
  const st = d.state.families.get('ipv4');
  assert.deepEqual([st?.consecutiveFailures, st?.failingSince, st?.lastAttemptAt], [2, 1000, 2000]);
  d = decideFamily(d.state, step(planned(true, WANT)));
  assert.deepEqual(
    d.log.map((l) => [l.msg, l.fields['after']]),
    [['sync recovered', 2]],
  );
  assert.equal(d.state.families.get('ipv4')?.failingSince, undefined);
});

test('decideFamily: shadowing goes to the status at every sync and is warned about when it changes to something', () => {
  const warned = (state: AgentState, outcome: FamilyOutcome) => {
    const d = decideFamily(state, step(outcome));
    return [d.state, d.log.filter((l) => /before our jump/.test(l.msg)).length, d.state.families.get('ipv4')?.shadowingRules?.map((s) => s.rule)] as const;
  };
  const [s1, n1, r1] = warned(written(WANT), planned(true, WANT, ['a']));
  assert.deepEqual([n1, r1], [1, ['a']]);
  const [s2, n2] = warned(s1, planned(true, WANT, ['a']));
  assert.equal(n2, 0, 'unchanged: said once');
  const [s3, n3, r3] = warned(s2, { kind: 'failed', error: new Error('x'), plan: plan(false, ['a', 'b']) });
  assert.deepEqual([n3, r3], [1, ['a', 'b']], 'a failed apply still reports what its plan saw');
  const [, n4, r4] = warned(s3, planned(true, WANT, []));
  assert.deepEqual([n4, r4], [0, []]);
});

test('a first start with an invalid config: defaults in force, rules found in the kernel kept (said once per family) until a valid config', () => {
  const bad = decideConfig(INITIAL_STATE, { error: new ConfigError([{ source: 'cfg', path: 'x', message: 'bad' }]) }, defaults);
  assert.deepEqual(bad.state.keptFromKernel, [], 'an invalid start: rules found are kept');
  assert.equal(bad.state.inForce?.usingDefaults, true);
  assert.match(bad.log[0]?.msg ?? '', /^config rejected on first start/);
  const found = ['jump', 'return 192.0.2.0/24', 'masquerade'];
  assert.equal(keepsFound(bad.state, 'ipv4', found), true);
  assert.equal(keepsFound(bad.state, 'ipv4', []), false, 'nothing of ours: the defaults apply');
  assert.equal(rewritesWhole(bad.state, 'ipv4', WANT), false);
  const kept = decideFamily(bad.state, step({ kind: 'kept', found }));
  assert.deepEqual(kept.state.keptFromKernel, ['ipv4']);
  assert.equal(kept.report.result, 'unchanged');
  assert.equal(kept.log.length, 1);
  assert.equal(decideFamily(kept.state, step({ kind: 'kept', found })).log.length, 0);
  assert.deepEqual(statusOf(kept.state).rulesKeptFromKernel, ['ipv4']);
  const good = decideConfig(kept.state, { loaded: loaded('nonMasqueradeCIDRs: [10.0.0.0/8]\n') }, defaults);
  assert.equal(good.state.keptFromKernel, undefined, 'a valid config ends the invalid start');
  assert.equal(statusOf(good.state).rulesKeptFromKernel, undefined);
  assert.equal(rewritesWhole(good.state, 'ipv4', WANT), true, 'the kept rules are not what the config wants');
});

test('decideConfig: "config applied" when the hash changes or after a rejection; a rejection is said once while its errors stay', () => {
  const a = loaded('nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  let d = decideConfig(INITIAL_STATE, { loaded: a }, defaults);
  assert.deepEqual(
    d.log.map((l) => l.msg),
    ['config applied'],
  );
  d = decideConfig(d.state, { loaded: { ...a } }, defaults);
  assert.deepEqual(d.log, [], 'the same config by value, another object');
  const rejected = decideConfig(d.state, { error: new Error('read failed') }, defaults);
  assert.deepEqual(rejected.state.configErrors, ['read failed']);
  assert.equal(rejected.state.inForce?.hash, a.hash, 'the last good config stays');
  assert.deepEqual(decideConfig(rejected.state, { error: new Error('read failed') }, defaults).log, []);
  assert.deepEqual(
    decideConfig(rejected.state, { loaded: a }, defaults).log.map((l) => l.msg),
    ['config applied'],
  );
});

test('decideConfig: config warnings are logged when the config or the warnings change, or after a rejection; not at every read', () => {
  const a = loaded('nonMasqueradeCIDRs: [10.0.0.0/8, 10.0.0.0/8]\n');
  const warnings = (d: { log: readonly { msg: string }[] }) => d.log.filter((l) => l.msg === 'config warning').length;
  let d = decideConfig(INITIAL_STATE, { loaded: a }, defaults);
  assert.equal(warnings(d), a.warnings.length);
  assert.ok(a.warnings.length > 0);
  assert.equal(warnings(decideConfig(d.state, { loaded: { ...a } }, defaults)), 0, 'the same config and warnings by value');
  // Same config (hash), other text: the warnings are news, the config is not.
  const moved = { ...a, warnings: a.warnings.map((w) => ({ ...w, line: (w.line ?? 0) + 1 })) };
  const again = decideConfig(d.state, { loaded: moved }, defaults);
  assert.deepEqual([...new Set(again.log.map((l) => l.msg))], ['config warning']);
  d = decideConfig(d.state, { error: new Error('read failed') }, defaults);
  assert.equal(warnings(decideConfig(d.state, { loaded: a }, defaults)), a.warnings.length);
});

test('decideSyncEnd: the "sync done" line carries the retry when there is one', () => {
  const report = { reason: 'resync', at: 5, configValid: true, families: [{ family: 'ipv4' as const, result: 'error' as const, durationMs: 1, rules: 0 }], retryAfterMs: 2000 };
  const d = decideSyncEnd(INITIAL_STATE, report, { afterMs: 2000, failures: 2 });
  assert.deepEqual(d.log[0]?.fields, { reason: 'resync', families: ['ipv4:error'], retryInMs: 2000, failedSyncs: 2 });
  assert.deepEqual([d.state.lastSyncAt, d.state.retryAfterMs], [5, 2000]);
});
