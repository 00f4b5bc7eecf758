// The iptables backend against a scripted fake Runner: which commands run, in which order, with
// which flags, and what happens when the lock is busy or a binary is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError } from '../../src/errors.js';
import { createIptablesBackend, IptablesRestoreError, type IptablesBackendOptions } from '../../src/backends/iptables/iptables-backend.js';
import { renderRestorePayload, renderSaveLines } from '../../src/backends/iptables/render.js';
import type { FamilyPolicy } from '../../src/policy-types.js';
import { exempt, fakeIptables, IPTABLES_SAYS, portRange, scriptedRunner, type Call } from './iptables-helpers.js';

const v4: FamilyPolicy = {
  family: 'ipv4',
  exempt: [exempt('169.254.0.0/16', 'link-local'), exempt('10.0.0.0/8')],
  randomFully: true,
  toPorts: [],
};
const v6: FamilyPolicy = { family: 'ipv6', exempt: [exempt('fe80::/10', 'link-local')], randomFully: true, toPorts: [] };

/** Backend on a fake iptables; sleeps are recorded, never waited. */
function setup(extra: Partial<IptablesBackendOptions> & { mode?: 'nft' | 'legacy' } = {}) {
  const fake = fakeIptables(extra.mode ?? 'nft');
  const { runner, calls } = scriptedRunner((argv) => fake.handle(argv));
  const sleeps: number[] = [];
  const backend = createIptablesBackend({
    runner,
    mode: 'nft',
    chain: 'IP-MASQ-AGENT',
    randomFullySupported: true,
    sleep: async (ms) => void sleeps.push(ms),
    ...extra,
  });
  return { backend, calls, sleeps, fake };
}

/** A short label per call: `iptables-nft -S`, `iptables-nft-restore`, ... */
function ops(calls: readonly Call[]): string[] {
  return calls.map((c) => (c.argv[0]?.endsWith('-restore') ? (c.argv[0] ?? '') : `${c.argv[0]} ${c.argv[5]}`));
}

test('read on a clean host runs -S of our chain and -C of the jump, and returns nothing', async () => {
  const { backend, calls } = setup();
  assert.deepEqual(await backend.read('ipv4'), []);
  assert.deepEqual(
    calls.map((c) => c.argv.slice(0, 7)),
    [
      ['iptables-nft', '-w', '5', '-t', 'nat', '-S', 'IP-MASQ-AGENT'],
      ['iptables-nft', '-w', '5', '-t', 'nat', '-C', 'POSTROUTING'],
    ],
  );
  // Never the whole nat table: it costs over a second next to a big kube-proxy.
  assert.ok(!calls.some((c) => c.argv[0]?.includes('-save')));
});

test('read on a clean legacy host (other wording for a missing chain) returns nothing', async () => {
  const { backend } = setup({ mode: 'legacy' });
  assert.deepEqual(await backend.read('ipv4'), []);
});

test('apply on a clean host: one restore with the payload, then -C, then -A of the jump', async () => {
  const { backend, calls } = setup();
  await backend.apply(v4);
  assert.deepEqual(ops(calls), ['iptables-nft-restore', 'iptables-nft -C', 'iptables-nft -A']);
  const [restore, check, append] = calls;
  assert.deepEqual(restore?.argv, ['iptables-nft-restore', '-w', '5', '--noflush']);
  assert.equal(restore?.options.input, renderRestorePayload(v4, { chain: 'IP-MASQ-AGENT', randomFully: true }));
  assert.deepEqual(check?.argv.slice(5), append?.argv.slice(5).map((a) => (a === '-A' ? '-C' : a)));
  assert.deepEqual(append?.argv, [
    'iptables-nft', '-w', '5', '-t', 'nat', '-A', 'POSTROUTING',
    '-m', 'comment', '--comment',
    'ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain',
    '-m', 'addrtype', '!', '--dst-type', 'LOCAL', '-j', 'IP-MASQ-AGENT',
  ]);
});

test('apply when the jump is already there adds no second jump', async () => {
  const { backend, calls, fake } = setup();
  await backend.apply(v4);
  calls.length = 0;
  await backend.apply(v4);
  assert.deepEqual(ops(calls), ['iptables-nft-restore', 'iptables-nft -C']);
  assert.equal(fake.tables['ipv4']?.jumps, 1);
});

test('every command passes -w and a timeout', async () => {
  const { backend, calls } = setup({ waitSeconds: 7, timeoutMs: 12_345 });
  await backend.read('ipv4');
  await backend.apply(v4);
  await backend.cleanup('ipv4');
  assert.ok(calls.length >= 8);
  for (const c of calls) {
    assert.deepEqual(c.argv.slice(1, 3), ['-w', '7'], c.argv.join(' '));
    assert.equal(c.options.timeoutMs, 12_345);
  }
});

test('IPv6 uses ip6tables-MODE binaries; legacy mode uses the legacy ones', async () => {
  const nft = setup();
  await nft.backend.apply(v6);
  assert.deepEqual(ops(nft.calls), ['ip6tables-nft-restore', 'ip6tables-nft -C', 'ip6tables-nft -A']);
  const legacy = setup({ mode: 'legacy' });
  assert.equal(legacy.backend.name, 'iptables-legacy');
  await legacy.backend.apply(v4);
  await legacy.backend.read('ipv6');
  assert.deepEqual(ops(legacy.calls), ['iptables-legacy-restore', 'iptables-legacy -C', 'iptables-legacy -A', 'ip6tables-legacy -S', 'ip6tables-legacy -C']);
  assert.equal(nft.backend.name, 'iptables-nft');
});

test('read after apply returns exactly expected(), jump line first', async () => {
  const { backend, fake } = setup();
  await backend.apply(v4);
  // The fake's chain holds only -N; give it what iptables would print.
  const expected = backend.expected(v4);
  fake.tables['ipv4']!.chainLines = expected.slice(1);
  assert.deepEqual(await backend.read('ipv4'), expected);
  assert.match(expected[0] ?? '', /^-A POSTROUTING /);
});

test('--random-fully is written only when requested and supported', () => {
  const supported = setup().backend;
  const unsupported = setup({ randomFullySupported: false }).backend;
  assert.ok(supported.expected(v4).at(-1)?.endsWith(' --random-fully'));
  assert.ok(!unsupported.expected(v4).some((l) => l.includes('--random-fully')));
  assert.ok(!supported.expected({ ...v4, randomFully: false }).some((l) => l.includes('--random-fully')));
  assert.deepEqual(unsupported.expected(v4), renderSaveLines(v4, { chain: 'IP-MASQ-AGENT', randomFully: false }));
});

test('a busy lock is retried with backoff and then succeeds', async () => {
  const fake = fakeIptables();
  let busy = 2;
  const { runner, calls } = scriptedRunner((argv) => {
    if (argv[0]?.endsWith('-restore') && busy > 0) {
      busy--;
      return { exitCode: 4, stderr: IPTABLES_SAYS.lockBusy };
    }
    return fake.handle(argv);
  });
  const sleeps: number[] = [];
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true, sleep: async (ms) => void sleeps.push(ms) });
  await backend.apply(v4);
  assert.deepEqual(ops(calls), ['iptables-legacy-restore', 'iptables-legacy-restore', 'iptables-legacy-restore', 'iptables-legacy -C', 'iptables-legacy -A']);
  assert.deepEqual(sleeps, [250, 500]);
  assert.equal(fake.tables['ipv4']?.jumps, 1);
});

test('a lock busy on -C is retried too', async () => {
  const fake = fakeIptables();
  let busy = 1;
  const { runner, calls } = scriptedRunner((argv) => {
    if (argv[5] === '-C' && busy-- > 0) return { exitCode: 4, stderr: IPTABLES_SAYS.lockBusy };
    return fake.handle(argv);
  });
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true, sleep: async () => {} });
  await backend.apply(v4);
  assert.deepEqual(ops(calls), ['iptables-legacy-restore', 'iptables-legacy -C', 'iptables-legacy -C', 'iptables-legacy -A']);
});

test('a lock that stays busy ends in a lock-busy CommandError after the bounded tries', async () => {
  const { runner, calls } = scriptedRunner(() => ({ exitCode: 4, stderr: IPTABLES_SAYS.lockBusy }));
  const sleeps: number[] = [];
  const backend = createIptablesBackend({
    runner,
    mode: 'legacy',
    chain: 'IP-MASQ-AGENT',
    randomFullySupported: true,
    lockRetries: 2,
    sleep: async (ms) => void sleeps.push(ms),
  });
  await assert.rejects(backend.apply(v4), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.failure, 'lock-busy');
    assert.match(e.message, /xtables lock stayed busy through 3 attempts of -w 5 s/);
    assert.match(e.message, /Another app is currently holding the xtables lock/);
    return true;
  });
  assert.equal(calls.length, 3);
  assert.deepEqual(sleeps, [250, 500]);
  // Nothing after the failed restore: no jump into a chain that may not exist.
  assert.ok(calls.every((c) => c.argv[0] === 'iptables-legacy-restore'));
});

test('a missing binary is reported as not-installed, naming it and the backend', async () => {
  const { runner } = scriptedRunner(
    (argv) => new CommandError(argv, null, '', 'not-installed', `${argv.join(' ')}: ${argv[0]} is not installed (not found in PATH)`),
  );
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true, sleep: async () => {} });
  await assert.rejects(backend.read('ipv6'), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.failure, 'not-installed');
    assert.match(e.message, /the iptables-legacy backend needs ip6tables-legacy, which is not installed/);
    return true;
  });
});

test('a refused payload names the offending line and adds no jump', async () => {
  const fake = fakeIptables();
  const { runner, calls } = scriptedRunner((argv) => {
    if (argv[0]?.endsWith('-restore')) {
      return {
        exitCode: 2,
        stderr: "iptables-nft-restore v1.8.9 (nf_tables): invalid mask `33' specified\nError occurred at line: 4\nTry `iptables-nft-restore -h' for more information.\n",
      };
    }
    return fake.handle(argv);
  });
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  await assert.rejects(backend.apply(v4), (e: unknown) => {
    assert.ok(e instanceof IptablesRestoreError);
    assert.ok(e instanceof CommandError);
    assert.equal(e.line, 4);
    assert.equal(e.lineText, e.payload.split('\n')[3]);
    assert.match(e.lineText ?? '', /-d 10\.0\.0\.0\/8 -j RETURN$/);
    assert.match(e.message, /refused the payload at payload line 4 \(-A IP-MASQ-AGENT .* -d 10\.0\.0\.0\/8 -j RETURN\): .*invalid mask `33' specified$/);
    assert.match(e.message, /invalid mask/);
    return true;
  });
  assert.deepEqual(ops(calls), ['iptables-nft-restore']);
});

test('a commit-time failure ("line N failed") is located too', async () => {
  const { runner } = scriptedRunner(() => ({ exitCode: 1, stderr: 'iptables-restore: line 6 failed\n' }));
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  const policy = { ...v4, toPorts: [portRange('8080')] };
  await assert.rejects(backend.apply(policy), (e: unknown) => e instanceof IptablesRestoreError && e.line === 6 && /-p udp --to-ports 8080$/.test(e.lineText ?? ''));
});

test('cleanup deletes every copy of the jump, then flushes and deletes the chain; twice is fine', async () => {
  const { backend, calls, fake } = setup();
  await backend.apply(v4);
  fake.tables['ipv4']!.jumps = 3; // duplicates left by someone else
  calls.length = 0;
  await backend.cleanup('ipv4');
  assert.deepEqual(ops(calls), [
    'iptables-nft -C', 'iptables-nft -D',
    'iptables-nft -C', 'iptables-nft -D',
    'iptables-nft -C', 'iptables-nft -D',
    'iptables-nft -C', 'iptables-nft -F', 'iptables-nft -X',
  ]);
  assert.deepEqual(fake.tables['ipv4'], { chainLines: undefined, jumps: 0 });
  calls.length = 0;
  await backend.cleanup('ipv4');
  assert.deepEqual(ops(calls), ['iptables-nft -C', 'iptables-nft -F', 'iptables-nft -X']);
  assert.deepEqual(await backend.read('ipv4'), []);
});

test('cleanup reports a chain that cannot be deleted (still referenced)', async () => {
  const fake = fakeIptables();
  const { runner } = scriptedRunner((argv) =>
    argv[5] === '-X' ? { exitCode: 1, stderr: 'iptables v1.8.9 (legacy): Couldn\'t delete chain: Too many links\n' } : fake.handle(argv),
  );
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  await backend.apply(v4);
  await assert.rejects(backend.cleanup('ipv4'), /-X IP-MASQ-AGENT: exit code 1: .*Too many links/);
});

test('read does not mistake a genuinely incompatible chain for a missing one', async () => {
  // iptables-nft says "incompatible" both for a missing chain and for one it cannot parse;
  // only the -C probe ("Chain ... does not exist") tells them apart.
  const { runner } = scriptedRunner((argv) =>
    argv[5] === '-S' ? { exitCode: 1, stderr: IPTABLES_SAYS.nftIncompatible } : { exitCode: 1, stderr: IPTABLES_SAYS.badRule },
  );
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  await assert.rejects(backend.read('ipv4'), /-S IP-MASQ-AGENT: exit code 1: .*incompatible/);
});

test('an unexpected -C failure is reported, not read as "missing"', async () => {
  const { runner } = scriptedRunner((argv) =>
    argv[5] === '-C' ? { exitCode: 2, stderr: "iptables v1.8.9 (nf_tables): Couldn't load match `addrtype'\n" } : { stdout: '-N IP-MASQ-AGENT\n' },
  );
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  await assert.rejects(backend.read('ipv4'), /exit code 2: .*addrtype/);
});

test('an invalid chain name is refused when the backend is created', () => {
  const { runner } = scriptedRunner(() => ({}));
  assert.throws(
    () => createIptablesBackend({ runner, mode: 'nft', chain: 'A-CHAIN-NAME-LONGER-THAN-28-CHARS', randomFullySupported: true }),
    /invalid iptables chain name: .*at most 28/,
  );
});
