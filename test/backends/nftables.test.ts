import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CommandError } from '../../src/errors.js';
import type { Runner } from '../../src/exec/runner.js';
import type { Family } from '../../src/net/cidr.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import { createNftablesBackend } from '../../src/backends/nftables/nftables-backend.js';
import { NFT_NAMES } from '../../src/backends/nftables/names.js';
import { canonicalLines, formatNftScript } from '../../src/backends/nftables/model.js';
import { ownerOf } from '../../src/backends/shadow-owner.js';
import { describeNftTranslator } from '../../src/backends/nftables/shadow.js';
import { MAX_FOREIGN_LINES, ownedNftLines, parseNftTable, type NftForeignObject } from '../../src/backends/nftables/parse.js';
import { nftForeignDeletions, nftPlanScripts, planNft, planNftCleanup } from '../../src/backends/nftables/plan.js';
import { expectedNftLines, nftRuleTexts, renderNftScript } from '../../src/backends/nftables/render.js';
import { NFT_HAS_NO_JUMP, NFT_HAS_NO_POSITION, runBackendContract } from './contract.js';
import { createFakeNft } from './fake-nft.js';
import { UPDATE_GOLDEN, assertGolden, exemptRange, expectedText, familyPolicy, loadNftGoldenCases, portRange, renderOptionsOf, stableNftJson } from './nftables-fixtures.js';
import { applyPolicy, readOwned } from './sync.js';

const cases = loadNftGoldenCases();

/** The canonical lines of one family's objects in our table (the other family's and unknown objects left out). */
const parseNftJson = (json: string, family: Family): string[] => canonicalLines(parseNftTable(json).families[family]);

describe('nftables golden cases', () => {
  it('has the cases the issue asks for', () => {
    const names = cases.map((c) => c.name);
    const lpm = ['lpm-exception', 'lpm-include-list', 'lpm-metadata-only', 'lpm-snat-default', 'lpm-source-scope', 'lpm-postrouting-first', 'lpm-dual-stack', 'lpm-ipv6-mapped-edges'];
    for (const n of ['defaults', 'empty-list', 'masq-link-local', 'ipv6', 'redundant-cidrs', 'random-fully-off', 'to-ports-1', 'to-ports-2', 'to-ports-3', ...lpm]) {
      assert.ok(names.includes(n), `missing golden case ${n}`);
    }
  });

  for (const c of cases) {
    it(`${c.name}: renders script.nft`, () => {
      assertGolden(join(c.dir, 'script.nft'), renderNftScript(c.policies, renderOptionsOf(c)));
    });
    if (c.policies.length === 0) continue;
    it(`${c.name}: expected read-back lines match expected.txt`, () => {
      assertGolden(join(c.dir, 'expected.txt'), expectedText(c.policies));
    });
    // A replace-by-name script needs its objects to exist first; the integration test loads it.
    if (c.existing) continue;
    it(`${c.name}: parsing what real nft printed gives the expected lines`, { skip: UPDATE_GOLDEN }, () => {
      const path = join(c.dir, 'list.json');
      assert.ok(existsSync(path), `${path} is missing: run the integration test with UPDATE_GOLDEN=1`);
      const json = readFileSync(path, 'utf8');
      for (const p of c.policies) assert.deepEqual(parseNftJson(json, p.family), expectedNftLines(p));
    });
    it(`${c.name}: the fake nft lists exactly what real nft listed`, { skip: UPDATE_GOLDEN }, async () => {
      const fake = createFakeNft();
      await fake.runner(['nft', '-f', '-'], { input: renderNftScript(c.policies) });
      const { stdout } = await fake.runner(['nft', '-j', 'list', 'table', 'inet', 'ip-masq-agent']);
      assert.deepEqual(stableNftJson(stdout), stableNftJson(readFileSync(join(c.dir, 'list.json'), 'utf8')));
    });
  }
});

describe('nftables repair golden cases: what nft listed in, the planned scripts out', () => {
  const repairs = loadNftGoldenCases('nftables-plan');

  it('has a case for each repair', () => {
    const want = ['fresh-node', 'as-left', 'before-counters', 'set-other-flags', 'dormant-table', 'foreign-base-chain-prio-50', 'renamed-chain', 'map-named-like-set', 'ipv6-off'];
    assert.deepEqual(repairs.map((c) => c.name).sort(), want.sort());
  });

  for (const c of repairs) {
    it(`${c.name}: plans plan.nft from what real nft listed`, async () => {
      const path = join(c.dir, 'list.json');
      const json = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
      const table = json === undefined ? undefined : parseNftTable(json);
      const [policy] = c.policies;
      if (policy === undefined) {
        const [family = 'ipv6'] = c.remove;
        const todo = planNftCleanup(table, family);
        assertGolden(join(c.dir, 'plan.nft'), typeof todo === 'object' ? todo.script : `${todo}\n`);
        return;
      }
      const owned = table === undefined ? [] : ownedNftLines(table, policy.family);
      const plan = planNft({ family: policy.family, owned, table, translators: [] }, policy);
      const scripts = nftPlanScripts(plan);
      assertGolden(join(c.dir, 'plan.nft'), scripts.length === 0 ? '# up to date: nothing runs\n' : scripts.join('# next transaction\n'));
      assert.equal(plan.upToDate, c.name === 'as-left');
    });
  }
});

describe('renderNftScript', () => {
  const base = (over: Partial<FamilyPolicy> = {}): FamilyPolicy => ({
    ...familyPolicy({ family: 'ipv4', linkLocal: true, cidrs: ['10.0.0.0/8'], randomFully: true, toPorts: [] }),
    ...over,
  });

  it('names no table but inet ip-masq-agent, in every command', () => {
    for (const c of cases) {
      for (const line of renderNftScript(c.policies, renderOptionsOf(c)).split('\n')) {
        if (line === '' || line.startsWith('#') || line.startsWith('\t') || line === '}') continue;
        assert.match(line, /^(add|delete) (table|chain|set|element|rule) inet ip-masq-agent( |$)/, line);
      }
    }
  });

  it('spreads new connections over the --to-ports ranges in proportion to their size, like the statistic rules', () => {
    const ranges = ['1024-29999', '32768-40000', '50000', '60000-60009'].map(portRange);
    const rules = nftRuleTexts(base({ toPorts: ranges })).filter((r) => r.startsWith('meta l4proto tcp'));
    assert.equal(rules.length, ranges.length);
    const total = ranges.reduce((a, r) => a + r.to - r.from + 1, 0);
    // Probability (as a fraction num/den) that a connection reaches rule i and is taken by it.
    let reachNum = 1n;
    let reachDen = 1n;
    rules.forEach((rule, i) => {
      const r = ranges[i]!;
      assert.ok(rule.includes(`masquerade to :${r.text} fully-random`), rule);
      const m = /numgen random mod (\d+) < (\d+)/.exec(rule);
      const [mod, below] = m ? [BigInt(m[1]!), BigInt(m[2]!)] : [1n, 1n]; // the last rule takes all the rest
      const takenNum = reachNum * below;
      const takenDen = reachDen * mod;
      assert.equal(takenNum * BigInt(total), BigInt(r.to - r.from + 1) * takenDen, `range ${r.text}`);
      reachNum *= mod - below;
      reachDen *= mod;
    });
    assert.equal(reachNum, 0n, 'every connection is taken by some range');
  });

  it('puts the port rules for tcp, udp and sctp before the catch-all masquerade', () => {
    const rules = nftRuleTexts(base({ randomFully: false, toPorts: [portRange('1024-29999')] }));
    assert.deepEqual(rules.slice(3), [
      'meta l4proto tcp counter masquerade to :1024-29999',
      'meta l4proto udp counter masquerade to :1024-29999',
      'meta l4proto sctp counter masquerade to :1024-29999',
      'counter masquerade',
    ]);
  });

  // buildPolicy gives each family only its own ranges, and the config refuses an SNAT address of the other family.
  it('a range of the other family inside a policy is refused: by the flattening, else by nft, which applies none of the script', async () => {
    assert.throws(() => renderNftScript([base({ exempt: [exemptRange('2001:db8::/32')], sources: [] })]), /not ipv4/);
    const fake = createFakeNft();
    await assert.rejects(fake.runner(['nft', '-f', '-'], { input: renderNftScript([base({ exempt: [exemptRange('2001:db8::/32')] })]) }), /not ipv4/);
    assert.ok(!fake.hasTable());
  });

  it('refuses to apply and remove the same family, or two policies of one family', () => {
    assert.throws(() => renderNftScript([base()], { remove: ['ipv4'] }), /both applied and removed/);
    assert.throws(() => renderNftScript([base(), base()]), /two ipv4 policies/);
  });
});

describe('parseNftJson', () => {
  const doc = (...objects: unknown[]): string => JSON.stringify({ nftables: [{ metainfo: {} }, ...objects] });
  const set = (name: string, elem: unknown[], extra: object = {}) => ({
    set: { family: 'inet', table: 'ip-masq-agent', name, type: 'ipv4_addr', handle: 1, flags: ['interval'], elem, ...extra },
  });

  it('reads elements as CIDR text (ranges that are no block as a-b) in address order, whatever form nft used', () => {
    const json = doc(
      set('nonmasq4', [
        { prefix: { addr: '192.168.0.0', len: 16 } },
        '192.0.2.1',
        { range: ['10.0.0.0', '10.255.255.255'] },
        { range: ['198.51.100.1', '198.51.100.5'] },
        { elem: { val: '203.0.113.9', comment: 'hand-made' } },
      ]),
    );
    assert.deepEqual(parseNftJson(json, 'ipv4'), [
      'set nonmasq4 type ipv4_addr flags interval',
      'element nonmasq4 10.0.0.0/8',
      'element nonmasq4 192.0.2.1/32',
      'element nonmasq4 192.168.0.0/16',
      'element nonmasq4 198.51.100.1-198.51.100.5',
      'element nonmasq4 203.0.113.9/32 {"val":"203.0.113.9","comment":"hand-made"}',
    ]);
  });

  it('shows rules it does not know as JSON, and counters without their values', () => {
    const rule = (expr: unknown[]) => ({ rule: { family: 'inet', table: 'ip-masq-agent', chain: 'postrouting4', handle: 9, expr } });
    const json = doc(rule([{ counter: { packets: 12, bytes: 3400 } }, { accept: null }]), rule([{ snat: { addr: '192.0.2.1' } }]));
    assert.deepEqual(parseNftJson(json, 'ipv4'), ['rule postrouting4 counter accept', 'rule postrouting4 {"snat":{"addr":"192.0.2.1"}}']);
  });

  it("ignores the other family's objects and anything outside our table", () => {
    const json = doc(
      set('nonmasq6', ['2001:db8::1']),
      { set: { family: 'ip', table: 'other', name: 'nonmasq4', type: 'ipv4_addr', elem: ['192.0.2.1'] } },
      { chain: { family: 'inet', table: 'ip-masq-agent', name: 'postrouting6', handle: 2 } },
    );
    assert.deepEqual(parseNftJson(json, 'ipv4'), []);
    assert.deepEqual([...parseNftTable(json).names], ['nonmasq6', 'postrouting6']);
  });

  it('reads addresses nft prints in the ::ffff:a.b.c.d and ::a.b.c.d forms as canonical IPv6', () => {
    const json = doc(set('nonmasq6', [{ range: ['::fffe:8000:0', '::ffff:255.255.255.255'] }, { prefix: { addr: '::ffff:0.0.0.0', len: 96 } }, '::1.2.3.4'], { type: 'ipv6_addr' }));
    assert.deepEqual(parseNftJson(json, 'ipv6').slice(1), ['element nonmasq6 ::102:304/128', 'element nonmasq6 ::fffe:8000:0-::ffff:ffff:ffff', 'element nonmasq6 ::ffff:0:0/96']);
  });

  it('refuses output that is not nft JSON', () => {
    assert.throws(
      () => parseNftJson('Error: oops', 'ipv4'),
      (e: unknown) => e instanceof Error && /not JSON/.test(e.message) && e.cause instanceof SyntaxError,
      "the JSON parser's error is kept as the cause",
    );
    assert.throws(() => parseNftJson('{"x": 1}', 'ipv4'), /no "nftables" array/);
  });
});

runBackendContract(
  'nftables (fake nft)',
  async () => {
    const fake = createFakeNft();
    return {
      backend: createNftablesBackend(fake.runner),
      piped: fake.scripts,
      damage: async (family) => {
        await fake.runner(['nft', 'flush', 'set', 'inet', 'ip-masq-agent', NFT_NAMES[family].set]);
      },
      dispose: () => undefined,
    };
  },
  { noStrayJumps: NFT_HAS_NO_JUMP, noPosition: NFT_HAS_NO_POSITION },
);

const LIST_TABLE = ['nft', '-j', 'list', 'table', 'inet', 'ip-masq-agent'];
const LIST_CHAINS = ['nft', '-j', 'list', 'chains'];

describe('nftables backend (fake nft)', () => {
  const v4 = familyPolicy({ family: 'ipv4', linkLocal: true, cidrs: ['10.0.0.0/8', '192.0.2.0/24'], randomFully: true, toPorts: [] });
  const v6 = familyPolicy({ family: 'ipv6', linkLocal: true, cidrs: ['2001:db8:200::/48'], randomFully: true, toPorts: [] });

  it('on a fresh node: reads (our table, the chains of others), then applies with exactly one `nft -f -` carrying the rendered script', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, v4);
    assert.deepEqual(fake.calls, [LIST_TABLE, LIST_CHAINS, ['nft', '-f', '-']]);
    assert.deepEqual(fake.scripts, [renderNftScript([v4])]);
  });

  it('reads an absent table as nothing, with one list of our table and one of the chains (no rules) of all tables', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    assert.deepEqual(await readOwned(backend, 'ipv4'), []);
    assert.deepEqual(fake.calls, [LIST_TABLE, LIST_CHAINS]);
  });

  it('reports read failures other than a missing table', async () => {
    const runner: Runner = async (argv) => {
      throw new CommandError(argv, 1, 'Error: Operation not permitted\n', 'other', 'nft: exit code 1: Error: Operation not permitted');
    };
    const backend = createNftablesBackend(runner);
    await assert.rejects(readOwned(backend, 'ipv4'), /Operation not permitted/);
  });

  it('a failed apply leaves the previous state in place and says why', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, v4);
    fake.failNextScript('Error: Could not process rule: Cannot allocate memory');
    await assert.rejects(applyPolicy(backend, familyPolicy({ family: 'ipv4', linkLocal: false, cidrs: [], randomFully: false, toPorts: [] })), (e) => {
      assert.ok(e instanceof CommandError);
      assert.match(e.message, /Cannot allocate memory/);
      return true;
    });
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  it('replaces old elements even when the new ones lie inside them (no stale or conflicting intervals)', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, v4);
    const inner = familyPolicy({ family: 'ipv4', linkLocal: false, cidrs: ['10.244.0.0/16', '192.0.2.128/25'], randomFully: true, toPorts: [] });
    await applyPolicy(backend, inner);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(inner));
  });

  it('heals a set someone re-created with other flags: replaces it by name, in one transaction', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, v4);
    await fake.runner(['nft', '-f', '-'], {
      input: 'delete chain inet ip-masq-agent postrouting4\ndelete set inet ip-masq-agent nonmasq4\nadd set inet ip-masq-agent nonmasq4 { type ipv4_addr; flags constant; }\n',
    });
    assert.notDeepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    fake.calls.length = 0;
    await applyPolicy(backend, v4);
    assert.deepEqual(
      fake.calls.map((a) => a.join(' ')),
      ['nft -j list table inet ip-masq-agent', 'nft -j list chains', 'nft -f -'],
    );
    assert.equal(fake.scripts.at(-1), renderNftScript([v4], { existing: new Set(['nonmasq4']) }));
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  it('heals a deleted table at the next apply', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    await fake.runner(['nft', 'delete', 'table', 'inet', 'ip-masq-agent']);
    assert.deepEqual(await readOwned(backend, 'ipv4'), []);
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  it('cleanup of the last family deletes the table; of one of two removes only that family', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    fake.calls.length = 0;
    await backend.cleanup('ipv6');
    assert.deepEqual(fake.calls, [
      ['nft', '-j', '-t', 'list', 'table', 'inet', 'ip-masq-agent'],
      ['nft', '-f', '-'],
    ]);
    const all = new Set(['nonmasq4', 'postrouting4', 'nonmasq6', 'postrouting6']);
    assert.equal(fake.scripts.at(-1), renderNftScript([], { remove: ['ipv6'], existing: all }));
    assert.match(fake.scripts.at(-1)!, /^delete chain inet ip-masq-agent postrouting6\ndelete set inet ip-masq-agent nonmasq6$/m);
    assert.ok(fake.hasTable());
    fake.calls.length = 0;
    await backend.cleanup('ipv6');
    assert.deepEqual(fake.calls, [['nft', '-j', '-t', 'list', 'table', 'inet', 'ip-masq-agent']], 'nothing to remove: no write');
    await backend.cleanup('ipv4');
    assert.ok(!fake.hasTable());
    fake.calls.length = 0;
    await backend.cleanup('ipv4');
    assert.deepEqual(fake.calls, [['nft', '-j', '-t', 'list', 'table', 'inet', 'ip-masq-agent']]);
  });

  it('never lists the ruleset nor names another table', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    await readOwned(backend, 'ipv4');
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv6');
    for (const argv of fake.calls) {
      assert.ok(!argv.includes('ruleset'), argv.join(' '));
      if (argv.includes('table')) assert.deepEqual(argv.slice(-2), ['inet', 'ip-masq-agent']);
    }
  });
});

describe('nftables backend with longest-prefix policies (fake nft)', () => {
  const lpm = familyPolicy({
    family: 'ipv4',
    linkLocal: true,
    cidrs: ['10.0.0.0/8'],
    randomFully: true,
    toPorts: [],
    masquerade: ['10.9.0.0/16'],
    snat: ['198.51.100.0/24>192.0.2.50'],
    sources: ['10.244.0.0/16'],
  });

  it('renders the exception as flattened keep intervals, the SNAT map and the source scope; no named object besides set and chain', () => {
    const script = renderNftScript([lpm]);
    assert.match(script, /^\t10\.0\.0\.0-10\.8\.255\.255,\n\t10\.10\.0\.0-10\.255\.255\.255,\n\t169\.254\.0\.0\/16,$/m);
    assert.deepEqual(nftRuleTexts(lpm).slice(3), [
      'ip saddr != 10.244.0.0/16 return',
      'counter snat ip to ip daddr map { 198.51.100.0/24 : 192.0.2.50 } fully-random',
      'counter masquerade fully-random',
    ]);
    // The blind delete of a later apply knows every object by name: the maps and sets in rules are anonymous.
    assert.deepEqual(
      script.match(/^add (set|chain|map) \S+ \S+ \S+/gm)?.filter((l, i, all) => all.indexOf(l) === i),
      ['add chain inet ip-masq-agent postrouting4', 'add set inet ip-masq-agent nonmasq4'],
    );
  });

  it('a quiet resync writes nothing: what nft lists back is what was expected', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, lpm);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(lpm));
  });

  it('a changed SNAT map element or a deleted keep interval is drift, and the next apply repairs it', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, lpm);
    const changed = { ...lpm, actions: lpm.actions!.map((a) => (a.action.kind === 'snat' ? { ...a, action: { ...a.action, toSourceText: '192.0.2.51' } } : a)) };
    await fake.runner(['nft', '-f', '-'], { input: renderNftScript([changed]) });
    const drifted = await readOwned(backend, 'ipv4');
    assert.notDeepEqual(drifted, backend.expected(lpm));
    assert.ok(
      drifted.some((l) => l.includes('198.51.100.0/24 : 192.0.2.51')),
      drifted.join('\n'),
    );
    await applyPolicy(backend, lpm);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(lpm));
    await fake.runner(['nft', 'flush', 'set', 'inet', 'ip-masq-agent', 'nonmasq4']);
    assert.notDeepEqual(await readOwned(backend, 'ipv4'), backend.expected(lpm));
    await applyPolicy(backend, lpm);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(lpm));
  });

  it('a source scope without entries of the family translates nothing: the chain ends after the keep set', () => {
    const none = familyPolicy({ family: 'ipv6', linkLocal: true, cidrs: [], randomFully: true, toPorts: [], sources: [] });
    assert.deepEqual(nftRuleTexts(none), ['meta nfproto != ipv6 return', 'fib daddr type local return', 'ip6 daddr @nonmasq6 return']);
  });

  it('--to-ports applies to SNAT as to masquerade: the same spread over the SNAT map, before the masquerade rules', () => {
    const { sources: _unscoped, ...rest } = lpm;
    const ports: FamilyPolicy = { ...rest, toPorts: [portRange('1024-29999'), portRange('30000-65535')] };
    const rules = nftRuleTexts(ports).slice(3);
    const map = '{ 198.51.100.0/24 : 192.0.2.50 }';
    assert.deepEqual(rules.slice(0, 2), [
      `meta l4proto tcp numgen random mod 64512 < 28976 counter snat ip to ip daddr map ${map}:1024-29999 fully-random`,
      `meta l4proto tcp counter snat ip to ip daddr map ${map}:30000-65535 fully-random`,
    ]);
    assert.equal(rules[6], `counter snat ip to ip daddr map ${map} fully-random`);
    assert.equal(rules[7], 'meta l4proto tcp numgen random mod 64512 < 28976 counter masquerade to :1024-29999 fully-random');
  });

  it('the fake refuses what nft refuses: ports without a transport protocol match, overlapping map keys', async () => {
    const fake = createFakeNft();
    const head = 'add table inet ip-masq-agent\nadd chain inet ip-masq-agent c\n';
    await assert.rejects(fake.runner(['nft', '-f', '-'], { input: `${head}add rule inet ip-masq-agent c snat ip to ip daddr map { 10.0.0.0/8 : 192.0.2.1 }:80\n` }), /transport protocol mapping/);
    await assert.rejects(
      fake.runner(['nft', '-f', '-'], { input: `${head}add rule inet ip-masq-agent c snat ip to ip daddr map { 10.0.0.0/8 : 192.0.2.1, 10.1.0.0/16 : 192.0.2.2 }\n` }),
      /conflicting intervals/,
    );
    assert.ok(!fake.hasTable(), 'a refused batch changes nothing');
  });
});

describe('nft rendering at the largest sizes', () => {
  it('renders 200,000 elements without overflowing the stack (push(...spread) did from 125,000)', () => {
    const exempt = Array.from({ length: 200_000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`).map((t) => {
      return exemptRange(t);
    });
    const policy: FamilyPolicy = { family: 'ipv4', exempt, randomFully: false, toPorts: [] };
    const script = renderNftScript([policy]);
    assert.equal(script.split('\n').filter((l) => l.startsWith('\t10.')).length, 200_000);
    assert.equal(expectedNftLines(policy).length, 1 + 200_000 + 1 + 4, 'set, elements, chain, four rules');
  });
});

describe('nftables: drift in our own table (the table itself, objects that are not ours)', () => {
  const v4 = familyPolicy({ family: 'ipv4', linkLocal: true, cidrs: ['10.0.0.0/8'], randomFully: true, toPorts: [] });
  const v6 = familyPolicy({ family: 'ipv6', linkLocal: true, cidrs: ['2001:db8:200::/48'], randomFully: true, toPorts: [] });
  const T = 'inet ip-masq-agent';
  const DORMANT = 'table flags set (nft 1.0.6 misprints which; dormant turns off all of the table)';
  const nft = (fake: ReturnType<typeof createFakeNft>, script: string) => fake.runner(['nft', '-f', '-'], { input: `${script}\n` });

  async function dualStack() {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    return { fake, backend };
  }

  it('a dormant table is drift of IPv4 (the family always managed); its repair wakes the table, then rebuilds, and IPv6 stays', async () => {
    const { fake, backend } = await dualStack();
    await nft(fake, `add table ${T} { flags dormant; }`);
    const seen = await readOwned(backend, 'ipv4');
    assert.deepEqual(seen, [DORMANT, ...backend.expected(v4)]);
    assert.deepEqual(await readOwned(backend, 'ipv6'), backend.expected(v6), 'the table lines are IPv4’s alone');
    fake.calls.length = 0;
    await applyPolicy(backend, v4);
    assert.deepEqual(
      fake.calls.map((a) => a.join(' ')),
      ['nft -j list table inet ip-masq-agent', 'nft -j list chains', 'nft -f -', 'nft -f -'],
    );
    assert.equal(fake.scripts.at(-2), `add table ${T}\n`, 'the wake is a transaction of its own');
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    assert.deepEqual(await readOwned(backend, 'ipv6'), backend.expected(v6));
  });

  it('a dormant table refuses the blind apply (a base chain in the batch that wakes it); apply falls back and repairs', async () => {
    const { fake, backend } = await dualStack();
    await nft(fake, `add table ${T} { flags dormant; }`);
    await assert.rejects(fake.runner(['nft', '-f', '-'], { input: renderNftScript([v4]) }), /Invalid argument/);
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  it('an empty dormant table, whose listing nft 1.0.6 cuts off after "flags": read says so instead of failing, and apply fills it', async () => {
    const fake = createFakeNft();
    const backend = createNftablesBackend(fake.runner);
    await nft(fake, `add table ${T} { flags dormant; }`);
    const seen = await readOwned(backend, 'ipv4');
    assert.deepEqual(seen, [DORMANT]);
    assert.deepEqual(await readOwned(backend, 'ipv6'), []);
    fake.calls.length = 0;
    await applyPolicy(backend, v4);
    assert.deepEqual(
      fake.calls.map((a) => a.join(' ')),
      ['nft -j list table inet ip-masq-agent', 'nft -j list chains', 'nft -f -', 'nft -j -t list table inet ip-masq-agent', 'nft -j list chains', 'nft -f -'],
      'the wake, then a second (terse) listing to plan the rebuild from',
    );
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  it('a base chain of someone else in our table that masquerades at priority 50: seen, and deleted with the rebuild in one transaction', async () => {
    const { fake, backend } = await dualStack();
    await nft(fake, `add chain ${T} sneaky { type nat hook postrouting priority 50; policy accept; }\nadd rule ${T} sneaky masquerade`);
    const seen = await readOwned(backend, 'ipv4');
    assert.deepEqual(seen, ['table holds chain "sneaky" type nat hook postrouting prio 50 policy accept, 1 rule, not the agent\'s', ...backend.expected(v4)]);
    fake.calls.length = 0;
    await applyPolicy(backend, v4);
    assert.deepEqual(
      fake.calls.map((a) => a.join(' ')),
      ['nft -j list table inet ip-masq-agent', 'nft -j list chains', 'nft -f -'],
    );
    assert.match(fake.scripts.at(-1)!, /^delete chain inet ip-masq-agent handle \d+$/m);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    assert.deepEqual(await readOwned(backend, 'ipv6'), backend.expected(v6));
  });

  it('a map named like our set, our chain gone: seen, and replaced by our set (not "File exists" forever)', async () => {
    const { fake, backend } = await dualStack();
    await nft(fake, `delete chain ${T} postrouting4\ndelete set ${T} nonmasq4\nadd map ${T} nonmasq4 { type ipv4_addr : ipv4_addr; }`);
    const seen = await readOwned(backend, 'ipv4');
    assert.deepEqual(seen, ['table holds map "nonmasq4" type ipv4_addr : ipv4_addr, not the agent\'s']);
    await applyPolicy(backend, v4);
    assert.match(fake.scripts.at(-1)!, /^delete map inet ip-masq-agent nonmasq4$/m);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    // Without the read before (a config change): the blind apply is refused, the fallback repairs.
    await nft(fake, `delete chain ${T} postrouting4\ndelete set ${T} nonmasq4\nadd map ${T} nonmasq4 { type ipv4_addr : ipv4_addr; }`);
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  it('our chain renamed: the renamed one is seen, and a config change applies (not "Device or resource busy" forever)', async () => {
    const { fake, backend } = await dualStack();
    await fake.runner(['nft', 'rename', 'chain', 'inet', 'ip-masq-agent', 'postrouting4', 'renamed']);
    const read = await readOwned(backend, 'ipv4');
    assert.ok(read.includes('table holds chain "renamed" type nat hook postrouting prio 100 policy accept, 4 rules, not the agent\'s'), read.join('\n'));
    await assert.rejects(fake.runner(['nft', '-f', '-'], { input: renderNftScript([v4]) }), /Device or resource busy/);
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  it('foreign chains go before the chains they jump to; at most MAX_FOREIGN_LINES lines, yet every object is deleted', async () => {
    const { fake, backend } = await dualStack();
    const many = Array.from({ length: MAX_FOREIGN_LINES + 5 }, (_, i) => `add chain ${T} c${i}`);
    await nft(fake, [...many, `add chain ${T} a`, `add rule ${T} a jump c0`, `add rule ${T} c1 jump a`].join('\n'));
    const seen = await readOwned(backend, 'ipv4');
    const tableLines = seen.filter((l) => l.startsWith('table '));
    assert.equal(tableLines.length, MAX_FOREIGN_LINES + 1);
    assert.equal(tableLines.at(-1), "table holds 6 more objects that are not the agent's");
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  it('a foreign object nft cannot name fails the sync with what and where; the rules in place stay', () => {
    const chain = (name: string, targets: string[] = []): NftForeignObject => ({ kind: 'chain', name, handle: name.length, targets, detail: '' });
    // The script's lines after its header and `add table`.
    const deletions = (foreign: NftForeignObject[]) => formatNftScript(nftForeignDeletions(foreign)).trimEnd().split('\n').slice(2);
    assert.deepEqual(deletions([chain('bb'), chain('a', ['bb']), { kind: 'counter', name: 'c', handle: 9, targets: [], detail: '' }]), [
      `delete chain ${T} handle 1`,
      `delete chain ${T} handle 2`,
      `delete counter ${T} handle 9`,
    ]);
    assert.deepEqual(deletions([{ kind: 'ct helper', name: 'ftp1', handle: 4, targets: [], detail: '' }]), [`delete ct helper ${T} ftp1`]);
    assert.throws(
      () => nftForeignDeletions([{ kind: 'ct helper', name: 'a "b', handle: 4, targets: [], detail: '' }]),
      /table inet ip-masq-agent holds ct helper "a \\"b", which the agent did not write and cannot name to delete; remove it by hand/,
    );
    assert.throws(() => nftForeignDeletions([{ kind: 'tunnel', name: 't', handle: 4, targets: [], detail: '' }]), /holds tunnel "t"/);
  });

  it('parses the table lines of a real nft 1.0.6 listing with a stray flags string, and of one cut off', () => {
    const real =
      '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "ip-masq-agent", "handle": 1, "flags": "cnt"}}, {"counter": {"family": "inet", "name": "cnt", "table": "ip-masq-agent", "handle": 3, "packets": 0, "bytes": 0}}]}';
    const backendLines = parseNftJson(real, 'ipv4');
    assert.deepEqual(backendLines, []);
    const cut =
      '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "ip-masq-agent", "handle": 1, "flags": \n';
    assert.deepEqual(parseNftJson(cut, 'ipv4'), []);
    assert.throws(() => parseNftJson('{"nftables": [{"table": {"family": "inet"', 'ipv4'), /not JSON/, 'any other cut is still an error');
  });
});

describe('nftables: nat postrouting chains of other tables that translate before ours (shadowing)', () => {
  const doc = (...objects: unknown[]) => JSON.stringify({ nftables: [{ metainfo: { json_schema_version: 1 } }, ...objects] });
  const chain = (family: string, table: string, name: string, base?: { type: string; prio: number }) => ({
    chain: { family, table, name, handle: 1, ...(base ? { type: base.type, hook: 'postrouting', prio: base.prio, policy: 'accept' } : {}) },
  });
  const rule = (family: string, table: string, name: string, expr: unknown[]) => ({ rule: { family, table, chain: name, handle: 2, expr } });
  // Other tables' chains, as real nft lists them, beside the fake's own table.
  const others: Record<string, unknown[]> = {
    'ip kube-proxy nat-postrouting': [rule('ip', 'kube-proxy', 'nat-postrouting', [{ jump: { target: 'masquerading' } }])],
    'ip kube-proxy masquerading': [rule('ip', 'kube-proxy', 'masquerading', [{ masquerade: { flags: ['fully-random'] } }])],
    'ip6 cni-x post': [rule('ip6', 'cni-x', 'post', [{ snat: { family: 'ip6', addr: '2001:db8::1' } }])],
    'inet quiet post': [rule('inet', 'quiet', 'post', [{ counter: null }, { accept: null }])],
  };
  const chains = [
    chain('ip', 'kube-proxy', 'nat-postrouting', { type: 'nat', prio: 100 }),
    chain('ip', 'kube-proxy', 'masquerading'),
    chain('ip6', 'cni-x', 'post', { type: 'nat', prio: 50 }),
    chain('inet', 'quiet', 'post', { type: 'nat', prio: -100 }),
    chain('ip', 'late', 'post', { type: 'nat', prio: 101 }),
    chain('ip', 'filtering', 'post', { type: 'filter', prio: 0 }),
  ];

  function withOthers(extra: unknown[] = []) {
    const fake = createFakeNft();
    const runner: Runner = async (argv, options) => {
      const args = argv.slice(1).join(' ');
      if (args === '-j list chains') {
        const own = JSON.parse((await fake.runner(argv, options)).stdout) as { nftables: unknown[] };
        return { stdout: doc(...own.nftables.slice(1), ...chains, ...extra), stderr: '', exitCode: 0 };
      }
      const m = /^-j list chain (.+)$/.exec(args);
      if (m) {
        fake.calls.push([...argv]);
        return { stdout: doc(...(others[m[1]!] ?? [])), stderr: '', exitCode: 0 };
      }
      return fake.runner(argv, options);
    };
    return { fake, backend: createNftablesBackend(runner) };
  }
  const v4 = familyPolicy({ family: 'ipv4', linkLocal: true, cidrs: ['10.0.0.0/8'], randomFully: true, toPorts: [] });
  const v6 = familyPolicy({ family: 'ipv6', linkLocal: true, cidrs: [], randomFully: true, toPorts: [] });

  it('reports, per family, the chains at our priority or before that masquerade or SNAT (through a jump too), with their owner', async () => {
    const { backend } = withOthers();
    const plan4 = await applyPolicy(backend, v4);
    assert.deepEqual(plan4.shadowing, [{ rule: 'table ip kube-proxy chain nat-postrouting prio 100: jump masquerading: masquerade', owner: 'kube-proxy' }]);
    const plan6 = await applyPolicy(backend, v6);
    assert.deepEqual(plan6.shadowing, [{ rule: 'table ip6 cni-x chain post prio 50: snat', owner: 'unknown' }]);
    assert.deepEqual(backend.plan(await backend.read('ipv4'), v4), { ...plan4, upToDate: true, wake: false, ops: [] }, 'a quiet resync reports them too');
  });

  it('with postrouting-position=first (priority 99) a chain at srcnat runs after ours: not reported', async () => {
    const { backend } = withOthers();
    const first = { ...v4, postroutingPosition: 'first' as const };
    assert.deepEqual((await applyPolicy(backend, first)).shadowing, []);
  });

  it('lists only candidate chains, at most 8 per read', async () => {
    const many = Array.from({ length: 20 }, (_, i) => chain('ip', 'many', `c${i}`, { type: 'nat', prio: 0 }));
    const { fake, backend } = withOthers(many);
    await backend.read('ipv4');
    const listed = fake.calls.filter((a) => a.includes('chain')).map((a) => a.slice(-3).join(' '));
    assert.equal(listed.length, 8);
    assert.deepEqual(listed.slice(0, 3), ['ip kube-proxy nat-postrouting', 'ip kube-proxy masquerading', 'inet quiet post']);
  });

  it("tells the owner of iptables-nft's nat POSTROUTING from the chain it jumps to", () => {
    const t = { family: 'ip', table: 'nat', chain: 'POSTROUTING', priority: 100 };
    assert.deepEqual(describeNftTranslator({ ...t, translation: 'jump KUBE-POSTROUTING: masquerade' }), {
      rule: 'table ip nat chain POSTROUTING prio 100: jump KUBE-POSTROUTING: masquerade',
      owner: 'kube-proxy',
    });
    assert.deepEqual(describeNftTranslator({ ...t, translation: 'masquerade' }), { rule: 'table ip nat chain POSTROUTING prio 100: masquerade', owner: 'unknown' });
  });

  it('tells the owner from table and chain names', () => {
    assert.equal(ownerOf(['kube-proxy', 'nat-postrouting']), 'kube-proxy');
    assert.equal(ownerOf(['KUBE-POSTROUTING']), 'kube-proxy');
    assert.equal(ownerOf(['nat', 'cali-nat-outgoing']), 'calico');
    assert.equal(ownerOf(['CNI-1234abcd']), 'cni-bridge');
    assert.equal(ownerOf(['flannel-ipv4', 'postrtg']), 'flannel');
    assert.equal(ownerOf(['nat', 'POSTROUTING']), 'unknown');
  });
});
