import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createFakeBackend } from './fake.js';
import { contractPolicies, decisionPolicies, runBackendContract } from './contract.js';
import { applyPolicy, readOwned } from './sync.js';

runBackendContract('fake', async () => {
  const backend = createFakeBackend();
  return {
    backend,
    piped: backend.scripts,
    damage: async (family) => void backend.tables.set(family, (backend.tables.get(family) ?? []).slice(0, 1)),
    addStrayJumps: async (family) => {
      backend.addStrayJump(family, 'quoted comment');
      backend.addStrayJump(family, 'bare');
    },
    insertAbove: async (family) => backend.insertAbove(family),
    dispose: () => undefined,
  };
});

test('fake: a refused apply leaves the state exactly as it was, stray jumps and all: the script ran against a copy', async () => {
  const backend = createFakeBackend();
  await applyPolicy(backend, contractPolicies.v4);
  backend.addStrayJump('ipv4', 'older release');
  const before = await readOwned(backend, 'ipv4');
  // The script flushes first, so a fake that wrote as it went would have dropped the stray jump.
  await assert.rejects(applyPolicy(backend, decisionPolicies.wrongFamily), /fake: line \d+: SNAT --to-source 2001:db8::9 is not ipv4 \(iptables: bad IP address\)/);
  assert.deepEqual(await readOwned(backend, 'ipv4'), before);
  assert.equal(backend.writes.get('ipv4'), 1);
});

test('fake: render is the script apply runs, and status-readable lines are what it leaves', () => {
  const backend = createFakeBackend();
  const r = backend.render(contractPolicies.v4);
  assert.equal(
    r.payload,
    `flush ipv4\n${backend
      .expected(contractPolicies.v4)
      .map((l) => `add ipv4 ${l}`)
      .join('\n')}\n`,
  );
});
