// How the runner classifies failed commands: the classification decides whether a sync retries
// (lock busy) or reports at once what a person must fix (a missing capability).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError } from '../../src/errors.js';
import { classifyFailure, createRunner, PERMISSION_HINT } from '../../src/exec/runner.js';

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
