// structure.ts checks each key's value by hand, straight into messages, so the agent need not load
// zod; keys.ts still describes the same structure as a zod schema for the JSON Schema export. Here
// both judge the same values, hand-picked and random, and must report the same faults: path and
// message (zod's issues put in words as parse has always worded them, below), in the same order.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { cutExcerpt } from '../../src/excerpt.js';
import { parseGoDuration } from '../../src/config/duration.js';
import { CONFIG_KEYS, KEYS, isCidrListKey, type ConfigKey } from '../../src/config/keys.js';
import { configSchema } from '../../src/config/schema.js';
import { describeValue, structureFaults } from '../../src/config/structure.js';

type Path = (string | number)[];
interface Seen {
  readonly path: Path;
  readonly message: string;
}

/** The message for one zod issue: what was expected, what was found, and what to do. */
function zodIssueMessage(key: ConfigKey, rest: Path, code: string, input: unknown, fallback: string): string {
  const inList = (isCidrListKey(key) && rest.length > 0) || (key === 'snat' && rest.length === 3 && rest[1] === 'cidrs');
  const snatItem = key === 'snat' && rest.length === 1;
  const snatField = key === 'snat' && rest.length === 2 ? rest[1] : undefined;
  if (input === null || input === undefined) {
    if (inList) return 'empty list item (null): remove the "-" that has nothing after it, or write a CIDR there';
    if (snatItem) return 'empty snat item (null): write {cidrs: [CIDR, ...], toSource: IP} there, or remove the "-"';
    if (snatField !== undefined) return `snat item has no ${String(snatField)}: every item needs cidrs (a list of CIDRs) and toSource (an IP address)`;
    if (key === 'nonMasqueradeCIDRs') {
      return 'nonMasqueradeCIDRs has no value (null): write [] to masquerade everything except link-local, or remove the key for the defaults';
    }
    return `${key} has no value (null): give ${KEYS[key].expected}, or remove the key for the default (${KEYS[key].defaultText})`;
  }
  if (code === 'unrecognized_keys' && key === 'snat') return `${cutExcerpt(fallback)}: a snat item has only cidrs and toSource`;
  const expected = inList
    ? 'a CIDR string such as "10.0.0.0/8"'
    : snatItem
      ? 'a mapping {cidrs: [CIDR, ...], toSource: IP}'
      : snatField === 'cidrs'
        ? 'a list of CIDR strings'
        : snatField === 'toSource'
          ? 'an IP address string such as "198.51.100.9"'
          : KEYS[key].expected;
  if (code === 'invalid_type') {
    let hint = '';
    if (key === 'resyncInterval' && typeof input === 'number') {
      let example = `${String(input)}s`;
      try {
        parseGoDuration(example);
      } catch {
        example = '60s';
      }
      hint = ` (a bare number has no unit; write it quoted with a unit, e.g. resyncInterval: "${example}"${input < 1 ? '; an interval below 1s runs at 1s' : ''})`;
    }
    return `expected ${expected}, got ${describeValue(input)}${hint}`;
  }
  if (code === 'too_big' && key === 'cidrLimit') return `expected ${expected} of at most ${Number.MAX_SAFE_INTEGER}, got ${describeValue(input)}`;
  if (code === 'too_small' || code === 'too_big') return `expected ${expected}, got ${describeValue(input)}`;
  return cutExcerpt(fallback);
}

/** zod's issues in words; a malformed duration is the Go parser's to explain, and two faults that read the same are said once. */
function byZod(key: ConfigKey, value: unknown, codes?: Set<string>): Seen[] {
  const result = configSchema.shape[key].safeParse(value, { reportInput: true });
  if (result.success) return [];
  const seen = new Set<string>();
  return result.error.issues.flatMap((i) => {
    codes?.add(i.code);
    const path = i.path as Path;
    const message = zodIssueMessage(key, path, i.code, i.input, i.message);
    const id = `${JSON.stringify(path)}\n${message}`;
    if ((key === 'resyncInterval' && i.code === 'invalid_format') || seen.has(id)) return [];
    seen.add(id);
    return [{ path, message }];
  });
}

function byHand(key: ConfigKey, value: unknown): Seen[] {
  return structureFaults(key, value).map((f) => ({ path: [...f.rest], message: f.message }));
}

/** An object with exactly the own keys of a JSON text (a literal `__proto__:` would set the prototype instead). */
const own = (json: string): object => JSON.parse(json) as object;

/** Values every key is tried with: right and wrong types, edge numbers, odd objects. */
const COMMON: readonly unknown[] = [
  undefined,
  null,
  true,
  false,
  0,
  -0,
  1,
  -1,
  64,
  1.5,
  -1.5,
  0.1,
  1e-300,
  NaN,
  Infinity,
  -Infinity,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 1,
  -Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER - 1,
  2 ** 53 + 2,
  -(2 ** 60),
  1e300,
  -1e300,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  5n,
  -5n,
  '',
  'x',
  '60s',
  '1m30s',
  '-1s',
  '+0',
  '0',
  '5',
  '1.5h',
  '.5s',
  '5.s',
  '1µs',
  '1μs',
  '1us',
  '1d',
  ' 60s',
  '60s\n',
  'true',
  '10.0.0.0/8',
  [],
  ['10.0.0.0/8'],
  ['10.0.0.0/8', 1, null, undefined, true, [], {}, 2.5, new Date(0)],
  // eslint-disable-next-line no-sparse-arrays
  [, 'a'],
  [['10.0.0.0/8']],
  {},
  { a: 1 },
  new Date(0),
  new Uint8Array([1, 2]),
  Object.create(null),
  [{ cidrs: ['198.51.100.0/24'], toSource: '192.0.2.9' }],
  [{ cidrs: ['198.51.100.0/24'], toSource: '192.0.2.9', extra: 1 }],
  [{ cidrs: [], toSource: '', a: 1, b: 2, 'c"d': 3, '': 4 }],
  [{}, null, undefined, 1, 'x', [], new Date(0), { cidrs: 'x' }, { toSource: 1 }, { cidrs: [1, null, 'a'], toSource: null }],
  [own('{"__proto__": 1, "cidrs": ["10.0.0.0/8"], "toSource": "192.0.2.9"}')],
  [own('{"constructor": 1, "toString": 2, "cidrs": ["10.0.0.0/8"]}')],
  [Object.assign(Object.create(null), { cidrs: [], toSource: 'a', z: 1 })],
  [
    { cidrs: [{}], toSource: ['192.0.2.9'] },
    { cidrs: null, toSource: undefined, extra: undefined },
  ],
  { cidrs: ['10.0.0.0/8'], toSource: '192.0.2.9' },
];

const scalar = fc.oneof(
  fc.constantFrom(null, undefined, true, false, NaN, Infinity, -Infinity, -0, 2 ** 53, -(2 ** 53), 1e300),
  fc.integer({ min: -100, max: 100 }),
  fc.maxSafeInteger(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.string({ maxLength: 8 }),
  fc.stringMatching(/^[-+]?[0-9.]{0,4}(ns|us|µs|ms|s|m|h|d)?([0-9]{1,2}(s|m))?$/),
  fc.constantFrom('10.0.0.0/8', '192.0.2.9', 'fd00::/8'),
  fc.date({ noInvalidDate: true }),
);
const fieldName = fc.constantFrom('cidrs', 'toSource', 'extra', '__proto__', 'constructor', 'CIDRs', '');
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, scalar, tie('list'), tie('object')),
  list: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.oneof(fc.dictionary(fieldName, tie('value'), { maxKeys: 4 }), fc.record({ cidrs: fc.array(fc.oneof(scalar, tie('value')), { maxLength: 3 }), toSource: scalar }, { requiredKeys: [] })),
}));
/** Lists of snat-like items, which random values alone reach seldom. */
const snatLike = fc.array(fc.oneof(value, fc.record({ cidrs: fc.array(scalar, { maxLength: 3 }), toSource: scalar, extra: scalar }, { requiredKeys: ['cidrs'] })), { maxLength: 4 });

describe('the hand structure check reports what zod reports', () => {
  for (const key of CONFIG_KEYS) {
    it(`${key}: hand-picked values`, () => {
      for (const v of COMMON) assert.deepStrictEqual(byHand(key, v), byZod(key, v), `${key}: ${inspect(v)}`);
    });
    it(`${key}: random values`, () => {
      fc.assert(
        fc.property(fc.oneof(value, snatLike, fc.anything()), (v) => {
          assert.deepStrictEqual(byHand(key, v), byZod(key, v));
        }),
        { numRuns: 2000 },
      );
    });
  }
  it('the hand-picked values reach every issue code', () => {
    const codes = new Set<string>();
    for (const key of CONFIG_KEYS) for (const v of COMMON) byZod(key, v, codes);
    assert.deepEqual([...codes].sort(), ['invalid_format', 'invalid_type', 'too_big', 'too_small', 'unrecognized_keys']);
  });
  it('the hand-picked values hold issues nested in snat items and repeated faults of one value', () => {
    const snat = COMMON.flatMap((v) => byZod('snat', v));
    assert.ok(snat.some((i) => i.path.length === 3 && i.path[1] === 'cidrs'));
    assert.ok(snat.some((i) => i.message.includes('"__proto__"') && i.message.endsWith('a snat item has only cidrs and toSource')));
    assert.ok(COMMON.some((v) => (configSchema.shape.cidrLimit.safeParse(v).error?.issues.length ?? 0) === 2));
  });
});
