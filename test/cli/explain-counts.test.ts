// explain --counts: the connections the deciding rule counted, read from the live rules (here a
// scripted iptables-nft printing the listing captured from the real one: 30 flows kept by
// 10.0.0.0/8, 20 by 198.51.100.0/24, 40 masqueraded by the default rule).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createIptablesBackend } from '../../src/backends/iptables/iptables-backend.js';
import type { OpenedBackend } from '../../src/backends/select.js';
import { countersFixturePath } from '../backends/decision-counters-fixtures.js';
import { fakeIptables, scriptedRunner } from '../backends/iptables-helpers.js';
import { cli, tempDir, type TempDir } from './cli-helpers.js';

let tmp: TempDir;
let config = '';
before(async () => {
  tmp = await tempDir();
  config = await tmp.write('ip-masq-agent', 'nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n');
});
after(() => tmp.remove());

function liveRules() {
  const fake = fakeIptables('nft');
  const listing = readFileSync(countersFixturePath('iptables-nft'), 'utf8').trim().split('\n');
  fake.tables['ipv4'] = { chainLines: listing.slice(1), postrouting: [] };
  const { runner } = scriptedRunner((argv, o) => fake.handle(argv, o));
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  return { runner, openBackend: async (): Promise<OpenedBackend> => ({ backend, description: 'iptables-nft (test)' }) };
}

test('explain --counts adds what the deciding rule counted, in text and JSON; only where a rule of ours decides', async () => {
  const args = ['explain', '--config', config, '--counts', '10.1.2.3', '203.0.113.7', '169.254.169.254', '198.51.100.9', '192.0.2.1', '--local', '192.0.2.1'];
  const r = await cli(args, liveRules());
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const counted = (dest: string): string | undefined => /the deciding rule counted (\d+) connections since the rules were last written\)$/.exec(lines.find((l) => l.startsWith(`${dest} `)) ?? '')?.[1];
  assert.deepEqual(['10.1.2.3', '203.0.113.7', '169.254.169.254', '198.51.100.9', '192.0.2.1'].map(counted), ['30', '40', '0', '20', undefined]);
  const json = JSON.parse((await cli([...args, '--output=json'], liveRules())).stdout) as { destination: string; connections?: number }[];
  assert.deepEqual(
    json.map((a) => a.connections),
    [30, 40, 0, 20, undefined],
  );
});

test('explain without --counts reads nothing; --counts that cannot read exits 3 and says why', async () => {
  // cli's default runner fails any command: without --counts explain runs none.
  assert.equal((await cli(['explain', '--config', config, '10.1.2.3'])).code, 0);
  const r = await cli(['explain', '--config', config, '--counts', '10.1.2.3'], { openBackend: async () => Promise.reject(new Error('iptables-nft is not installed')) });
  assert.equal(r.code, 3);
  assert.match(r.stderr, /^ip-masq-agent explain: cannot read the rules' counters: iptables-nft is not installed\n$/);
});
