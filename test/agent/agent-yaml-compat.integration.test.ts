// Config files written the way the reference agent's YAML reader (go-yaml v2) reads them, through
// the built agent, with real traffic: lines ended by CR alone (an old Mac editor, a Windows tool
// that dropped the LF), NEL, LS or PS, and a merge key (`<<`). Each must exempt exactly the CIDRs
// it lists, as in the reference; `cidrLimit: 1:10` (a string to go-yaml v2, not 70) is refused
// and the rules stay. The test builds its own pod/node/outside namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import type { LogLine } from './agent-process.js';
import { expectedSaveLines, ourSaveLines, usePrivateXtablesLock, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const BOTH = ['10.244.0.0/16', '198.51.100.0/24'];
const PODS = ['10.244.0.0/16'];

/** A config listing `cidrs` as a block list, every line ended by `eol`. */
const blockConfig = (cidrs: readonly string[], eol: string): string =>
  ['# exempt pods (and the documentation range)', 'nonMasqueradeCIDRs:', ...cidrs.map((c) => `  - ${c} # exempt`), 'resyncInterval: 1h', ''].join(eol);

const errorsOf = (l: LogLine): string => (Array.isArray(l.fields['errors']) ? l.fields['errors'].join('\n') : '');

test('configs with CR, NEL, LS or PS line breaks and with a merge key exempt exactly what they list; cidrLimit: 1:10 is refused', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    /** Checks the rules and who gets masqueraded: 198.51.100.10 keeps the pod address only when exempt. */
    const expectExempt = (cidrs: readonly string[], what: string): void => {
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', cidrs), what);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), cidrs.includes('198.51.100.0/24') ? ADDR.pod4 : ADDR.node4, `${what}: 198.51.100.10`);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4, `${what}: 203.0.113.10 is masqueraded`);
    };

    // At start: a file whose lines end with CR alone. Before, the whole file was one line to this agent: refused, defaults applied.
    cm.write(blockConfig(BOTH, '\r'));
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2']);
    await agent.waitForLog('rules applied');
    expectExempt(BOTH, 'CR at start');

    // Live changes, each listing other CIDRs than the one before, so every rewrite shows.
    const steps: readonly { what: string; text: string; cidrs: readonly string[] }[] = [
      { what: 'NEL', text: blockConfig(PODS, '\u0085'), cidrs: PODS },
      { what: 'LS', text: blockConfig(BOTH, '\u2028'), cidrs: BOTH },
      { what: 'PS', text: blockConfig(PODS, '\u2029'), cidrs: PODS },
      { what: 'merge key', text: '<<: {nonMasqueradeCIDRs: [10.244.0.0/16, 198.51.100.0/24]}\nresyncInterval: 1h\n', cidrs: BOTH },
    ];
    for (const step of steps) {
      const mark = agent.mark();
      cm.write(step.text);
      await agent.waitForLog('rules applied', { since: mark });
      assert.equal(agent.matching('config rejected', mark).length, 0, step.what);
      expectExempt(step.cidrs, step.what);
    }

    // go-yaml v2 reads 1:10 as a string: the reference cannot use it as cidrLimit, and neither may we (before, it was 70).
    const mark = agent.mark();
    cm.write('nonMasqueradeCIDRs: [10.244.0.0/16]\ncidrLimit: 1:10\nresyncInterval: 1h\n');
    const rejected = await agent.waitForLog('config rejected', { since: mark });
    assert.match(errorsOf(rejected), /:2:12: cidrLimit: expected a non-negative integer, got string "1:10"/, rejected.raw);
    await agent.waitForLog('sync done', { since: agent.logs.indexOf(rejected) });
    expectExempt(BOTH, 'after the refused config, the last good rules stay');
    assert.equal(agent.otherOutput.length, 0, agent.otherOutput.join('\n'));
  });
});
