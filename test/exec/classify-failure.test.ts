// How the runner classifies failed commands: the classification decides whether a sync retries
// (lock busy) or reports at once what a person must fix (a missing capability).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError } from '../../src/errors.js';
import {
  classifyFailure,
  createRunner,
  isChainIncompatible,
  isChainInUse,
  isChainMissing,
  isNftObjectMissing,
  isTargetMissing,
  mentionsPermission,
  PERMISSION_HINT,
  restoreFailedLine,
  saidByIptables,
} from '../../src/exec/runner.js';

const CASES: readonly { name: string; exitCode: number; stderr: string; want: ReturnType<typeof classifyFailure> }[] = [
  {
    name: 'iptables-nft without CAP_NET_ADMIN (exit 4, like a busy lock)',
    exitCode: 4,
    stderr: 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n',
    want: 'permission-denied',
  },
  {
    name: 'iptables-legacy without CAP_NET_ADMIN',
    exitCode: 3,
    stderr: "iptables v1.8.9 (legacy): can't initialize iptables table `nat': Permission denied (you must be root)\n",
    want: 'permission-denied',
  },
  {
    name: 'nft without CAP_NET_ADMIN',
    exitCode: 1,
    stderr: 'Operation not permitted (you must be root)\nnetlink: Error: cache initialization failed: Operation not permitted\n',
    want: 'permission-denied',
  },
  { name: 'legacy lock held by another program', exitCode: 4, stderr: 'Another app is currently holding the xtables lock. Stopped waiting after 5s.\n', want: 'lock-busy' },
  {
    name: 'iptables-nft: a chain still referenced (exit 4, no lock involved)',
    exitCode: 4,
    stderr: 'iptables v1.8.9 (nf_tables):  CHAIN_DEL failed (Device or resource busy): chain IP-MASQ-AGENT\n',
    want: 'other',
  },
  { name: 'exit 4 without a reason', exitCode: 4, stderr: '', want: 'lock-busy' },
  { name: 'missing chain', exitCode: 1, stderr: 'iptables: No chain/target/match by that name.\n', want: 'not-found' },
  { name: 'anything else', exitCode: 2, stderr: "Bad argument `foo'\n", want: 'other' },
];

for (const c of CASES) {
  test(`classifyFailure: ${c.name} -> ${c.want}`, () => {
    assert.equal(classifyFailure(c.exitCode, c.stderr), c.want);
  });
}

test('a permission failure is reported at once with what to grant, not as a busy lock', async () => {
  const run = createRunner();
  const stderr = 'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)';
  await assert.rejects(run(['sh', '-c', `echo '${stderr}' >&2; exit 4`]), (e: unknown) => {
    assert.ok(e instanceof CommandError);
    assert.equal(e.failure, 'permission-denied');
    assert.ok(e.message.includes(stderr), e.message);
    assert.ok(e.message.endsWith(`(${PERMISSION_HINT})`), e.message);
    assert.match(e.message, /CAP_NET_ADMIN/);
    return true;
  });
});

// The finer classes the backends ask, on the tools' own words; each predicate must also say no.
const PREDICATES = { isChainMissing, isChainIncompatible, isTargetMissing, isChainInUse, isNftObjectMissing } as const;
const SAID: readonly { stderr: string; yes: readonly (keyof typeof PREDICATES)[] }[] = [
  { stderr: 'iptables: No chain/target/match by that name.\n', yes: ['isChainMissing'] },
  { stderr: "iptables v1.8.9 (nf_tables): chain `IP-MASQ-AGENT' in table `nat' is incompatible, use 'nft' tool.\n", yes: ['isChainIncompatible'] },
  { stderr: "iptables v1.8.9 (nf_tables): Chain 'IP-MASQ-AGENT' does not exist\nTry `iptables -h' or 'iptables --help' for more information.\n", yes: ['isTargetMissing'] },
  { stderr: "iptables v1.8.9 (legacy): Couldn't load target `IP-MASQ-AGENT':No such file or directory\n", yes: ['isTargetMissing', 'isNftObjectMissing'] },
  { stderr: 'iptables v1.8.9 (nf_tables):  CHAIN_DEL failed (Device or resource busy): chain IP-MASQ-AGENT\n', yes: ['isChainInUse'] },
  { stderr: 'iptables: Too many links.\n', yes: ['isChainInUse'] },
  { stderr: 'Error: Could not process rule: No such file or directory\ndelete table inet ip-masq-agent\n', yes: ['isNftObjectMissing'] },
  { stderr: 'Error: Could not process rule: File exists\n', yes: [] },
  { stderr: 'Error: Could not process rule: Invalid argument\n', yes: [] },
  { stderr: "Error: You must add 'flags interval' to your map declaration if you want to add prefix elements\n", yes: [] },
  { stderr: 'Error: syntax error, unexpected }\n', yes: [] },
];

for (const c of SAID) {
  test(`the tool said ${JSON.stringify(c.stderr.split('\n')[0])}: ${c.yes.join(', ') || 'no finer class'}`, () => {
    for (const [name, is] of Object.entries(PREDICATES)) assert.equal(is({ stderr: c.stderr }), c.yes.includes(name as keyof typeof PREDICATES), name);
  });
}

test('restoreFailedLine reads the payload line from either wording of iptables-restore, and nothing from other text', () => {
  assert.equal(restoreFailedLine({ stderr: 'iptables-restore: line 7 failed\n' }), 7);
  assert.equal(restoreFailedLine({ stderr: "iptables-restore v1.8.9 (nf_tables): Couldn't load match `foo'\n\nError occurred at line: 12\nTry `iptables-restore -h'\n" }), 12);
  assert.equal(restoreFailedLine({ stderr: 'iptables-restore: unable to initialize table nat\n' }), undefined);
});

test('saidByIptables keeps what iptables said on one line, without its boilerplate, three lines at most', () => {
  assert.equal(saidByIptables("Bad argument `x'\nError occurred at line: 3\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n"), "Bad argument `x'");
  assert.equal(saidByIptables(' a \n\nb\nc\nd\n'), 'a | b | c');
});

test('mentionsPermission reads the message and the stderr of an error, in any case', () => {
  assert.equal(mentionsPermission(new Error('open /run/xtables.lock: permission denied')), true);
  assert.equal(mentionsPermission(new CommandError(['nft'], 1, 'Error: Operation not permitted\n', 'other', 'nft: exit code 1')), true);
  assert.equal(mentionsPermission(new CommandError(['nft'], 1, 'Error: syntax error\n', 'other', 'nft: exit code 1: Error: syntax error')), false);
  assert.equal(mentionsPermission('you must be root'), true);
});
