// The iptables backend against the real iptables-nft and iptables-legacy binaries, each command
// inside a network namespace this file creates and deletes. Legacy commands use a private
// xtables lock file, so the tests never contend for (or hold) the machine's /run/xtables.lock.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createIptablesBackend, IptablesRestoreError } from '../../src/backends/iptables/iptables-backend.js';
import { detectIptablesMode } from '../../src/backends/iptables/detect.js';
import { DEFAULT_CHAIN, jumpComment } from '../../src/backends/iptables/constants.js';
import { jumpRuleSpec } from '../../src/backends/iptables/render.js';
import { shadowOwner } from '../../src/backends/iptables/shadow.js';
import { CommandError } from '../../src/errors.js';
import type { Runner } from '../../src/exec/runner.js';
import type { Family } from '../../src/net/cidr.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import { ADDR, canUseNetns, createNamespace, createTopology, deleteNamespace, NETNS_PREFIX, startPeerServer, sourceSeenBy } from '../netns/netns.js';
import { netnsRunner } from '../netns/netns-runner.js';
import { runBackendContract } from './contract.js';
import { exempt, policyOf, type GoldenInput } from './iptables-helpers.js';
import { applyPolicy, readOwned, rulesOf } from './sync.js';

const MODES = ['nft', 'legacy'] as const;
type Mode = (typeof MODES)[number];

const lockDir = mkdtempSync(join(tmpdir(), 'ima-xtables-'));
const LOCK_FILE = join(lockDir, 'xtables.lock');
after(() => rmSync(lockDir, { recursive: true, force: true }));

/** Every command gets the private lock file (only legacy iptables reads it). */
function withPrivateLock(runner: Runner): Runner {
  return (argv, options = {}) => runner(argv, { ...options, env: { ...options.env, XTABLES_LOCKFILE: LOCK_FILE } });
}

/** A Runner confined to `ns`, with the private xtables lock. */
function runnerIn(ns: string): Runner {
  return withPrivateLock(netnsRunner(ns));
}

function binary(mode: Mode, family: Family, suffix = ''): string {
  return `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}${suffix}`;
}

/** Runs a command in `ns` with the private lock file and returns stdout. */
async function inNs(ns: string, argv: string[]): Promise<string> {
  return (await runnerIn(ns)(argv)).stdout;
}

function backendIn(ns: string, mode: Mode, extra: Partial<Parameters<typeof createIptablesBackend>[0]> = {}) {
  return createIptablesBackend({ runner: runnerIn(ns), mode, chain: DEFAULT_CHAIN, randomFullySupported: true, ...extra });
}

const defaults4: FamilyPolicy = {
  family: 'ipv4',
  exempt: [exempt('169.254.0.0/16', 'link-local'), exempt('10.0.0.0/8'), exempt('172.16.0.0/12'), exempt('192.168.0.0/16')],
  randomFully: true,
  toPorts: [],
};

const available = canUseNetns();
const skip = available ? false : 'needs root and iproute2 (network namespaces)';

if (available) {
  for (const mode of MODES) {
    runBackendContract(`iptables-${mode}`, async () => {
      const ns = createNamespace(`ipt-${mode}`);
      const piped: string[] = [];
      const runner = runnerIn(ns);
      return {
        backend: backendIn(ns, mode, {
          runner: async (argv, o) => {
            if (o?.input !== undefined) piped.push(o.input);
            return runner(argv, o);
          },
        }),
        piped,
        damage: async (family) => void (await inNs(ns, [binary(mode, family), '-w', '5', '-t', 'nat', '-F', DEFAULT_CHAIN])),
        addStrayJumps: async (family) => {
          const nat = [binary(mode, family), '-w', '5', '-t', 'nat'];
          // v2.1.0-v2.12.1's jump (literal quotes in the comment), first; a duplicate of ours and a bare one after.
          await inNs(ns, [...nat, '-I', 'POSTROUTING', '1', ...jumpRuleSpec(DEFAULT_CHAIN).map((a) => (a === jumpComment(DEFAULT_CHAIN) ? `"${a}"` : a))]);
          await inNs(ns, [...nat, '-A', 'POSTROUTING', ...jumpRuleSpec(DEFAULT_CHAIN)]);
          await inNs(ns, [...nat, '-A', 'POSTROUTING', '-j', DEFAULT_CHAIN]);
        },
        insertAbove: async (family) => {
          const nat = [binary(mode, family), '-w', '5', '-t', 'nat'];
          await inNs(ns, [...nat, '-I', 'POSTROUTING', '1', '-p', 'udp', '--dport', '9', '-j', 'MASQUERADE']);
        },
        dispose: () => deleteNamespace(ns),
      };
    });
  }
} else {
  test('iptables backend contract', { skip }, () => {});
}

/** Runs body with a fresh namespace that is always deleted. */
async function withNamespace(role: string, body: (ns: string) => Promise<void>): Promise<void> {
  const ns = createNamespace(role);
  try {
    await body(ns);
  } finally {
    deleteNamespace(ns);
  }
}

// Compiled to <outDir>/test/backends/; the goldens stay in the source tree.
const GOLDEN_DIR = fileURLToPath(new URL('../../../test/golden/iptables/', import.meta.url));
const goldenCases = readdirSync(GOLDEN_DIR).sort();

for (const mode of MODES) {
  test(`${mode}: every golden case loads into the kernel and reads back byte for byte as save.txt`, { skip }, async () => {
    await withNamespace(`ipt-gold-${mode}`, async (ns) => {
      for (const name of goldenCases) {
        const input = JSON.parse(readFileSync(join(GOLDEN_DIR, name, 'policy.json'), 'utf8')) as GoldenInput;
        const backend = backendIn(ns, mode, { chain: input.chain, randomFullySupported: input.randomFullySupported });
        const policy = policyOf(input);
        await applyPolicy(backend, policy);
        const saved = readFileSync(join(GOLDEN_DIR, name, 'save.txt'), 'utf8')
          .trimEnd()
          .split('\n');
        assert.deepEqual(await readOwned(backend, input.family), saved, `${mode} ${name}`);
        assert.deepEqual(backend.expected(policy), saved, `${mode} ${name}`);
        await backend.cleanup(input.family);
        assert.deepEqual(await readOwned(backend, input.family), [], `${mode} ${name} cleanup`);
      }
    });
  });

  test(`${mode}: iptables-save shows exactly the reference agent's rules for the defaults`, { skip }, async () => {
    await withNamespace(`ipt-ref-${mode}`, async (ns) => {
      await applyPolicy(backendIn(ns, mode), defaults4);
      const save = await inNs(ns, [binary(mode, 'ipv4', '-save'), '-t', 'nat']);
      const ours = save.split('\n').filter((l) => l.includes('IP-MASQ-AGENT'));
      // compat-contract.md's rules, in save format (`-d CIDR` printed before `-m comment`).
      const ret = (cidr: string): string => `-A IP-MASQ-AGENT -d ${cidr} -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -j RETURN`;
      assert.deepEqual(ours, [
        ':IP-MASQ-AGENT - [0:0]',
        '-A POSTROUTING -m comment --comment "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain" -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT',
        ret('169.254.0.0/16'),
        ret('10.0.0.0/8'),
        ret('172.16.0.0/12'),
        ret('192.168.0.0/16'),
        '-A IP-MASQ-AGENT -m comment --comment "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE --random-fully',
      ]);
    });
  });

  test(`${mode}: a changed config (read without our chain) leaves exactly one jump, ours, where the first stray one was, in one restore`, { skip }, async () => {
    await withNamespace(`ipt-swap-${mode}`, async (ns) => {
      const backend = backendIn(ns, mode);
      await applyPolicy(backend, defaults4);
      const nat = [binary(mode, 'ipv4'), '-w', '5', '-t', 'nat'];
      // An older release's jump first, then a foreign rule, a duplicate of ours and a bare jump.
      await inNs(ns, [...nat, '-I', 'POSTROUTING', '1', ...jumpRuleSpec(DEFAULT_CHAIN).map((a) => (a === jumpComment(DEFAULT_CHAIN) ? `"${a}"` : a))]);
      await inNs(ns, [...nat, '-A', 'POSTROUTING', '-s', '10.244.0.0/16', '-j', 'RETURN']);
      await inNs(ns, [...nat, '-A', 'POSTROUTING', ...jumpRuleSpec(DEFAULT_CHAIN)]);
      await inNs(ns, [...nat, '-A', 'POSTROUTING', '-j', DEFAULT_CHAIN]);
      const changed: FamilyPolicy = { ...defaults4, exempt: [...defaults4.exempt, exempt('198.51.100.0/24')] };
      await backend.apply(backend.plan(await backend.read('ipv4', { owned: false }), changed));
      const rules = (await inNs(ns, [...nat, '-S', 'POSTROUTING'])).split('\n').filter((l) => l.startsWith('-A '));
      assert.deepEqual(rules, [backend.expected(changed)[0], '-A POSTROUTING -s 10.244.0.0/16 -j RETURN']);
      assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(changed));
    });
  });

  test(`${mode}: a stray jump deleted between plan and apply makes the one restore refuse; the chain goes alone, POSTROUTING is planned again`, { skip }, async () => {
    await withNamespace(`ipt-race-${mode}`, async (ns) => {
      const restores: string[] = [];
      const runner = runnerIn(ns);
      const backend = backendIn(ns, mode, { runner: async (argv, o) => (o?.input === undefined ? runner(argv, o) : (restores.push(o.input), runner(argv, o))) });
      const nat = [binary(mode, 'ipv4'), '-w', '5', '-t', 'nat'];
      await inNs(ns, [...nat, '-A', 'POSTROUTING', '-s', '10.244.0.0/16', '-j', 'RETURN']);
      await inNs(ns, [...nat, '-N', DEFAULT_CHAIN]);
      await inNs(ns, [...nat, '-A', 'POSTROUTING', '-j', DEFAULT_CHAIN]);
      const plan = backend.plan(await backend.read('ipv4'), defaults4);
      await inNs(ns, [...nat, '-D', 'POSTROUTING', '-j', DEFAULT_CHAIN]);
      await backend.apply(plan);
      assert.equal(restores.length, 3, 'refused whole, the chain alone, the jump planned again');
      assert.equal(restores[1], backend.render(defaults4).payload);
      const rules = (await inNs(ns, [...nat, '-S', 'POSTROUTING'])).split('\n').filter((l) => l.startsWith('-A '));
      assert.deepEqual(rules, ['-A POSTROUTING -s 10.244.0.0/16 -j RETURN', backend.expected(defaults4)[0]]);
      assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(defaults4));
    });
  });

  test(`${mode}: our chain renamed (iptables -E) is deleted, its jump with it, in the restore that writes ours`, { skip }, async () => {
    await withNamespace(`ipt-renamed-${mode}`, async (ns) => {
      const backend = backendIn(ns, mode);
      await applyPolicy(backend, defaults4);
      const nat = [binary(mode, 'ipv4'), '-w', '5', '-t', 'nat'];
      await inNs(ns, [...nat, '-E', DEFAULT_CHAIN, 'OLD-MASQ']);
      const seen = await backend.read('ipv4');
      assert.match(seen.owned?.join('\n') ?? '', /leads to nat chain OLD-MASQ \(\d+ rules, all ours: our chain renamed\)/);
      const plan = backend.plan(seen, defaults4);
      assert.deepEqual(plan.repairs, ['add our jump at the end of POSTROUTING', 'delete our chain renamed to OLD-MASQ and its jump']);
      await backend.apply(plan);
      assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(defaults4));
      assert.doesNotMatch(await inNs(ns, [...nat, '-S']), /OLD-MASQ/);
    });
  });

  test(`${mode}: a Calico-style jump before ours into a chain that masquerades two levels down is read and named as shadowing`, { skip }, async () => {
    await withNamespace(`ipt-shadow-${mode}`, async (ns) => {
      const backend = backendIn(ns, mode);
      const nat = [binary(mode, 'ipv4'), '-w', '5', '-t', 'nat'];
      for (const c of ['cali-POSTROUTING', 'cali-nat-outgoing']) await inNs(ns, [...nat, '-N', c]);
      await inNs(ns, [...nat, '-A', 'cali-nat-outgoing', '-s', '10.244.0.0/16', '-m', 'comment', '--comment', 'cali:flqWnvo8yq4ULQLa', '-j', 'MASQUERADE']);
      await inNs(ns, [...nat, '-A', 'cali-POSTROUTING', '-j', 'cali-nat-outgoing']);
      await inNs(ns, [...nat, '-A', 'POSTROUTING', '-j', 'cali-POSTROUTING']);
      const plan = await applyPolicy(backend, defaults4);
      const masq = '-A cali-nat-outgoing -s 10.244.0.0/16 -m comment --comment "cali:flqWnvo8yq4ULQLa" -j MASQUERADE';
      assert.deepEqual(rulesOf(plan.shadowing), [masq]);
      assert.equal(shadowOwner(masq), 'calico');
      assert.deepEqual(rulesOf(backend.plan(await backend.read('ipv4'), defaults4).shadowing), [masq], 'the next sync, with our jump after theirs, sees it too');
    });
  });

  test(`${mode}: rules land only in the ${mode} form, never in the other`, { skip }, async () => {
    await withNamespace(`ipt-sep-${mode}`, async (ns) => {
      const backend = backendIn(ns, mode);
      await applyPolicy(backend, defaults4);
      await applyPolicy(backend, { family: 'ipv6', exempt: [exempt('fe80::/10', 'link-local')], randomFully: true, toPorts: [] });
      const own = (await inNs(ns, [binary(mode, 'ipv4', '-save')])) + (await inNs(ns, [binary(mode, 'ipv6', '-save')]));
      assert.match(own, /-j IP-MASQ-AGENT/);
      // nft-backed rules show up in `nft list ruleset`; legacy ones only in the legacy save.
      const other = mode === 'nft' ? (await inNs(ns, ['iptables-legacy-save'])) + (await inNs(ns, ['ip6tables-legacy-save'])) : await inNs(ns, ['nft', 'list', 'ruleset']);
      assert.doesNotMatch(other, /IP-MASQ-AGENT/);
    });
  });

  test(`${mode}: a payload iptables refuses names its line and leaves the rules as they were`, { skip }, async () => {
    await withNamespace(`ipt-bad-${mode}`, async (ns) => {
      const backend = backendIn(ns, mode);
      await applyPolicy(backend, defaults4);
      const before = await readOwned(backend, 'ipv4');
      const bad: FamilyPolicy = { ...defaults4, exempt: [exempt('192.0.2.0/24')], toPorts: [{ from: 70000, to: 70001, text: '70000-70001' }] };
      await assert.rejects(applyPolicy(backend, bad), (e: unknown) => {
        assert.ok(e instanceof IptablesRestoreError, String(e));
        assert.equal(e.line, 4);
        assert.match(e.lineText ?? '', /-p tcp --to-ports 70000-70001$/);
        return true;
      });
      assert.deepEqual(await readOwned(backend, 'ipv4'), before);
    });
  });

  test(`${mode}: masquerades real traffic to the outside, not to exempt destinations (IPv4 and IPv6)`, { skip }, async () => {
    const topo = createTopology();
    const server = await startPeerServer(topo.outside);
    try {
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.pod4, 'no masquerading before apply');
      const backend = backendIn(topo.node, mode);
      await applyPolicy(backend, defaults4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4), ADDR.pod4);
      await applyPolicy(backend, { family: 'ipv6', exempt: [exempt('fe80::/10', 'link-local'), exempt('2001:db8:200::/48')], randomFully: true, toPorts: [] });
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside6), ADDR.node6);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt6), ADDR.pod6);
      await backend.cleanup('ipv4');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.pod4, 'cleanup stops masquerading');
    } finally {
      server.stop();
      topo.cleanup();
    }
  });
}

test('detection in a fresh namespace: nft by default, legacy when kubelet chains or more rules are there', { skip }, async () => {
  await withNamespace('ipt-detect', async (ns) => {
    const runner = runnerIn(ns);
    const fresh = await detectIptablesMode(runner);
    assert.equal(fresh.mode, 'nft');
    assert.match(fresh.reason, /\(0 <= 0\)/);
    await inNs(ns, ['iptables-legacy', '-w', '5', '-t', 'nat', '-A', 'POSTROUTING', '-d', '192.0.2.0/24', '-j', 'RETURN']);
    const counted = await detectIptablesMode(runner);
    assert.deepEqual([counted.mode, /\(1 > 0\)/.test(counted.reason)], ['legacy', true]);
    await inNs(ns, ['iptables-nft', '-w', '5', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
    assert.equal((await detectIptablesMode(runner)).mode, 'nft', 'kubelet hint in nft wins over rule counts');
  });
  await withNamespace('ipt-detect2', async (ns) => {
    await inNs(ns, ['ip6tables-legacy', '-w', '5', '-t', 'mangle', '-N', 'KUBE-KUBELET-CANARY']);
    const got = await detectIptablesMode(runnerIn(ns));
    assert.equal(got.mode, 'legacy');
    assert.match(got.reason, /ip6tables-legacy-save shows kubelet's KUBE-KUBELET-CANARY/);
  });
});

/** Holds the private xtables lock from another process until stop() or `seconds` pass. */
async function holdLock(seconds: number): Promise<{ done: Promise<void> }> {
  const child = spawn('flock', [LOCK_FILE, 'sh', '-c', `echo held; sleep ${seconds}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`flock exited early (${code})`)));
  });
  return { done: new Promise((resolve) => child.once('exit', () => resolve())) };
}

/** Counts commands that failed with a busy lock. */
function countingLockBusy(runner: Runner): { runner: Runner; busy: () => number } {
  let busy = 0;
  return {
    busy: () => busy,
    runner: async (argv, options) => {
      try {
        return await runner(argv, options);
      } catch (e) {
        if (e instanceof CommandError && e.failure === 'lock-busy') busy++;
        throw e;
      }
    },
  };
}

test('legacy: a held xtables lock makes apply retry, then it ends with exactly one jump', { skip }, async () => {
  await withNamespace('ipt-lock', async (ns) => {
    const counted = countingLockBusy(runnerIn(ns));
    const backend = createIptablesBackend({
      runner: counted.runner,
      mode: 'legacy',
      chain: DEFAULT_CHAIN,
      randomFullySupported: true,
      waitSeconds: 1,
      lockRetries: 4,
      retryDelayMs: 200,
    });
    const lock = await holdLock(2);
    await applyPolicy(backend, defaults4);
    await lock.done;
    assert.ok(counted.busy() >= 1, 'the first attempt met the held lock');
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(defaults4));
    await applyPolicy(backend, defaults4);
    const postrouting = await inNs(ns, ['iptables-legacy', '-w', '5', '-t', 'nat', '-S', 'POSTROUTING']);
    assert.equal(postrouting.split('\n').filter((l) => l.endsWith('-j IP-MASQ-AGENT')).length, 1, postrouting);
  });
});

test('legacy: a lock held past every retry fails with lock-busy and changes nothing', { skip }, async () => {
  await withNamespace('ipt-lock2', async (ns) => {
    const backend = createIptablesBackend({ runner: runnerIn(ns), mode: 'legacy', chain: DEFAULT_CHAIN, randomFullySupported: true, waitSeconds: 1, lockRetries: 1, retryDelayMs: 100 });
    const lock = await holdLock(4);
    try {
      await assert.rejects(applyPolicy(backend, defaults4), (e: unknown) => e instanceof CommandError && e.failure === 'lock-busy');
    } finally {
      await lock.done;
    }
    assert.deepEqual(await readOwned(backend, 'ipv4'), []);
  });
});

test('no namespace created by these tests is left behind', { skip }, () => {
  // Runs last in this file: every test above deletes its namespaces, also on failure.
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.startsWith(NETNS_PREFIX) && l.includes(`-${process.pid}-`));
  assert.deepEqual(left, []);
});
