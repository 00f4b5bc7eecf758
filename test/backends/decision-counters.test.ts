// The counter parsers on listings captured from the real tools (decision-counters.integration
// test, CAPTURE_COUNTERS=1): 40 flows masqueraded, 30 to 10.0.0.0/8 and 20 to 198.51.100.0/24 kept.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseIptablesCounters } from '../../src/backends/iptables/counters.js';
import { chainRules, formatSaveRule } from '../../src/backends/iptables/render.js';
import { parseNftCounters } from '../../src/backends/nftables/counters.js';
import type { DecisionCount } from '../../src/policy/types.js';
import { COUNTED_POLICIES, countersFixturePath } from './decision-counters-fixtures.js';
import { policyOf } from './iptables-helpers.js';

const OPTS = { chain: 'IP-MASQ-AGENT', randomFully: true };
const plain = COUNTED_POLICIES.plain;
const brief = (cs: readonly DecisionCount[]): string[] => cs.map((c) => `${c.action} ${c.list} ${c.cidr ?? '-'} ${c.packets}`);

const PLAIN_COUNTS = ['keep link-local 169.254.0.0/16 0', 'keep nonMasqueradeCIDRs 10.0.0.0/8 30', 'keep nonMasqueradeCIDRs 198.51.100.0/24 20', 'masquerade default - 40'];

describe('parseIptablesCounters', () => {
  for (const tool of ['iptables-nft', 'iptables-legacy']) {
    it(`reads each rule's connections from what ${tool} printed`, () => {
      const counts = parseIptablesCounters(readFileSync(countersFixturePath(tool), 'utf8'), plain, OPTS.chain);
      assert.deepEqual(brief(counts), PLAIN_COUNTS);
      assert.deepEqual(
        counts.map((c) => c.bytes),
        [0, 870, 580, 1160],
      );
    });
  }

  it('maps a rule whether or not the binary kept --random-fully (it decides nothing)', () => {
    const listing = readFileSync(countersFixturePath('iptables-nft'), 'utf8').replace(' --random-fully', '');
    assert.ok(!listing.includes('random-fully'));
    assert.deepEqual(brief(parseIptablesCounters(listing, plain, OPTS.chain)), PLAIN_COUNTS);
  });

  it('skips a line that maps to no rule of the policy (drift), and counts what still maps', () => {
    const listing = readFileSync(countersFixturePath('iptables-nft'), 'utf8').replace('-d 10.0.0.0/8', '-d 10.0.0.0/9');
    assert.deepEqual(
      brief(parseIptablesCounters(listing, plain, OPTS.chain)),
      PLAIN_COUNTS.map((l) => l.replace('10.0.0.0/8 30', '10.0.0.0/8 0')),
    );
  });

  it('adds up the rules of one row: the --to-ports spread and one rule per source range', () => {
    const policy = policyOf({
      family: 'ipv4',
      chain: OPTS.chain,
      randomFully: true,
      randomFullySupported: true,
      exempt: ['10.0.0.0/8'],
      masquerade: ['10.9.0.0/16'],
      snat: ['198.51.100.0/24>192.0.2.1'],
      toPorts: ['1024-29999', '30000-65535'],
      sources: ['10.244.0.0/16', '10.245.0.0/16'],
    });
    const rules = chainRules(policy, OPTS);
    // Rule i counted i+1 connections, as -S -v prints it.
    const listing = rules.map((r, i) => formatSaveRule(r).replace(/ -j /, ` -c ${i + 1} ${10 * (i + 1)} -j `)).join('\n');
    const counts = parseIptablesCounters(listing, policy, OPTS.chain);
    const sum = (pred: (i: number) => boolean): number => rules.reduce((s, r, i) => s + (pred(i) ? i + 1 : 0), 0);
    for (const c of counts) {
      const expected = sum((i) => rules[i]!.decides?.list === c.list && rules[i]!.decides?.cidr === c.cidr);
      assert.equal(c.packets, expected, `${c.list} ${c.cidr}`);
    }
    assert.deepEqual(
      counts.map((c) => `${c.action} ${c.list} ${c.cidr ?? '-'}`),
      // Rule order: longest prefix first.
      ['snat snat 198.51.100.0/24', 'masquerade masqueradeCIDRs 10.9.0.0/16', 'keep nonMasqueradeCIDRs 10.0.0.0/8', 'masquerade default -'],
    );
    // 3 protocols x 2 ranges + the catch-all, per source range: 14 rules count into each translating row.
    assert.equal(rules.filter((r) => r.decides?.list === 'snat').length, 14);
  });

  it('gives the same CIDR listed twice two counts, in rule order', () => {
    const policy = { ...plain, exempt: [...plain.exempt, plain.exempt[1]] };
    const listing = chainRules(policy, OPTS)
      .map((r, i) => formatSaveRule(r).replace(/ -j /, ` -c ${i} 0 -j `))
      .join('\n');
    assert.deepEqual(
      parseIptablesCounters(listing, policy, OPTS.chain).map((c) => `${c.cidr ?? '-'} ${c.packets}`),
      ['169.254.0.0/16 0', '10.0.0.0/8 1', '198.51.100.0/24 2', '10.0.0.0/8 3', '- 4'],
    );
  });
});

describe('parseNftCounters', () => {
  const listing = readFileSync(countersFixturePath('nftables'), 'utf8');
  // nft lists the elements in address order.
  const NFT_COUNTS = [PLAIN_COUNTS[1], PLAIN_COUNTS[0], PLAIN_COUNTS[2], PLAIN_COUNTS[3]];

  it("reads the keep set's element counters and the masquerade rule's counter from what nft printed", () => {
    assert.deepEqual(brief(parseNftCounters(listing, [plain])), NFT_COUNTS);
  });

  it('skips an element no keep row of the policy decides, and a family it was not asked for', () => {
    const other = { ...plain, exempt: plain.exempt.slice(0, 2) };
    assert.deepEqual(brief(parseNftCounters(listing, [other])), [NFT_COUNTS[0], NFT_COUNTS[1], NFT_COUNTS[3]]);
    assert.deepEqual(parseNftCounters(listing, []), []);
  });

  it('names the row of an element merged from adjacent rows by its first address', () => {
    const merged = listing.replace(/"len": 8/, '"len": 7');
    assert.ok(merged !== listing);
    const counts = parseNftCounters(merged, [plain]);
    assert.deepEqual(brief(counts)[0], 'keep nonMasqueradeCIDRs 10.0.0.0/7 30');
  });

  it('counts the SNAT map rules and the masquerade rules of the --to-ports spread together, per action', () => {
    const doc = {
      nftables: [
        ...[
          ['meta l4proto tcp', 3],
          ['', 4],
        ].map(([, n]) => ({ rule: { family: 'inet', table: 'ip-masq-agent', chain: 'postrouting4', expr: [{ counter: { packets: n, bytes: 1 } }, { snat: { family: 'ip', addr: { map: {} } } }] } })),
        { rule: { family: 'inet', table: 'ip-masq-agent', chain: 'postrouting4', expr: [{ counter: { packets: 5, bytes: 1 } }, { masquerade: null }] } },
        { rule: { family: 'inet', table: 'ip-masq-agent', chain: 'postrouting4', expr: [{ snat: { family: 'ip', addr: { payload: {} } } }] } },
        { rule: { family: 'inet', table: 'other', chain: 'postrouting4', expr: [{ counter: { packets: 9, bytes: 1 } }, { masquerade: null }] } },
      ],
    };
    assert.deepEqual(brief(parseNftCounters(JSON.stringify(doc), [plain])), ['snat snat - 7', 'masquerade default - 5']);
  });
});
