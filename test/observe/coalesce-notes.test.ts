import { test } from 'node:test';
import assert from 'node:assert/strict';
import { coalesceNotes } from '../../src/observe/coalesce-notes.js';

function setup() {
  const notes: (number | undefined)[] = [];
  const due: (() => void)[] = [];
  const event = coalesceNotes({ windowMs: 1000, setTimer: (_ms, fn) => void due.push(fn), note: (n) => void notes.push(n) });
  const endWindow = (): void => {
    for (const fn of due.splice(0)) fn();
  };
  return { notes, due, event, endWindow };
}

test('coalesceNotes: an event after a quiet window is noted at once', () => {
  const s = setup();
  s.event();
  assert.deepEqual(s.notes, [undefined]);
  s.endWindow();
  assert.equal(s.due.length, 0, 'a quiet window closes');
  s.event();
  assert.deepEqual(s.notes, [undefined, undefined]);
});

test('coalesceNotes: a storm is one note per window with its count, then quiet again', () => {
  const s = setup();
  for (let i = 0; i < 300_000; i++) s.event();
  assert.deepEqual(s.notes, [undefined]);
  s.endWindow();
  assert.deepEqual(s.notes, [undefined, 299_999]);
  for (let i = 0; i < 5; i++) s.event();
  s.endWindow();
  assert.deepEqual(s.notes, [undefined, 299_999, 5]);
  s.endWindow();
  assert.equal(s.due.length, 0);
  s.event();
  assert.deepEqual(s.notes, [undefined, 299_999, 5, undefined]);
});
