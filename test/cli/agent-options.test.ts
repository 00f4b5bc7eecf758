import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseToPorts } from '../../src/cli/agent-options.js';

test('parseToPorts keeps the given text for rules', () => {
  assert.deepEqual(parseToPorts(''), []);
  assert.deepEqual(parseToPorts('1024-29999,8080'), [
    { from: 1024, to: 29999, text: '1024-29999' },
    { from: 8080, to: 8080, text: '8080' },
  ]);
});
