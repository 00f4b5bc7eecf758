import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EXCERPT_MAX_BYTES, cutExcerpt, quoteExcerpt } from '../src/excerpt.js';
import { ConfigError, MAX_REPORTED_ISSUES, type ConfigIssue } from '../src/errors.js';

describe('quoteExcerpt and cutExcerpt', () => {
  it('quote short text whole, as JSON does', () => {
    assert.equal(quoteExcerpt('10.0.0.0/33'), '"10.0.0.0/33"');
    assert.equal(quoteExcerpt('a"b\u0000'), JSON.stringify('a"b\u0000'));
    assert.equal(cutExcerpt('plain'), 'plain');
  });
  it('cut long text to its first bytes and say how long it was', () => {
    const big = 'x'.repeat(1_048_576);
    assert.equal(quoteExcerpt(big), `"${'x'.repeat(EXCERPT_MAX_BYTES)}…" (cut, 1048576 bytes)`);
    assert.equal(cutExcerpt(big, 10), `${'x'.repeat(10)}… (cut, 1048576 bytes)`);
  });
  it('count escaped bytes and never split a character', () => {
    const q = quoteExcerpt('\u0000'.repeat(1000));
    // Each NUL is 6 bytes escaped (\u0000): 33 of them fit in 200.
    assert.equal(q, `"${'\\u0000'.repeat(33)}…" (cut, 1000 bytes)`);
    const e = quoteExcerpt('€'.repeat(100), 10);
    assert.equal(e, `"€€€…" (cut, 300 bytes)`);
  });
});

describe('ConfigError', () => {
  const issue = (i: number): ConfigIssue => ({ source: '/c', path: `nonMasqueradeCIDRs[${i}]`, line: i + 1, column: 5, message: `bad ${i}` });
  it(`keeps the first ${MAX_REPORTED_ISSUES} issues and counts the rest in one more`, () => {
    const err = new ConfigError(Array.from({ length: 50_000 }, (_, i) => issue(i)));
    assert.equal(err.issues.length, MAX_REPORTED_ISSUES + 1);
    assert.deepEqual(
      err.issues.slice(0, MAX_REPORTED_ISSUES),
      Array.from({ length: MAX_REPORTED_ISSUES }, (_, i) => issue(i)),
    );
    assert.equal(err.issues[MAX_REPORTED_ISSUES]!.message, `and ${50_000 - MAX_REPORTED_ISSUES} more errors not shown; fix the ones above first`);
    assert.ok(err.message.length < 2000, `${err.message.length} bytes`);
  });
  it('keeps every issue up to the bound', () => {
    const issues = Array.from({ length: MAX_REPORTED_ISSUES }, (_, i) => issue(i));
    assert.deepEqual(new ConfigError(issues).issues, issues);
  });
});

describe('cutExcerpt on tool output', () => {
  it('keeps text up to the bound whole', () => {
    assert.equal(cutExcerpt('iptables: No chain/target/match by that name.'), 'iptables: No chain/target/match by that name.');
    assert.equal(cutExcerpt('x'.repeat(EXCERPT_MAX_BYTES)), 'x'.repeat(EXCERPT_MAX_BYTES));
  });
  it('cuts on a character boundary, counted in UTF-8 bytes', () => {
    // 'é' is 2 bytes, '😀' is 4 bytes (two UTF-16 units).
    for (const ch of ['é', '😀', '日']) {
      const text = ch.repeat(500);
      const out = cutExcerpt(text);
      const head = out.slice(0, out.indexOf('… (cut, '));
      assert.ok(Buffer.byteLength(head) <= EXCERPT_MAX_BYTES, ch);
      assert.ok(Buffer.byteLength(head) > EXCERPT_MAX_BYTES - 4, ch);
      assert.equal(head, ch.repeat(head.length / ch.length), `${ch}: whole characters only`);
      assert.ok(out.endsWith(`… (cut, ${Buffer.byteLength(text)} bytes)`), out);
    }
  });
});
