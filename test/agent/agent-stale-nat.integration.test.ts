// A changed decision reaches flows already open, with the built agent on each backend: a pod keeps
// a UDP flow and a TCP connection open to a destination whose exemption the ConfigMap then removes.
// The agent deletes the UDP flow's conntrack entry after it applies the new rules, so the next
// datagram leaves with the node's address; the TCP connection keeps the pod's address and works.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { ADDR, canUseNetns, nsSpawn } from '../netns/netns.js';
import { CLIENT_JS, collect, SERVER_JS } from '../netns/long-flows.js';
import { httpGet, metricSample, pause, usePrivateXtablesLock, withScene, type Mode } from './agent-scene.js';

const usable = canUseNetns() && spawnSync('conntrack', ['--version'], { stdio: 'ignore' }).status === 0;
const skip = usable ? false : 'needs root, iproute2 and conntrack';
if (!skip) usePrivateXtablesLock();

const METRICS = '127.0.0.1:10265';

const BACKENDS: readonly { name: string; args: readonly string[] }[] = [
  ...(['nft', 'legacy'] as const satisfies readonly Mode[]).map((mode) => ({ name: `iptables-${mode}`, args: [`--iptables-mode=${mode}`] })),
  { name: 'nftables', args: ['--backend=nftables'] },
];

for (const backend of BACKENDS) {
  test(`${backend.name}: an exemption removed moves an open UDP flow to the node address within the sync; the open TCP connection keeps the pod IP`, { skip }, async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write('nonMasqueradeCIDRs: [198.51.100.0/24]\nresyncInterval: 1h\n');
      const agent = startAgent([`--config=${cm.file}`, ...backend.args, `--metrics-bind-address=${METRICS}`]);
      await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');
      const children: ChildProcess[] = [];
      try {
        const serverProc = nsSpawn(topo.outside, [process.execPath, '-e', SERVER_JS]);
        children.push(serverProc);
        const server = collect(serverProc);
        await server.waitFor((l) => l === 'ready', 0);
        const clientProc = nsSpawn(topo.pod, [process.execPath, '-e', CLIENT_JS, ADDR.outsideDoc4, ADDR.outside4]);
        children.push(clientProc);
        const client = collect(clientProc);
        await server.waitFor((l) => l === `udp ${ADDR.pod4}`, 0);
        await server.waitFor((l) => l === `tcp ${ADDR.pod4}`, 0);

        const mark = agent.mark();
        cm.write('nonMasqueradeCIDRs: []\nresyncInterval: 1h\n');
        const deleted = await agent.waitForLog((l) => /conntrack entries of open flows/.test(l.msg), { since: mark });
        assert.deepEqual([deleted.fields['family'], deleted.fields['deleted']], ['ipv4', 1], 'the one UDP entry to the range whose decision changed');
        const at = server.all.length;
        // A datagram already on its way when the entry went may still show the pod address: the first one sent after it is the node's.
        const first = await server.waitFor((l) => l === `udp ${ADDR.node4}`, at, 2000);
        assert.ok(first - at <= 3, `the flow switched at once: ${server.all.slice(at, first + 1).join(' | ')}`);
        await pause(1000);
        const later = server.all.slice(first);
        const udp = later.filter((l) => l.startsWith('udp '));
        const tcp = later.filter((l) => l.startsWith('tcp '));
        assert.ok(udp.length >= 3 && udp.every((l) => l === `udp ${ADDR.node4}`), `the UDP flow stays masqueraded: ${udp.join(' | ')}`);
        assert.ok(tcp.length >= 2 && tcp.every((l) => l === `tcp ${ADDR.pod4}`), `the TCP connection keeps the pod IP: ${tcp.join(' | ')}`);
        assert.ok(!client.all.some((l) => l.startsWith('tcp-')), 'the TCP connection never ended');
        const metrics = httpGet(topo.node, `http://${METRICS}/metrics`).body;
        assert.equal(metricSample(metrics, 'ip_masq_agent_conntrack_entries_deleted_total{family="ipv4"}'), 1);
        assert.ok((metricSample(metrics, 'ip_masq_agent_conntrack_entries') ?? 0) >= 2, 'the flows still open are counted');
        // The UDP flow's new entry is a new connection, decided by the default rule since the rewrite.
        assert.ok((metricSample(metrics, 'ip_masq_agent_decision_connections_total{family="ipv4",action="masquerade",list="default"}') ?? 0) >= 1, 'its new connection is counted');
      } finally {
        for (const c of children) c.kill('SIGKILL');
      }
    });
  });
}
