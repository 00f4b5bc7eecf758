import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createLineWriter, createLogger, DROPPED_NOTE, formatLogLine, levelForVerbosity } from '../../src/observe/log.js';

// Written by pino 10.4.0 (time set to 0) from the calls below, before our own writer replaced it:
// log pipelines must see the same lines. Two lines differ from pino on purpose: "warn msg" (a field
// named like a line key is left out, so each key appears once) and "err" (an Error is written as
// its message, stack and cause, not `{}`).
const GOLDEN = fileURLToPath(new URL('../../../test/golden/observe/log-lines.jsonl', import.meta.url));

test('log: lines are byte for byte what pino wrote, field quirks included, but for an Error and a repeated key', () => {
  const lines: string[] = [];
  const log = createLogger(
    4,
    (l) => void lines.push(l),
    () => 0,
  );
  log.info('plain');
  log.info('with fields', { a: 1, b: 'two "quoted"\n', c: [1, 2], d: { e: null, u: undefined }, f: true, g: 1.5, h: NaN, i: Infinity });
  log.warn('warn msg', { msg: 'field named msg', level: 'x', time: 5, component: 'other' });
  const error = new Error('boom', { cause: new Error('root cause') });
  error.stack = 'Error: boom\n    at test (log.test.ts:1:1)'; // a stack that does not move with the code
  log.error('err', { error, obj: new Map([[1, 2]]) });
  log.debug('dbg "q" \u2028 é', {});
  log.trace('trc', { argv: ['iptables', '-S'], ms: 3 });
  const circ: Record<string, unknown> = { name: 'c' };
  circ['self'] = circ;
  log.info('circular', { circ });
  log.info('bigint', { n: 10n });
  log.info('', { empty: '' });
  log.info('undef field', undefined);
  assert.equal(lines.join(''), readFileSync(GOLDEN, 'utf8'));
});

test('log: --v picks the levels shown', () => {
  for (const [v, shown] of [
    [0, ['error', 'warn', 'info']],
    [2, ['error', 'warn', 'info', 'debug']],
    [4, ['error', 'warn', 'info', 'debug', 'trace']],
  ] as const) {
    const lines: string[] = [];
    const log = createLogger(
      v,
      (l) => void lines.push(l),
      () => 1,
    );
    for (const level of ['error', 'warn', 'info', 'debug', 'trace'] as const) log[level](level);
    assert.deepEqual(
      lines.map((l) => (JSON.parse(l) as { level: string }).level),
      shown,
      `--v=${v} (${levelForVerbosity(v)})`,
    );
  }
});

test('log: a line is one JSON object ending in a newline, whatever the message holds', () => {
  const line = formatLogLine('info', 7, 'a\nb\u0000"', { k: 'v\r\n' });
  assert.equal(line.indexOf('\n'), line.length - 1);
  assert.deepEqual(JSON.parse(line), { level: 'info', time: 7, component: 'ip-masq-agent', k: 'v\r\n', msg: 'a\nb\u0000"' });
});

test('log: an Error is written as message, stack and cause at any depth, the cause bounded, also beside a circular value', () => {
  const bare = new Error('no stack', { cause: 'x'.repeat(5000) });
  delete bare.stack;
  const nested = new TypeError('inner');
  nested.stack = 'TypeError: inner';
  const circ: Record<string, unknown> = { nested };
  circ['self'] = circ;
  const parsed = JSON.parse(formatLogLine('error', 0, 'm', { bare, list: [{ nested }], circ })) as Record<string, unknown>;
  const cause = (parsed['bare'] as { cause: string }).cause;
  assert.deepEqual(Object.keys(parsed['bare'] as object), ['message', 'cause']);
  assert.equal((parsed['bare'] as { message: string }).message, 'no stack');
  assert.ok(cause.startsWith('x'.repeat(1000)) && Buffer.byteLength(cause) < 1200, `cause not bounded: ${cause.length} chars`);
  assert.deepEqual(parsed['list'], [{ nested: { message: 'inner', stack: 'TypeError: inner' } }]);
  assert.deepEqual(parsed['circ'], { nested: { message: 'inner', stack: 'TypeError: inner' }, self: '[Circular]' });
  const objectCause = JSON.parse(formatLogLine('error', 0, 'm', { e: new Error('m', { cause: { code: 7 } }) })) as { e: { cause: string } };
  assert.equal(objectCause.e.cause, '{"code":7}');
  const loop: Record<string, unknown> = {};
  const looped = new Error('loop', { cause: loop });
  loop['error'] = looped;
  loop['self'] = loop;
  assert.equal((JSON.parse(formatLogLine('error', 0, 'm', { looped })) as { looped: { cause: string } }).looped.cause, 'object');
});

test('log: each key appears once; the line keys belong to the logger, a field named like one is left out', () => {
  const line = formatLogLine('warn', 3, 'real', { level: 'error', time: 9, component: 'x', msg: 'forged', other: 1 });
  assert.equal(line, '{"level":"warn","time":3,"component":"ip-masq-agent","other":1,"msg":"real"}\n');
});

/** An output that takes `room` bytes, then answers EAGAIN until given more; or fails with `error`. */
function fakeOutput() {
  const out = { text: '', room: Infinity, error: undefined as string | undefined, calls: 0 };
  const write = (buf: Buffer): number => {
    out.calls++;
    if (out.error) throw Object.assign(new Error(out.error), { code: out.error });
    const n = Math.min(buf.length, out.room);
    if (n === 0) throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
    out.room -= n;
    out.text += buf.subarray(0, n).toString('utf8');
    return n;
  };
  return { out, write };
}

/** Timers run only when the test says so. */
function manualTimers() {
  const due: (() => void)[] = [];
  return {
    setTimer: (_ms: number, fn: () => void) => void due.push(fn),
    pending: () => due.length,
    runAll: () => {
      for (const fn of due.splice(0)) fn();
    },
  };
}

const line = (n: number): string => formatLogLine('info', 0, `line ${n}`, { pad: 'x'.repeat(40) });

test('log writer: a line the output takes is written at once, before write() returns', () => {
  const { out, write } = fakeOutput();
  const timers = manualTimers();
  const w = createLineWriter({ write, setTimer: timers.setTimer });
  w.write(line(1));
  assert.equal(out.text, line(1));
  assert.equal(timers.pending(), 0);
  assert.equal(w.dropped(), 0);
});

test('log writer: a blocked output never blocks the caller; whole lines are held up to the bound, the rest dropped and counted, then a note', () => {
  const { out, write } = fakeOutput();
  const timers = manualTimers();
  const w = createLineWriter({ write, setTimer: timers.setTimer, maxBufferedBytes: 3 * line(0).length, now: () => 1000 });
  out.room = 10; // the output takes the start of line 1, then is full
  for (let n = 1; n <= 10; n++) w.write(line(n));
  assert.equal(out.text, line(1).slice(0, 10));
  assert.equal(timers.pending(), 1, 'one retry timer, however many lines');
  assert.equal(w.dropped(), 7, 'lines 1 to 3 held, 4 to 10 dropped');

  timers.runAll();
  assert.equal(timers.pending(), 1, 'still blocked: tried again later');
  out.room = Infinity; // a reader again
  timers.runAll();
  assert.equal(timers.pending(), 0);
  const lines = out.text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    lines.map((l) => l['msg']),
    ['line 1', 'line 2', 'line 3', DROPPED_NOTE],
  );
  assert.equal(lines[3]?.['level'], 'warn');
  assert.equal(lines[3]?.['dropped'], 7);

  w.write(line(11));
  assert.ok(out.text.endsWith(line(11)), 'written at once again');
  assert.equal(w.dropped(), 7, 'the count is a total');
});

test('log writer: a slow output (a few bytes per retry) gets every held line whole and in order', () => {
  const { out, write } = fakeOutput();
  const timers = manualTimers();
  const w = createLineWriter({ write, setTimer: timers.setTimer });
  out.room = 0;
  for (let n = 1; n <= 5; n++) w.write(line(n));
  for (let i = 0; i < 1000 && timers.pending() > 0; i++) {
    out.room = 7;
    timers.runAll();
  }
  assert.equal(out.text, [1, 2, 3, 4, 5].map(line).join(''));
  assert.equal(w.dropped(), 0);
  assert.equal(timers.pending(), 0);
});

test('log writer: a closed output drops and counts each line, without throwing or retrying', () => {
  const { out, write } = fakeOutput();
  const timers = manualTimers();
  const w = createLineWriter({ write, setTimer: timers.setTimer });
  out.error = 'EPIPE';
  w.write(line(1));
  w.write(line(2));
  assert.equal(w.dropped(), 2);
  assert.equal(timers.pending(), 0);
});

test('log writer: flush at exit writes what is held, and gives up on an output that stays blocked', () => {
  const { out, write } = fakeOutput();
  const timers = manualTimers();
  const w = createLineWriter({ write, setTimer: timers.setTimer });
  out.room = 0;
  w.write(line(1));
  w.flush(30);
  assert.equal(out.text, '', 'returned although nothing could be written');
  out.room = Infinity;
  w.flush(30);
  assert.equal(out.text, line(1));
});
