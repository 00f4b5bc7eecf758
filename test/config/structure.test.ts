// structure.ts checks each key's value by hand so the agent need not load zod; keys.ts still
// describes the same structure as a zod schema for the JSON Schema export. Here both judge the
// same values, hand-picked and random, and must report the same issues: path, code, input and
// the message parse builds from them (schemaMessage), in the same order.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { CONFIG_KEYS, KEYS, type ConfigKey } from '../../src/config/keys.js';
import { schemaMessage } from '../../src/config/fragment.js';
import { configSchema } from '../../src/config/schema.js';
import { checkStructure } from '../../src/config/structure.js';

type Path = (string | number)[];
interface Seen {
  readonly path: Path;
  readonly code: string;
  readonly input: unknown;
  readonly message: string;
}

function byZod(key: ConfigKey, value: unknown): Seen[] {
  const result = configSchema.shape[key].safeParse(value, { reportInput: true });
  if (result.success) return [];
  return result.error.issues.map((i) => {
    const path = i.path as Path;
    return { path, code: i.code, input: i.input, message: schemaMessage(key, path, i.code, i.input, i.message) };
  });
}

function byHand(key: ConfigKey, value: unknown): Seen[] {
  return checkStructure(KEYS[key].shape, value).map((i) => {
    const path = [...i.path];
    return { path, code: i.code, input: i.input, message: schemaMessage(key, path, i.code, i.input, i.message) };
  });
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
    const codes = new Set(CONFIG_KEYS.flatMap((key) => COMMON.flatMap((v) => byZod(key, v).map((i) => i.code))));
    assert.deepEqual([...codes].sort(), ['invalid_format', 'invalid_type', 'too_big', 'too_small', 'unrecognized_keys']);
  });
  it('the hand-picked values hold issues nested in snat items and repeated faults of one value', () => {
    const snat = COMMON.flatMap((v) => byZod('snat', v));
    assert.ok(snat.some((i) => i.path.length === 3 && i.path[1] === 'cidrs'));
    assert.ok(snat.some((i) => i.code === 'unrecognized_keys' && i.message.includes('"__proto__"')));
    assert.ok(COMMON.some((v) => byZod('cidrLimit', v).length === 2));
  });
});
