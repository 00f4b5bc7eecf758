// --postrouting-position=first with real traffic: the built agent in the node namespace of a
// pod -> node -> outside topology, a foreign MASQUERADE rule or nat chain in place BEFORE the
// agent starts (kubenet's `! -d 10.0.0.0/8 -j MASQUERADE`, a CNI's table), and an exempt
// destination outside 10/8 (ADDR.outsideDoc4): the outside host must still see the pod's address,
// kube-proxy-marked traffic must still be masqueraded, and (iptables) our jump stays first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import { CHAIN, httpGet as get, inNs, metricSample as sample, natCommand, usePrivateXtablesLock, waitUntil, withScene, type Mode } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const METRICS = '127.0.0.1:10265';
const HTTP_FLAGS = ['--healthz-bind-address=127.0.0.1:10264', `--metrics-bind-address=${METRICS}`];
const CONFIG = `nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - ${ADDR.outsideDoc4}/32\nresyncInterval: 1s\n`;
const KUBENET = ['!', '-d', '10.0.0.0/8', '-j', 'MASQUERADE'];
const KUBE_PROXY_MASQ = ['-m', 'mark', '--mark', '0x4000/0x4000', '-j', 'MASQUERADE'];

function postroutingRules(ns: string, mode: Mode): string[] {
  return inNs(ns, [`iptables-${mode}`, '-w', '5', '-t', 'nat', '-S', 'POSTROUTING'])
    .split('\n')
    .filter((l) => l.startsWith('-A '));
}

for (const mode of ['nft', 'legacy'] as const) {
  test(
    `iptables-${mode}, --postrouting-position=first: an exemption holds against an earlier foreign MASQUERADE, kube-proxy-marked traffic is still masqueraded, the jump returns to the top`,
    { skip },
    async () => {
      await withScene(async ({ topo, cm, startAgent }) => {
        cm.write(CONFIG);
        natCommand(topo.node, mode, 'ipv4', '-A', 'POSTROUTING', ...KUBENET);
        const agent = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`, '--postrouting-position=first', ...HTTP_FLAGS]);
        await agent.waitForLog('rules applied');
        assert.match(postroutingRules(topo.node, mode)[0] ?? '', new RegExp(`-j ${CHAIN}$`), 'our jump is rule 1');

        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, 'exempt destination outside 10/8 keeps the pod address despite kubenet');
        assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4, 'everything else is still masqueraded');

        // kube-proxy: marks in mangle (before nat POSTROUTING), masquerades the marked in nat.
        natCommand(topo.node, mode, 'ipv4', '-D', 'POSTROUTING', ...KUBENET);
        natCommand(topo.node, mode, 'ipv4', '-A', 'POSTROUTING', ...KUBE_PROXY_MASQ);
        inNs(topo.node, [`iptables-${mode}`, '-w', '5', '-t', 'mangle', '-A', 'POSTROUTING', '-s', ADDR.pod4, '-d', ADDR.outsideDoc4, '-j', 'MARK', '--set-xmark', '0x4000/0x4000']);
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4, 'kube-proxy-marked traffic to an exempt destination reaches kube-proxy’s MASQUERADE');
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4, 'unmarked exempt traffic keeps the pod address');

        // Someone inserts a rule at the top: within a resync our jump is first again, as a repair.
        natCommand(topo.node, mode, 'ipv4', '-I', 'POSTROUTING', '1', '-p', 'udp', '--dport', '9', '-j', 'ACCEPT');
        assert.doesNotMatch(postroutingRules(topo.node, mode)[0] ?? '', new RegExp(`-j ${CHAIN}$`));
        await waitUntil('our jump first again', () => (postroutingRules(topo.node, mode)[0] ?? '').endsWith(`-j ${CHAIN}`));
        const rules = postroutingRules(topo.node, mode);
        assert.equal(rules.filter((l) => l.endsWith(`-j ${CHAIN}`)).length, 1, rules.join('\n'));
        assert.ok(
          rules.some((l) => l.includes('--dport 9')),
          'the other rule stays',
        );
        await waitUntil('the repair counted', () => (sample(get(topo.node, `http://${METRICS}/metrics`).body, 'ip_masq_agent_drift_repairs_total{family="ipv4"}') ?? 0) >= 1);
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
      });
    },
  );
}

const FOREIGN_NFT = 'table ip foreign {\n chain p {\n  type nat hook postrouting priority 100;\n  masquerade\n }\n}\n';
const MARKER_NFT = `table ip marker {\n chain p {\n  type filter hook postrouting priority -150;\n  ip saddr ${ADDR.pod4} ip daddr ${ADDR.outsideDoc4} meta mark set mark or 0x4000\n }\n}\n`;

test('nftables, --postrouting-position=first: an exemption holds against a foreign masquerade chain at srcnat; kube-proxy-marked traffic is passed on to it', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(CONFIG);
    inNs(topo.node, ['sh', '-c', `printf '%s' '${FOREIGN_NFT}' | nft -f -`]);
    const agent = startAgent([`--config=${cm.file}`, '--backend=nftables', '--postrouting-position=first']);
    await agent.waitForLog('rules applied');
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, 'exempt destination keeps the pod address despite the foreign chain');
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    // Re-created after ours (a CNI or kube-proxy restarting): at equal priority the chain registered
    // last runs first, so only a priority before srcnat keeps ours ahead.
    inNs(topo.node, ['nft', 'delete', 'table', 'ip', 'foreign']);
    inNs(topo.node, ['sh', '-c', `printf '%s' '${FOREIGN_NFT}' | nft -f -`]);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, 'still kept after the foreign chain was re-created');
    inNs(topo.node, ['sh', '-c', `printf '%s' '${MARKER_NFT}' | nft -f -`]);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4, 'marked traffic returns from our chain and the foreign chain masquerades it');
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
  });
});

test(
  'nftables, --postrouting-position=first with longest-prefix keys: include-list keep, a masquerade exception and SNAT hold against a foreign masquerade chain; marked traffic is passed on',
  { skip },
  async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      const egress = '203.0.113.50';
      inNs(topo.node, ['ip', 'addr', 'add', `${egress}/24`, 'dev', 'to-out']);
      cm.write(
        `nonMasqueradeCIDRs: [0.0.0.0/0]\nmasqueradeCIDRs: [203.0.113.0/24]\nsnat:\n  - cidrs: [198.51.100.0/24]\n    toSource: ${egress}\nmasqueradeSourceCIDRs: [10.244.0.0/16]\nresyncInterval: 1s\n`,
      );
      inNs(topo.node, ['sh', '-c', `printf '%s' '${FOREIGN_NFT}' | nft -f -`]);
      const agent = startAgent([`--config=${cm.file}`, '--backend=nftables', '--postrouting-position=first', '--v=2']);
      await agent.waitForLog('rules applied');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4, 'kept by 0.0.0.0/0 despite the foreign chain');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4, 'the masquerade exception');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), egress, 'SNAT to the fixed address, and the reply comes back');
      const marker = `table ip marker {\n chain p {\n  type filter hook postrouting priority -150;\n  ip saddr ${ADDR.pod4} ip daddr ${ADDR.outsideExempt4} meta mark set mark or 0x4000\n }\n}\n`;
      inNs(topo.node, ['sh', '-c', `printf '%s' '${marker}' | nft -f -`]);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.node4, 'marked traffic returns from our chain and the foreign chain masquerades it');
      await waitUntil('two more syncs', () => agent.matching('sync done').length >= 3);
      assert.equal(agent.matching('rules applied').length, 1, 'the resyncs found nothing to rewrite');
    });
  },
);
