// Interval flattening: table tests of the partition a prefix table becomes, and a property test
// against the one longest-prefix resolution (resolveDestination) as oracle.
import { describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatCidr, parseCidr, parseIp, type Cidr, type Family } from '../../src/net/cidr.js';
import { coveringCidr, flattenPrefixes, intervalAsCidr, intervalCidrs, intervalText, maxAddress, overlayPartitions, unionOfCidrs, type Interval } from '../../src/net/intervals.js';
import { decisionTable, resolveDestination, sameAction, DEFAULT_ACTION } from '../../src/policy/decide.js';
import type { Action, ActionRange, ExemptRange, FamilyPolicy } from '../../src/policy/types.js';

const eq = (a: string, b: string): boolean => a === b;

/** `text=value` per interval, the text as nft writes it. */
function show(parts: readonly Interval<string>[]): string[] {
  return parts.map((p) => `${intervalText(p)}=${p.value}`);
}

function flat(family: Family, rows: readonly [string, string][], fallback = 'masq'): string[] {
  return show(
    flattenPrefixes(
      family,
      rows.map(([c, value]) => ({ cidr: parseCidr(c), value })),
      fallback,
      eq,
    ),
  );
}

describe('flattenPrefixes', () => {
  const CASES: readonly [name: string, family: Family, rows: [string, string][], want: string[]][] = [
    ['nothing: the whole space gets the fallback', 'ipv4', [], ['0.0.0.0/0=masq']],
    ['one block splits the space in three', 'ipv4', [['10.0.0.0/8', 'keep']], ['0.0.0.0-9.255.255.255=masq', '10.0.0.0/8=keep', '11.0.0.0-255.255.255.255=masq']],
    [
      'an exception inside an exempt range cuts it in two',
      'ipv4',
      [
        ['10.0.0.0/8', 'keep'],
        ['10.9.0.0/16', 'masq'],
      ],
      ['0.0.0.0-9.255.255.255=masq', '10.0.0.0-10.8.255.255=keep', '10.9.0.0/16=masq', '10.10.0.0-10.255.255.255=keep', '11.0.0.0-255.255.255.255=masq'],
    ],
    [
      'three deep: keep inside masquerade inside keep',
      'ipv4',
      [
        ['10.9.1.0/24', 'keep'],
        ['10.0.0.0/8', 'keep'],
        ['10.9.0.0/16', 'masq'],
      ],
      [
        '0.0.0.0-9.255.255.255=masq',
        '10.0.0.0-10.8.255.255=keep',
        '10.9.0.0/24=masq',
        '10.9.1.0/24=keep',
        '10.9.2.0-10.9.255.255=masq',
        '10.10.0.0-10.255.255.255=keep',
        '11.0.0.0-255.255.255.255=masq',
      ],
    ],
    [
      'adjacent blocks with the same value merge',
      'ipv4',
      [
        ['10.0.0.0/9', 'keep'],
        ['10.128.0.0/9', 'keep'],
      ],
      ['0.0.0.0-9.255.255.255=masq', '10.0.0.0/8=keep', '11.0.0.0-255.255.255.255=masq'],
    ],
    [
      'adjacent blocks with different values stay apart',
      'ipv4',
      [
        ['10.0.0.0/9', 'a'],
        ['10.128.0.0/9', 'b'],
      ],
      ['0.0.0.0-9.255.255.255=masq', '10.0.0.0/9=a', '10.128.0.0/9=b', '11.0.0.0-255.255.255.255=masq'],
    ],
    [
      'a nested block equal to its container leaves no seam',
      'ipv4',
      [
        ['10.0.0.0/8', 'keep'],
        ['10.9.0.0/16', 'keep'],
      ],
      ['0.0.0.0-9.255.255.255=masq', '10.0.0.0/8=keep', '11.0.0.0-255.255.255.255=masq'],
    ],
    [
      'the same block twice: the first wins',
      'ipv4',
      [
        ['10.0.0.0/8', 'a'],
        ['10.0.0.0/8', 'b'],
      ],
      ['0.0.0.0-9.255.255.255=masq', '10.0.0.0/8=a', '11.0.0.0-255.255.255.255=masq'],
    ],
    [
      'include-list: /0 keep with exceptions',
      'ipv4',
      [
        ['0.0.0.0/0', 'keep'],
        ['203.0.113.0/24', 'masq'],
      ],
      ['0.0.0.0-203.0.112.255=keep', '203.0.113.0/24=masq', '203.0.114.0-255.255.255.255=keep'],
    ],
    [
      'address edges: the first and the last address',
      'ipv4',
      [
        ['0.0.0.0/32', 'a'],
        ['255.255.255.255/32', 'b'],
      ],
      ['0.0.0.0/32=a', '0.0.0.1-255.255.255.254=masq', '255.255.255.255/32=b'],
    ],
    ['a block equal to the fallback merges into it', 'ipv4', [['10.0.0.0/8', 'masq']], ['0.0.0.0/0=masq']],
    [
      'IPv6: link-local with the metadata-like exception',
      'ipv6',
      [
        ['fe80::/10', 'keep'],
        ['fe80::a9fe:a9fe/128', 'masq'],
      ],
      [
        '::-fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff=masq',
        'fe80::-fe80::a9fe:a9fd=keep',
        'fe80::a9fe:a9fe/128=masq',
        'fe80::a9fe:a9ff-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff=keep',
        'fec0::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff=masq',
      ],
    ],
  ];
  for (const [name, family, rows, want] of CASES) {
    it(name, () => assert.deepEqual(flat(family, rows), want));
  }

  it('refuses a block of the other family', () => {
    assert.throws(() => flat('ipv4', [['2001:db8::/32', 'keep']]), /2001:db8::\/32 is not ipv4/);
  });

  it('10,000 nested and disjoint blocks flatten in one pass into at most 2n+1 intervals', () => {
    const rows: [string, string][] = [];
    for (let i = 0; i < 5000; i++) {
      rows.push([`10.${i >> 8}.${i & 255}.0/24`, 'keep']);
      rows.push([`10.${i >> 8}.${i & 255}.128/25`, i % 2 === 0 ? 'masq' : 'snat']);
    }
    const parts = flattenPrefixes(
      'ipv4',
      rows.map(([c, value]) => ({ cidr: parseCidr(c), value })),
      'masq',
      eq,
    );
    assert.ok(parts.length <= 2 * rows.length + 1);
    assert.equal(parts.filter((p) => p.value === 'snat').length, 2500);
  });
});

describe('unionOfCidrs and interval text', () => {
  it('merges overlapping and adjacent blocks, as nft auto-merge lists an anonymous set', () => {
    const union = unionOfCidrs('ipv4', ['10.0.0.0/9', '10.128.0.0/9', '10.1.0.0/16', '192.0.2.1/32'].map(parseCidr));
    assert.deepEqual(union.map(intervalText), ['10.0.0.0/8', '192.0.2.1/32']);
    assert.deepEqual(unionOfCidrs('ipv6', []), []);
  });

  it('writes an interval as a block only when it is exactly one', () => {
    assert.equal(intervalText({ family: 'ipv4', first: 0x0a000000n, last: 0x0affffffn }), '10.0.0.0/8');
    assert.equal(intervalText({ family: 'ipv4', first: 0x0a000001n, last: 0x0a000002n }), '10.0.0.1-10.0.0.2');
    assert.equal(intervalText({ family: 'ipv6', first: 0n, last: maxAddress('ipv6') }), '::/0');
    assert.equal(intervalAsCidr('ipv4', 0x0a000002n, 0x0a000003n)?.prefix, 31);
    assert.equal(intervalAsCidr('ipv4', 0x0a000001n, 0x0a000002n), undefined, 'two addresses, not aligned');
    assert.equal(intervalAsCidr('ipv4', 5n, 4n), undefined);
  });
});

describe('intervalCidrs, coveringCidr, overlayPartitions', () => {
  const span = (a: string, b: string): [Family, bigint, bigint] => [parseIp(a).family, parseIp(a).value, parseIp(b).value];
  const CASES: readonly [first: string, last: string, blocks: string, covering: string][] = [
    ['10.0.0.0', '10.0.0.0', '10.0.0.0/32', '10.0.0.0/32'],
    ['10.0.0.0', '10.255.255.255', '10.0.0.0/8', '10.0.0.0/8'],
    ['10.0.0.1', '10.0.0.6', '10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32', '10.0.0.0/29'],
    ['0.0.0.0', '255.255.255.255', '0.0.0.0/0', '0.0.0.0/0'],
    ['198.51.100.0', '198.51.102.255', '198.51.100.0/23 198.51.102.0/24', '198.51.100.0/22'],
    ['2001:db8::', '2001:db8::ffff', '2001:db8::/112', '2001:db8::/112'],
  ];
  for (const [first, last, blocks, covering] of CASES) {
    test(`${first} - ${last}`, () => {
      assert.equal(
        intervalCidrs(...span(first, last))
          .map(formatCidr)
          .join(' '),
        blocks,
      );
      assert.equal(formatCidr(coveringCidr(...span(first, last))), covering);
    });
  }
  test('overlayPartitions cuts each partition at the other one', () => {
    const a = flattenPrefixes('ipv4', [{ cidr: parseCidr('10.0.0.0/8'), value: 'a' }], '-', eq);
    const b = flattenPrefixes('ipv4', [{ cidr: parseCidr('10.128.0.0/9'), value: 'b' }], '-', eq);
    assert.deepEqual(
      overlayPartitions(a, b).map((p) => `${intervalText(p)}=${p.value.join('')}`),
      ['0.0.0.0-9.255.255.255=--', '10.0.0.0/9=a-', '10.128.0.0/9=ab', '11.0.0.0-255.255.255.255=--'],
    );
  });
});

// ---- property: every address gets exactly what resolveDestination gives it ----

const BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };

function cidrArb(family: Family): fc.Arbitrary<Cidr> {
  const bits = BITS[family];
  // Prefixes near the full length and near /0 both occur, so nesting and edges are common.
  return fc
    .tuple(fc.bigInt({ min: 0n, max: maxAddress(family) }), fc.oneof(fc.integer({ min: 0, max: bits }), fc.integer({ min: bits - 12, max: bits }), fc.integer({ min: 0, max: 6 })))
    .map(([value, prefix]) => {
      const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
      return { family, base: value & mask, prefix };
    });
}

const SNAT: Record<Family, readonly string[]> = { ipv4: ['192.0.2.1', '198.51.100.9'], ipv6: ['2001:db8::1', '2001:db8::9'] };

function policyArb(family: Family): fc.Arbitrary<FamilyPolicy> {
  const row = fc.tuple(cidrArb(family), fc.constantFrom<'keep' | 'masquerade' | 'snat0' | 'snat1'>('keep', 'masquerade', 'snat0', 'snat1'));
  return fc.array(row, { maxLength: 12 }).map((rows) => {
    const exempt: ExemptRange[] = [];
    const actions: ActionRange[] = [];
    const seen = new Set<string>();
    rows.forEach(([cidr, kind], i) => {
      const text = formatCidr(cidr);
      // merge refuses the same prefix with two actions; the table never holds that.
      if (seen.has(text)) return;
      seen.add(text);
      const where = { cidr, text, source: 'p', path: `[${i}]` };
      if (kind === 'keep') exempt.push({ ...where, reason: 'config' });
      else if (kind === 'masquerade') actions.push({ ...where, action: { kind: 'masquerade' }, list: 'masqueradeCIDRs' });
      else {
        const ip = parseIp(SNAT[family][kind === 'snat0' ? 0 : 1]!);
        actions.push({ ...where, action: { kind: 'snat', toSource: ip, toSourceText: SNAT[family][kind === 'snat0' ? 0 : 1]! }, list: 'snat' });
      }
    });
    return { family, exempt, actions, randomFully: false, toPorts: [] };
  });
}

test('flattened intervals partition the space, never repeat a neighbour, and give every address its longest-prefix action', () => {
  fc.assert(
    fc.property(
      fc.constantFrom<Family>('ipv4', 'ipv6').chain((family) =>
        policyArb(family).chain((fp) => {
          const near = [...fp.exempt, ...(fp.actions ?? [])].map((r) => fc.bigInt({ min: -1n, max: 1n << BigInt(BITS[family] - r.cidr.prefix) }).map((off) => r.cidr.base + off));
          const addr = fc.oneof(fc.bigInt({ min: 0n, max: maxAddress(family) }), ...near).map((v) => (v < 0n ? 0n : v > maxAddress(family) ? maxAddress(family) : v));
          return fc.tuple(fc.constant(fp), fc.array(addr, { minLength: 1, maxLength: 16 }));
        }),
      ),
      ([fp, addrs]) => {
        const table = decisionTable(fp);
        const parts = flattenPrefixes<Action>(
          fp.family,
          table.map((r) => ({ cidr: r.cidr, value: r.action })),
          DEFAULT_ACTION,
          sameAction,
        );
        assert.equal(parts[0]!.first, 0n);
        assert.equal(parts[parts.length - 1]!.last, maxAddress(fp.family));
        for (let i = 1; i < parts.length; i++) {
          assert.equal(parts[i]!.first, parts[i - 1]!.last + 1n, 'contiguous');
          assert.ok(!sameAction(parts[i]!.value, parts[i - 1]!.value), 'merged');
        }
        // Every interval edge, and addresses near every entry, are checked against the oracle.
        const probes = [...addrs, ...parts.flatMap((p) => [p.first, p.last])];
        for (const value of probes) {
          const ip = { family: fp.family, value };
          const part = parts.find((p) => p.first <= value && value <= p.last);
          assert.ok(part, `no interval holds ${value}`);
          assert.ok(sameAction(part.value, resolveDestination(table, ip)?.action ?? DEFAULT_ACTION), `${value}`);
        }
      },
    ),
    { numRuns: 500 },
  );
});
