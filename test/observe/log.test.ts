import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createLogger, formatLogLine, levelForVerbosity } from '../../src/observe/log.js';

// Written by pino 10.4.0 (time set to 0) from the calls below, before our own writer replaced it:
// log pipelines must see the same lines.
const GOLDEN = fileURLToPath(new URL('../../../test/golden/observe/log-lines.jsonl', import.meta.url));

test('log: lines are byte for byte what pino wrote, field quirks included', () => {
  const lines: string[] = [];
  const log = createLogger(
    4,
    (l) => void lines.push(l),
    () => 0,
  );
  log.info('plain');
  log.info('with fields', { a: 1, b: 'two "quoted"\n', c: [1, 2], d: { e: null, u: undefined }, f: true, g: 1.5, h: NaN, i: Infinity });
  log.warn('warn msg', { msg: 'field named msg', level: 'x', time: 5, component: 'other' });
  log.error('err', { error: new Error('boom'), obj: new Map([[1, 2]]) });
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
