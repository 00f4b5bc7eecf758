// The built agent process against a hostile node: rules damaged by others, many quiet resyncs,
// the xtables lock held by another program, a failing iptables-restore, and SIGTERM.
// Each test builds its own pod/node/outside namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import { CHAIN, JUMP_SPEC, createFailingShim, expectedSaveLines, holdLock, inNs, jumpCount, natCommand, ourSaveLines, pause, usePrivateXtablesLock, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
const lockFile = skip ? '' : usePrivateXtablesLock();

const CIDRS = ['10.244.0.0/16'];
const config = (resync: string): string => `nonMasqueradeCIDRs:\n  - 10.244.0.0/16\nresyncInterval: ${resync}\n`;

/** Packets counted by the MASQUERADE rule of our chain (iptables-nft). */
function masqueradePackets(ns: string): number {
  const out = inNs(ns, ['iptables-nft', '-w', '5', '-t', 'nat', '-L', CHAIN, '-v', '-x', '-n']);
  // Columns: pkts bytes target ...; the RETURN rules' comments mention MASQUERADE too.
  const row = out
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((cols) => cols[2] === 'MASQUERADE');
  if (!row) throw new Error(`no MASQUERADE rule in:\n${out}`);
  return Number(row[0]);
}

test('damage by others (chain flushed, chain deleted, jump deleted, POSTROUTING flushed) is repaired by the next resync', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config('1s'));
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    await agent.waitForLog('rules applied');
    const want = expectedSaveLines('ipv4', CIDRS);
    const damages: readonly { name: string; damage: () => void }[] = [
      { name: 'chain flushed', damage: () => natCommand(topo.node, 'nft', 'ipv4', '-F', CHAIN) },
      {
        name: 'chain deleted (after removing the jump)',
        damage: () => {
          natCommand(topo.node, 'nft', 'ipv4', '-D', 'POSTROUTING', ...JUMP_SPEC);
          natCommand(topo.node, 'nft', 'ipv4', '-F', CHAIN);
          natCommand(topo.node, 'nft', 'ipv4', '-X', CHAIN);
        },
      },
      { name: 'jump deleted', damage: () => natCommand(topo.node, 'nft', 'ipv4', '-D', 'POSTROUTING', ...JUMP_SPEC) },
      { name: 'POSTROUTING flushed', damage: () => natCommand(topo.node, 'nft', 'ipv4', '-F', 'POSTROUTING') },
    ];
    for (const { name, damage } of damages) {
      const mark = agent.mark();
      damage();
      assert.notDeepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), want, `${name}: the damage is real`);
      const drifted = await agent.waitForLog('drifted', { since: mark, timeoutMs: 10_000 });
      assert.equal(drifted.level, 'warn', name);
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), want, `${name}: restored`);
      assert.equal(jumpCount(topo.node, 'nft', 'ipv4'), 1, `${name}: exactly one jump`);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4, `${name}: masquerading again`);
    }
    assert.equal(agent.matching('rules applied').length, 1, 'repairs are reported as drift, not as new rules');
  });
});

/** 30 re-syncs, one every 100 ms, through SIGHUP (the resync timer runs at 1s at most). */
async function resync30(agent: { signal(sig: NodeJS.Signals): void }): Promise<void> {
  for (let i = 0; i < 30; i++) {
    agent.signal('SIGHUP');
    await pause(100);
  }
}

test('iptables-nft: 30 quiet re-syncs 100 ms apart rewrite nothing (MASQUERADE counter kept, one "rules applied")', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config('1h'));
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2']);
    await agent.waitForLog('rules applied');
    await agent.waitForLog('sync done'); // the end of the first sync
    for (let i = 0; i < 3; i++) assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    const before = masqueradePackets(topo.node);
    assert.ok(before >= 3, `the MASQUERADE rule counted the connections (${before})`);
    const mark = agent.mark();
    await resync30(agent);
    const syncs = agent.matching('sync done', mark).length;
    // A rewrite by iptables-restore would reset the counter to 0.
    assert.equal(masqueradePackets(topo.node), before, 'counter not reset');
    assert.ok(syncs >= 10, `the re-syncs did run (${syncs} in 3 s)`);
    const notQuiet = agent.matching('sync done', mark).filter((l) => JSON.stringify(l.fields['families']) !== '["ipv4:unchanged"]');
    assert.deepEqual(
      notQuiet.map((l) => l.raw),
      [],
      'every resync found the rules unchanged',
    );
    assert.equal(agent.matching('rules applied').length, 1);
    assert.equal(agent.matching('drifted').length, 0);
    assert.equal(jumpCount(topo.node, 'nft', 'ipv4'), 1);
    console.log(`# ${syncs} quiet re-syncs in 3 s, MASQUERADE packet counter stayed at ${before}`);
  });
});

test('--backend=nftables: 30 quiet re-syncs 100 ms apart rewrite nothing (rule and set handles unchanged)', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config('1h'));
    const agent = startAgent([`--config=${cm.file}`, '--backend=nftables', '--v=2']);
    await agent.waitForLog('rules applied');
    const listing = (): string => inNs(topo.node, ['nft', '-a', 'list', 'table', 'inet', 'ip-masq-agent']);
    const before = listing();
    assert.match(before, /# handle \d+/);
    const mark = agent.mark();
    await resync30(agent);
    const syncs = agent.matching('sync done', mark).length;
    assert.equal(listing(), before, 'a rewrite would give new handles');
    assert.ok(syncs >= 10, `the re-syncs did run (${syncs} in 3 s)`);
    assert.equal(agent.matching('rules applied').length, 1);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
  });
});

test('iptables-legacy with the xtables lock held by another program for 3 s: the agent waits, then applies once', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config('1s'));
    const lock = await holdLock(lockFile);
    try {
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=legacy'], { env: { XTABLES_LOCKFILE: lockFile } });
      await agent.waitForLog('iptables backend detected');
      await pause(3000);
      assert.equal(agent.matching('rules applied').length, 0, 'nothing written while the lock is held');
      assert.deepEqual(ourSaveLines(topo.node, 'legacy', 'ipv4'), []);
      await lock.release();
      await agent.waitForLog('rules applied', { timeoutMs: 20_000 });
      assert.deepEqual(ourSaveLines(topo.node, 'legacy', 'ipv4'), expectedSaveLines('ipv4', CIDRS));
      assert.equal(jumpCount(topo.node, 'legacy', 'ipv4'), 1);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
      assert.equal(agent.matching((l) => l.level === 'error').length, 0, 'a 3 s wait is not an error');
    } finally {
      await lock.release();
    }
  });
});

test('iptables-legacy with the lock held past all lock retries of a sync (3 x -w 5): the sync fails as lock-busy, the agent lives on and applies later, one jump', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config('1s'));
    const lock = await holdLock(lockFile);
    try {
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=legacy'], { env: { XTABLES_LOCKFILE: lockFile } });
      const failed = await agent.waitForLog('sync failed', { timeoutMs: 30_000 });
      assert.equal(failed.fields['failure'], 'lock-busy', failed.raw);
      assert.match(String(failed.fields['error']), /xtables lock/);
      assert.deepEqual(ourSaveLines(topo.node, 'legacy', 'ipv4'), []);
      await lock.release();
      await agent.waitForLog('sync recovered', { timeoutMs: 30_000 });
      await agent.waitForLog('rules applied');
      assert.deepEqual(ourSaveLines(topo.node, 'legacy', 'ipv4'), expectedSaveLines('ipv4', CIDRS));
      assert.equal(jumpCount(topo.node, 'legacy', 'ipv4'), 1);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    } finally {
      await lock.release();
    }
  });
});

test('a failing iptables-nft-restore: the failure is logged with its message, old rules stay, the next resync applies once it works', { skip }, async () => {
  const { marker, path, cleanup } = createFailingShim('iptables-nft-restore');
  try {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write(config('1s'));
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft'], { env: { PATH: path } });
      await agent.waitForLog('rules applied');

      writeFileSync(marker, '');
      const mark = agent.mark();
      cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/16\n  - 198.51.100.0/24\nresyncInterval: 1s\n');
      const failed = await agent.waitForLog('sync failed', { since: mark });
      assert.equal(failed.level, 'error');
      assert.match(String(failed.fields['error']), /simulated failure \(test shim\): cannot commit the nat table/);
      // A few resyncs later the agent is still there and the old rules are untouched.
      await pause(2500);
      assert.equal(agent.matching('sync failed', mark).length, 1, 'the same failure is logged once, not every resync');
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', CIDRS));
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);

      rmSync(marker);
      await agent.waitForLog('sync recovered', { since: mark, timeoutMs: 10_000 });
      await agent.waitForLog('rules applied', { since: mark });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16', '198.51.100.0/24']));
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4);
      assert.ok(!existsSync(marker));
    });
  } finally {
    cleanup();
  }
});

test('SIGTERM: exit code 0 promptly, and the rules stay in place', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config('1s'));
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    await agent.waitForLog('rules applied');
    // Bounded wait (not a speed assertion): kubelet's grace period is 30 s; the agent promises ~1 s.
    const stopped = await agent.stop(5_000);
    console.log(`# SIGTERM -> exit in ${stopped.elapsedMs.toFixed(0)} ms`);
    assert.equal(stopped.code, 0, agent.stderr());
    assert.equal(stopped.signal, null);
    assert.ok(agent.matching('stopping; rules stay in place').length === 1);
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', CIDRS));
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
  });
});

test('dual-stack: ip6tables-nft-restore failing does not keep IPv4 from being applied (and IPv6 follows once it works)', { skip }, async () => {
  const { marker, path, cleanup } = createFailingShim('ip6tables-nft-restore');
  writeFileSync(marker, '');
  try {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/16\n  - 2001:db8:200::/48\nresyncInterval: 1s\n');
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--enable-ipv6'], { env: { PATH: path } });
      const failed = await agent.waitForLog((l) => l.msg.includes('sync failed') && l.fields['family'] === 'ipv6');
      assert.match(String(failed.fields['error']), /ip6tables-nft-restore: simulated failure/);
      await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', CIDRS));
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv6'), []);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.pod6, 'no IPv6 rules yet');

      rmSync(marker);
      await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv6', { timeoutMs: 10_000 });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv6'), expectedSaveLines('ipv6', ['2001:db8:200::/48']));
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.node6);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt6), ADDR.pod6);
      assert.equal(agent.matching((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4').length, 1, 'IPv4 not rewritten meanwhile');
    });
  } finally {
    cleanup();
  }
});

test('SIGTERM while the first sync waits for the xtables lock: exit code 0 promptly, no crash', { skip }, async () => {
  await withScene(async ({ cm, startAgent }) => {
    cm.write(config('1s'));
    const lock = await holdLock(lockFile);
    try {
      const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=legacy'], { env: { XTABLES_LOCKFILE: lockFile } });
      await agent.waitForLog('config applied');
      const stopped = await agent.stop(5_000);
      console.log(`# SIGTERM while blocked on the lock -> exit in ${stopped.elapsedMs.toFixed(0)} ms`);
      assert.equal(stopped.code, 0, agent.stderr());
      assert.equal(agent.stderr(), '');
    } finally {
      await lock.release();
    }
  });
});

/** A CNI-style catch-all MASQUERADE for the pod range, as `-S POSTROUTING` prints it. */
const CNI_MASQ = ['-s', '10.244.1.0/24', '-j', 'MASQUERADE'];
const CNI_MASQ_LINE = '-A POSTROUTING -s 10.244.1.0/24 -j MASQUERADE';

test('a MASQUERADE rule already before our jump at start is reported (it masquerades what we exempt)', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    natCommand(topo.node, 'nft', 'ipv4', '-A', 'POSTROUTING', ...CNI_MASQ);
    cm.write(config('1s'));
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    await agent.waitForLog('rules applied');
    const warned = await agent.waitForLog('may override our non-masquerade ranges');
    assert.equal(warned.level, 'warn');
    assert.deepEqual(warned.fields['rules'], [CNI_MASQ_LINE]);
    // The user-visible harm the warning is about.
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.node4);
  });
});

test('a MASQUERADE rule inserted before our jump while the agent runs is reported within a resync', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(config('1s'));
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    await agent.waitForLog('rules applied');
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
    // E.g. a CNI plugin starting after the agent, inserting at the top of POSTROUTING.
    natCommand(topo.node, 'nft', 'ipv4', '-I', 'POSTROUTING', '1', ...CNI_MASQ);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.node4, 'the exempt destination is now masqueraded');
    const warned = await agent.waitForLog('may override our non-masquerade ranges', { timeoutMs: 5_000 });
    assert.deepEqual(warned.fields['rules'], [CNI_MASQ_LINE]);
  });
});
