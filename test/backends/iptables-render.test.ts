// Golden files pin the exact iptables-restore payload (byte-identical to the reference agent)
// and the exact `iptables -S` read-back (so a resync never rewrites rules that are right).
// Regenerate with UPDATE_GOLDEN=1 after a deliberate change, then review the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import {
  checkChainName,
  formatFixedExact,
  formatSavedCidr,
  jumpRuleSpec,
  renderChainSaveLines,
  renderJumpSaveLine,
  renderRestorePayload,
  renderSaveLines,
  savedProbability,
  toPortsProbabilities,
} from '../../src/backends/iptables/render.js';
import { DEFAULT_CHAIN, MASQ_COMMENT, NON_MASQ_COMMENT } from '../../src/backends/iptables/constants.js';
import { quoteRuleArg, splitRuleArgs } from '../../src/backends/iptables/rules.js';
import { formatCidr, formatIp, parseCidr, type Cidr, type Family, type IpAddress } from '../../src/net/cidr.js';
import type { ActionRange, ExemptRange, FamilyPolicy, PostroutingPosition } from '../../src/policy/types.js';
import { defaultConfig } from '../../src/config/merge.js';
import { parseConfigText } from '../../src/config/parse.js';
import { buildPolicy } from '../../src/policy/build.js';
import { exempt, policyOf, portRange, type GoldenInput } from './iptables-helpers.js';

// Compiled to <outDir>/test/backends/; the goldens stay in the source tree.
const GOLDEN_DIR = fileURLToPath(new URL('../../../test/golden/iptables/', import.meta.url));
const update = process.env['UPDATE_GOLDEN'] === '1';

const cases = readdirSync(GOLDEN_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

test('golden cases are present', () => {
  for (const required of [
    'defaults',
    'empty-list',
    'masq-link-local',
    'ipv6',
    'random-fully-off',
    'random-fully-unsupported',
    'to-ports-one-range',
    'to-ports-two-ranges',
    'to-ports-three-ranges',
    'to-ports-single-port',
    'custom-chain',
    'postrouting-first',
    'postrouting-first-masquerade-bit',
  ]) {
    assert.ok(cases.includes(required), `missing golden case ${required}`);
  }
});

for (const name of cases) {
  test(`golden ${name}: restore payload and save lines`, () => {
    const dir = join(GOLDEN_DIR, name);
    const input = JSON.parse(readFileSync(join(dir, 'policy.json'), 'utf8')) as GoldenInput;
    const opts = { chain: input.chain, randomFully: input.randomFully && input.randomFullySupported };
    const policy = policyOf(input);
    const restore = renderRestorePayload(policy, opts);
    const save = `${renderSaveLines(policy, opts).join('\n')}\n`;
    if (update) {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'restore.txt'), restore);
      writeFileSync(join(dir, 'save.txt'), save);
    }
    assert.ok(existsSync(join(dir, 'restore.txt')), `${name}: no restore.txt (run with UPDATE_GOLDEN=1)`);
    assert.equal(restore, readFileSync(join(dir, 'restore.txt'), 'utf8'));
    assert.equal(save, readFileSync(join(dir, 'save.txt'), 'utf8'));
  });
}

test('defaults render exactly the reference payload from the compatibility contract', () => {
  const policy = {
    family: 'ipv4' as const,
    exempt: [exempt('169.254.0.0/16', 'link-local'), exempt('10.0.0.0/8'), exempt('172.16.0.0/12'), exempt('192.168.0.0/16')],
    randomFully: true,
    toPorts: [],
  };
  const ret = (cidr: string): string => `-A IP-MASQ-AGENT -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -d ${cidr} -j RETURN`;
  assert.equal(
    renderRestorePayload(policy, { chain: DEFAULT_CHAIN, randomFully: true }),
    [
      '*nat',
      ':IP-MASQ-AGENT - [0:0]',
      ret('169.254.0.0/16'),
      ret('10.0.0.0/8'),
      ret('172.16.0.0/12'),
      ret('192.168.0.0/16'),
      '-A IP-MASQ-AGENT -m comment --comment "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE --random-fully',
      'COMMIT',
      '',
    ].join('\n'),
  );
});

test('to-ports rules come per protocol tcp, udp, sctp, before the final MASQUERADE', () => {
  const policy = { family: 'ipv4' as const, exempt: [], randomFully: true, toPorts: [portRange('1024-29999'), portRange('32768-65535')] };
  const lines = renderRestorePayload(policy, { chain: 'C', randomFully: true }).trimEnd().split('\n');
  const m = `-A C -m comment --comment "${MASQ_COMMENT}" -j MASQUERADE --random-fully`;
  assert.deepEqual(lines, [
    '*nat',
    ':C - [0:0]',
    `${m} -p tcp -m statistic --mode random --probability 0.4692925628 --to-ports 1024-29999`,
    `${m} -p tcp --to-ports 32768-65535`,
    `${m} -p udp -m statistic --mode random --probability 0.4692925628 --to-ports 1024-29999`,
    `${m} -p udp --to-ports 32768-65535`,
    `${m} -p sctp -m statistic --mode random --probability 0.4692925628 --to-ports 1024-29999`,
    `${m} -p sctp --to-ports 32768-65535`,
    m,
    'COMMIT',
  ]);
});

// Expected values computed independently (Python's correctly rounded '%.10f' and '%.11f', the
// latter on round(P * 2^31) / 2^31), and the saved ones checked against iptables 1.8.9 output.
const probabilityTable: { ranges: string[]; written: string[]; saved: string[] }[] = [
  { ranges: ['32768-65535'], written: [], saved: [] },
  { ranges: ['1024-29999', '32768-65535'], written: ['0.4692925628'], saved: ['0.46929256292'] },
  { ranges: ['1024-2047', '4096-8191', '32768-65535'], written: ['0.0270270270', '0.1111111111'], saved: ['0.02702702722', '0.11111111101'] },
  { ranges: ['1-100', '101-200', '201-300'], written: ['0.3333333333', '0.5000000000'], saved: ['0.33333333349', '0.50000000000'] },
  { ranges: ['1', '2-3', '4-7', '8-15'], written: ['0.0666666667', '0.1428571429', '0.3333333333'], saved: ['0.06666666688', '0.14285714272', '0.33333333349'] },
  { ranges: ['8080', '9000-9099'], written: ['0.0099009901'], saved: ['0.00990098994'] },
  // 1/2048 is exactly 0.00048828125: Go's %0.10f rounds the tie to even (…812), toFixed would say …813.
  { ranges: ['1000', '2000-4046'], written: ['0.0004882812'], saved: ['0.00048828125'] },
  // Stored as exactly 2^19 / 2^31 = 0.000244140625: glibc's %.11f rounds the tie to even (…062).
  { ranges: ['1', '2-4096'], written: ['0.0002441406'], saved: ['0.00024414062'] },
];

for (const row of probabilityTable) {
  test(`probabilities for --to-ports ${row.ranges.join(',')}`, () => {
    const written = toPortsProbabilities(row.ranges.map(portRange));
    assert.deepEqual(written, row.written);
    assert.deepEqual(written.map(savedProbability), row.saved);
  });
}

test('probabilities measured on iptables 1.8.9 read back as printed', () => {
  // Pairs written by iptables-restore and printed by `iptables -S`, nft and legacy alike.
  for (const [written, printed] of [
    ['0.4999923705', '0.49999237061'],
    ['0.3333333333', '0.33333333349'],
    ['0.0002441406', '0.00024414062'],
    ['0.0004882812', '0.00048828125'],
  ] as const) {
    assert.equal(savedProbability(written), printed);
  }
});

test('formatFixedExact rounds exact ties to even and otherwise to nearest', () => {
  assert.equal(formatFixedExact(1 / 2048, 10), '0.0004882812');
  assert.equal(formatFixedExact(3 / 2048, 10), '0.0014648438');
  assert.equal(formatFixedExact(0.5, 0), '0');
  assert.equal(formatFixedExact(1.5, 0), '2');
  assert.equal(formatFixedExact(0.1, 10), '0.1000000000');
  assert.equal(formatFixedExact(2 / 3, 10), '0.6666666667');
  assert.equal(formatFixedExact(1, 11), '1.00000000000');
  assert.equal(formatFixedExact(0, 3), '0.000');
});

test('saved CIDRs are printed as iptables prints them (inet_ntop forms)', () => {
  // Each pair measured with `ip6tables -S` / `iptables -S` on 1.8.9 (nft and legacy).
  for (const [given, printed] of [
    ['192.0.2.1/32', '192.0.2.1/32'],
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['2001:db8::1/128', '2001:db8::1/128'],
    ['::a00:0/104', '::10.0.0.0/104'],
    ['2001:db8:0:0:1::/80', '2001:db8:0:0:1::/80'],
    ['2001:0:0:1::/64', '2001:0:0:1::/64'],
    ['::/8', '::/8'],
    ['fe80::/10', 'fe80::/10'],
    ['2001:db8:200::/48', '2001:db8:200::/48'],
    ['1:0:0:2::3/128', '1:0:0:2::3/128'],
    ['1::2:0:0:3/128', '1::2:0:0:3/128'],
    ['::1/128', '::1/128'],
    ['::1:0:0/96', '::1:0:0/96'],
  ] as const) {
    assert.equal(formatSavedCidr(parseCidr(given)), printed, given);
  }
  // IPv4-mapped blocks, which a config may not write (parseCidr refuses them), print dotted too.
  assert.equal(formatSavedCidr({ family: 'ipv6', base: 0xffff0a000000n, prefix: 104 }), '::ffff:10.0.0.0/104');
  assert.equal(formatSavedCidr({ family: 'ipv6', base: 0xffff00000000n, prefix: 96 }), '::ffff:0.0.0.0/96');
});

test('a /0 exempt range reads back without -d, as iptables prints it', () => {
  const lines = renderSaveLines({ family: 'ipv4', exempt: [exempt('0.0.0.0/0')], randomFully: false, toPorts: [] }, { chain: 'C', randomFully: false });
  assert.equal(lines[2], `-A C -m comment --comment "${NON_MASQ_COMMENT}" -j RETURN`);
});

test('the jump rule spec is argv with the comment as one unquoted element', () => {
  assert.deepEqual(jumpRuleSpec('IP-MASQ-AGENT'), [
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
  assert.equal(
    renderJumpSaveLine('IP-MASQ-AGENT'),
    '-A POSTROUTING -m comment --comment "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain" -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT',
  );
});

test('chain names iptables would reject are reported', () => {
  assert.equal(checkChainName('IP-MASQ-AGENT'), undefined);
  assert.equal(checkChainName('A'.repeat(28)), undefined);
  assert.match(checkChainName('A'.repeat(29)) ?? '', /29 bytes long \(UTF-8\); iptables allows at most 28/);
  assert.match(checkChainName('') ?? '', /empty/);
  assert.match(checkChainName('MY CHAIN') ?? '', /whitespace/);
  assert.match(checkChainName('MY"CHAIN') ?? '', /quotes/);
  assert.match(checkChainName('-X') ?? '', /start with/);
});

test('the -S form writes an IPv4 range by its policy text: every IPv4 range a config, the defaults or link-local give has the text iptables prints', () => {
  const config = parseConfigText('nonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24, 0.0.0.0/1, 255.255.255.255/32, 198.51.100.6/31, 100.64.0.0/10]\n', 'cfg', {
    enableIPv6: true,
    nomasqAllReservedRanges: false,
  }).config;
  const withDefaults = defaultConfig({ enableIPv6: true, nomasqAllReservedRanges: true });
  for (const c of [config, withDefaults]) {
    const fp = buildPolicy(c, { enableIPv6: true, randomFully: true, toPorts: [] }).families[0]!;
    assert.ok(fp.exempt.length >= 5);
    for (const e of fp.exempt) assert.equal(e.text, formatSavedCidr(e.cidr), e.text);
    const lines = renderChainSaveLines(fp, { chain: DEFAULT_CHAIN, randomFully: true });
    fp.exempt.forEach((e, i) => assert.ok(lines[i + 1]?.startsWith(`-A ${DEFAULT_CHAIN} -d ${formatSavedCidr(e.cidr)} -m comment`), lines[i + 1]));
  }
});

// A model of what iptables lists for a restore line it accepted (iptables 1.8.9, nft and legacy):
// -s, -d (no /0, inet_ntop form), -p, the -m modules in the order given (comments quoted as
// xtables_save_string does, probabilities as stored), then the target with its options and
// --random-fully last. It reads tokens, not the renderer's model, so the two can disagree.
const TARGET_OPTIONS = new Set(['--to-ports', '--to-source']);
function listedAs(restoreLine: string): string {
  const args = splitRuleArgs(restoreLine);
  const modules: string[] = [];
  const options: string[] = [];
  let [src, dst, proto, target, fully] = ['', '', '', '', ''];
  for (let i = 2; i < args.length; i++) {
    const a = args[i]!;
    const value = (): string => args[++i]!;
    const cidr = (): string => {
      const c = parseCidr(value());
      return c.prefix === 0 ? '' : ` ${a} ${formatSavedCidr(c)}`;
    };
    if (a === '-s') src = cidr();
    else if (a === '-d') dst = cidr();
    else if (a === '-p') proto = ` -p ${value()}`;
    else if (a === '-j') target = ` -j ${value()}`;
    else if (a === '--random-fully') fully = ' --random-fully';
    else if (TARGET_OPTIONS.has(a)) options.push(` ${a} ${value()}`);
    else if (a === '-m') modules.push(` -m ${value()}`);
    else if (a === '!') modules.push(' !');
    else modules.push(` ${a} ${a === '--comment' ? quoteRuleArg(value()) : a === '--probability' ? savedProbability(value()) : value()}`);
  }
  return `-A ${args[1]}${src}${dst}${proto}${modules.join('')}${target}${options.join('')}${fully}`;
}

const familyArb = fc.constantFrom<Family>('ipv4', 'ipv6');
const addressArb = (family: Family): fc.Arbitrary<bigint> => {
  const bits = family === 'ipv4' ? 32 : 128;
  // Zero-heavy IPv6 values and ::a.b.c.d ones exercise inet_ntop's forms; IPv4-mapped ones are refused by parseCidr.
  const words = fc.array(fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 0xffffn })), { minLength: bits / 16, maxLength: bits / 16 });
  const values = words.map((ws) => ws.reduce((v, w) => (v << 16n) | w, 0n));
  return (family === 'ipv4' ? values : fc.oneof(values, fc.bigInt({ min: 0x10000n, max: 0xffffffffn }))).filter((v) => family === 'ipv4' || v >> 32n !== 0xffffn);
};
const rangeArb = (family: Family): fc.Arbitrary<{ cidr: Cidr; text: string; source: string; path: string }> =>
  fc.tuple(addressArb(family), fc.integer({ min: 0, max: family === 'ipv4' ? 32 : 128 })).map(([value, prefix]) => {
    const bits = BigInt(family === 'ipv4' ? 32 : 128);
    const cidr: Cidr = { family, base: (value >> (bits - BigInt(prefix))) << (bits - BigInt(prefix)), prefix };
    return { cidr, text: formatCidr(cidr), source: 'test', path: '' };
  });
const policyArb: fc.Arbitrary<FamilyPolicy> = familyArb.chain((family) =>
  fc.record(
    {
      family: fc.constant(family),
      exempt: fc.array(
        fc.tuple(rangeArb(family), fc.constantFrom('config', 'link-local') as fc.Arbitrary<ExemptRange['reason']>).map(([r, reason]) => ({ ...r, reason })),
        { maxLength: 5 },
      ),
      randomFully: fc.boolean(),
      toPorts: fc
        .array(fc.tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 3000 })), { maxLength: 3 })
        .map((rs) => rs.map(([from, span]) => portRange(span === 0 || from + span > 65535 ? `${from}` : `${from}-${from + span}`))),
      postroutingPosition: fc.constantFrom<PostroutingPosition>('append', 'first'),
      masqueradeBit: fc.integer({ min: 0, max: 31 }),
      actions: fc.array(
        fc.tuple(rangeArb(family), fc.option(addressArb(family))).map(([r, to]): ActionRange => {
          if (to === null) return { ...r, action: { kind: 'masquerade' }, list: 'masqueradeCIDRs' };
          const toSource: IpAddress = { family, value: to };
          return { ...r, action: { kind: 'snat', toSource, toSourceText: formatIp(toSource) }, list: 'snat' };
        }),
        { maxLength: 3 },
      ),
      sources: fc.array(rangeArb(family), { maxLength: 2 }),
    },
    { requiredKeys: ['family', 'exempt', 'randomFully', 'toPorts'] },
  ),
);

test('property: each -S line is what iptables lists for the restore line written for the same rule (plain and decision policies)', () => {
  fc.assert(
    fc.property(policyArb, fc.constantFrom('IP-MASQ-AGENT', 'MY-MASQ'), fc.boolean(), (policy, chain, randomFully) => {
      const opts = { chain, randomFully };
      const restore = renderRestorePayload(policy, opts).split('\n');
      assert.deepEqual([...restore.slice(0, 2), ...restore.slice(-2)], ['*nat', `:${chain} - [0:0]`, 'COMMIT', '']);
      const [jump, created, ...listed] = renderSaveLines(policy, opts);
      assert.equal(created, `-N ${chain}`);
      assert.deepEqual(restore.slice(2, -2).map(listedAs), listed);
      assert.equal(listedAs(`-A POSTROUTING ${jumpRuleSpec(chain).map(quoteRuleArg).join(' ')}`), jump);
    }),
    { numRuns: 300 },
  );
});
