import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createFakeBackend, type FakeBackend } from '../backends/fake.js';
import type { OpenedBackend, SelectOptions } from '../../src/backends/select.js';
import { compareFamily } from '../../src/cli/status.js';
import { loadConfig } from '../../src/config/load.js';
import { CommandError } from '../../src/errors.js';
import { buildPolicy } from '../../src/policy/build.js';
import type { DecisionCount, FamilyPolicy } from '../../src/policy/types.js';
import { createIptablesBackend } from '../../src/backends/iptables/iptables-backend.js';
import { fakeIptables, scriptedRunner } from '../backends/iptables-helpers.js';
import { createNftablesBackend } from '../../src/backends/nftables/nftables-backend.js';
import { createFakeNft } from '../backends/fake-nft.js';
import { cli, tempDir, type TempDir } from './cli-helpers.js';
import { applyPolicy } from '../backends/sync.js';

let tmp: TempDir;
let config = '';
before(async () => {
  tmp = await tempDir();
  config = await tmp.write('ip-masq-agent', 'nonMasqueradeCIDRs: [10.0.0.0/8, 2001:db8:200::/48]\n');
});
after(() => tmp.remove());

/** status with a fake backend in place of the kernel; records the options it was opened with. */
function withFake(fake: FakeBackend, seen: SelectOptions[] = []) {
  return {
    openBackend: async (o: SelectOptions): Promise<OpenedBackend> => {
      seen.push(o);
      return { backend: fake, description: 'fake (test)' };
    },
  };
}

async function applyConfig(fake: FakeBackend, enableIPv6: boolean): Promise<void> {
  const loaded = await loadConfig(config, { enableIPv6: true, nomasqAllReservedRanges: false });
  for (const p of buildPolicy(loaded.config, { enableIPv6, randomFully: true, toPorts: [] }).families) await applyPolicy(fake, p);
}

test('no rules: exit 1, each family "missing", the wanted lines listed with "-"', async () => {
  const fake = createFakeBackend();
  const r = await cli(['status', '--config', config, '--enable-ipv6'], withFake(fake));
  assert.equal(r.code, 1);
  assert.equal(
    r.stdout,
    [
      'backend: fake (test)',
      `config: ${config}`,
      'IPv4: missing: none of the 4 wanted lines are there (the agent has not run here, or its rules were removed)',
      '  - jump',
      '  - return 169.254.0.0/16',
      '  - return 10.0.0.0/8',
      '  - masquerade random-fully',
      'IPv6: missing: none of the 4 wanted lines are there (the agent has not run here, or its rules were removed)',
      '  - jump',
      '  - return fe80::/10',
      '  - return 2001:db8:200::/48',
      '  - masquerade random-fully',
      'not in sync: the agent repairs this at its next sync; if it does not, check its log and /healthz',
      '',
    ].join('\n'),
  );
});

test('rules as the agent writes them: exit 0, in sync', async () => {
  const fake = createFakeBackend();
  await applyConfig(fake, true);
  const r = await cli(['status', '--config', config, '--enable-ipv6'], withFake(fake));
  assert.equal(r.code, 0, r.stdout);
  assert.match(r.stdout, /^IPv4: in sync \(4 lines\)\nIPv6: in sync \(4 lines\)\nin sync\n$/m);
});

test('drift: exit 1 with "- missing" and "+ unexpected" lines; only the drifted family is reported so', async () => {
  const fake = createFakeBackend();
  await applyConfig(fake, true);
  fake.tables.set('ipv4', ['jump', 'return 169.254.0.0/16', 'return 192.0.2.0/24', 'masquerade random-fully']);
  const r = await cli(['status', '--config', config, '--enable-ipv6'], withFake(fake));
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^IPv4: drifted: 1 missing, 1 unexpected\n {2}- return 10\.0\.0\.0\/8\n {2}\+ return 192\.0\.2\.0\/24\nIPv6: in sync/m);
});

test("iptables: an older release's jump or a duplicate beside ours is drift, listed as unexpected", async () => {
  const fake = fakeIptables('nft');
  const { runner } = scriptedRunner((argv, o) => fake.handle(argv, o));
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  const v4config = await tmp.write('v4-only', 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  const loaded = await loadConfig(v4config, { enableIPv6: false, nomasqAllReservedRanges: false });
  const [policy] = buildPolicy(loaded.config, { enableIPv6: false, randomFully: true, toPorts: [] }).families;
  await applyPolicy(backend, policy!);
  const want = backend.expected(policy!);
  const ours = want[0] ?? '';
  const quoted = ours.replace(/--comment "([^"]*)"/, '--comment "\\"$1\\""');
  fake.tables['ipv4']!.chainLines = want.slice(1);
  const opened = { openBackend: async (): Promise<OpenedBackend> => ({ backend, description: 'iptables-nft (test)' }) };
  assert.equal((await cli(['status', '--config', v4config], opened)).code, 0);
  for (const extra of [quoted, ours, '-A POSTROUTING -j IP-MASQ-AGENT']) {
    fake.tables['ipv4']!.postrouting.push(extra);
    const r = await cli(['status', '--config', v4config], opened);
    assert.equal(r.code, 1, r.stdout);
    assert.ok(r.stdout.includes(`IPv4: drifted: 0 missing, 1 unexpected\n  + ${extra}\n`), r.stdout);
    fake.tables['ipv4']!.postrouting.pop();
  }
});

test('iptables, --postrouting-position=first: in sync with our jump at rule 1; a rule inserted above it is drift, named', async () => {
  const fake = fakeIptables('nft');
  const { runner } = scriptedRunner((argv, o) => fake.handle(argv, o));
  const backend = createIptablesBackend({ runner, mode: 'nft', chain: 'IP-MASQ-AGENT', randomFullySupported: true });
  const v4config = await tmp.write('v4-first', 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  const loaded = await loadConfig(v4config, { enableIPv6: false, nomasqAllReservedRanges: false });
  const [policy] = buildPolicy(loaded.config, { enableIPv6: false, randomFully: true, toPorts: [], postroutingPosition: 'first' }).families;
  fake.tables['ipv4'] = { chainLines: undefined, postrouting: ['-A POSTROUTING -j KUBE-POSTROUTING'] };
  await applyPolicy(backend, policy!);
  // The fake restore creates the chain only; its rules are what the payload writes.
  fake.tables['ipv4'].chainLines = backend.expected(policy!).slice(1);
  assert.match(fake.tables['ipv4'].postrouting[0] ?? '', /-j IP-MASQ-AGENT$/, 'inserted at rule 1');
  const opened = { openBackend: async (): Promise<OpenedBackend> => ({ backend, description: 'iptables-nft (test)' }) };
  const inSync = await cli(['status', '--config', v4config, '--postrouting-position=first'], opened);
  assert.equal(inSync.code, 0, inSync.stdout);
  // The same rules checked as append: the chain ends exemptions differently, so that is drift too.
  assert.equal((await cli(['status', '--config', v4config], opened)).code, 1);
  fake.tables['ipv4'].postrouting.unshift('-A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE');
  const r = await cli(['status', '--config', v4config, '--postrouting-position=first'], opened);
  assert.equal(r.code, 1, r.stdout);
  assert.ok(
    r.stdout.includes('IPv4: drifted: 0 missing, 1 unexpected\n  + # ip-masq-agent: our jump is not the first rule of nat POSTROUTING; rule 1 is -A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE\n'),
    r.stdout,
  );
  await applyPolicy(backend, policy!);
  fake.tables['ipv4'].chainLines = backend.expected(policy!).slice(1);
  assert.equal((await cli(['status', '--config', v4config, '--postrouting-position=first'], opened)).code, 0);
  assert.deepEqual(fake.tables['ipv4'].postrouting.slice(1), ['-A POSTROUTING -s 192.0.2.0/24 -j MASQUERADE', '-A POSTROUTING -j KUBE-POSTROUTING']);
});

test('the same rules in another order are drift: rules match first-wins', async () => {
  const fake = createFakeBackend();
  await applyConfig(fake, false);
  fake.tables.set('ipv4', ['jump', 'masquerade random-fully', 'return 169.254.0.0/16', 'return 10.0.0.0/8']);
  const config4 = await tmp.write('v4', 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  const r = await cli(['status', '--config', config4], withFake(fake));
  assert.equal(r.code, 1);
  assert.match(r.stdout, /IPv4: drifted: the wanted lines are there in another order \(first difference at line 2\)/);
});

test('flags shape what is wanted: --random-fully=false and --to-ports change the expected rule', async () => {
  const fake = createFakeBackend();
  await applyConfig(fake, false);
  const config4 = await tmp.write('v4b', 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  const r = await cli(['status', '--config', config4, '--random-fully=false', '--to-ports=2000-3000'], withFake(fake));
  assert.equal(r.code, 1);
  assert.match(r.stdout, /- masquerade to-ports 2000-3000\n {2}\+ masquerade random-fully/);
});

test('the backend is opened with the agent flags, never through selectBackend', async () => {
  const seen: SelectOptions[] = [];
  await cli(['status', '--config', config, '--enable-ipv6', '--backend=auto', '--iptables-mode=legacy', '--masq-chain=MY-MASQ'], withFake(createFakeBackend(), seen));
  assert.equal(seen.length, 1);
  assert.deepEqual([seen[0]?.backend, seen[0]?.iptablesMode, seen[0]?.chain], ['auto', 'legacy', 'MY-MASQ']);
});

test('JSON: inSync, backend, and per family the state, missing and unexpected lines', async () => {
  const fake = createFakeBackend();
  await applyConfig(fake, false);
  fake.tables.set('ipv4', ['jump', 'return 169.254.0.0/16', 'masquerade random-fully']);
  const r = await cli(['status', '--config', config, '--output', 'json', '--enable-ipv6'], withFake(fake));
  assert.equal(r.code, 1);
  const out = JSON.parse(r.stdout);
  assert.equal(out.inSync, false);
  assert.equal(out.backend, 'fake');
  assert.deepEqual(
    out.families.map((f: { family: string; state: string; missing: string[]; unexpected: string[] }) => [f.family, f.state, f.missing, f.unexpected]),
    [
      ['ipv4', 'drifted', ['return 10.0.0.0/8'], []],
      ['ipv6', 'missing', ['jump', 'return fe80::/10', 'return 2001:db8:200::/48', 'masquerade random-fully'], []],
    ],
  );
});

test('cannot read the rules: exit 3 with the reason and a hint', async () => {
  const fake = createFakeBackend();
  fake.failNextReads(
    1,
    new CommandError(
      ['iptables-nft', '-t', 'nat', '-S'],
      4,
      'iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)',
      'lock-busy',
      'iptables-nft -t nat -S: exit code 4',
    ),
  );
  const r = await cli(['status', '--config', config, '--enable-ipv6'], withFake(fake));
  assert.equal(r.code, 3);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^ip-masq-agent status: cannot read the ipv4 rules with fake: .*\(run it as root, or in the agent's pod, which has NET_ADMIN\)\n$/);

  const missingTool = await cli(['status', '--config', config, '--enable-ipv6'], {
    openBackend: async () => {
      throw new CommandError(['iptables-nft', '--version'], null, '', 'not-installed', 'iptables-nft is not installed (not found in PATH)');
    },
  });
  assert.equal(missingTool.code, 3);
  assert.match(missingTool.stderr, /cannot pick the backend: iptables-nft is not installed .*\(the tool is not installed here/);
});

test('an invalid config: exit 3, since the wanted rules are unknown', async () => {
  const bad = await tmp.write('bad', 'nonMasqueradeCIDRs: [2001:db8::/32]\n');
  const r = await cli(['status', '--config', bad], withFake(createFakeBackend()));
  assert.equal(r.code, 3);
  assert.match(r.stderr, /the config is invalid .*\n {2}.*bad:1:22: nonMasqueradeCIDRs\[0\]: ipv6 is not enabled/);
});

test('usage errors exit 2 before anything is read', async () => {
  const r = await cli(['status', '--iptables-mode=both'], withFake(createFakeBackend()));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /invalid value "both" for flag -iptables-mode: want one of auto, legacy, nft/);
  const extra = await cli(['status', 'now'], withFake(createFakeBackend()));
  assert.equal(extra.code, 2);
  assert.match(extra.stderr, /unexpected argument "now"/);
});

test('--help shows an example and the exit codes', async () => {
  const r = await cli(['status', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Examples:\n {2}ip-masq-agent status /);
  assert.match(r.stdout, /Exit status: 0 in sync, 1 drifted or missing, 2 usage error, 3 could not check/);
});

test('compareFamily counts repeated lines: a duplicated jump is unexpected', () => {
  const c = compareFamily('ipv4', ['jump', 'a'], ['jump', 'jump', 'a']);
  assert.equal(c.state, 'drifted');
  assert.deepEqual(c.unexpected, ['jump']);
  assert.deepEqual(c.missing, []);
  assert.equal(c.orderDiffersAt, undefined);
  assert.equal(compareFamily('ipv6', ['x'], []).state, 'missing');
  assert.equal(compareFamily('ipv6', ['x'], ['x']).state, 'in-sync');
});

test('nftables, a dormant table or a base chain of someone else in our table: exit 1, the table line marked "+"', async () => {
  const fake = createFakeNft();
  const backend = createNftablesBackend(fake.runner);
  const loaded = await loadConfig(config, { enableIPv6: true, nomasqAllReservedRanges: false });
  for (const p of buildPolicy(loaded.config, { enableIPv6: true, randomFully: true, toPorts: [] }).families) await applyPolicy(backend, p);
  const deps = { openBackend: async (): Promise<OpenedBackend> => ({ backend, description: 'nftables (test)' }) };
  const clean = await cli(['status', '--config', config, '--enable-ipv6'], deps);
  assert.equal(clean.code, 0, clean.stderr);
  await fake.runner(['nft', '-f', '-'], { input: 'add table inet ip-masq-agent { flags dormant; }\n' });
  const dormant = await cli(['status', '--config', config, '--enable-ipv6'], deps);
  assert.equal(dormant.code, 1);
  assert.match(dormant.stdout, /^IPv4: drifted: 0 missing, 1 unexpected\n {2}\+ table flags set \(nft 1\.0\.6 misprints which; dormant turns off all of the table\)\n/m);
  await fake.runner(['nft', '-f', '-'], { input: 'add table inet ip-masq-agent\n' });
  await fake.runner(['nft', '-f', '-'], { input: 'add chain inet ip-masq-agent sneaky { type nat hook postrouting priority 50; policy accept; }\nadd rule inet ip-masq-agent sneaky masquerade\n' });
  const foreign = await cli(['status', '--config', config, '--enable-ipv6', '--output', 'json'], deps);
  assert.equal(foreign.code, 1);
  const json = JSON.parse(foreign.stdout) as { inSync: boolean; families: { unexpected: string[] }[] };
  assert.equal(json.inSync, false);
  assert.deepEqual(json.families[0]?.unexpected, ['table holds chain "sneaky" type nat hook postrouting prio 50 policy accept, 1 rule, not the agent\'s']);
});

test('connections per entry: listed after the verdict for the families whose rules are there, in JSON too; a failed read is said, and the exit status is the verdict', async () => {
  const fake = createFakeBackend();
  await applyConfig(fake, false);
  const asked: string[] = [];
  const counts: DecisionCount[] = [
    { family: 'ipv4', action: 'keep', list: 'link-local', cidr: '169.254.0.0/16', packets: 0, bytes: 0 },
    { family: 'ipv4', action: 'keep', list: 'nonMasqueradeCIDRs', cidr: '10.0.0.0/8', packets: 30, bytes: 870 },
    { family: 'ipv4', action: 'masquerade', list: 'default', packets: 1234, bytes: 35786 },
  ];
  // The fake's rules with counters: the backend status opened is the one it asks.
  const counting = (counters: (ps: readonly FamilyPolicy[]) => Promise<DecisionCount[]>) => ({
    openBackend: async (): Promise<OpenedBackend> => ({ backend: { ...fake, counters }, description: 'fake (test)' }),
  });
  const deps = counting(async (ps) => {
    asked.push(`${fake.name}: ${ps.map((p) => p.family).join(',')}`);
    return counts;
  });
  const r = await cli(['status', '--config', config, '--enable-ipv6'], deps);
  assert.equal(r.code, 1, 'IPv6 is missing');
  assert.deepEqual(asked, ['fake: ipv4'], 'a missing family is not counted');
  assert.ok(
    r.stdout.endsWith(
      [
        'connections per entry, counted since the rules were last written:',
        '  IPv4     0  keep 169.254.0.0/16 (link-local)',
        '  IPv4    30  keep 10.0.0.0/8 (nonMasqueradeCIDRs)',
        '  IPv4  1234  masquerade (the catch-all rule)',
        '',
      ].join('\n'),
    ),
    r.stdout,
  );
  const json = JSON.parse((await cli(['status', '--config', config, '--enable-ipv6', '--output=json'], deps)).stdout);
  assert.deepEqual(json.connections, counts);
  const failing = counting(async () => Promise.reject(new Error('iptables-nft: exit code 4')));
  const bad = await cli(['status', '--config', config, '--enable-ipv6'], failing);
  assert.equal(bad.code, 1);
  assert.ok(bad.stdout.endsWith("/healthz\nconnections: cannot read the rules' counters: iptables-nft: exit code 4\n"), bad.stdout);
  assert.equal(JSON.parse((await cli(['status', '--config', config, '--enable-ipv6', '--output=json'], failing)).stdout).connections, undefined);
});
