// The agent with longest-prefix configs: the fake backend gets the decision table; a backend that
// refuses the policy (as a backend without a rendering for some key would) makes a failed sync
// that keeps the rules in force.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAgent } from '../../src/agent/agent.js';
import { createFakeBackend } from '../backends/fake.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import type { ConfigOptions } from '../../src/config/config.js';
import { defaultConfig } from '../../src/config/merge.js';
import type { LoadedConfig } from '../../src/config/load.js';
import { parseConfigText } from '../../src/config/parse.js';
import { UsageError } from '../../src/errors.js';
import { createMemoryLogger } from '../observe/memory-logger.js';
import { createFakeClock } from './fake-clock.js';

const OPTS: ConfigOptions = { enableIPv6: false, nomasqAllReservedRanges: false };

function harness(first: string, refuseDecisions: boolean) {
  let text = first;
  const fake = createFakeBackend();
  // A backend that refuses masqueradeCIDRs, otherwise the fake.
  const refusal = (p: FamilyPolicy): string | undefined => ((p.actions ?? []).some((a) => a.list === 'masqueradeCIDRs') ? 'this backend does not support masqueradeCIDRs' : undefined);
  const backend = refuseDecisions
    ? {
        ...fake,
        expected: (p: Parameters<typeof fake.expected>[0]) => {
          const why = refusal(p);
          if (why !== undefined) throw new UsageError(why);
          return fake.expected(p);
        },
      }
    : fake;
  const clock = createFakeClock();
  const log = createMemoryLogger();
  const loadConfig = async (): Promise<LoadedConfig> => {
    const parsed = parseConfigText(text, 'cfg', OPTS);
    return { config: parsed.config, warnings: parsed.warnings, files: ['cfg'], usingDefaults: false, hash: text };
  };
  const agent = createAgent({
    loadConfig,
    defaultConfig: () => defaultConfig(OPTS),
    backend,
    policyOptions: { enableIPv6: false, randomFully: false, toPorts: [] },
    log,
    clock: { now: clock.now, setTimer: (ms, fn) => clock.setTimer(ms, fn) },
  });
  return { agent, fake, log, setText: (t: string) => void (text = t) };
}

test('the fake backend holds the decision table longest prefix first, and a redundant exception is warned once', async () => {
  const h = harness('nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.9.0.0/16, 10.9.1.0/24]\nmasqueradeSourceCIDRs: [10.244.0.0/16]\n', false);
  await h.agent.start();
  assert.deepEqual(h.fake.tables.get('ipv4'), [
    'jump',
    'masquerade 10.9.1.0/24 from 10.244.0.0/16',
    'return 169.254.0.0/16',
    'masquerade 10.9.0.0/16 from 10.244.0.0/16',
    'return 10.0.0.0/8',
    'masquerade from 10.244.0.0/16',
  ]);
  const warned = h.log.entries.filter((e) => e.msg === 'redundant CIDR');
  assert.equal(warned.length, 1);
  assert.match(String(warned[0]?.fields['detail']), /10\.9\.1\.0\/24 .* masquerades, as the 10\.9\.0\.0\/16 it is nested in/);
  await h.agent.stop();
});

test('a backend that refuses the new keys: the sync fails with its reason, the agent keeps running and the last good rules stay', async () => {
  const h = harness('nonMasqueradeCIDRs: [10.0.0.0/8]\n', true);
  await h.agent.start();
  const good = h.fake.tables.get('ipv4');
  assert.deepEqual(good, ['jump', 'return 169.254.0.0/16', 'return 10.0.0.0/8', 'masquerade']);
  h.setText('nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.9.0.0/16]\n');
  const r = await h.agent.sync('test');
  assert.equal(r.families[0]?.result, 'error');
  assert.match(r.families[0]?.error ?? '', /this backend does not support masqueradeCIDRs/);
  assert.deepEqual(h.fake.tables.get('ipv4'), good);
  await h.agent.stop();
});
