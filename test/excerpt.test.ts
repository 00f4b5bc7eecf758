import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EXCERPT_BYTES, excerpt } from '../src/excerpt.js';

test('short text is quoted whole', () => {
  assert.equal(excerpt('iptables: No chain/target/match by that name.'), 'iptables: No chain/target/match by that name.');
  assert.equal(excerpt('x'.repeat(EXCERPT_BYTES)), 'x'.repeat(EXCERPT_BYTES));
});

test('long text keeps its first 200 bytes, marked as cut with the count of what was left out', () => {
  assert.equal(excerpt('x'.repeat(1_000_000)), `${'x'.repeat(200)}... [cut: 999800 more bytes]`);
  assert.equal(excerpt('abcdef', 3), 'abc... [cut: 3 more bytes]');
});

test('the cut falls on a character boundary, counted in UTF-8 bytes', () => {
  // 'é' is 2 bytes, '😀' is 4 bytes (two UTF-16 units).
  for (const ch of ['é', '😀', '日']) {
    const text = ch.repeat(500);
    const out = excerpt(text);
    const head = out.slice(0, out.indexOf('... [cut: '));
    assert.ok(Buffer.byteLength(head) <= EXCERPT_BYTES, ch);
    assert.ok(Buffer.byteLength(head) > EXCERPT_BYTES - 4, ch);
    assert.equal(head, ch.repeat(head.length / ch.length), `${ch}: whole characters only`);
    assert.match(out, new RegExp(`\\[cut: ${Buffer.byteLength(text) - Buffer.byteLength(head)} more bytes\\]$`));
  }
});
