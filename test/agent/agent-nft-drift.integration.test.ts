// Drift inside our own nftables table that decides traffic, with real traffic: the built agent in
// the node namespace of a pod -> node -> outside topology, then someone puts the table to sleep
// (`flags dormant`), adds a base chain of their own that masquerades, renames our chain, or puts a
// map where our set was. Each time: `status` says out of sync (exit 1), a restarted agent does not
// say "rules already in place", a running agent repairs it, and the outside host sees the address
// the config asks for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import { runAgentToExit } from './agent-process.js';
import { inNs, waitUntil, withScene, type Scene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';

const T = ['inet', 'ip-masq-agent'];
const AGENT = ['--backend=nftables'];
const CONFIG = 'nonMasqueradeCIDRs: [10.0.0.0/8]\nresyncInterval: 1s\n';

/** Runs an nft script in `ns`, as another program on the node would. */
function nftScript(ns: string, script: string): void {
  inNs(ns, ['sh', '-c', `printf '%s\\n' '${script}' | nft -f -`]);
}

/** `status` of the agent's config in the node namespace: exit code and output. */
function status(s: Scene): { code: number | null; out: string } {
  const r = runAgentToExit(s.topo.node, ['status', `--config=${s.cm.file}`, ...AGENT]);
  return { code: r.code, out: `${r.stdout}${r.stderr}` };
}

interface DriftCase {
  readonly name: string;
  /** What someone does to our table. */
  readonly drift: (ns: string) => void;
  /** A destination whose seen source the drift changes, and the address it must show. */
  readonly dest: string;
  readonly want: string;
  /** What status must print about it. */
  readonly statusSays: RegExp;
}

const CASES: readonly DriftCase[] = [
  {
    name: 'a dormant table (all NAT off)',
    drift: (ns) => nftScript(ns, 'add table inet ip-masq-agent { flags dormant; }'),
    dest: ADDR.outside4,
    want: ADDR.node4,
    statusSays: /\+ table flags set \(nft 1.0.6 misprints which; dormant turns off all of the table\)/,
  },
  {
    name: 'a foreign base chain in our table that masquerades at priority 50',
    drift: (ns) => nftScript(ns, 'add chain inet ip-masq-agent sneaky { type nat hook postrouting priority 50; policy accept; }\nadd rule inet ip-masq-agent sneaky masquerade'),
    dest: ADDR.outsideExempt4,
    want: ADDR.pod4,
    statusSays: /\+ table holds chain "sneaky" type nat hook postrouting prio 50 policy accept, 1 rule, not the agent's/,
  },
  {
    name: 'a map named like our set, our chain gone (masquerading off)',
    drift: (ns) => nftScript(ns, 'delete chain inet ip-masq-agent postrouting4\ndelete set inet ip-masq-agent nonmasq4\nadd map inet ip-masq-agent nonmasq4 { type ipv4_addr : ipv4_addr; }'),
    dest: ADDR.outside4,
    want: ADDR.node4,
    statusSays: /\+ table holds map "nonmasq4" type ipv4_addr : ipv4_addr, not the agent's/,
  },
];

for (const c of CASES) {
  test(`nftables, ${c.name}: status exit 1, a restart repairs it, a running agent repairs it; traffic shows ${c.want === ADDR.pod4 ? 'the pod' : 'the node'} address`, { skip }, async () => {
    await withScene(async (s) => {
      const { topo, cm, startAgent } = s;
      cm.write(CONFIG);
      const first = startAgent([`--config=${cm.file}`, ...AGENT, '--v=2']);
      await first.waitForLog('rules applied');
      assert.equal(sourceSeenBy(topo.pod, c.dest), c.want, 'before the drift');
      await first.kill();

      c.drift(topo.node);
      assert.notEqual(sourceSeenBy(topo.pod, c.dest), c.want, 'the drift changes what the outside sees');
      const st = status(s);
      assert.equal(st.code, 1, st.out);
      assert.match(st.out, c.statusSays);

      const second = startAgent([`--config=${cm.file}`, ...AGENT, '--v=2']);
      await second.waitForLog('sync done');
      assert.equal(second.matching('rules already in place').length, 0, 'a restart must not call this table in place');
      assert.equal(sourceSeenBy(topo.pod, c.dest), c.want, 'repaired at start');
      assert.equal(status(s).code, 0);

      const mark = second.mark();
      c.drift(topo.node);
      await second.waitForLog('rules drifted from what the agent wrote; restored them', { since: mark });
      assert.equal(sourceSeenBy(topo.pod, c.dest), c.want, 'repaired by a resync');
      assert.equal(second.matching((l) => l.level === 'error', mark).length, 0, 'no failed sync on the way');
    });
  });
}

test('nftables, our chain renamed by someone: a config change still applies (no "Device or resource busy"), and the renamed chain is gone', { skip }, async () => {
  await withScene(async (s) => {
    const { topo, cm, startAgent } = s;
    cm.write('nonMasqueradeCIDRs: [10.0.0.0/8]\nresyncInterval: 1h\n');
    const agent = startAgent([`--config=${cm.file}`, ...AGENT, '--v=2']);
    await agent.waitForLog('rules applied');
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4);
    inNs(topo.node, ['nft', 'rename', 'chain', ...T, 'postrouting4', 'renamed']);
    const st = status(s);
    assert.equal(st.code, 1, st.out);
    assert.match(st.out, /\+ table holds chain "renamed" type nat hook postrouting prio 100 policy accept, 4 rules, not the agent's/);

    const mark = agent.mark();
    cm.write(`nonMasqueradeCIDRs: [10.0.0.0/8, ${ADDR.outsideDoc4}/32]\nresyncInterval: 1s\n`);
    await waitUntil('the new config in force', () => sourceSeenBy(topo.pod, ADDR.outsideDoc4) === ADDR.pod4, 20_000);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    await waitUntil('a quiet resync', () => agent.matching('sync done', mark).length >= 3);
    assert.doesNotMatch(inNs(topo.node, ['nft', 'list', 'table', ...T]), /renamed/);
    assert.equal(status(s).code, 0);
  });
});

test('nftables, dual-stack, a dormant table holding a foreign masquerading chain: both families repaired by the running agent, no failed sync', { skip }, async () => {
  await withScene(async (s) => {
    const { topo, cm, startAgent } = s;
    cm.write(CONFIG);
    const agent = startAgent([`--config=${cm.file}`, ...AGENT, '--enable-ipv6', '--v=2']);
    await agent.waitForLog('rules applied');
    await waitUntil('both families applied', () => agent.matching('rules applied').length >= 2);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.node6);
    const mark = agent.mark();
    nftScript(
      topo.node,
      'add chain inet ip-masq-agent sneaky { type nat hook postrouting priority 50; policy accept; }\nadd rule inet ip-masq-agent sneaky masquerade\nadd table inet ip-masq-agent { flags dormant; }',
    );
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.pod6, 'dormant: IPv6 NAT is off too');
    await waitUntil(
      'IPv4 and IPv6 masqueraded again, the exemption kept',
      () => sourceSeenBy(topo.pod, ADDR.outside6) === ADDR.node6 && sourceSeenBy(topo.pod, ADDR.outside4) === ADDR.node4 && sourceSeenBy(topo.pod, ADDR.outsideExempt4) === ADDR.pod4,
      20_000,
    );
    await waitUntil('a quiet resync after', () => agent.matching('sync done', mark).length >= 4);
    assert.deepEqual(
      agent.matching((l) => l.level === 'error', mark).map((l) => l.raw),
      [],
      'no failed sync on the way',
    );
    const st = runAgentToExit(topo.node, ['status', `--config=${cm.file}`, ...AGENT, '--enable-ipv6']);
    assert.equal(st.code, 0, st.stdout);
  });
});
