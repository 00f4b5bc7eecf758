// The built agent's /healthz, /readyz and /metrics, fetched with curl from inside the node
// namespace the agent runs in (its loopback is the namespace's own).
// Each test builds its own pod/node/outside namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { canUseNetns } from '../netns/netns.js';
import { createFailingShim, expectedSaveLines, holdLock, httpGet as get, inNs, metricSample as sample, ourSaveLines, usePrivateXtablesLock, waitUntil, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
const lockFile = skip ? '' : usePrivateXtablesLock();

const HEALTHZ = '127.0.0.1:10264';
const METRICS = '127.0.0.1:10265';
const HTTP_FLAGS = [`--healthz-bind-address=${HEALTHZ}`, `--metrics-bind-address=${METRICS}`];
const GOOD = 'nonMasqueradeCIDRs:\n  - 10.244.0.0/16\nresyncInterval: 1s\n';

test('/readyz 200 after the first sync; /metrics counts it; a bad config turns config_valid to 0 but keeps ready and healthy', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(GOOD);
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', ...HTTP_FLAGS]);
    await agent.waitForLog('rules applied');
    await agent.waitForLog('serving /metrics');

    const ready = get(topo.node, `http://${HEALTHZ}/readyz`);
    assert.equal(ready.status, 200, ready.body);
    assert.equal((JSON.parse(ready.body) as { ready: boolean }).ready, true);
    assert.equal(get(topo.node, `http://${HEALTHZ}/healthz`).status, 200);
    const metrics = get(topo.node, `http://${METRICS}/metrics`);
    assert.equal(metrics.status, 200);
    assert.equal(sample(metrics.body, 'ip_masq_agent_config_valid'), 1, metrics.body);
    assert.equal(sample(metrics.body, 'ip_masq_agent_sync_total{family="ipv4",result="applied"}'), 1, metrics.body);
    // Each endpoint is on its own address.
    assert.equal(get(topo.node, `http://${HEALTHZ}/metrics`).status, 404);

    const mark = agent.mark();
    cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/33\nresyncInterval: 1s\n');
    await agent.waitForLog('config rejected', { since: mark });
    const after = get(topo.node, `http://${METRICS}/metrics`).body;
    assert.equal(sample(after, 'ip_masq_agent_config_valid'), 0, after);
    // The last good rules stay in force and are still re-applied: restarting would fix nothing.
    const health = get(topo.node, `http://${HEALTHZ}/healthz`);
    assert.equal(health.status, 200, health.body);
    const body = JSON.parse(health.body) as { configValid: boolean; configErrors: string[] };
    assert.equal(body.configValid, false);
    assert.match(body.configErrors.join('\n'), /10\.244\.0\.0\/33/);
    assert.equal(get(topo.node, `http://${HEALTHZ}/readyz`).status, 200);
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16']));
  });
});

test('/readyz is 503 until the first sync has written the rules (xtables lock held at start), then 200', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(GOOD);
    const lock = await holdLock(lockFile);
    try {
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=legacy', ...HTTP_FLAGS], { env: { XTABLES_LOCKFILE: lockFile } });
      await agent.waitForLog('serving /healthz');
      await agent.waitForLog('config applied');
      const before = get(topo.node, `http://${HEALTHZ}/readyz`);
      assert.equal(before.status, 503, before.body);
      assert.equal(get(topo.node, `http://${HEALTHZ}/healthz`).status, 200, 'starting is healthy');
      await lock.release();
      await agent.waitForLog('rules applied', { timeoutMs: 20_000 });
      assert.equal(get(topo.node, `http://${HEALTHZ}/readyz`).status, 200);
    } finally {
      await lock.release();
    }
  });
});

test('failing iptables-nft-restore: /metrics counts error results and /healthz turns 503; both recover when it works again', { skip }, async () => {
  const { marker, path, cleanup } = createFailingShim('iptables-nft-restore');
  try {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write(GOOD);
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', ...HTTP_FLAGS], { env: { PATH: path } });
      await agent.waitForLog('rules applied');
      await agent.waitForLog('serving /metrics');
      writeFileSync(marker, '');
      cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/16\n  - 198.51.100.0/24\nresyncInterval: 1s\n');
      await agent.waitForLog('sync failed');
      const errors = (): number => sample(get(topo.node, `http://${METRICS}/metrics`).body, 'ip_masq_agent_sync_total{family="ipv4",result="error"}') ?? 0;
      assert.ok(errors() >= 1);
      // Five failures in a row (one per 1 s resync) make the agent unhealthy.
      await waitUntil('/healthz 503', () => get(topo.node, `http://${HEALTHZ}/healthz`).status === 503, 20_000);
      const body = get(topo.node, `http://${HEALTHZ}/healthz`).body;
      assert.match(body, /syncs in a row failed/);
      assert.match(body, /simulated failure \(test shim\)/);

      rmSync(marker);
      await agent.waitForLog('sync recovered', { timeoutMs: 10_000 });
      assert.equal(get(topo.node, `http://${HEALTHZ}/healthz`).status, 200);
      assert.equal(get(topo.node, `http://${HEALTHZ}/readyz`).status, 200);
      assert.ok(inNs(topo.node, ['iptables-nft', '-w', '5', '-t', 'nat', '-S', 'IP-MASQ-AGENT']).includes('-d 198.51.100.0/24'));
    });
  } finally {
    cleanup();
  }
});
