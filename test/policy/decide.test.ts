// Table tests of the one longest-prefix resolution: every case is a config in YAML, a source
// (optional) and destination, and the action explain must report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/parse.js';
import { parseIp } from '../../src/net/cidr.js';
import { buildPolicy, explainDestination } from '../../src/policy/build.js';
import fc from 'fast-check';
import { cidrContainsCidr, formatCidr, parseCidr, parseIp as parseAddress } from '../../src/net/cidr.js';
import type { ActionRange, ExemptRange, FamilyPolicy } from '../../src/policy/types.js';
import { DEFAULT_ACTION, decisionTable, describeRedundantRow, findRedundantRows, sameAction, usesDecisions, type Decision, type RedundantRow } from '../../src/policy/decide.js';

const OPTS = { enableIPv6: true, nomasqAllReservedRanges: false };

function policyOf(yaml: string) {
  const { config } = parseConfigText(yaml, 'c.yaml', OPTS);
  return buildPolicy(config, { enableIPv6: true, randomFully: true, toPorts: [] });
}

/** keep | masquerade | snat ADDR, plus the CIDR that decided ('-' = the default). */
function decide(yaml: string, dst: string, src?: string): string {
  const v = explainDestination(policyOf(yaml), parseIp(dst), () => false, src === undefined ? undefined : parseIp(src));
  switch (v.reason) {
    case 'default':
      return 'masquerade -';
    case 'masquerade-cidr':
      return `masquerade ${v.match.text}`;
    case 'snat':
      return `snat ${v.match.action.kind === 'snat' ? v.match.action.toSourceText : '?'} ${v.match.text}`;
    case 'exempt':
      return `keep ${v.match.text}`;
    default:
      return `keep (${v.reason})`;
  }
}

const CASES: readonly (readonly [name: string, yaml: string, dst: string, want: string, src?: string])[] = [
  ['today: exempt range keeps', 'nonMasqueradeCIDRs: [10.0.0.0/8]', '10.1.2.3', 'keep 10.0.0.0/8'],
  ['today: outside every range masquerades', 'nonMasqueradeCIDRs: [10.0.0.0/8]', '203.0.113.7', 'masquerade -'],
  ['nesting: an exception inside an exempt range', 'nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.9.0.0/16]', '10.9.1.1', 'masquerade 10.9.0.0/16'],
  ['nesting: the exempt range outside the exception', 'nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.9.0.0/16]', '10.8.1.1', 'keep 10.0.0.0/8'],
  ['nesting three deep: keep inside masquerade inside keep', 'nonMasqueradeCIDRs: [10.0.0.0/8, 10.9.1.0/24]\nmasqueradeCIDRs: [10.9.0.0/16]', '10.9.1.5', 'keep 10.9.1.0/24'],
  ['nesting order in the file does not matter', 'masqueradeCIDRs: [10.9.0.0/16]\nnonMasqueradeCIDRs: [10.9.1.0/24, 10.0.0.0/8]', '10.9.2.5', 'masquerade 10.9.0.0/16'],
  ['ties: a /32 entry decides its own address', 'nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.1.1.1/32]', '10.1.1.1', 'masquerade 10.1.1.1/32'],
  ['ties: the neighbour of a /32 stays with the shorter prefix', 'nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.1.1.1/32]', '10.1.1.2', 'keep 10.0.0.0/8'],
  ['include-list: only listed destinations are masqueraded', 'nonMasqueradeCIDRs: [0.0.0.0/0, "::/0"]\nmasqueradeCIDRs: [203.0.113.0/24]', '203.0.113.9', 'masquerade 203.0.113.0/24'],
  ['include-list: everything else keeps the pod IP', 'nonMasqueradeCIDRs: [0.0.0.0/0, "::/0"]\nmasqueradeCIDRs: [203.0.113.0/24]', '198.51.100.1', 'keep 0.0.0.0/0'],
  ['include-list: IPv6 too', 'nonMasqueradeCIDRs: [0.0.0.0/0, "::/0"]\nmasqueradeCIDRs: ["2001:db8:1::/48"]', '2001:db8:1::5', 'masquerade 2001:db8:1::/48'],
  ['link-local: metadata-only masquerade', 'masqueradeCIDRs: [169.254.169.254/32]', '169.254.169.254', 'masquerade 169.254.169.254/32'],
  ['link-local: the rest of link-local keeps', 'masqueradeCIDRs: [169.254.169.254/32]', '169.254.1.1', 'keep 169.254.0.0/16'],
  ['link-local: masqLinkLocal removes the built-in row', 'masqLinkLocal: true\nnonMasqueradeCIDRs: []', '169.254.1.1', 'masquerade -'],
  ['link-local: an exact entry overrides the built-in one', 'masqueradeCIDRs: [169.254.0.0/16]', '169.254.1.1', 'masquerade 169.254.0.0/16'],
  ['snat: a fixed address for a partner', 'snat: [{cidrs: [203.0.113.0/24], toSource: 198.51.100.9}]', '203.0.113.5', 'snat 198.51.100.9 203.0.113.0/24'],
  ['snat: default egress address, exempt ranges still keep', 'snat: [{cidrs: [0.0.0.0/0], toSource: 198.51.100.9}]', '10.1.1.1', 'keep 10.0.0.0/8'],
  ['snat: default egress address elsewhere', 'snat: [{cidrs: [0.0.0.0/0], toSource: 198.51.100.9}]', '8.8.8.8', 'snat 198.51.100.9 0.0.0.0/0'],
  [
    'snat: a masquerade exception inside a snat range',
    'snat: [{cidrs: [203.0.113.0/24], toSource: 198.51.100.9}]\nmasqueradeCIDRs: [203.0.113.128/25]',
    '203.0.113.200',
    'masquerade 203.0.113.128/25',
  ],
  ['source scope: a pod source is masqueraded', 'masqueradeSourceCIDRs: [10.244.0.0/16]', '203.0.113.7', 'masquerade -', '10.244.1.1'],
  ['source scope: another source is left alone', 'masqueradeSourceCIDRs: [10.244.0.0/16]', '203.0.113.7', 'keep (source-out-of-scope)', '192.0.2.50'],
  ['source scope: SNAT is scoped too', 'masqueradeSourceCIDRs: [10.244.0.0/16]\nsnat: [{cidrs: [203.0.113.0/24], toSource: 198.51.100.9}]', '203.0.113.7', 'keep (source-out-of-scope)', '192.0.2.50'],
  ['source scope: an exempt destination keeps for every source', 'masqueradeSourceCIDRs: [10.244.0.0/16]', '10.1.1.1', 'keep 10.0.0.0/8', '192.0.2.50'],
];

for (const [name, yaml, dst, want, src] of CASES) {
  test(`decide: ${name}`, () => assert.equal(decide(yaml, dst, src), want));
}

test('the table is in config order with only exempt ranges, longest prefix first otherwise', () => {
  const only = policyOf('nonMasqueradeCIDRs: [10.0.0.0/8, 10.9.0.0/16]').families[0]!;
  assert.deepEqual(
    decisionTable(only).map((r) => r.text),
    ['169.254.0.0/16', '10.0.0.0/8', '10.9.0.0/16'],
  );
  const mixed = policyOf('nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.9.0.0/16, 169.254.169.254/32]').families[0]!;
  assert.deepEqual(
    decisionTable(mixed).map((r) => r.text),
    ['169.254.169.254/32', '169.254.0.0/16', '10.9.0.0/16', '10.0.0.0/8'],
  );
});

test('redundant rows: an exception with the action it is nested in, or the default, is reported with both places', () => {
  const fp = policyOf('nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.9.0.0/16, 10.9.1.0/24, 203.0.113.0/24]').families[0]!;
  const found = findRedundantRows(fp).map((r) => [r.row.text, r.by?.text]);
  assert.deepEqual(found, [
    ['10.9.1.0/24', '10.9.0.0/16'],
    ['203.0.113.0/24', undefined],
  ]);
  assert.match(
    describeRedundantRow(findRedundantRows(fp)[0]!),
    /10\.9\.1\.0\/24 \(c\.yaml masqueradeCIDRs\[1\]\) masquerades, as the 10\.9\.0\.0\/16 it is nested in \(c\.yaml masqueradeCIDRs\[0\]\)/,
  );
  // A keep nested in a masquerade exception is a real decision, not redundant.
  const deep = policyOf('nonMasqueradeCIDRs: [10.0.0.0/8, 10.9.1.0/24]\nmasqueradeCIDRs: [10.9.0.0/16]').families[0]!;
  assert.deepEqual(findRedundantRows(deep), []);
});

/** The definition of a redundant row, by comparing every pair (what findRedundantRows must equal). */
function redundantRowsByDefinition(fp: FamilyPolicy): RedundantRow[] {
  const rows = decisionTable(fp);
  const out: RedundantRow[] = [];
  rows.forEach((row, i) => {
    let parent: Decision | undefined;
    rows.forEach((other, j) => {
      if (j === i || !cidrContainsCidr(other.cidr, row.cidr)) return;
      if (other.cidr.prefix === row.cidr.prefix && j > i) return;
      if (parent === undefined || other.cidr.prefix > parent.cidr.prefix) parent = other;
    });
    if (row.list === 'link-local' || (row.action.kind === 'keep' && !usesDecisions(fp))) return;
    if (sameAction(row.action, parent?.action ?? DEFAULT_ACTION)) out.push({ row, by: parent });
  });
  return out;
}

test('redundant rows: the same as comparing every pair, for random nested, repeated and disjoint tables', () => {
  // Few bits of address and prefix, so blocks nest, repeat and touch often.
  const block = fc.tuple(fc.nat(15), fc.integer({ min: 0, max: 4 })).map(([hi, p]) => {
    const prefix = 8 + p;
    const second = (hi << 4) & (0xff << (16 - prefix)) & 0xff;
    const cidr = parseCidr(`10.${second}.0.0/${prefix}`);
    return { cidr, text: formatCidr(cidr) };
  });
  const to = [parseAddress('198.51.100.9'), parseAddress('198.51.100.10')];
  const row = fc.tuple(block, fc.constantFrom('keep', 'link-local', 'masquerade', 'snat0', 'snat1'));
  fc.assert(
    fc.property(fc.array(row, { maxLength: 12 }), (rows) => {
      const exempt: ExemptRange[] = [];
      const actions: ActionRange[] = [];
      rows.forEach(([b, kind], i) => {
        const at = { source: 'c.yaml', path: `x[${i}]` };
        if (kind === 'keep' || kind === 'link-local') exempt.push({ ...b, ...at, reason: kind === 'keep' ? 'config' : 'link-local' });
        else if (kind === 'masquerade') actions.push({ ...b, ...at, list: 'masqueradeCIDRs', action: { kind: 'masquerade' } });
        else {
          const ip = to[kind === 'snat0' ? 0 : 1]!;
          actions.push({ ...b, ...at, list: 'snat', action: { kind: 'snat', toSource: ip, toSourceText: kind === 'snat0' ? '198.51.100.9' : '198.51.100.10' } });
        }
      });
      const fp: FamilyPolicy = { family: 'ipv4', exempt, randomFully: false, toPorts: [], actions };
      assert.deepStrictEqual(findRedundantRows(fp), redundantRowsByDefinition(fp));
    }),
    { seed: 20261201, numRuns: 3000 },
  );
});

test('redundant rows: 50,000 masquerade entries under one exempt range take one sort, not every pair', () => {
  const n = 50_000;
  const exempt: ExemptRange[] = [{ cidr: parseCidr('10.0.0.0/8'), text: '10.0.0.0/8', reason: 'config', source: 'c.yaml', path: 'nonMasqueradeCIDRs[0]' }];
  const actions: ActionRange[] = Array.from({ length: n }, (_, i) => {
    const text = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`;
    return { cidr: parseCidr(text), text, list: 'masqueradeCIDRs', action: { kind: 'masquerade' }, source: 'c.yaml', path: `masqueradeCIDRs[${i}]` };
  });
  // A repeat of the default inside an exception is reported; every other entry is a real decision.
  actions.push({ cidr: parseCidr('10.0.0.0/31'), text: '10.0.0.0/31', list: 'masqueradeCIDRs', action: { kind: 'masquerade' }, source: 'c.yaml', path: `masqueradeCIDRs[${n}]` });
  const found = findRedundantRows({ family: 'ipv4', exempt, randomFully: false, toPorts: [], actions });
  assert.deepEqual(
    found.map((r) => [r.row.text, r.by?.text]),
    [
      ['10.0.0.0/32', '10.0.0.0/31'],
      ['10.0.0.1/32', '10.0.0.0/31'],
    ],
  );
});
