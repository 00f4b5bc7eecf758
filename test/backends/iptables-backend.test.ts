// The iptables backend against a scripted fake Runner: which commands a read and an apply run, in
// which order, with which flags and payloads, and what happens when the lock is busy, a binary is
// missing, a listing lies or a repair does not take. The plans themselves: iptables-plan.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError } from '../../src/errors.js';
import { classifyFailure } from '../../src/exec/runner.js';
import { createIptablesBackend, IptablesRestoreError, type IptablesBackendOptions } from '../../src/backends/iptables/iptables-backend.js';
import { renderJumpSaveLine, renderRestorePayload, renderSaveLines } from '../../src/backends/iptables/render.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import { exempt, fakeIptables, gatedRunner, IPTABLES_SAYS, jumpsIn, portRange, pump, scriptedRunner, settle, type Call } from './iptables-helpers.js';
import { applyPolicy, readOwned, rulesOf } from './sync.js';

const v4: FamilyPolicy = {
  family: 'ipv4',
  exempt: [exempt('169.254.0.0/16', 'link-local'), exempt('10.0.0.0/8')],
  randomFully: true,
  toPorts: [],
};
const v6: FamilyPolicy = { family: 'ipv6', exempt: [exempt('fe80::/10', 'link-local')], randomFully: true, toPorts: [] };

const OUR_JUMP = renderJumpSaveLine('IP-MASQ-AGENT');
/** v2.1.0-v2.12.1's jump: the same comment wrapped in literal quotes (compat-contract.md). */
const QUOTED_JUMP = OUR_JUMP.replace(/--comment "([^"]*)"/, '--comment "\\"$1\\""');
const BARE_JUMP = '-A POSTROUTING -j IP-MASQ-AGENT';
/** Someone else's rule whose comment mentions our jump: not a jump. */
const LOOKALIKE = '-A POSTROUTING -m comment --comment "keep before -j IP-MASQ-AGENT here" -j RETURN';

/** Backend on a fake iptables; sleeps are recorded, never waited. */
function setup(extra: Partial<IptablesBackendOptions> & { mode?: 'nft' | 'legacy' } = {}) {
  const fake = fakeIptables(extra.mode ?? 'nft');
  const { runner, calls } = scriptedRunner((argv, o) => fake.handle(argv, o));
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

test('read on a clean host runs -S of our chain and of POSTROUTING, -C only to confirm a missing chain, and returns nothing', async () => {
  const { backend, calls } = setup();
  assert.deepEqual(await readOwned(backend, 'ipv4'), []);
  assert.deepEqual(
    calls.map((c) => c.argv.slice(0, 7)),
    [
      ['iptables-nft', '-w', '5', '-t', 'nat', '-S', 'IP-MASQ-AGENT'],
      ['iptables-nft', '-w', '5', '-t', 'nat', '-S', 'POSTROUTING'],
      // iptables-nft calls a missing chain "incompatible"; only -C tells the two apart.
      ['iptables-nft', '-w', '5', '-t', 'nat', '-C', 'POSTROUTING'],
    ],
  );
  // Never the whole nat table: it costs over a second next to a big kube-proxy.
  assert.ok(!calls.some((c) => c.argv[0]?.includes('-save')));
});

test('read on a clean legacy host (other wording for a missing chain) returns nothing', async () => {
  const { backend, calls } = setup({ mode: 'legacy' });
  assert.deepEqual(await readOwned(backend, 'ipv4'), []);
  assert.deepEqual(ops(calls), ['iptables-legacy -S', 'iptables-legacy -S']);
});

test('apply on a clean host: read (-C only to confirm the missing chain), one restore with the chain and the jump together, and -S to verify it', async () => {
  const { backend, calls, fake } = setup();
  await applyPolicy(backend, v4);
  assert.deepEqual(ops(calls), ['iptables-nft -S', 'iptables-nft -S', 'iptables-nft -C', 'iptables-nft-restore', 'iptables-nft -S']);
  const [, list, probe, restore] = calls;
  assert.deepEqual(restore?.argv, ['iptables-nft-restore', '-w', '5', '--noflush']);
  assert.equal(restore?.options.input, `${renderRestorePayload(v4, { chain: 'IP-MASQ-AGENT', randomFully: true }).slice(0, -'COMMIT\n'.length)}${OUR_JUMP}\nCOMMIT\n`);
  assert.deepEqual(list?.argv, ['iptables-nft', '-w', '5', '-t', 'nat', '-S', 'POSTROUTING']);
  assert.deepEqual(jumpsIn(fake.tables['ipv4']), [backend.expected(v4)[0]]);
  assert.deepEqual(probe?.argv, [
    'iptables-nft',
    '-w',
    '5',
    '-t',
    'nat',
    '-C',
    'POSTROUTING',
    '-m',
    'comment',
    '--comment',
    'ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain',
    '-m',
    'addrtype',
    '!',
    '--dst-type',
    'LOCAL',
    '-j',
    'IP-MASQ-AGENT',
  ]);
});

test('apply when the jump is already there adds no second jump, and lists nothing after the restore', async () => {
  const { backend, calls, fake } = setup();
  await applyPolicy(backend, v4);
  calls.length = 0;
  await applyPolicy(backend, v4);
  assert.deepEqual(ops(calls), ['iptables-nft -S', 'iptables-nft -S', 'iptables-nft-restore']);
  assert.equal(calls[2]?.options.input, renderRestorePayload(v4, { chain: 'IP-MASQ-AGENT', randomFully: true }), 'the chain alone');
  assert.equal(jumpsIn(fake.tables['ipv4']).length, 1);
});

test('every command passes -w', async () => {
  const { backend, calls } = setup({ waitSeconds: 7 });
  await readOwned(backend, 'ipv4');
  await applyPolicy(backend, v4);
  await backend.cleanup('ipv4');
  assert.ok(calls.length >= 8);
  for (const c of calls) {
    assert.deepEqual(c.argv.slice(1, 3), ['-w', '7'], c.argv.join(' '));
  }
});

test('IPv6 uses ip6tables-MODE binaries; legacy mode uses the legacy ones', async () => {
  const nft = setup();
  await applyPolicy(nft.backend, v6);
  assert.deepEqual(ops(nft.calls), ['ip6tables-nft -S', 'ip6tables-nft -S', 'ip6tables-nft -C', 'ip6tables-nft-restore', 'ip6tables-nft -S']);
  const legacy = setup({ mode: 'legacy' });
  assert.equal(legacy.backend.name, 'iptables-legacy');
  await applyPolicy(legacy.backend, v4);
  await readOwned(legacy.backend, 'ipv6');
  // Legacy says "no such chain" itself: no -C.
  assert.deepEqual(ops(legacy.calls), ['iptables-legacy -S', 'iptables-legacy -S', 'iptables-legacy-restore', 'iptables-legacy -S', 'ip6tables-legacy -S', 'ip6tables-legacy -S']);
  assert.equal(nft.backend.name, 'iptables-nft');
});

test('read after apply returns exactly expected(), jump line first', async () => {
  const { backend, fake } = setup();
  await applyPolicy(backend, v4);
  // The fake's chain holds only -N; give it what iptables would print.
  const expected = backend.expected(v4);
  fake.tables['ipv4']!.chainLines = expected.slice(1);
  assert.deepEqual(await readOwned(backend, 'ipv4'), expected);
  assert.match(expected[0] ?? '', /^-A POSTROUTING /);
});

test('a quiet sync lists our chain and POSTROUTING once each; its plan is up to date, names the shadowing rules, and apply runs nothing', async () => {
  const { backend, calls, fake } = setup();
  await applyPolicy(backend, v4);
  fake.tables['ipv4']!.chainLines = backend.expected(v4).slice(1);
  fake.tables['ipv4']!.postrouting.unshift('-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE');
  calls.length = 0;
  const plan = await applyPolicy(backend, v4);
  assert.equal(plan.upToDate, true);
  assert.deepEqual(rulesOf(plan.shadowing), ['-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE']);
  assert.equal(plan.payload, '');
  assert.deepEqual(ops(calls), ['iptables-nft -S', 'iptables-nft -S']);
});

test("a jump before ours into Calico's chains: read lists them (at once per level, two levels, never kube-proxy's), and the plan names the MASQUERADE found there", async () => {
  const { backend, calls, fake } = setup();
  await applyPolicy(backend, v4);
  const t = fake.tables['ipv4']!;
  t.chainLines = backend.expected(v4).slice(1);
  const masq = '-A cali-nat-outgoing -m comment --comment "cali:flqWnvo8yq4ULQLa" -j MASQUERADE --random-fully';
  t.postrouting.unshift('-A POSTROUTING -m comment --comment "cali:O3lYWMrLQYEMJtB5" -j cali-POSTROUTING', '-A POSTROUTING -j KUBE-POSTROUTING');
  t.others = {
    'cali-POSTROUTING': ['-N cali-POSTROUTING', '-A cali-POSTROUTING -j cali-nat-outgoing', '-A cali-POSTROUTING -j cali-fip-snat'],
    'cali-nat-outgoing': ['-N cali-nat-outgoing', masq],
  };
  calls.length = 0;
  const plan = backend.plan(await backend.read('ipv4'), v4);
  assert.equal(plan.upToDate, true);
  assert.deepEqual(rulesOf(plan.shadowing), [masq]);
  assert.deepEqual(
    calls.map((c) => c.argv[6]),
    ['IP-MASQ-AGENT', 'POSTROUTING', 'cali-POSTROUTING', 'cali-nat-outgoing', 'cali-fip-snat'],
  );
});

test('reads of an unchanged chain are equal by value, and plan up to date; a changed one differs', async () => {
  const { backend, fake } = setup();
  await applyPolicy(backend, v4);
  fake.tables['ipv4']!.chainLines = backend.expected(v4).slice(1);
  const first = await backend.read('ipv4');
  const again = await backend.read('ipv4');
  assert.deepEqual(again, first);
  assert.equal(backend.plan(again, v4).upToDate, true);
  fake.tables['ipv4']!.chainLines = backend.expected(v4).slice(2);
  const changed = await backend.read('ipv4');
  assert.equal(changed.owned?.length, (first.owned?.length ?? 0) - 1);
  assert.equal(backend.plan(changed, v4).upToDate, false);
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
  const fake = fakeIptables('legacy');
  let busy = 2;
  const { runner, calls } = scriptedRunner((argv, o) => {
    if (argv[0]?.endsWith('-restore') && busy > 0) {
      busy--;
      return { exitCode: 4, stderr: IPTABLES_SAYS.lockBusy };
    }
    return fake.handle(argv, o);
  });
  const sleeps: number[] = [];
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true, sleep: async (ms) => void sleeps.push(ms) });
  await applyPolicy(backend, v4);
  assert.deepEqual(ops(calls), ['iptables-legacy -S', 'iptables-legacy -S', 'iptables-legacy-restore', 'iptables-legacy-restore', 'iptables-legacy-restore', 'iptables-legacy -S']);
  assert.deepEqual(sleeps, [250, 500]);
  assert.equal(jumpsIn(fake.tables['ipv4']).length, 1);
});

test('a lock busy on -S POSTROUTING is retried too', async () => {
  const fake = fakeIptables('legacy');
  let busy = 1;
  const { runner, calls } = scriptedRunner((argv, o) => {
    if (argv[6] === 'POSTROUTING' && busy-- > 0) return { exitCode: 4, stderr: IPTABLES_SAYS.lockBusy };
    return fake.handle(argv, o);
  });
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true, sleep: async () => {} });
  await applyPolicy(backend, v4);
  assert.deepEqual(
    calls.map((c) => c.argv.slice(5, 7).join(' ') || 'restore'),
    ['-S IP-MASQ-AGENT', '-S POSTROUTING', '-S POSTROUTING', 'restore', '-S POSTROUTING'],
  );
  assert.equal(jumpsIn(fake.tables['ipv4']).length, 1);
});

test('a lock that stays busy ends in a lock-busy CommandError after the bounded tries, with nothing written', async () => {
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
  await assert.rejects(applyPolicy(backend, v4), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.failure, 'lock-busy');
    assert.match(e.message, /xtables lock stayed busy through 3 attempts of -w 5 s/);
    assert.match(e.message, /Another app is currently holding the xtables lock/);
    return true;
  });
  await settle();
  // Both listings of the read, three tries each; the read failed, so nothing was written.
  assert.deepEqual(ops(calls), Array(6).fill('iptables-legacy -S'));
  assert.deepEqual(sleeps, [250, 250, 500, 500]);
});

test('a missing binary is reported as not-installed, naming it and the backend', async () => {
  const { runner } = scriptedRunner((argv) => new CommandError(argv, null, '', 'not-installed', `${argv.join(' ')}: ${argv[0]} is not installed (not found in PATH)`));
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true, sleep: async () => {} });
  await assert.rejects(readOwned(backend, 'ipv6'), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.failure, 'not-installed');
    assert.match(e.message, /the iptables-legacy backend needs ip6tables-legacy, which is not installed/);
    return true;
  });
});

test('a refused payload names the offending line and adds no jump', async () => {
  const fake = fakeIptables();
  const { runner, calls } = scriptedRunner((argv, o) => {
    if (argv[0]?.endsWith('-restore')) {
      return {
        exitCode: 2,
        stderr: "iptables-nft-restore v1.8.9 (nf_tables): invalid mask `33' specified\nError occurred at line: 4\nTry `iptables-nft-restore -h' for more information.\n",
      };
    }
    return fake.handle(argv, o);
  });
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  await assert.rejects(applyPolicy(backend, v4), (e: unknown) => {
    assert.ok(e instanceof IptablesRestoreError);
    assert.ok(e instanceof CommandError);
    assert.equal(e.line, 4);
    assert.equal(e.lineText, e.payload.split('\n')[3]);
    assert.match(e.lineText ?? '', /-d 10\.0\.0\.0\/8 -j RETURN$/);
    assert.match(e.message, /refused the payload at payload line 4 \(-A IP-MASQ-AGENT .* -d 10\.0\.0\.0\/8 -j RETURN\): .*invalid mask `33' specified$/);
    assert.match(e.message, /invalid mask/);
    return true;
  });
  assert.deepEqual(ops(calls), ['iptables-nft -S', 'iptables-nft -S', 'iptables-nft -C', 'iptables-nft-restore']);
  assert.deepEqual(jumpsIn(fake.tables['ipv4']), []);
});

test('a commit-time failure ("line N failed") is located too', async () => {
  const fake = fakeIptables('legacy');
  const { runner } = scriptedRunner((argv, o) => (argv[0]?.endsWith('-restore') ? { exitCode: 1, stderr: 'iptables-restore: line 6 failed\n' } : fake.handle(argv, o)));
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  const policy = { ...v4, toPorts: [portRange('8080')] };
  await assert.rejects(applyPolicy(backend, policy), (e: unknown) => e instanceof IptablesRestoreError && e.line === 6 && /-p udp --to-ports 8080$/.test(e.lineText ?? ''));
});

test('cleanup deletes every jump to the chain in one restore, then flushes and deletes the chain; twice is fine', async () => {
  const { backend, calls, fake } = setup();
  await applyPolicy(backend, v4);
  const t = fake.tables['ipv4']!;
  t.postrouting.unshift(QUOTED_JUMP, '-A POSTROUTING -m comment --comment "kube" -j KUBE-POSTROUTING', LOOKALIKE);
  t.postrouting.push(OUR_JUMP, BARE_JUMP);
  calls.length = 0;
  await backend.cleanup('ipv4');
  assert.deepEqual(ops(calls), ['iptables-nft -S', 'iptables-nft-restore', 'iptables-nft -S', 'iptables-nft -F', 'iptables-nft -X']);
  assert.equal(
    calls[1]?.options.input,
    ['*nat', QUOTED_JUMP, OUR_JUMP, OUR_JUMP, BARE_JUMP]
      .map((l) => l.replace(/^-A /, '-D '))
      .concat('COMMIT', '')
      .join('\n'),
  );
  // Only the jumps go: a rule that merely mentions the chain in its comment stays.
  assert.deepEqual(t, { chainLines: undefined, postrouting: ['-A POSTROUTING -m comment --comment "kube" -j KUBE-POSTROUTING', LOOKALIKE] });
  calls.length = 0;
  await backend.cleanup('ipv4');
  assert.deepEqual(ops(calls), ['iptables-nft -S', 'iptables-nft -F', 'iptables-nft -X']);
  assert.deepEqual(await readOwned(backend, 'ipv4'), []);
});

test('cleanup reports a chain that cannot be deleted (still referenced)', async () => {
  const fake = fakeIptables();
  const { runner } = scriptedRunner((argv, o) => (argv[5] === '-X' ? { exitCode: 1, stderr: "iptables v1.8.9 (legacy): Couldn't delete chain: Too many links\n" } : fake.handle(argv, o)));
  const backend = createIptablesBackend({ runner, mode: 'legacy', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  await applyPolicy(backend, v4);
  await assert.rejects(backend.cleanup('ipv4'), /-X IP-MASQ-AGENT: exit code 1: .*Too many links/);
});

test('read does not mistake a genuinely incompatible chain for a missing one', async () => {
  // iptables-nft says "incompatible" both for a missing chain and for one it cannot parse;
  // only the -C probe ("Chain ... does not exist") tells them apart.
  const { runner } = scriptedRunner((argv) =>
    argv[6] === 'POSTROUTING' && argv[5] === '-S'
      ? { stdout: '-P POSTROUTING ACCEPT\n' }
      : argv[5] === '-S'
        ? { exitCode: 1, stderr: IPTABLES_SAYS.nftIncompatible }
        : { exitCode: 1, stderr: IPTABLES_SAYS.badRule },
  );
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  await assert.rejects(readOwned(backend, 'ipv4'), /-S IP-MASQ-AGENT: exit code 1: .*incompatible/);
});

test('an unexpected -C failure is reported, not read as "missing"', async () => {
  const { runner } = scriptedRunner((argv) =>
    argv[5] === '-C'
      ? { exitCode: 2, stderr: "iptables v1.8.9 (nf_tables): Couldn't load match `addrtype'\n" }
      : argv[6] === 'POSTROUTING'
        ? { stdout: '-P POSTROUTING ACCEPT\n' }
        : { exitCode: 1, stderr: IPTABLES_SAYS.nftIncompatible },
  );
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  await assert.rejects(readOwned(backend, 'ipv4'), /exit code 2: .*addrtype/);
});

test('an invalid chain name is refused when the backend is created', () => {
  const { runner } = scriptedRunner(() => ({}));
  assert.throws(() => createIptablesBackend({ runner, mode: 'nft', chain: 'A-CHAIN-NAME-LONGER-THAN-28-CHARS', randomFullySupported: true }), /invalid iptables chain name: .*at most 28/);
});

test('apply after an older release (quoted-comment jump): one restore writes the chain and replaces that jump by ours in place, and a listing verifies it', async () => {
  const { backend, calls, fake } = setup();
  const t = fake.tables['ipv4'] ?? (fake.tables['ipv4'] = { chainLines: ['-N IP-MASQ-AGENT'], postrouting: [] });
  const kube = '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING';
  const cni = '-A POSTROUTING -s 10.244.0.0/16 -j RETURN';
  t.postrouting = [kube, QUOTED_JUMP, cni];
  fake.tables['ipv4'].chainLines = backend.expected(v4).slice(1);
  // The read-back shows the old jump, so the agent applies.
  assert.deepEqual(await readOwned(backend, 'ipv4'), [QUOTED_JUMP, ...backend.expected(v4).slice(1)]);
  calls.length = 0;
  await applyPolicy(backend, v4);
  assert.deepEqual(ops(calls), ['iptables-nft -S', 'iptables-nft -S', 'iptables-nft-restore', 'iptables-nft -S']);
  assert.equal(
    calls[2]?.options.input,
    `${renderRestorePayload(v4, { chain: 'IP-MASQ-AGENT', randomFully: true }).slice(0, -'COMMIT\n'.length)}${QUOTED_JUMP.replace('-A ', '-D ')}\n${OUR_JUMP.replace('-A POSTROUTING', '-I POSTROUTING 2')}\nCOMMIT\n`,
  );
  assert.deepEqual(t.postrouting, [kube, OUR_JUMP, cni], 'ours where the old one was, nothing else moved');
  fake.tables['ipv4'].chainLines = backend.expected(v4).slice(1);
  assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
});

test("apply with duplicates of our jump and a bare jump leaves exactly one, at the first one's place", async () => {
  const { backend, fake } = setup();
  await applyPolicy(backend, v4);
  const t = fake.tables['ipv4']!;
  t.postrouting = ['-A POSTROUTING -j KUBE-POSTROUTING', OUR_JUMP, '-A POSTROUTING -j CNI', OUR_JUMP, BARE_JUMP, LOOKALIKE];
  t.chainLines = backend.expected(v4).slice(1);
  const seen = await readOwned(backend, 'ipv4');
  assert.deepEqual(seen, [OUR_JUMP, OUR_JUMP, BARE_JUMP, ...backend.expected(v4).slice(1)], 'read reports every jump');
  await applyPolicy(backend, v4);
  assert.deepEqual(t.postrouting, ['-A POSTROUTING -j KUBE-POSTROUTING', OUR_JUMP, '-A POSTROUTING -j CNI', LOOKALIKE]);
});

test('a rule that only mentions -j IP-MASQ-AGENT in its comment is not a jump: ours is still added, the rule kept', async () => {
  const { backend, fake } = setup();
  fake.tables['ipv4'] = { chainLines: undefined, postrouting: [LOOKALIKE] };
  assert.deepEqual(await readOwned(backend, 'ipv4'), []);
  await applyPolicy(backend, v4);
  assert.deepEqual(fake.tables['ipv4'].postrouting, [LOOKALIKE, OUR_JUMP]);
  await backend.cleanup('ipv4');
  assert.deepEqual(fake.tables['ipv4'], { chainLines: undefined, postrouting: [LOOKALIKE] });
});

test('a chain still in use (nft exits 4, "Device or resource busy") is reported as such, not retried as a busy lock', async () => {
  const fake = fakeIptables('nft');
  const { runner, calls } = scriptedRunner((argv, o) => (argv[5] === '-X' ? { exitCode: 4, stderr: IPTABLES_SAYS.nftChainBusy } : fake.handle(argv, o)));
  const sleeps: number[] = [];
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true, sleep: async (ms) => void sleeps.push(ms) });
  await applyPolicy(backend, v4);
  await assert.rejects(backend.cleanup('ipv4'), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.failure, 'other');
    assert.match(e.message, /-X IP-MASQ-AGENT: .*CHAIN_DEL failed \(Device or resource busy\).*a rule outside POSTROUTING still jumps to the chain/);
    assert.doesNotMatch(e.message, /lock/);
    return true;
  });
  assert.deepEqual(sleeps, []);
  assert.equal(calls.filter((c) => c.argv[5] === '-X').length, 1);
});

test('classifyFailure: exit 4 is a busy lock unless the kernel said what failed', () => {
  assert.equal(classifyFailure(4, IPTABLES_SAYS.lockBusy), 'lock-busy');
  assert.equal(classifyFailure(4, ''), 'lock-busy');
  assert.equal(classifyFailure(4, IPTABLES_SAYS.nftChainBusy), 'other');
  assert.equal(classifyFailure(1, IPTABLES_SAYS.legacyChainBusy), 'other');
});

test('read asks for our chain and for POSTROUTING at once, before either answers', async () => {
  const fake = fakeIptables('nft');
  const { runner: answer } = scriptedRunner((argv, o) => fake.handle(argv, o));
  const gate = gatedRunner(answer);
  const backend = createIptablesBackend({ runner: gate.runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  const reading = readOwned(backend, 'ipv4');
  await settle();
  assert.deepEqual(gate.asked, ['iptables-nft -w 5 -t nat -S IP-MASQ-AGENT', 'iptables-nft -w 5 -t nat -S POSTROUTING']);
  assert.deepEqual(await pump(reading, gate), []);
});

test('first sync on a clean host: read, then one restore that writes the chain and the jump together (no -A), and one listing that verifies it', async () => {
  for (const mode of ['nft', 'legacy'] as const) {
    for (const position of ['append', 'first'] as const) {
      const { backend, calls, fake } = setup({ mode });
      fake.tables['ipv4'] = { chainLines: undefined, postrouting: ['-A POSTROUTING -j KUBE-POSTROUTING'] };
      const policy: FamilyPolicy = { ...v4, postroutingPosition: position };
      await applyPolicy(backend, policy);
      const t = (s: string) => s.replace(/^iptables-(nft|legacy)/, 'T');
      // -C only where nft calls the missing chain "incompatible": no jump can lead to a missing chain.
      assert.deepEqual(ops(calls).map(t), [...(mode === 'nft' ? ['T -S', 'T -S', 'T -C'] : ['T -S', 'T -S']), 'T-restore', 'T -S'], `${mode} ${position}`);
      const want = position === 'first' ? [OUR_JUMP, '-A POSTROUTING -j KUBE-POSTROUTING'] : ['-A POSTROUTING -j KUBE-POSTROUTING', OUR_JUMP];
      assert.deepEqual(fake.tables['ipv4']?.postrouting, want, position);
      assert.deepEqual(fake.tables['ipv4']?.chainLines, ['-N IP-MASQ-AGENT'], position);
      // The jump is in the same payload as the chain, after it: all or nothing.
      const jump = position === 'first' ? OUR_JUMP.replace('-A POSTROUTING', '-I POSTROUTING 1') : OUR_JUMP;
      const chainPayload = renderRestorePayload(policy, { chain: 'IP-MASQ-AGENT', randomFully: true });
      assert.equal(calls.find((c) => c.argv[0]?.endsWith('-restore'))?.options.input, `${chainPayload.slice(0, -'COMMIT\n'.length)}${jump}\nCOMMIT\n`);
    }
  }
});

test('a changed config (read without our chain, owned: false) lists POSTROUTING only; with our jump in place the restore is the chain payload alone, and the plan names the shadowing rule', async () => {
  for (const mode of ['nft', 'legacy'] as const) {
    const { backend, calls, fake } = setup({ mode });
    await applyPolicy(backend, v4);
    fake.tables['ipv4']!.postrouting.unshift('-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE');
    calls.length = 0;
    const changed: FamilyPolicy = { ...v4, exempt: [...v4.exempt, exempt('192.0.2.0/24')] };
    const observed = await backend.read('ipv4', { owned: false });
    assert.equal(observed.owned, undefined);
    const plan = backend.plan(observed, changed);
    await backend.apply(plan);
    assert.deepEqual(ops(calls), [`iptables-${mode} -S`, `iptables-${mode}-restore`], mode);
    assert.equal(calls[1]?.options.input, renderRestorePayload(changed, { chain: 'IP-MASQ-AGENT', randomFully: true }));
    assert.deepEqual(rulesOf(plan.shadowing), ['-A POSTROUTING -s 10.244.0.0/16 -j MASQUERADE']);
  }
});

test("duplicated and older-form jumps are replaced by ours in the chain's own restore, at the first one's place", async () => {
  for (const mode of ['nft', 'legacy'] as const) {
    for (const position of ['append', 'first'] as const) {
      const { backend, calls, fake } = setup({ mode });
      const policy: FamilyPolicy = { ...v4, postroutingPosition: position };
      fake.tables['ipv4'] = { chainLines: ['-N IP-MASQ-AGENT'], postrouting: ['-A POSTROUTING -j KUBE-POSTROUTING', QUOTED_JUMP, '-A POSTROUTING -j CNI', OUR_JUMP, OUR_JUMP, BARE_JUMP, LOOKALIKE] };
      await applyPolicy(backend, policy);
      assert.deepEqual(ops(calls), [`iptables-${mode} -S`, `iptables-${mode} -S`, `iptables-${mode}-restore`, `iptables-${mode} -S`], position);
      const at = position === 'first' ? 1 : 2;
      const repair = [QUOTED_JUMP, OUR_JUMP, OUR_JUMP, BARE_JUMP].map((l) => l.replace('-A ', '-D ')).concat(OUR_JUMP.replace('-A POSTROUTING', `-I POSTROUTING ${at}`));
      const chainPayload = renderRestorePayload(policy, { chain: 'IP-MASQ-AGENT', randomFully: true });
      assert.equal(calls[2]?.options.input, `${chainPayload.slice(0, -'COMMIT\n'.length)}${repair.join('\n')}\nCOMMIT\n`, position);
      const want =
        position === 'first'
          ? [OUR_JUMP, '-A POSTROUTING -j KUBE-POSTROUTING', '-A POSTROUTING -j CNI', LOOKALIKE]
          : ['-A POSTROUTING -j KUBE-POSTROUTING', OUR_JUMP, '-A POSTROUTING -j CNI', LOOKALIKE];
      assert.deepEqual(fake.tables['ipv4']?.postrouting, want, position);
    }
  }
});

test('a jump found missing while our chain is there is added in the restore once -C agrees it is missing, and then verified', async () => {
  const { backend, calls, fake } = setup({ mode: 'legacy' });
  fake.tables['ipv4'] = { chainLines: ['-N IP-MASQ-AGENT'], postrouting: ['-A POSTROUTING -j KUBE-POSTROUTING'] };
  await applyPolicy(backend, v4);
  assert.deepEqual(ops(calls), ['iptables-legacy -S', 'iptables-legacy -S', 'iptables-legacy -C', 'iptables-legacy-restore', 'iptables-legacy -S']);
  assert.deepEqual(fake.tables['ipv4']?.postrouting, ['-A POSTROUTING -j KUBE-POSTROUTING', OUR_JUMP]);
});

test('a jump deleted between the read and the restore fails that restore; the chain then goes alone and POSTROUTING is read and planned again', async () => {
  for (const mode of ['nft', 'legacy'] as const) {
    const fake = fakeIptables(mode);
    fake.tables['ipv4'] = { chainLines: ['-N IP-MASQ-AGENT'], postrouting: [QUOTED_JUMP, '-A POSTROUTING -j KUBE-POSTROUTING'] };
    let listings = 0;
    const { runner, calls } = scriptedRunner((argv, o) => {
      const reply = fake.handle(argv, o);
      // Someone deletes the old jump just after the read saw it.
      if (argv[6] === 'POSTROUTING' && ++listings === 1) fake.tables['ipv4']!.postrouting = ['-A POSTROUTING -j KUBE-POSTROUTING'];
      return reply;
    });
    const backend = createIptablesBackend({ runner, mode, chain: 'IP-MASQ-AGENT', randomFullySupported: true });
    await applyPolicy(backend, v4);
    const t = (s: string) => s.replace(/^iptables-(nft|legacy)/, 'T');
    assert.deepEqual(ops(calls).map(t), ['T -S', 'T -S', 'T-restore', 'T-restore', 'T -S', 'T -C', 'T-restore', 'T -S'], mode);
    assert.equal(calls[3]?.options.input, renderRestorePayload(v4, { chain: 'IP-MASQ-AGENT', randomFully: true }), 'the chain alone');
    assert.equal(calls[6]?.options.input, `*nat\n${OUR_JUMP}\nCOMMIT\n`, 'the jump, planned from the new listing');
    assert.deepEqual(fake.tables['ipv4']?.postrouting, ['-A POSTROUTING -j KUBE-POSTROUTING', OUR_JUMP]);
  }
});

test('drift of the jump (a duplicate) is repaired in the restore that rewrites the chain, and verified by one listing', async () => {
  const { backend, calls, fake } = setup({ mode: 'legacy' });
  fake.tables['ipv4'] = { chainLines: ['-N IP-MASQ-AGENT'], postrouting: [OUR_JUMP, '-A POSTROUTING -j KUBE-POSTROUTING', OUR_JUMP] };
  await applyPolicy(backend, v4);
  assert.deepEqual(ops(calls), ['iptables-legacy -S', 'iptables-legacy -S', 'iptables-legacy-restore', 'iptables-legacy -S']);
  assert.deepEqual(fake.tables['ipv4']?.postrouting, [OUR_JUMP, '-A POSTROUTING -j KUBE-POSTROUTING']);
});

/** Our jump and chain after `iptables -t nat -E IP-MASQ-AGENT OLD`: the jump keeps its comment and leads to OLD. */
const RENAMED_JUMP = OUR_JUMP.replace(/-j IP-MASQ-AGENT$/, '-j OLD');
function renamedChain(policy: FamilyPolicy): string[] {
  return ['-N OLD', ...renderSaveLines(policy, { chain: 'OLD', randomFully: true }).filter((l) => l.startsWith('-A OLD '))];
}

test("our chain renamed (iptables -E): read shows its jump and a note; apply deletes jump and chain in the chain's own restore, verified by one listing", async () => {
  for (const mode of ['nft', 'legacy'] as const) {
    const { backend, calls, fake } = setup({ mode });
    const kube = '-A POSTROUTING -j KUBE-POSTROUTING';
    fake.tables['ipv4'] = { chainLines: undefined, postrouting: [kube, RENAMED_JUMP], others: { OLD: renamedChain(v4) } };
    const seen = await readOwned(backend, 'ipv4');
    assert.deepEqual(
      seen,
      [RENAMED_JUMP, "# ip-masq-agent: a POSTROUTING rule with our jump's comment leads to nat chain OLD (3 rules, all ours: our chain renamed); the sync deletes that rule and chain"],
      mode,
    );
    calls.length = 0;
    await applyPolicy(backend, v4);
    assert.deepEqual(
      ops(calls).map((o) => o.replace(/^ip(6?)tables-(nft|legacy)/, 'T')),
      [...(mode === 'nft' ? ['T -S', 'T -S', 'T -C'] : ['T -S', 'T -S']), 'T -S', 'T-restore', 'T -S'],
      `${mode}: read (OLD listed), one restore, one listing that verifies`,
    );
    const payload = calls.find((c) => c.argv[0]?.endsWith('-restore'))?.options.input ?? '';
    const chainPayload = renderRestorePayload(v4, { chain: 'IP-MASQ-AGENT', randomFully: true });
    assert.equal(payload, `${chainPayload.slice(0, -'COMMIT\n'.length)}${OUR_JUMP}\n${RENAMED_JUMP.replace('-A ', '-D ')}\n-F OLD\n-X OLD\nCOMMIT\n`, mode);
    assert.deepEqual(fake.tables['ipv4'], { chainLines: ['-N IP-MASQ-AGENT'], postrouting: [kube, OUR_JUMP], others: {} }, mode);
  }
});

test('our chain renamed, then a config change (read with owned: false): the same one restore writes the chain and deletes the renamed one, a listing verifies', async () => {
  const { backend, calls, fake } = setup();
  fake.tables['ipv4'] = { chainLines: ['-N IP-MASQ-AGENT'], postrouting: [RENAMED_JUMP, OUR_JUMP], others: { OLD: renamedChain(v4) } };
  await backend.apply(backend.plan(await backend.read('ipv4', { owned: false }), v4));
  assert.deepEqual(ops(calls), ['iptables-nft -S', 'iptables-nft -S', 'iptables-nft-restore', 'iptables-nft -S']);
  const chainPayload = renderRestorePayload(v4, { chain: 'IP-MASQ-AGENT', randomFully: true });
  assert.equal(calls[2]?.options.input, `${chainPayload.slice(0, -'COMMIT\n'.length)}${RENAMED_JUMP.replace('-A ', '-D ')}\n-F OLD\n-X OLD\nCOMMIT\n`);
  assert.deepEqual(fake.tables['ipv4']?.postrouting, [OUR_JUMP]);
  assert.deepEqual(fake.tables['ipv4']?.others, {});
});

test("a rule with our jump's comment that leads to a chain not all ours: read says so, apply writes our chain, leaves that one, and fails the sync naming it", async () => {
  const { backend, fake } = setup();
  const foreign = ['-N OLD', ...renamedChain(v4).slice(1), '-A OLD -d 192.0.2.0/24 -j SNAT --to-source 203.0.113.1'];
  fake.tables['ipv4'] = { chainLines: ['-N IP-MASQ-AGENT'], postrouting: [RENAMED_JUMP, OUR_JUMP], others: { OLD: foreign } };
  const seen = await readOwned(backend, 'ipv4');
  assert.equal(seen[1], RENAMED_JUMP);
  assert.match(
    seen[2] ?? '',
    /^# ip-masq-agent: a POSTROUTING rule with our jump's comment leads to nat chain OLD, not ours \(its rule -A OLD -d 192\.0\.2\.0\/24 -j SNAT --to-source 203\.0\.113\.1 is not one of ours\); the agent leaves it, and its syncs fail until it is removed$/,
  );
  await assert.rejects(
    applyPolicy(backend, v4),
    /^Error: nat POSTROUTING rule -A POSTROUTING .* -j OLD carries our jump's comment but leads to OLD, not IP-MASQ-AGENT, and its rule -A OLD -d 192\.0\.2\.0\/24 -j SNAT --to-source 203\.0\.113\.1 is not one of ours: the agent does not touch it/,
  );
  assert.deepEqual(fake.tables['ipv4']?.postrouting, [RENAMED_JUMP, OUR_JUMP], 'nothing of theirs deleted');
  assert.deepEqual(fake.tables['ipv4']?.others, { OLD: foreign });
});

test('a POSTROUTING listing without its "-P POSTROUTING" line (empty, or NULs) is a failed read: read and apply fail, and no jump is added however often they run', async () => {
  for (const stdout of ['', '\0'.repeat(300), '\0P POSTROUTING ACCEPT\n']) {
    const fake = fakeIptables();
    const { runner } = scriptedRunner((argv, o) => (argv[5] === '-S' && argv[6] === 'POSTROUTING' ? { stdout } : fake.handle(argv, o)));
    const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
    await applyPolicy(backend, { ...v4 }).catch(() => undefined);
    for (let sync = 0; sync < 20; sync++) {
      const read = readOwned(backend, 'ipv4');
      await assert.rejects(read, (e: unknown) => {
        assert.ok(e instanceof CommandError);
        assert.equal(e.failure, 'other');
        assert.match(
          e.message,
          /^iptables-nft -w 5 -t nat -S POSTROUTING: printed no "-P POSTROUTING" policy line \((nothing|\d+ bytes without it: ".*"( \(cut, \d+ bytes\))?)\), so it is no listing of the chain; nothing was changed$/,
        );
        assert.ok(e.message.length < 300, 'the output is not echoed whole');
        return true;
      });
      await assert.rejects(applyPolicy(backend, v4), /no "-P POSTROUTING" policy line/);
    }
    assert.equal(jumpsIn(fake.tables['ipv4']).length, 0, JSON.stringify(stdout.slice(0, 20)));
  }
});

test('a listing that hides our jump (policy line only) never adds a second one: -C finds ours and the sync fails, at every sync', async () => {
  const fake = fakeIptables();
  fake.tables['ipv4'] = { chainLines: ['-N IP-MASQ-AGENT', ...backend0().expected(v4).slice(1)], postrouting: [OUR_JUMP] };
  const { runner } = scriptedRunner((argv, o) => (argv[5] === '-S' && argv[6] === 'POSTROUTING' ? { stdout: '-P POSTROUTING ACCEPT\n' } : fake.handle(argv, o)));
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  for (let sync = 0; sync < 20; sync++) {
    await readOwned(backend, 'ipv4');
    await assert.rejects(
      applyPolicy(backend, v4),
      /^CommandError: -S POSTROUTING showed no jump to IP-MASQ-AGENT, but iptables-nft -w 5 -t nat -C POSTROUTING .* finds ours: the listing lost lines \(a wrapper around iptables-nft\?\); not adding a second jump$/,
    );
    await assert.rejects(applyPolicy(backend, v4), /not adding a second jump/);
  }
  assert.deepEqual(fake.tables['ipv4']?.postrouting, [OUR_JUMP]);
});

test('a jump repair that does not show in the listing after it fails the sync, and is not repeated blindly', async () => {
  const fake = fakeIptables();
  fake.tables['ipv4'] = { chainLines: ['-N IP-MASQ-AGENT'], postrouting: [] };
  // A wrapper that drops our jump from every listing: the first repair is made, and then found missing.
  const { runner } = scriptedRunner((argv, o) => {
    const reply = fake.handle(argv, o);
    if (argv[5] !== '-S' || argv[6] !== 'POSTROUTING' || reply instanceof CommandError) return reply;
    return {
      ...reply,
      stdout: (reply.stdout ?? '')
        .split('\n')
        .filter((l) => !l.endsWith('-j IP-MASQ-AGENT'))
        .join('\n'),
    };
  });
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  await assert.rejects(
    applyPolicy(backend, v4),
    /^Error: iptables-nft: the repair of nat POSTROUTING did not take: listed after it, POSTROUTING shows 0 jumps to IP-MASQ-AGENT, where exactly one jump, ours, was written; not repeating it/,
  );
  for (let sync = 0; sync < 5; sync++) await assert.rejects(applyPolicy(backend, v4), /not adding a second jump/);
  assert.deepEqual(fake.tables['ipv4']?.postrouting, [OUR_JUMP]);
});

/** A backend for expected() only. */
function backend0() {
  return setup().backend;
}

test("cleanup also takes back our chain renamed (its jump, then it), and leaves a chain behind our jump's comment that is not all ours", async () => {
  const { backend, fake } = setup();
  const theirs = OUR_JUMP.replace(/-j IP-MASQ-AGENT$/, '-j THEIRS');
  fake.tables['ipv4'] = {
    chainLines: ['-N IP-MASQ-AGENT'],
    postrouting: [RENAMED_JUMP, OUR_JUMP, theirs],
    others: { OLD: renamedChain(v4), THEIRS: ['-N THEIRS', '-A THEIRS -j MASQUERADE'] },
  };
  await backend.cleanup('ipv4');
  assert.deepEqual(fake.tables['ipv4'], { chainLines: undefined, postrouting: [theirs], others: { THEIRS: ['-N THEIRS', '-A THEIRS -j MASQUERADE'] } });
});
