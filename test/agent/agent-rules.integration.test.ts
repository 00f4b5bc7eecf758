// The built agent process programs the node's nat rules from its config file, on iptables-nft,
// iptables-legacy and native nftables, and real pod traffic is masqueraded (or not) accordingly.
// Each test builds its own pod/node/outside namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import { CHAIN, expectedSaveLines, inNs, jumpCount, ourSaveLines, usePrivateXtablesLock, withScene, type Mode } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const CONFIG_V4 = 'nonMasqueradeCIDRs:\n  - 10.244.0.0/16\nresyncInterval: 1h\n';
const CONFIG_DUAL = 'nonMasqueradeCIDRs:\n  - 10.244.0.0/16\n  - 2001:db8:200::/48\nresyncInterval: 1h\n';

for (const mode of ['nft', 'legacy'] as const satisfies readonly Mode[]) {
  test(`iptables-${mode}, IPv4: the agent writes exactly the reference rules and masquerades only outside 10.244.0.0/16`, { skip }, async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write(CONFIG_V4);
      const agent = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`]);
      await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');

      assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16']));
      assert.equal(jumpCount(topo.node, mode, 'ipv4'), 1);
      // Without --enable-ipv6 the agent leaves IPv6 alone.
      assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv6'), []);
      assert.equal(agent.matching((l) => l.fields['family'] === 'ipv6').length, 0);

      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4, 'traffic to 203.0.113.10 leaves with the node address');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4, 'traffic to 10.244.200.10 keeps the pod address');
      // IPv6 is not masqueraded at all without --enable-ipv6.
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.pod6);
    });
  });

  test(`iptables-${mode}, dual-stack (--enable-ipv6): reference rules for both families and the right source on each`, { skip }, async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write(CONFIG_DUAL);
      const agent = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`, '--enable-ipv6']);
      await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');
      await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv6');

      assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16']));
      assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv6'), expectedSaveLines('ipv6', ['2001:db8:200::/48']));
      assert.equal(jumpCount(topo.node, mode, 'ipv4'), 1);
      assert.equal(jumpCount(topo.node, mode, 'ipv6'), 1);
      // Nothing lands in the other iptables variant.
      const other = mode === 'nft' ? 'legacy' : 'nft';
      assert.deepEqual(ourSaveLines(topo.node, other, 'ipv4'), []);
      assert.deepEqual(ourSaveLines(topo.node, other, 'ipv6'), []);

      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.node6);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt6), ADDR.pod6);
    });
  });
}

test('--backend=nftables, dual-stack: table inet ip-masq-agent holds the ranges, no iptables chain, same traffic verdicts', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(CONFIG_DUAL);
    const agent = startAgent([`--config=${cm.file}`, '--backend=nftables', '--enable-ipv6']);
    await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');
    await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv6');

    const table = inNs(topo.node, ['nft', 'list', 'table', 'inet', 'ip-masq-agent']);
    assert.match(table, /set nonmasq4 \{[^}]*elements = \{[^}]*10\.244\.0\.0\/16/s);
    assert.match(table, /set nonmasq6 \{[^}]*elements = \{[^}]*2001:db8:200::\/48/s);
    assert.match(table, /masquerade fully-random/);
    // The whole ruleset holds only our table: no iptables chain in either variant.
    const tables = inNs(topo.node, ['nft', 'list', 'tables']).trim().split('\n');
    assert.deepEqual(tables, ['table inet ip-masq-agent']);
    for (const mode of ['nft', 'legacy'] as const) {
      assert.ok(!inNs(topo.node, [`iptables-${mode}-save`]).includes(CHAIN), `no ${CHAIN} in iptables-${mode}`);
      assert.ok(!inNs(topo.node, [`ip6tables-${mode}-save`]).includes(CHAIN), `no ${CHAIN} in ip6tables-${mode}`);
    }

    assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.node6);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt6), ADDR.pod6);
  });
});

test('--backend=nftables restarted without --enable-ipv6: the IPv6 set and chain are removed, IPv4 stays', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(CONFIG_DUAL);
    const dual = startAgent([`--config=${cm.file}`, '--backend=nftables', '--enable-ipv6']);
    await dual.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv6');
    assert.equal((await dual.stop()).code, 0);
    cm.write(CONFIG_V4);
    const v4 = startAgent([`--config=${cm.file}`, '--backend=nftables']);
    await v4.waitForLog('removed IPv6 objects of the nftables backend: IPv6 is not enabled');
    // The IPv4 part is the same as before, so it is found in place and not rewritten.
    await v4.waitForLog((l) => l.msg === 'rules already in place' && l.fields['family'] === 'ipv4');
    const table = inNs(topo.node, ['nft', 'list', 'table', 'inet', 'ip-masq-agent']);
    assert.match(table, /set nonmasq4/);
    assert.doesNotMatch(table, /nonmasq6|postrouting6/);
    // IPv6 traffic is no longer masqueraded by us.
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.pod6);
  });
});

test('restart with the same config: "rules already in place", nothing rewritten (MASQUERADE counter kept)', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(CONFIG_V4);
    const first = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    await first.waitForLog('rules applied');
    assert.equal((await first.stop()).code, 0);
    for (let i = 0; i < 2; i++) assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    const counters = (): string => inNs(topo.node, ['iptables-nft', '-w', '5', '-t', 'nat', '-L', CHAIN, '-v', '-x', '-n']);
    const before = counters();
    assert.match(before, /^\s+2\s+\d+ MASQUERADE /m);

    const second = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--v=2']);
    await second.waitForLog('sync done');
    assert.equal(second.matching('rules already in place').length, 1);
    assert.equal(second.matching('rules applied').length, 0);
    assert.equal(counters(), before, 'a rewrite would reset the counters');
    assert.equal(jumpCount(topo.node, 'nft', 'ipv4'), 1);
  });
});

test('switching --backend iptables -> nftables -> iptables: each start removes the other form, the verdicts stay right', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write('nonMasqueradeCIDRs: [10.244.0.0/16, 198.51.100.0/24]\nresyncInterval: 1h\n');
    const steps = [['--iptables-mode=nft'], ['--backend=nftables'], ['--iptables-mode=nft']] as const;
    for (const args of steps) {
      const agent = startAgent([`--config=${cm.file}`, ...args]);
      await agent.waitForLog('rules applied');
      const nftTable = inNs(topo.node, ['nft', 'list', 'tables']).includes('table inet ip-masq-agent');
      const iptablesLines = ourSaveLines(topo.node, 'nft', 'ipv4');
      if (args[0] === '--backend=nftables') {
        assert.ok(nftTable, 'nft table present');
        assert.deepEqual(iptablesLines, [], 'iptables chain and jump removed');
      } else {
        assert.ok(!nftTable, 'nft table removed');
        assert.deepEqual(iptablesLines, expectedSaveLines('ipv4', ['10.244.0.0/16', '198.51.100.0/24']));
      }
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4, args.join(' '));
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, args.join(' '));
      assert.equal((await agent.stop()).code, 0);
    }
  });
});

test('switching --iptables-mode legacy -> nft: the legacy chain left behind is removed, so the new config decides', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write(CONFIG_V4);
    const legacy = startAgent([`--config=${cm.file}`, '--iptables-mode=legacy']);
    await legacy.waitForLog('rules applied');
    assert.equal((await legacy.stop()).code, 0);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4);

    // The node moves to iptables-nft (e.g. kubelet and kube-proxy switched), with a new config.
    cm.write('nonMasqueradeCIDRs: [10.244.0.0/16, 198.51.100.0/24]\nresyncInterval: 1h\n');
    const nft = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    await nft.waitForLog('rules applied');
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16', '198.51.100.0/24']));
    // A stale legacy MASQUERADE chain keeps masquerading what the new config exempts.
    assert.deepEqual(ourSaveLines(topo.node, 'legacy', 'ipv4'), [], 'no IP-MASQ-AGENT chain or jump left in iptables-legacy');
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, '198.51.100.0/24 is exempt under the new config');
  });
});

for (const mode of ['nft', 'legacy'] as const satisfies readonly Mode[]) {
  test(`--iptables-mode=auto on a node whose kubelet uses iptables-${mode} (KUBE-IPTABLES-HINT): rules land in ${mode} only`, { skip }, async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      // What kubelet >= 1.24 leaves on the node: the hint chain in the mangle table of its variant.
      inNs(topo.node, [`iptables-${mode}`, '-w', '5', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
      cm.write(CONFIG_V4);
      const agent = startAgent([`--config=${cm.file}`]);
      const detected = await agent.waitForLog('iptables backend detected');
      assert.equal(detected.fields['mode'], mode, detected.raw);
      await agent.waitForLog('rules applied');
      const other = mode === 'nft' ? 'legacy' : 'nft';
      assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16']));
      assert.deepEqual(ourSaveLines(topo.node, other, 'ipv4'), []);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
    });
  });
}

test('--backend=auto next to kube-proxy in nftables mode (table ip kube-proxy): native nftables, no iptables chain', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    inNs(topo.node, ['nft', 'add', 'table', 'ip', 'kube-proxy']);
    cm.write(CONFIG_V4);
    const agent = startAgent([`--config=${cm.file}`, '--backend=auto']);
    const selected = await agent.waitForLog('backend selected');
    assert.equal(selected.fields['backend'], 'nftables', selected.raw);
    await agent.waitForLog('rules applied');
    assert.match(inNs(topo.node, ['nft', 'list', 'tables']), /^table inet ip-masq-agent$/m);
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), []);
    assert.deepEqual(ourSaveLines(topo.node, 'legacy', 'ipv4'), []);
    // kube-proxy's table is not ours to touch.
    assert.match(inNs(topo.node, ['nft', 'list', 'tables']), /^table ip kube-proxy$/m);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
    assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
  });
});

test('--backend=auto on a host without any iptables binary: native nftables', { skip }, async () => {
  // A PATH with nft (and ip) but no iptables, as in a minimal image.
  const bin = mkdtempSync(join(tmpdir(), 'ima-agent-noipt-'));
  symlinkSync('/usr/sbin/nft', join(bin, 'nft'));
  try {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write(CONFIG_V4);
      const agent = startAgent([`--config=${cm.file}`, '--backend=auto'], { env: { PATH: `${bin}:/usr/bin` } });
      const selected = await agent.waitForLog('backend selected');
      assert.equal(selected.fields['backend'], 'nftables', selected.raw);
      assert.match(String(selected.fields['reason']), /no iptables/);
      await agent.waitForLog('rules applied');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
    });
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
});
