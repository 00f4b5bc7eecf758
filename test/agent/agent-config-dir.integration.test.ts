// The built agent on a config directory with entries it cannot use whole: more ip-masq* entries
// than it reads, and a file whose name is not UTF-8. With real traffic from a pod to
// 198.51.100.10, which only the good file exempts. Each test builds its own pod/node/outside
// namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAX_CONFIG_FILES } from '../../src/limits.js';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import { httpGet, usePrivateXtablesLock, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const HEALTHZ = '127.0.0.1:10267';
const GOOD = 'nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\nresyncInterval: 1h\n';

/** Runs `body` with a fresh plain config directory holding `ip-masq-agent` (GOOD), removed afterwards. */
async function withConfigDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ima-agent-dir-'));
  try {
    writeFileSync(join(dir, 'ip-masq-agent'), GOOD);
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a file named ip-masq-\\xff (not UTF-8) is skipped with a warning; the rest of the directory applies', { skip }, async () => {
  await withConfigDir(async (dir) => {
    writeFileSync(Buffer.concat([Buffer.from(join(dir, 'ip-masq-')), Buffer.from([0xff])]), 'nonMasqueradeCIDRs: [192.0.2.0/24]\n');
    await withScene(async ({ topo, startAgent }) => {
      const agent = startAgent([`--config=${dir}`, '--iptables-mode=nft', '--v=2']);
      const applied = await agent.waitForLog((l) => l.msg.startsWith('config applied') || l.msg.startsWith('config rejected'));
      assert.equal(applied.msg, 'config applied', applied.raw);
      assert.deepEqual(applied.fields['files'], [join(dir, 'ip-masq-agent')]);
      const warning = agent.matching('config warning')[0];
      assert.equal(warning?.fields['source'], `${dir}/ip-masq-\\xff`, warning?.raw);
      assert.match(String(warning?.fields['message']), /skipped: the file name is not valid UTF-8; rename it to read it/);
      await agent.waitForLog('sync done');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, '198.51.100.10 is exempt, as the good file says');
    });
  });
});

test(`more than ${MAX_CONFIG_FILES} ip-masq* entries: rejected before any is read, said in the log and /healthz; ${MAX_CONFIG_FILES} apply`, { skip }, async () => {
  await withConfigDir(async (dir) => {
    // With ip-masq-agent, one entry over the limit.
    for (let i = 0; i < MAX_CONFIG_FILES; i++) writeFileSync(join(dir, `ip-masq-x${i}`), '{}\n');
    await withScene(async ({ topo, startAgent }) => {
      const agent = startAgent([`--config=${dir}`, '--iptables-mode=nft', '--v=2', `--healthz-bind-address=${HEALTHZ}`]);
      const rejected = await agent.waitForLog((l) => l.msg.startsWith('config applied') || l.msg.startsWith('config rejected'), { timeoutMs: 30_000 });
      assert.match(rejected.msg, /^config rejected on first start/, rejected.raw);
      const limit = `${dir}: the config directory holds 1,001 ip-masq* entries; the limit is 1,000 (merge them into fewer files)`;
      assert.deepEqual(rejected.fields['errors'], [limit]);
      await agent.waitForLog('serving');
      const health = JSON.parse(httpGet(topo.node, `http://${HEALTHZ}/healthz`).body) as { configValid: boolean; configErrors: string[] };
      assert.equal(health.configValid, false);
      assert.deepEqual(health.configErrors, [limit]);
      await agent.waitForLog('sync done');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4, 'the defaults meanwhile: 198.51.100.10 is masqueraded');

      const mark = agent.mark();
      rmSync(join(dir, 'ip-masq-x0'));
      const applied = await agent.waitForLog('config applied', { since: mark, timeoutMs: 30_000 });
      assert.equal((applied.fields['files'] as string[]).length, MAX_CONFIG_FILES);
      await agent.waitForLog('sync done', { since: agent.logs.indexOf(applied) });
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, 'exempt once the directory is within the limit');
    });
  });
});
