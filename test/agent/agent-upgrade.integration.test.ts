// Upgrading in place from each reference release, and rolling back to it, on iptables-nft and
// iptables-legacy: the rules an older release left (written with iptables-restore as that node's
// iptables-save shows them), then the built agent, `status` and `cleanup` in the node namespace.
// The reference binary cannot run here; its sync is replayed as compat-contract.md describes it
// (`-N` of the chain, `-C` of its jump form and `-A` when missing, its chain payload restored).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Family } from '../../src/net/cidr.js';
import { ADDR, canUseNetns, nsRun, nsTry, sourceSeenBy } from '../netns/netns.js';
import { runAgentToExit } from './agent-process.js';
import { CHAIN, DEFAULT_CIDRS, JUMP_LINE, JUMP_SPEC, expectedSaveLines, iptablesBinary, ourSaveLines, usePrivateXtablesLock, withScene, type Mode } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const JUMP_COMMENT = `ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom ${CHAIN} chain`;
const KUBE = '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING';

/** One reference release line: its POSTROUTING jump (argv and as -S prints it) and its chain rules (restore form). */
interface Release {
  readonly name: string;
  readonly jumpSpec: readonly string[];
  readonly jumpLine: string;
  readonly chainRules: readonly string[];
}

const LINK_LOCAL = '169.254.0.0/16';
const todaysChain = [LINK_LOCAL, ...DEFAULT_CIDRS]
  .map((c) => `-A ${CHAIN} -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -d ${c} -j RETURN`)
  .concat(`-A ${CHAIN} -m comment --comment "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE --random-fully`);

const RELEASES: readonly Release[] = [
  {
    // The user guide's listing: old comments and the addrtype match on every rule.
    name: 'v1.x-v2.0.x',
    jumpSpec: JUMP_SPEC,
    jumpLine: JUMP_LINE,
    chainRules: [LINK_LOCAL, ...DEFAULT_CIDRS]
      .map((c) => `-A ${CHAIN} -m comment --comment "ip-masq-agent: cluster-local traffic should not be subject to MASQUERADE" -m addrtype ! --dst-type LOCAL -d ${c} -j RETURN`)
      .concat(
        `-A ${CHAIN} -m comment --comment "ip-masq-agent: outbound traffic should be subject to MASQUERADE (this match must come after cluster-local CIDR matches)" -m addrtype ! --dst-type LOCAL -j MASQUERADE`,
      ),
  },
  {
    // The comment argument itself carried literal quotes.
    name: 'v2.1.0-v2.12.3',
    jumpSpec: JUMP_SPEC.map((a) => (a === JUMP_COMMENT ? `"${a}"` : a)),
    jumpLine: JUMP_LINE.replace(`"${JUMP_COMMENT}"`, `"\\"${JUMP_COMMENT}\\""`),
    chainRules: todaysChain,
  },
  { name: 'v2.12.4-v2.12.6', jumpSpec: JUMP_SPEC, jumpLine: JUMP_LINE, chainRules: todaysChain },
];

const nat = (mode: Mode, family: Family = 'ipv4'): string[] => [iptablesBinary(mode, family), '-w', '5', '-t', 'nat'];

/** The nat POSTROUTING rules in `ns`, as -S prints them, without the policy line. */
function postrouting(ns: string, mode: Mode): string[] {
  return nsRun(ns, [...nat(mode), '-S', 'POSTROUTING'])
    .split('\n')
    .filter((l) => l.startsWith('-A '));
}

/** What a node that ran `r` holds, restored whole: kube-proxy's jump first, then the release's jump and chain. */
function writeReleaseRules(ns: string, mode: Mode, r: Release): void {
  const payload = ['*nat', ':KUBE-POSTROUTING - [0:0]', `:${CHAIN} - [0:0]`, KUBE, r.jumpLine, ...r.chainRules, 'COMMIT', ''].join('\n');
  nsRun(ns, [iptablesBinary(mode, 'ipv4', '-restore'), '-w', '5', '--noflush'], payload);
}

/** One sync of the reference release `r`, as its code runs it. */
function replayReferenceSync(ns: string, mode: Mode, r: Release): void {
  nsTry(ns, [...nat(mode), '-N', CHAIN]); // EnsureChain: "already exists" is fine
  if (nsTry(ns, [...nat(mode), '-C', 'POSTROUTING', ...r.jumpSpec]).code === 1) nsRun(ns, [...nat(mode), '-A', 'POSTROUTING', ...r.jumpSpec]);
  nsRun(ns, [iptablesBinary(mode, 'ipv4', '-restore'), '-w', '5', '--noflush'], ['*nat', `:${CHAIN} - [0:0]`, ...r.chainRules, 'COMMIT', ''].join('\n'));
}

function removeKube(ns: string, mode: Mode): void {
  nsRun(ns, [...nat(mode), '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'kubernetes postrouting rules', '-j', 'KUBE-POSTROUTING']);
  nsRun(ns, [...nat(mode), '-X', 'KUBE-POSTROUTING']);
}

/** `cleanup` in `ns`: exit 0 and nothing of ours left in either iptables. */
function assertCleanupLeavesNothing(ns: string, what: string, othersRules: readonly string[] = []): void {
  for (const run of ['first', 'second']) {
    const r = runAgentToExit(ns, ['cleanup']);
    assert.equal(r.code, 0, `${what}: cleanup (${run} run) exits 0\n${r.stdout}${r.stderr}`);
    if (run === 'second') assert.match(r.stdout, /^nothing to remove in: iptables-nft IPv4, iptables-nft IPv6, iptables-legacy IPv4, iptables-legacy IPv6, nftables$/m, what);
    assert.doesNotMatch(r.stderr, /lock/, what);
  }
  for (const m of ['nft', 'legacy'] as const) {
    assert.deepEqual(
      ourSaveLines(ns, m, 'ipv4').filter((l) => !othersRules.includes(l)),
      [],
      `${what}: nothing left in iptables-${m}`,
    );
  }
}

for (const mode of ['nft', 'legacy'] as const satisfies readonly Mode[]) {
  test(`iptables-${mode}: upgrade in place from every reference release leaves exactly our jump, in place; status and cleanup handle every form`, { skip }, async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write('resyncInterval: 1h\n');
      const node = topo.node;
      const statusArgs = ['status', `--config=${cm.file}`, `--iptables-mode=${mode}`];
      for (const r of RELEASES) {
        writeReleaseRules(node, mode, r);
        const agent = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`]);
        await agent.waitForLog((l) => (l.msg === 'rules applied' || l.msg === 'rules already in place') && l.fields['family'] === 'ipv4');
        assert.deepEqual(postrouting(node, mode), [KUBE, JUMP_LINE], `${r.name}: one jump, ours, where the old one was`);
        assert.deepEqual(ourSaveLines(node, mode, 'ipv4'), expectedSaveLines('ipv4', DEFAULT_CIDRS), `${r.name}: our chain`);
        assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4, r.name);
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4, r.name);
        assert.equal((await agent.stop()).code, 0);
        const synced = runAgentToExit(node, statusArgs);
        assert.equal(synced.code, 0, `${r.name}: status in sync after our agent\n${synced.stdout}${synced.stderr}`);

        assertCleanupLeavesNothing(node, `${r.name}, after our agent`);
        assert.deepEqual(postrouting(node, mode), [KUBE], 'cleanup leaves the other rules alone');

        // The release's rules as they are, straight to status and cleanup (the node never ran ours).
        removeKube(node, mode);
        writeReleaseRules(node, mode, r);
        const old = runAgentToExit(node, statusArgs);
        if (r.jumpLine === JUMP_LINE && r.chainRules === todaysChain) {
          assert.equal(old.code, 0, `${r.name}: byte-identical rules are in sync\n${old.stdout}`);
        } else {
          assert.equal(old.code, 1, `${r.name}: status reports the older form as drift\n${old.stdout}${old.stderr}`);
          assert.match(old.stdout, /IPv4: drifted/, r.name);
        }
        if (r.jumpLine !== JUMP_LINE) assert.ok(old.stdout.includes(`  + ${r.jumpLine}`), `${r.name}: the old jump is shown as unexpected\n${old.stdout}`);
        assertCleanupLeavesNothing(node, `${r.name}, as that release left it`);
        removeKube(node, mode);
      }
    });
  });

  test(`iptables-${mode}: duplicates, a bare jump and a comment that mentions our jump: one jump after a sync, status reports the extras, cleanup exits 0`, { skip }, async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write('resyncInterval: 1h\n');
      const node = topo.node;
      const lookalike = `-A POSTROUTING -m comment --comment "traffic to the agent: -j ${CHAIN} handles it" -j RETURN`;
      const agent = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`, '--v=2']);
      await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');
      assert.equal((await agent.stop()).code, 0);
      nsRun(node, [...nat(mode), '-I', 'POSTROUTING', '1', '-m', 'comment', '--comment', `traffic to the agent: -j ${CHAIN} handles it`, '-j', 'RETURN']);
      nsRun(node, [...nat(mode), '-A', 'POSTROUTING', ...JUMP_SPEC]);
      nsRun(node, [...nat(mode), '-A', 'POSTROUTING', '-j', CHAIN]);
      assert.deepEqual(postrouting(node, mode), [lookalike, JUMP_LINE, JUMP_LINE, `-A POSTROUTING -j ${CHAIN}`]);

      const drift = runAgentToExit(node, ['status', `--config=${cm.file}`, `--iptables-mode=${mode}`]);
      assert.equal(drift.code, 1, `status reports the extra jumps\n${drift.stdout}`);
      assert.match(drift.stdout, /IPv4: drifted: 0 missing, 2 unexpected/);
      assert.ok(drift.stdout.includes(`  + -A POSTROUTING -j ${CHAIN}`), drift.stdout);

      const again = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`]);
      await again.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');
      assert.deepEqual(postrouting(node, mode), [lookalike, JUMP_LINE], 'one jump, where the first was; the lookalike kept');
      assert.equal((await again.stop()).code, 0);
      assert.equal(runAgentToExit(node, ['status', `--config=${cm.file}`, `--iptables-mode=${mode}`]).code, 0);

      assertCleanupLeavesNothing(node, 'duplicates and a lookalike', [lookalike]);
      assert.deepEqual(postrouting(node, mode), [lookalike], 'a rule that only mentions our chain is not ours to delete');
    });
  });

  test(`iptables-${mode}: rolling back to each reference release after our agent: what its next sync leaves`, { skip }, async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write('resyncInterval: 1h\n');
      const node = topo.node;
      // Measured: the quoted-comment releases add their own jump beside ours; the others find theirs (identical) in place.
      const jumpsAfterRollback: Record<string, number> = { 'v1.x-v2.0.x': 1, 'v2.1.0-v2.12.3': 2, 'v2.12.4-v2.12.6': 1 };
      for (const r of RELEASES) {
        const agent = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`]);
        await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');
        assert.equal((await agent.stop()).code, 0);
        replayReferenceSync(node, mode, r);
        replayReferenceSync(node, mode, r); // and its next resync: nothing more
        const jumps = postrouting(node, mode);
        assert.equal(jumps.length, jumpsAfterRollback[r.name], `${r.name}:\n${jumps.join('\n')}`);
        assert.deepEqual(jumps, r.jumpLine === JUMP_LINE ? [JUMP_LINE] : [JUMP_LINE, r.jumpLine], r.name);
        // Two jumps into the same chain decide the same: a packet that RETURNs from the first meets the chain again.
        assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4, r.name);
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4, r.name);
        if (jumps.length > 1) {
          // The fix in docs/upgrade-matrix.md: delete our form once; the reference checks only its own, so it stays gone.
          nsRun(node, [...nat(mode), '-D', 'POSTROUTING', ...JUMP_SPEC]);
          replayReferenceSync(node, mode, r);
          assert.deepEqual(postrouting(node, mode), [r.jumpLine], `${r.name}: one jump after deleting ours`);
        }
        assertCleanupLeavesNothing(node, `${r.name}, rolled back`);
      }
    });
  });
}
