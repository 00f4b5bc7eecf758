// The built agent's config watch against a real directory: writes to files that are not the
// config start no sync, while a kubelet-style swap still does, at once. The scene builds its own
// namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canUseNetns } from '../netns/netns.js';
import { expectedSaveLines, ourSaveLines, pause, usePrivateXtablesLock, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

for (const mode of ['file', 'directory'] as const) {
  test(`--config=<${mode}>: 20 writes to unrelated files in the watched directory start no sync; the next ..data swap does`, { skip }, async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write('nonMasqueradeCIDRs: [10.244.0.0/16]\nresyncInterval: 1h\n');
      const agent = startAgent([`--config=${mode === 'file' ? cm.file : cm.dir}`, '--iptables-mode=nft', '--v=2']);
      await agent.waitForLog('rules applied');
      const mark = agent.mark();
      const syncs = () => agent.matching((l) => l.msg === 'sync done' && l.fields['reason'] === 'config changed', mark).length;
      // Quiet time between writes (longer than the 50 ms debounce), so each write would be its own sync.
      for (let i = 0; i < 20; i++) {
        appendFileSync(join(cm.dir, 'agent.log'), `line ${i}\n`);
        writeFileSync(join(cm.dir, `.scratch-${i % 3}`), String(i));
        await pause(100);
      }
      assert.equal(syncs(), 0, 'no sync for unrelated files');
      cm.write('nonMasqueradeCIDRs: [10.244.0.0/16, 198.51.100.0/24]\nresyncInterval: 1h\n');
      await agent.waitForLog((l) => l.msg === 'sync done' && l.fields['reason'] === 'config changed', { since: mark, timeoutMs: 10_000 });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16', '198.51.100.0/24']));
      const n = syncs();
      assert.ok(n >= 1 && n <= 2, `one burst of swap events is one sync (maybe two), got ${n}`);
    });
  });
}
