import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CidrError, LINK_LOCAL_V4, LINK_LOCAL_V6, cidrContains, cidrContainsCidr, formatCidr, formatIp, parseCidr, parseIp, type Cidr } from '../../src/net/cidr.js';
import { readGoTable } from '../fixtures/go-tsv.js';

function cidrErrorOf(fn: () => unknown): CidrError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CidrError, `expected CidrError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a CidrError, but the call returned');
}

describe('parseCidr agrees with every row of go-parsecidr.tsv', () => {
  const rows = readGoTable('go-parsecidr.tsv');
  it('has the rows', () => assert.ok(rows.length >= 55, `only ${rows.length} rows`));
  for (const { input, cols, line } of rows) {
    const [first, second, third] = cols;
    it(`line ${line}: ${JSON.stringify(input)}`, () => {
      if (first === 'error') {
        const err = cidrErrorOf(() => parseCidr(input));
        assert.equal(err.kind, 'unparsable');
        assert.equal(err.message, `CIDR "${input}" could not be parsed, ${second}`);
        return;
      }
      const network = first!;
      if (third === 'misaligned') {
        const err = cidrErrorOf(() => parseCidr(input));
        assert.equal(err.kind, 'misaligned');
        assert.match(err.message, /is not aligned to a CIDR block/);
        assert.ok(err.message.includes(`network: "${network}"`), err.message);
        return;
      }
      // Aligned, but written as IPv6 while Go sees IPv4: the mapped form we refuse.
      if (second === 'ipv4' && input.includes(':')) {
        const err = cidrErrorOf(() => parseCidr(input));
        assert.equal(err.kind, 'mapped');
        assert.ok(err.message.includes(`"${network}"`), err.message);
        assert.match(err.message, /IPv4 form/);
        return;
      }
      const c = parseCidr(input);
      assert.equal(c.family, second);
      assert.equal(formatCidr(c), network);
    });
  }
});

describe('parseCidr error messages carry the reference facts', () => {
  it('unparsable', () => {
    assert.equal(cidrErrorOf(() => parseCidr('abcdefg')).message, 'CIDR "abcdefg" could not be parsed, invalid CIDR address: abcdefg');
  });
  it('misaligned IPv4', () => {
    assert.equal(cidrErrorOf(() => parseCidr('10.0.0.1/8')).message, 'CIDR "10.0.0.1/8" is not aligned to a CIDR block, ip: "10.0.0.1" network: "10.0.0.0/8"');
  });
  it('misaligned IPv6', () => {
    assert.equal(cidrErrorOf(() => parseCidr('2001:db8::1/32')).message, 'CIDR "2001:db8::1/32" is not aligned to a CIDR block, ip: "2001:db8::1" network: "2001:db8::/32"');
  });
  it('mapped form names the IPv4 form to write', () => {
    const err = cidrErrorOf(() => parseCidr('::ffff:10.0.0.0/104'));
    assert.equal(err.kind, 'mapped');
    assert.match(err.message, /write the IPv4 form "10\.0\.0\.0\/8"/);
  });
});

describe('formatIp prints IPv6 as Go does', () => {
  const cases: [string, string][] = [
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'], // a single zero group is not shortened
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longer run wins
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], // the first run wins a tie
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fe80::', 'fe80::'],
    ['::1.2.3.4', '::102:304'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['0000:0000:0000:0000:0000:0000:0000:00ff', '::ff'],
  ];
  for (const [input, want] of cases) {
    it(`${input} -> ${want}`, () => assert.equal(formatIp(parseIp(input)), want));
  }
  it('IPv4 dotted', () => assert.equal(formatIp(parseIp('192.0.2.1')), '192.0.2.1'));
});

describe('parseIp', () => {
  it('reads IPv4 and IPv6', () => {
    assert.deepEqual(parseIp('10.0.0.1'), { family: 'ipv4', value: 0x0a000001n });
    assert.deepEqual(parseIp('::1'), { family: 'ipv6', value: 1n });
  });
  for (const bad of ['010.0.0.1', '10.0.0', '10.0.0.1/32', 'fe80::1%eth0', '', ' 10.0.0.1', '1:2:3:4:5:6:7:8:9', 'x']) {
    it(`rejects ${JSON.stringify(bad)}`, () => {
      const err = cidrErrorOf(() => parseIp(bad));
      assert.equal(err.kind, 'unparsable');
      assert.ok(err.message.includes(`"${bad}"`));
    });
  }
  it('rejects IPv4-mapped IPv6 and names the IPv4 form', () => {
    const err = cidrErrorOf(() => parseIp('::ffff:192.0.2.1'));
    assert.equal(err.kind, 'mapped');
    assert.match(err.message, /"192\.0\.2\.1"/);
  });
});

describe('containment', () => {
  const c = (t: string): Cidr => parseCidr(t);
  it('cidrContains', () => {
    assert.equal(cidrContains(c('10.0.0.0/8'), parseIp('10.255.255.255')), true);
    assert.equal(cidrContains(c('10.0.0.0/8'), parseIp('11.0.0.0')), false);
    assert.equal(cidrContains(c('0.0.0.0/0'), parseIp('203.0.113.9')), true);
    assert.equal(cidrContains(c('::/0'), parseIp('203.0.113.9')), false); // never across families
    assert.equal(cidrContains(c(LINK_LOCAL_V6), parseIp('fe80::1')), true);
    assert.equal(cidrContains(c(LINK_LOCAL_V6), parseIp('fec0::1')), false);
    assert.equal(cidrContains(c(LINK_LOCAL_V4), parseIp('169.254.169.254')), true);
    assert.equal(cidrContains(c('192.0.2.1/32'), parseIp('192.0.2.1')), true);
    assert.equal(cidrContains(c('192.0.2.1/32'), parseIp('192.0.2.2')), false);
  });
  it('cidrContainsCidr', () => {
    assert.equal(cidrContainsCidr(c('10.0.0.0/8'), c('10.244.0.0/16')), true);
    assert.equal(cidrContainsCidr(c('10.244.0.0/16'), c('10.0.0.0/8')), false);
    assert.equal(cidrContainsCidr(c('10.0.0.0/8'), c('10.0.0.0/8')), true);
    assert.equal(cidrContainsCidr(c('10.0.0.0/8'), c('11.0.0.0/8')), false);
    assert.equal(cidrContainsCidr(c('::/0'), c('0.0.0.0/0')), false);
    assert.equal(cidrContainsCidr(c('2001:db8::/32'), c('2001:db8:1::/48')), true);
  });
});

describe('properties', () => {
  const arbCidr = fc
    .oneof(
      fc.record({ family: fc.constant('ipv4' as const), value: fc.bigInt(0n, (1n << 32n) - 1n), prefix: fc.integer({ min: 0, max: 32 }) }),
      fc.record({ family: fc.constant('ipv6' as const), value: fc.bigInt(0n, (1n << 128n) - 1n), prefix: fc.integer({ min: 0, max: 128 }) }),
    )
    .map(({ family, value, prefix }): Cidr => {
      const bits = family === 'ipv4' ? 32n : 128n;
      const all = (1n << bits) - 1n;
      return { family, base: value & ((all << (bits - BigInt(prefix))) & all), prefix };
    })
    .filter((c) => !(c.family === 'ipv6' && c.base >> 32n === 0xffffn));

  it('formatCidr then parseCidr gives back the same block', () => {
    fc.assert(
      fc.property(arbCidr, (cidr) => {
        assert.deepEqual(parseCidr(formatCidr(cidr)), cidr);
      }),
      { seed: 20261126, numRuns: 3000 },
    );
  });

  it('a block contains its first and last address and nothing just outside', () => {
    fc.assert(
      fc.property(arbCidr, (cidr) => {
        const bits = cidr.family === 'ipv4' ? 32n : 128n;
        const size = 1n << (bits - BigInt(cidr.prefix));
        const last = cidr.base + size - 1n;
        assert.equal(cidrContains(cidr, { family: cidr.family, value: cidr.base }), true);
        assert.equal(cidrContains(cidr, { family: cidr.family, value: last }), true);
        if (last + 1n < 1n << bits) assert.equal(cidrContains(cidr, { family: cidr.family, value: last + 1n }), false);
        if (cidr.base > 0n) assert.equal(cidrContains(cidr, { family: cidr.family, value: cidr.base - 1n }), false);
      }),
      { seed: 20261126, numRuns: 2000 },
    );
  });
});
