// How the built agent process reacts to its config file changing under it: kubelet-style
// ConfigMap swaps, bad configs after a good one, a removed file, an invalid file at first start.
// Each test builds its own pod/node/outside namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import type { LogLine } from './agent-process.js';
import { CHAIN, DEFAULT_CIDRS, expectedSaveLines, inNs, jumpCount, natCommand, ourSaveLines, usePrivateXtablesLock, waitUntil, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const GOOD = 'nonMasqueradeCIDRs:\n  - 10.244.0.0/16\n  - 198.51.100.0/24\nresyncInterval: 1h\n';
const GOOD_CIDRS = ['10.244.0.0/16', '198.51.100.0/24'];

const errorsOf = (l: LogLine): string => (Array.isArray(l.fields['errors']) ? l.fields['errors'].join('\n') : '');

/** Bad configs a user writes by mistake, and what the rejection must say. */
const BAD_CONFIGS: readonly { name: string; text: string; problem: RegExp }[] = [
  { name: 'bad CIDR', text: 'nonMasqueradeCIDRs:\n  - 10.244.0.0/33\nresyncInterval: 1h\n', problem: /nonMasqueradeCIDRs\[0\].*10\.244\.0\.0\/33/ },
  { name: 'unknown key (typo)', text: 'nonMasqueradeCIRDs:\n  - 10.244.0.0/16\nresyncInterval: 1h\n', problem: /:1:1: .*unknown key "nonMasqueradeCIRDs"/ },
  {
    name: 'over cidrLimit',
    text: 'nonMasqueradeCIDRs: [10.244.0.0/16, 198.51.100.0/24, 192.0.2.0/24]\ncidrLimit: 2\nresyncInterval: 1h\n',
    problem: /up to 2 CIDRs.*cidrLimit/,
  },
  { name: 'IPv6 CIDR without --enable-ipv6', text: 'nonMasqueradeCIDRs:\n  - 2001:db8:200::/48\nresyncInterval: 1h\n', problem: /2001:db8:200::\/48.*--enable-ipv6/ },
  { name: 'YAML syntax error', text: 'nonMasqueradeCIDRs: [10.244.0.0/16\nresyncInterval: 1h\n', problem: /:\d+:\d+: .*(Flow sequence|flow collection|\])/i },
];

test('bad configs after a good one: each is rejected with file and problem, the good rules stay and are still healed', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(GOOD);
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2']);
    await agent.waitForLog('rules applied');
    const good = expectedSaveLines('ipv4', GOOD_CIDRS);
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), good);

    for (const bad of BAD_CONFIGS) {
      const mark = agent.mark();
      cm.write(bad.text);
      const rejected = await agent.waitForLog('config rejected', { since: mark });
      assert.equal(rejected.level, 'error', bad.name);
      assert.ok(errorsOf(rejected).includes(`${cm.file}:`), `${bad.name}: the error names the file: ${rejected.raw}`);
      assert.match(errorsOf(rejected), bad.problem, bad.name);
      // The sync that read the bad config has finished: the rules are still the good ones.
      await agent.waitForLog('sync done', { since: agent.logs.indexOf(rejected) });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), good, `${bad.name}: rules unchanged`);
    }
    assert.equal(agent.matching('rules applied').length, 1, 'no rewrite while the config is bad');
    assert.equal(agent.matching('defaults in use').length, 0, 'no silent fallback to defaults');

    // Someone flushes the chain while the config is still bad: the last good rules come back.
    natCommand(topo.node, 'nft', 'ipv4', '-F', CHAIN);
    assert.deepEqual(
      ourSaveLines(topo.node, 'nft', 'ipv4'),
      good.filter((l) => !l.startsWith(`-A ${CHAIN}`)),
    );
    const mark = agent.mark();
    agent.signal('SIGHUP');
    await agent.waitForLog('drifted', { since: mark });
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), good);
    assert.equal(jumpCount(topo.node, 'nft', 'ipv4'), 1);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, '198.51.100.0/24 is still exempt (last good config, not defaults)');
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    assert.equal(agent.otherOutput.length, 0, `only JSON lines on stdout: ${agent.otherOutput.join('\n')}`);
  });
});

test('removing the config file brings back the defaults, with a log line saying so', { skip }, async () => {
  // A plain file (not a ConfigMap volume), deleted by hand.
  const dir = mkdtempSync(join(tmpdir(), 'ima-agent-plain-'));
  const file = join(dir, 'ip-masq-agent');
  try {
    writeFileSync(file, 'nonMasqueradeCIDRs:\n  - 198.51.100.0/24\nresyncInterval: 1h\n');
    await withScene(async ({ topo, startAgent }) => {
      const agent = startAgent([`--config=${file}`, '--iptables-mode=nft']);
      await agent.waitForLog('rules applied');
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['198.51.100.0/24']));
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4);

      const mark = agent.mark();
      rmSync(file);
      const defaults = await agent.waitForLog('defaults in use', { since: mark });
      assert.equal(defaults.level, 'info');
      await agent.waitForLog('rules applied', { since: mark });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', [...DEFAULT_CIDRS]));
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4, '198.51.100.10 is masqueraded again under the defaults');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4, '10.244.200.10 is in 10.0.0.0/8');
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('first start with an invalid file: the defaults are applied and the error is logged; fixing the file applies it', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/33\nresyncInterval: 1h\n');
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    const rejected = await agent.waitForLog('config rejected');
    assert.equal(rejected.level, 'error');
    assert.match(errorsOf(rejected), /10\.244\.0\.0\/33/);
    assert.ok(errorsOf(rejected).includes(cm.file), rejected.raw);
    await agent.waitForLog('rules applied');
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', [...DEFAULT_CIDRS]));
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);

    // The agent keeps running (no crash loop) and picks up the fixed file from the watch.
    const mark = agent.mark();
    cm.write(GOOD);
    await agent.waitForLog('rules applied', { since: mark });
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', GOOD_CIDRS));
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4);
  });
});

test('a kubelet-style ..data swap is live long before the resync interval (1h): only the watch can explain it', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/16\nresyncInterval: 1h\n');
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    await agent.waitForLog('rules applied');
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4);

    const mark = agent.mark();
    const swappedAt = cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/16\n  - 198.51.100.0/24\nresyncInterval: 1h\n');
    let visibleAt = 0;
    // Bounded waits far below the 1 h interval; the figures are printed, not asserted.
    await waitUntil(
      'the new rule in iptables -S',
      () => {
        const seen = inNs(topo.node, ['iptables-nft', '-w', '5', '-t', 'nat', '-S', CHAIN]).includes('-d 198.51.100.0/24');
        if (seen) visibleAt = Date.now();
        return seen;
      },
      10_000,
    );
    const applied = await agent.waitForLog('rules applied', { since: mark, timeoutMs: 10_000 });
    console.log(`# swap -> "rules applied" log: ${applied.time - swappedAt} ms; swap -> rule visible in iptables -S: ${visibleAt - swappedAt} ms`);
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', GOOD_CIDRS));
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4);
    assert.equal(agent.matching('rules applied').length, 2);
  });
});

test('the rules follow a ConfigMap mounted as a directory (--config=<dir>) across swaps', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write('nonMasqueradeCIDRs: [10.244.0.0/16]\nresyncInterval: 1h\n');
    const agent = startAgent([`--config=${cm.dir}`, '--iptables-mode=nft']);
    await agent.waitForLog('rules applied');
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16']));
    for (const cidrs of [['198.51.100.0/24'], ['10.244.0.0/16', '198.51.100.0/24'], ['10.244.0.0/16']]) {
      const mark = agent.mark();
      cm.write(`nonMasqueradeCIDRs: [${cidrs.join(', ')}]\nresyncInterval: 1h\n`);
      await agent.waitForLog('rules applied', { since: mark });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', cidrs));
    }
  });
});

test('a config directory deleted and re-created (as config management may do): later edits are still picked up by the watch', { skip }, async () => {
  const base = mkdtempSync(join(tmpdir(), 'ima-agent-recreate-'));
  const dir = join(base, 'config');
  const file = join(dir, 'ip-masq-agent');
  const write = (cidr: string): void => writeFileSync(file, `nonMasqueradeCIDRs: [${cidr}]\nresyncInterval: 1h\n`);
  const appliedWith =
    (cidr: string) =>
    (l: LogLine): boolean =>
      l.msg === 'rules applied' && JSON.stringify(l.fields['rules']).includes(` -d ${cidr} `);
  try {
    mkdirSync(dir);
    write('10.244.0.0/16');
    await withScene(async ({ topo, startAgent }) => {
      const agent = startAgent([`--config=${file}`, '--iptables-mode=nft']);
      await agent.waitForLog('rules applied');

      rmSync(dir, { recursive: true });
      mkdirSync(dir);
      write('198.51.100.0/24');
      // Bounded waits far below the 1 h resync: only the watch can explain a change.
      await agent.waitForLog(appliedWith('198.51.100.0/24'), { timeoutMs: 5_000 });
      write('192.0.2.0/24');
      await agent.waitForLog(appliedWith('192.0.2.0/24'), { timeoutMs: 5_000 });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['192.0.2.0/24']));
    });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
