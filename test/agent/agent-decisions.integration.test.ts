// Longest-prefix decisions in real traffic: the built agent programs iptables (nft and legacy)
// and nftables from configs with masqueradeCIDRs, snat and masqueradeSourceCIDRs, and the outside host sees
// the source address explain predicts. Every test builds its own namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/parse.js';
import { parseIp } from '../../src/net/cidr.js';
import { buildPolicy, explainDestination } from '../../src/policy/build.js';
import { ADDR, canUseNetns, nsRun, sourceSeenBy } from '../netns/netns.js';
import { usePrivateXtablesLock, waitUntil, withScene, type Mode } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

/** A second address of the node's outside interface, used as the fixed SNAT source. */
const EGRESS = '203.0.113.50';
/** Stand-ins for the metadata server and another link-local host, on the outside host (test namespaces only). */
const METADATA = '169.254.169.254';
const LINK_LOCAL_OTHER = '169.254.1.1';

/** What explain says the outside host will see for traffic from the pod to `dst`. */
function predicted(config: string, dst: string): string {
  const { config: c } = parseConfigText(config, 'test', { enableIPv6: false, nomasqAllReservedRanges: false });
  const v = explainDestination(buildPolicy(c, { enableIPv6: false, randomFully: true, toPorts: [] }), parseIp(dst), () => false, parseIp(ADDR.pod4));
  if (!v.masquerade) return ADDR.pod4;
  if (v.reason === 'snat' && v.match.action.kind === 'snat') return v.match.action.toSourceText;
  return ADDR.node4;
}

const PHASES: readonly { name: string; config: string; seen: Record<string, string> }[] = [
  {
    name: 'an exception inside an exempt range is masqueraded',
    config: 'nonMasqueradeCIDRs: [10.0.0.0/8, 203.0.113.0/24]\nmasqueradeCIDRs: [10.244.200.10/32]\n',
    seen: { [ADDR.outsideExempt4]: ADDR.node4, [ADDR.outside4]: ADDR.pod4, [ADDR.outsideDoc4]: ADDR.node4 },
  },
  {
    name: 'include-list mode masquerades only the listed destinations',
    config: 'nonMasqueradeCIDRs: [0.0.0.0/0]\nmasqueradeCIDRs: [198.51.100.0/24]\n',
    seen: { [ADDR.outsideDoc4]: ADDR.node4, [ADDR.outside4]: ADDR.pod4, [ADDR.outsideExempt4]: ADDR.pod4 },
  },
  {
    name: 'metadata-only masquerade: 169.254.169.254 leaves with the node address, the rest of link-local keeps the pod IP',
    config: 'masqueradeCIDRs: [169.254.169.254/32]\n',
    seen: { [METADATA]: ADDR.node4, [LINK_LOCAL_OTHER]: ADDR.pod4, [ADDR.outside4]: ADDR.node4 },
  },
  {
    name: 'SNAT to a fixed address: the outside host sees it, and replies come back',
    config: `snat:\n  - cidrs: [198.51.100.0/24]\n    toSource: ${EGRESS}\n`,
    seen: { [ADDR.outsideDoc4]: EGRESS, [ADDR.outside4]: ADDR.node4, [ADDR.outsideExempt4]: ADDR.pod4 },
  },
  {
    name: 'a source outside masqueradeSourceCIDRs is not masqueraded',
    config: 'masqueradeSourceCIDRs: [10.244.2.0/24]\nsnat:\n  - cidrs: [198.51.100.0/24]\n    toSource: 203.0.113.50\n',
    seen: { [ADDR.outside4]: ADDR.pod4, [ADDR.outsideDoc4]: ADDR.pod4 },
  },
  {
    name: 'a source inside masqueradeSourceCIDRs is',
    config: 'masqueradeSourceCIDRs: [10.244.1.0/24]\n',
    seen: { [ADDR.outside4]: ADDR.node4, [ADDR.outsideExempt4]: ADDR.pod4 },
  },
];

const BACKENDS: readonly { name: string; args: readonly string[] }[] = [
  ...(['nft', 'legacy'] as const satisfies readonly Mode[]).map((mode) => ({ name: `iptables-${mode}`, args: [`--iptables-mode=${mode}`] })),
  { name: 'nftables', args: ['--backend=nftables'] },
];

for (const backend of BACKENDS) {
  test(`${backend.name}: longest-prefix configs in real traffic, as explain predicts; a resync after each rewrites nothing`, { skip }, async (t) => {
    await withScene(async ({ topo, cm, startAgent }) => {
      nsRun(topo.node, ['ip', 'addr', 'add', `${EGRESS}/24`, 'dev', 'to-out']);
      for (const a of [METADATA, LINK_LOCAL_OTHER]) {
        nsRun(topo.outside, ['ip', 'addr', 'add', `${a}/32`, 'dev', 'eth0']);
        nsRun(topo.node, ['ip', 'route', 'add', `${a}/32`, 'via', ADDR.outside4]);
      }
      cm.write(`${PHASES[0]!.config}resyncInterval: 1h\n`);
      const agent = startAgent([`--config=${cm.file}`, ...backend.args, '--v=2']);
      let applied = 0;
      for (const phase of PHASES) {
        await t.test(phase.name, async () => {
          if (applied > 0) cm.write(`${phase.config}resyncInterval: 1h\n`);
          const want = applied + 1;
          await waitUntil('rules applied', () => agent.matching((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4').length >= want);
          applied = want;
          for (const [dst, seen] of Object.entries(phase.seen)) {
            assert.equal(predicted(phase.config, dst), seen, `explain for ${dst}`);
            assert.equal(sourceSeenBy(topo.pod, dst), seen, `traffic to ${dst}`);
          }
          // A quiet resync reads back exactly what was written, so it writes nothing.
          const mark = agent.mark();
          agent.signal('SIGHUP');
          await waitUntil('resync done', () => agent.matching('sync done', mark).length >= 1);
          assert.equal(agent.matching((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4').length, applied, 'the resync wrote nothing');
        });
      }
      // A quiet resync writes nothing: the read-back equals what the agent wrote.
      assert.equal(agent.matching((l) => l.msg === 'rules applied').length, PHASES.length);
    });
  });
}
