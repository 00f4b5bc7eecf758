import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DurationError, formatGoDuration, parseGoDuration } from '../../src/config/duration.js';
import { readGoTable } from '../fixtures/go-tsv.js';

describe('parseGoDuration and formatGoDuration agree with every row of go-durations.tsv', () => {
  const rows = readGoTable('go-durations.tsv');
  it('has the rows', () => assert.ok(rows.length >= 70, `only ${rows.length} rows`));
  for (const { input, cols, line } of rows) {
    const [ns, text] = cols;
    it(`line ${line}: ${JSON.stringify(input)}`, () => {
      if (ns === 'error') {
        assert.throws(
          () => parseGoDuration(input),
          (err: unknown) => {
            assert.ok(err instanceof DurationError);
            assert.equal(err.message, text);
            return true;
          },
        );
        return;
      }
      const got = parseGoDuration(input);
      assert.equal(got, BigInt(ns!));
      assert.equal(formatGoDuration(got), text);
    });
  }
});

describe('formatGoDuration', () => {
  const cases: [bigint, string][] = [
    [0n, '0s'],
    [1n, '1ns'],
    [999n, '999ns'],
    [1_100n, '1.1µs'],
    [2_200_000n, '2.2ms'],
    [-1_500_000_000n, '-1.5s'],
    [-(1n << 63n), '-2562047h47m16.854775808s'],
    [86_400_000_000_000n, '24h0m0s'],
  ];
  for (const [ns, want] of cases) it(`${ns} -> ${want}`, () => assert.equal(formatGoDuration(ns), want));
});

describe('parseGoDuration edge cases beyond the table', () => {
  it('accepts -9223372036854775808ns (the int64 minimum)', () => {
    assert.equal(parseGoDuration('-9223372036854775808ns'), -(1n << 63n));
  });
  it('quotes control characters in errors as Go does', () => {
    assert.throws(() => parseGoDuration('1\n'), { message: 'time: unknown unit "\\x0a" in duration "1\\x0a"' });
  });
  it('quotes a non-ASCII unit as bytes', () => {
    assert.throws(() => parseGoDuration('1µx'), { message: 'time: unknown unit "\\xc2\\xb5x" in duration "1\\xc2\\xb5x"' });
  });
});
