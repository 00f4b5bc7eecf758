import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cidrContains, cidrLast, formatCidr, parseCidr, type Cidr, type Family, type IpAddress } from '../../src/net/cidr.js';
import { describeDropped, normalizeRanges } from '../../src/net/normalize.js';
import type { ExemptRange } from '../../src/policy/types.js';

function range(text: string, path = '', reason: ExemptRange['reason'] = 'config'): ExemptRange {
  const cidr = parseCidr(text);
  return { cidr, text: formatCidr(cidr), reason, source: 'cfg', path };
}

const texts = (rs: readonly ExemptRange[]): string[] => rs.map((r) => r.text);

describe('normalizeRanges', () => {
  it('keeps disjoint ranges, sorted IPv4 first then by address', () => {
    const { kept, dropped } = normalizeRanges(['192.168.0.0/16', 'fe80::/10', '10.0.0.0/8', '2001:db8::/32', '172.16.0.0/12'].map((t) => range(t)));
    assert.deepEqual(texts(kept), ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '2001:db8::/32', 'fe80::/10']);
    assert.deepEqual(dropped, []);
  });

  it('drops a duplicate, keeping the first in input order, and says which one covers it', () => {
    const first = range('10.0.0.0/8', 'nonMasqueradeCIDRs[0]');
    const again = range('10.0.0.0/8', 'nonMasqueradeCIDRs[2]');
    const { kept, dropped } = normalizeRanges([first, range('192.0.2.0/24'), again]);
    assert.deepEqual(texts(kept), ['10.0.0.0/8', '192.0.2.0/24']);
    assert.equal(kept[0], first);
    assert.deepEqual(dropped, [{ range: again, reason: 'duplicate', by: first }]);
  });

  it('drops blocks contained in a wider one, whichever comes first in the config', () => {
    const narrow = range('10.244.0.0/16', 'nonMasqueradeCIDRs[0]');
    const wide = range('10.0.0.0/8', 'nonMasqueradeCIDRs[1]');
    const narrower = range('10.244.1.0/24', 'nonMasqueradeCIDRs[2]');
    const { kept, dropped } = normalizeRanges([narrow, wide, narrower]);
    assert.deepEqual(texts(kept), ['10.0.0.0/8']);
    assert.deepEqual(
      dropped.map((d) => [d.range.text, d.reason, d.by.text]),
      [
        ['10.244.0.0/16', 'contained', '10.0.0.0/8'],
        ['10.244.1.0/24', 'contained', '10.0.0.0/8'],
      ],
    );
  });

  it('keeps adjacent blocks apart (they do not overlap) and never compares across families', () => {
    const { kept, dropped } = normalizeRanges(['10.128.0.0/9', '10.0.0.0/9', '::/0', '0.0.0.0/1'].map((t) => range(t)));
    assert.deepEqual(texts(kept), ['0.0.0.0/1', '::/0']);
    assert.deepEqual(
      dropped.map((d) => `${d.range.text} in ${d.by.text}`),
      ['10.0.0.0/9 in 0.0.0.0/1', '10.128.0.0/9 in 0.0.0.0/1'],
    );
    const adjacent = normalizeRanges(['10.128.0.0/9', '10.0.0.0/9'].map((t) => range(t)));
    assert.deepEqual(texts(adjacent.kept), ['10.0.0.0/9', '10.128.0.0/9']);
  });

  it('drops a single address at the last address of a block, and a repeated single address', () => {
    const { kept, dropped } = normalizeRanges(['10.244.255.255/32', '10.244.0.0/16', '192.0.2.7/32', '192.0.2.7/32'].map((t) => range(t)));
    assert.deepEqual(texts(kept), ['10.244.0.0/16', '192.0.2.7/32']);
    assert.deepEqual(
      dropped.map((d) => d.reason),
      ['contained', 'duplicate'],
    );
  });

  it('keeps the built-in link-local range when the config repeats it', () => {
    const ll = range('169.254.0.0/16', '', 'link-local');
    const cfg = range('169.254.0.0/16', 'nonMasqueradeCIDRs[0]');
    const { kept, dropped } = normalizeRanges([ll, cfg]);
    assert.equal(kept[0], ll);
    assert.equal(describeDropped(dropped[0]!), '169.254.0.0/16 (cfg nonMasqueradeCIDRs[0]) duplicates 169.254.0.0/16 (cfg, link-local)');
  });

  it('explains a contained range in one line', () => {
    const { dropped } = normalizeRanges([range('10.0.0.0/8', 'nonMasqueradeCIDRs[0]'), range('10.1.0.0/16', 'nonMasqueradeCIDRs[1]')]);
    assert.equal(describeDropped(dropped[0]!), '10.1.0.0/16 (cfg nonMasqueradeCIDRs[1]) is contained in 10.0.0.0/8 (cfg nonMasqueradeCIDRs[0])');
  });

  it('handles 100,000 nested and repeated ranges', () => {
    const rs: ExemptRange[] = [];
    for (let i = 0; i < 50_000; i++) {
      const cidr: Cidr = { family: 'ipv4', base: (10n << 24n) + (BigInt(i) << 8n), prefix: 24 };
      const r = { cidr, text: formatCidr(cidr), reason: 'config' as const, source: 'cfg', path: '' };
      rs.push(r, r);
    }
    rs.push(range('10.0.0.0/8'));
    const { kept, dropped } = normalizeRanges(rs);
    assert.deepEqual(texts(kept), ['10.0.0.0/8']);
    assert.equal(dropped.length, 100_000);
  });
});

// ---- the law: normalisation never changes which addresses are exempt ----

const BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };

// Blocks drawn from a small corner of each address space, so that duplicates, nesting and
// adjacency are common; plus the whole space and the top edge now and then.
function arbCidr(family: Family): fc.Arbitrary<Cidr> {
  const bits = BITS[family];
  const corner = family === 'ipv4' ? 0x0af40000n : 0x20010db8n << 96n; // 10.244.0.0, 2001:db8::
  return fc
    .tuple(
      fc.integer({ min: bits - 12, max: bits }),
      // Few distinct offsets make duplicates and a block's first and last addresses common.
      fc.oneof(fc.bigInt({ min: 0n, max: 7n }), fc.constantFrom(255n, 256n, 4095n), fc.bigInt({ min: 0n, max: 4095n })),
      fc.constantFrom('corner', 'corner', 'corner', 'top', 'all'),
    )
    .map(([prefix, offset, where]) => {
      if (where === 'all') return { family, base: 0n, prefix: 0 };
      const hostBits = BigInt(bits - prefix);
      const start = where === 'top' ? (1n << BigInt(bits)) - 4096n : corner;
      const base = ((start + offset) >> hostBits) << hostBits;
      return { family, base, prefix };
    });
}

const arbRanges = fc.array(
  fc.oneof(arbCidr('ipv4'), arbCidr('ipv6')).map((cidr): ExemptRange => ({ cidr, text: formatCidr(cidr), reason: 'config', source: 'prop', path: '' })),
  { maxLength: 40 },
);

function covered(rs: readonly ExemptRange[], ip: IpAddress): boolean {
  return rs.some((r) => cidrContains(r.cidr, ip));
}

function probes(rs: readonly ExemptRange[], extra: readonly IpAddress[]): IpAddress[] {
  const out = [...extra];
  for (const { cidr } of rs) {
    const max = (1n << BigInt(BITS[cidr.family])) - 1n;
    for (const v of [cidr.base - 1n, cidr.base, cidrLast(cidr), cidrLast(cidr) + 1n]) {
      if (v >= 0n && v <= max) out.push({ family: cidr.family, value: v });
    }
  }
  return out;
}

const arbProbe = fc.oneof(
  fc.bigInt({ min: 0x0af40000n - 16n, max: 0x0af40000n + 8192n }).map((value): IpAddress => ({ family: 'ipv4', value })),
  fc.bigInt({ min: 0n, max: 0xffffffffn }).map((value): IpAddress => ({ family: 'ipv4', value })),
  fc.bigInt({ min: (0x20010db8n << 96n) - 16n, max: (0x20010db8n << 96n) + 8192n }).map((value): IpAddress => ({ family: 'ipv6', value })),
);

describe('normalizeRanges (properties)', () => {
  it('covers exactly the addresses the input covered (edges and random addresses)', () => {
    fc.assert(
      fc.property(arbRanges, fc.array(arbProbe, { maxLength: 30 }), (rs, extra) => {
        const { kept } = normalizeRanges(rs);
        for (const ip of probes(rs, extra)) {
          assert.equal(covered(kept, ip), covered(rs, ip), `${ip.family} ${ip.value}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('keeps ranges that never overlap, in address order, and accounts for every input', () => {
    fc.assert(
      fc.property(arbRanges, (rs) => {
        const { kept, dropped } = normalizeRanges(rs);
        assert.equal(kept.length + dropped.length, rs.length);
        for (let i = 1; i < kept.length; i++) {
          const [a, b] = [kept[i - 1]!.cidr, kept[i]!.cidr];
          if (a.family === b.family) assert.ok(cidrLast(a) < b.base, `${formatCidr(a)} overlaps ${formatCidr(b)}`);
          else assert.ok(a.family === 'ipv4' && b.family === 'ipv6');
        }
        for (const d of dropped) {
          assert.ok(kept.includes(d.by));
          assert.ok(d.by.cidr.prefix <= d.range.cidr.prefix && cidrContains(d.by.cidr, { family: d.range.cidr.family, value: d.range.cidr.base }));
          assert.equal(d.reason === 'duplicate', d.by.cidr.prefix === d.range.cidr.prefix);
        }
      }),
      { numRuns: 500 },
    );
  });
});
