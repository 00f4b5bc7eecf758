// Detection of the host's iptables mode, one row per branch of the iptables-wrappers logic,
// fed canned `*-save` outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError } from '../../src/errors.js';
import { detectIptablesMode, iptablesVersion, supportsRandomFully } from '../../src/backends/iptables/detect.js';
import { scriptedRunner, type Reply } from './iptables-helpers.js';

const HINT = '*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-IPTABLES-HINT - [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n';
const CANARY_ONLY = '*mangle\n:PREROUTING ACCEPT [0:0]\n:KUBE-KUBELET-CANARY - [0:0]\nCOMMIT\n';
const EMPTY_MANGLE = '*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n';
const rules = (n: number): string => `*nat\n:POSTROUTING ACCEPT [0:0]\n${Array.from({ length: n }, (_, i) => `-A POSTROUTING -d 10.${i}.0.0/16 -j RETURN\n`).join('')}COMMIT\n`;

/** Outputs by exact command line; anything unlisted prints nothing. */
type Outputs = Partial<Record<string, Reply>>;

function detectWith(outputs: Outputs) {
  const { runner, calls } = scriptedRunner((argv) => outputs[argv.join(' ')] ?? {});
  return { run: () => detectIptablesMode(runner), calls };
}

const table: { name: string; outputs: Outputs; mode: 'nft' | 'legacy'; reason: RegExp }[] = [
  {
    name: 'kubelet hint in iptables-nft-save -t mangle',
    outputs: { 'iptables-nft-save -t mangle': { stdout: HINT }, 'iptables-legacy-save': { stdout: rules(50) } },
    mode: 'nft',
    reason: /iptables-nft-save -t mangle shows kubelet's KUBE-IPTABLES-HINT chain/,
  },
  {
    name: 'kubelet canary only in ip6tables-nft-save -t mangle',
    outputs: { 'ip6tables-nft-save -t mangle': { stdout: CANARY_ONLY } },
    mode: 'nft',
    reason: /ip6tables-nft-save -t mangle shows kubelet's KUBE-KUBELET-CANARY/,
  },
  {
    name: 'kubelet chains in legacy (and none in nft)',
    outputs: { 'iptables-nft-save -t mangle': { stdout: EMPTY_MANGLE }, 'iptables-legacy-save': { stdout: HINT } },
    mode: 'legacy',
    reason: /iptables-legacy-save shows kubelet's KUBE-IPTABLES-HINT/,
  },
  {
    name: 'kubelet chains only in ip6tables-legacy-save',
    outputs: { 'ip6tables-legacy-save': { stdout: CANARY_ONLY } },
    mode: 'legacy',
    reason: /ip6tables-legacy-save shows kubelet's KUBE-KUBELET-CANARY/,
  },
  {
    name: 'hints in both: nft is checked first and wins',
    outputs: { 'iptables-nft-save -t mangle': { stdout: HINT }, 'iptables-legacy-save': { stdout: HINT } },
    mode: 'nft',
    reason: /iptables-nft-save/,
  },
  {
    name: 'no hints, legacy has strictly more rules (v4 + v6 summed)',
    outputs: { 'iptables-legacy-save': { stdout: rules(2) }, 'ip6tables-legacy-save': { stdout: rules(2) }, 'iptables-nft-save': { stdout: rules(3) } },
    mode: 'legacy',
    reason: /legacy has more rules than nft \(4 > 3\)/,
  },
  {
    name: 'no hints, equal rule counts: nft',
    outputs: { 'iptables-legacy-save': { stdout: rules(3) }, 'ip6tables-nft-save': { stdout: rules(3) } },
    mode: 'nft',
    reason: /\(3 <= 3\)/,
  },
  {
    name: 'no hints and no rules anywhere: nft by default',
    outputs: {},
    mode: 'nft',
    reason: /\(0 <= 0\): nft by default/,
  },
  {
    name: 'a hint that is not at the start of a chain line does not count',
    outputs: { 'iptables-nft-save -t mangle': { stdout: '# :KUBE-IPTABLES-HINT\n-A X -m comment --comment ":KUBE-IPTABLES-HINT"\n' }, 'iptables-legacy-save': { stdout: rules(1) } },
    mode: 'legacy',
    reason: /\(1 > 0\)/,
  },
  {
    name: 'a failing save counts as empty output, as in the wrapper',
    outputs: { 'iptables-nft-save -t mangle': { exitCode: 1, stderr: 'boom' }, 'iptables-legacy-save': { exitCode: 1, stderr: 'modprobe failed' }, 'iptables-nft-save': { stdout: rules(1) } },
    mode: 'nft',
    reason: /\(0 <= 1\)/,
  },
];

for (const row of table) {
  test(`detect: ${row.name} -> ${row.mode}`, async () => {
    const { run } = detectWith(row.outputs);
    const got = await run();
    assert.equal(got.mode, row.mode);
    assert.match(got.reason, row.reason);
  });
}

test('detect never asks legacy for one table (that would make the kernel create it)', async () => {
  const { run, calls } = detectWith({});
  await run();
  const legacy = calls.filter((c) => c.argv[0]?.includes('legacy'));
  assert.deepEqual(
    legacy.map((c) => c.argv),
    [['iptables-legacy-save'], ['ip6tables-legacy-save']],
  );
  assert.deepEqual(
    calls.slice(0, 2).map((c) => c.argv),
    [
      ['iptables-nft-save', '-t', 'mangle'],
      ['ip6tables-nft-save', '-t', 'mangle'],
    ],
  );
  for (const c of calls) assert.ok(c.options.timeoutMs !== undefined);
});

test('detect stops at the first decisive step', async () => {
  const { run, calls } = detectWith({ 'iptables-nft-save -t mangle': { stdout: HINT } });
  await run();
  assert.equal(calls.length, 1);
});

test('detect reports a missing binary as not-installed, naming it', async () => {
  const { runner } = scriptedRunner((argv) => (argv[0] === 'iptables-legacy-save' ? new CommandError(argv, null, '', 'not-installed', 'iptables-legacy-save: not found') : {}));
  await assert.rejects(detectIptablesMode(runner), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.failure, 'not-installed');
    assert.match(e.message, /^iptables-legacy-save is not installed: detecting the host's iptables mode needs both/);
    return true;
  });
});

test('iptablesVersion reads the version of the mode binary', async () => {
  const { runner, calls } = scriptedRunner((argv) => (argv[0] === 'iptables-nft' ? { stdout: 'iptables v1.8.9 (nf_tables)\n' } : { stdout: 'iptables v1.6.1\n' }));
  assert.equal(await iptablesVersion(runner, 'nft'), '1.8.9');
  assert.equal(await iptablesVersion(runner, 'legacy'), '1.6.1');
  assert.deepEqual(
    calls.map((c) => c.argv),
    [
      ['iptables-nft', '--version'],
      ['iptables-legacy', '--version'],
    ],
  );
  const { runner: odd } = scriptedRunner(() => ({ stdout: 'something else\n' }));
  await assert.rejects(iptablesVersion(odd, 'nft'), /no version in output "something else"/);
});

test('supportsRandomFully: from 1.6.2 on', () => {
  for (const [v, ok] of [
    ['1.4.21', false],
    ['1.6.1', false],
    ['1.6.2', true],
    ['1.6.10', true],
    ['1.8.9', true],
    ['1.10.0', true],
    ['1.7', true],
    ['1.6', false],
    ['2.0.0', true],
  ] as const) {
    assert.equal(supportsRandomFully(v), ok, v);
  }
});
