// Fuzz: whatever text a user (or a broken tool) puts in the config file, parseConfigText either
// returns a config or throws ConfigError with located issues. Never a crash of another kind,
// which the agent would not know to turn into "keep the last good config".
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigError, MAX_REPORTED_ISSUES } from '../../src/errors.js';
import { parseConfigText } from '../../src/config/parse.js';
import { MAX_CONFIG_NESTING } from '../../src/config/guard.js';
import type { ConfigOptions } from '../../src/config/config.js';

const SEED = 20261126;

/** Longest message one issue may carry: a cut excerpt of input plus the explanation around it. */
const MAX_MESSAGE_BYTES = 1000;

function check(text: string, opts: ConfigOptions): void {
  try {
    const { config } = parseConfigText(text, '/fuzz', opts);
    assert.ok(config.resyncIntervalMs >= 1);
    assert.ok(config.nonMasqueradeCIDRs.length <= config.cidrLimit);
    if (!opts.enableIPv6) assert.ok(config.nonMasqueradeCIDRs.every((e) => e.cidr.family === 'ipv4'));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    assert.ok(err.issues.length > 0);
    assert.ok(err.issues.length <= MAX_REPORTED_ISSUES + 1, `${err.issues.length} issues`);
    for (const issue of err.issues) {
      assert.equal(issue.source, '/fuzz');
      assert.equal(typeof issue.message, 'string');
      assert.ok(issue.message.length > 0);
      assert.ok(Buffer.byteLength(issue.message) <= MAX_MESSAGE_BYTES, `message of ${Buffer.byteLength(issue.message)} bytes: ${issue.message.slice(0, 300)}`);
      assert.ok(Buffer.byteLength(issue.path) <= MAX_MESSAGE_BYTES, `key path of ${Buffer.byteLength(issue.path)} bytes`);
    }
  }
}

const arbOpts = fc.record({ enableIPv6: fc.boolean(), nomasqAllReservedRanges: fc.boolean() });

const cidrLike = fc.oneof(
  fc.constantFrom('10.0.0.0/8', '10.0.0.1/8', 'fc00::/7', '::ffff:10.0.0.0/104', '010.0.0.0/8', 'abcdefg', '', '-', '~', 'null', '[]', '{}'),
  fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(40)).map(([a, b, c, d, p]) => `${a}.${b}.${c}.${d}/${p}`),
  fc.tuple(fc.array(fc.nat(0x1ffff), { maxLength: 9 }), fc.nat(140)).map(([g, p]) => `${g.map((x) => x.toString(16)).join(':')}::/${p}`),
  fc.string({ maxLength: 20 }),
);
const scalar = fc.oneof(
  fc.constantFrom(
    'yes',
    'no',
    'on',
    'off',
    'true',
    'false',
    '60s',
    '1m30s',
    '0s',
    '-1s',
    '60',
    '1d',
    '0x10',
    '017',
    '1:30',
    '2001-12-14',
    '.inf',
    '*a',
    '&a x',
    '!!binary aGk=',
    '"60s"',
    "'x'",
    '|',
    '>',
  ),
  fc.integer({ min: -5, max: 200 }).map(String),
  fc.string({ maxLength: 12 }),
);
const key = fc.oneof(
  fc.constantFrom('nonMasqueradeCIDRs', 'cidrLimit', 'masqLinkLocal', 'masqLinkLocalIPv6', 'resyncInterval', 'NonMasqueradeCIDRs', 'nonMasqueradeCIDR', '<<', '? x', '"quoted"'),
  fc.string({ maxLength: 10 }),
);
const yamlDoc = fc
  .array(
    fc.oneof(
      fc.tuple(key, scalar).map(([k, v]) => `${k}: ${v}`),
      fc.tuple(key, fc.array(cidrLike, { maxLength: 6 })).map(([k, items]) => `${k}:\n${items.map((i) => `  - ${i}`).join('\n')}`),
      fc.tuple(key, fc.array(cidrLike, { maxLength: 6 })).map(([k, items]) => `${k}: [${items.join(', ')}]`),
      fc.constantFrom('# comment', '---', '...', '', '  ', '\t', '- x', '{', '}', 'key:', '  -'),
    ),
    { maxLength: 8 },
  )
  .map((lines) => lines.join('\n'));
const jsonDoc = fc.dictionary(key, fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.array(cidrLike, { maxLength: 5 }), scalar), { maxKeys: 6 }).map((o) => JSON.stringify(o));

/** Mutates a valid document: delete, duplicate or replace a slice, or insert special characters. */
const mutated = fc
  .tuple(
    fc.oneof(yamlDoc, jsonDoc),
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.nat(8),
        fc.constantFrom(
          '',
          ':',
          '-',
          '[',
          ']',
          '{',
          '}',
          '"',
          "'",
          '\t',
          '\n',
          '  ',
          '#',
          '&',
          '*',
          '!',
          '%',
          '@',
          '`',
          '\u0000',
          '\ufeff',
          'µ',
          '\r',
          '\u0085',
          '\u2028',
          '\u2029',
          '<<: ',
          '<<: *a',
          '&a ',
        ),
      ),
      { maxLength: 4 },
    ),
  )
  .map(([text, edits]) =>
    edits.reduce((t, [at, len, insert]) => {
      const i = t.length === 0 ? 0 : at % t.length;
      return t.slice(0, i) + insert + t.slice(i + len);
    }, text),
  );

/** Nested lists and mappings in flow style, YAML or JSON, any depth the generator reaches. */
const { tree } = fc.letrec<{ tree: unknown }>((tie) => ({
  tree: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    cidrLike,
    fc.array(tie('tree'), { maxLength: 4 }),
    fc.dictionary(fc.constantFrom('a', 'nonMasqueradeCIDRs', 'b c', '1'), tie('tree'), { maxKeys: 3 }),
  ),
}));
const nestedDoc = fc.tuple(key, tree).map(([k, v]) => `${k}: ${JSON.stringify(v)}`);

/** One value nested `depth` levels in one of the forms YAML and JSON allow. */
const FORMS: Record<string, (depth: number) => string> = {
  'flow lists': (d) => `nonMasqueradeCIDRs: ${'['.repeat(d)}10.0.0.0/8${']'.repeat(d)}\n`,
  'flow maps': (d) => `nonMasqueradeCIDRs: ${'{a: '.repeat(d)}1${'}'.repeat(d)}\n`,
  'lists of maps': (d) => `nonMasqueradeCIDRs: ${'[{a: '.repeat(d)}1${'}]'.repeat(d)}\n`,
  'compact block lists': (d) => `nonMasqueradeCIDRs:\n${'- '.repeat(d)}10.0.0.0/8\n`,
  'explicit keys': (d) => `${'? '.repeat(d)}x\n`,
  'block maps': (d) => Array.from({ length: d }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ' 1\n',
  JSON: (d) => `{"nonMasqueradeCIDRs": ${'['.repeat(d)}"10.0.0.0/8"${']'.repeat(d)}}`,
};
const deepDoc = fc.tuple(fc.constantFrom(...Object.keys(FORMS)), fc.integer({ min: 1, max: 3000 })).map(([form, depth]) => FORMS[form]!(form === 'block maps' ? Math.min(depth, 300) : depth));

/** Anchors that alias each other: chains (depth), fans (width), both (billion laughs), cycles. */
const aliasDoc = fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 12 }), fc.boolean()).map(([levels, fan, cycle]) => {
  const lines = ['nonMasqueradeCIDRs: &a0 [10.0.0.0/8]'];
  for (let i = 1; i < levels; i++)
    lines.push(
      `a${i}: &a${i} [${Array(fan)
        .fill(`*a${i - 1}`)
        .join(', ')}]`,
    );
  if (cycle) lines.push('c: &c [*c]');
  lines.push(`nonMasqueradeCIDR: *a${levels - 1}`);
  return lines.join('\n');
});

/** Long flow lists and huge scalars in every place a value can stand. */
const wideDoc = fc.tuple(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 200_000 }), fc.constantFrom('a', '\u0000', 'µ', '"', '1s', '/')).map(([items, len, unit]) => {
  const big = unit.repeat(len);
  return [
    `nonMasqueradeCIDRs: [${Array.from({ length: items }, (_, i) => `bad${i}`).join(', ')}]`,
    `resyncInterval: ${JSON.stringify(big)}`,
    `${JSON.stringify(big)}: 1`,
    `cidrLimit: ${JSON.stringify(big)}`,
  ].join('\n');
});

describe('parseConfigText never throws anything but ConfigError', () => {
  it('random YAML-shaped documents', () => {
    fc.assert(
      fc.property(yamlDoc, arbOpts, (t, o) => check(t, o)),
      { seed: SEED, numRuns: 2000 },
    );
  });
  it('random JSON documents', () => {
    fc.assert(
      fc.property(jsonDoc, arbOpts, (t, o) => check(t, o)),
      { seed: SEED + 1, numRuns: 1500 },
    );
  });
  it('mutated documents', () => {
    fc.assert(
      fc.property(mutated, arbOpts, (t, o) => check(t, o)),
      { seed: SEED + 2, numRuns: 2500 },
    );
  });
  it('arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), arbOpts, (t, o) => check(t, o)),
      { seed: SEED + 3, numRuns: 1500 },
    );
  });
  it('nested lists and mappings of random shape', () => {
    fc.assert(
      fc.property(nestedDoc, arbOpts, (t, o) => check(t, o)),
      { seed: SEED + 4, numRuns: 1500 },
    );
  });
  it('deep nesting in every form, up to 3,000 levels', () => {
    fc.assert(
      fc.property(deepDoc, arbOpts, (t, o) => check(t, o)),
      { seed: SEED + 5, numRuns: 300 },
    );
  });
  it('aliases chained, fanned out and cyclic', () => {
    fc.assert(
      fc.property(aliasDoc, arbOpts, (t, o) => check(t, o)),
      { seed: SEED + 6, numRuns: 300 },
    );
  });
  it('long flow lists and huge scalars', () => {
    fc.assert(
      fc.property(wideDoc, arbOpts, (t, o) => check(t, o)),
      { seed: SEED + 7, numRuns: 60 },
    );
  });
  it('alias expansion is bounded (billion laughs)', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++)
      lines.push(
        `${'abcdefghij'[i]}: &${'abcdefghij'[i]} [${Array(10)
          .fill(`*${'abcdefghij'[i - 1]}`)
          .join(', ')}]`,
      );
    lines.push('nonMasqueradeCIDRs: *j');
    check(lines.join('\n'), { enableIPv6: false, nomasqAllReservedRanges: false });
  });
  it(`100,000 levels of nesting in every form are refused before any value is built, at the level past ${MAX_CONFIG_NESTING}`, () => {
    for (const [form, make] of Object.entries(FORMS)) {
      // Block maps need one more space per level: 100,000 levels would be 5 GB of text.
      const depth = form === 'block maps' ? 2000 : 100_000;
      const err = (() => {
        try {
          parseConfigText(make(depth), '/deep', { enableIPv6: false, nomasqAllReservedRanges: false });
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      assert.ok(err instanceof ConfigError, `${form}: ${String(err)}`);
      assert.equal(err.issues.length, 1, form);
      // Flow maps hold two values a level: past MAX_CONFIG_NODES the value count, also taken before parsing, refuses them first.
      assert.match(err.message, new RegExp(`^/deep(:\\d+:\\d+: lists and mappings nest more than ${MAX_CONFIG_NESTING} levels deep here|: the config holds more than [\\d,]+ values)`), form);
    }
  });
});
